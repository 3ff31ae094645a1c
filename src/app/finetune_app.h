/* The deck's [finetune] and [run] seeds keys applied by lethe train (internal to src/app). */
#ifndef LETHE_APP_FINETUNE_APP_H
#define LETHE_APP_FINETUNE_APP_H

#include "lethe/deck.h"
#include "lethe/finetune.h"
#include "lethe/linalg.h"

/* Collective: [finetune] classes and samples_per_class on the loaded splits
 * (nothing when neither is set). A [scenario] with them is an error. */
LT_WUR lt_status lt_app_ft_data(lt_ctx *ctx, const lt_deck *d, lt_dataset **train,
                                lt_dataset **test);

/* Collective: [finetune] from, reinit_top (model) and freeze_bottom, llrd (optimizer
 * multipliers, applied before [optim] lr_mult and freeze, which override them). */
LT_WUR lt_status lt_app_ft_model(lt_ctx *ctx, const lt_deck *d, lt_model *m, lt_optim *opt);

/* The replicas of [run] seeds: each runs fn on its group. deck_text: the resolved
 * deck for RUN_DIR/metrics.h5. resume: --resume (refused with seeds). Collective. */
LT_WUR lt_status lt_app_ft_replicas(lt_ctx *ctx, const lt_deck *d, const char *deck_text,
                                    const lt_blas_info *blas, const char *resume,
                                    lt_ft_replica_fn fn, void *user);

#endif
