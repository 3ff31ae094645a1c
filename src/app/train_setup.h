/* The deck's training settings as module configurations, shared by lethe train
 * and lethe unlearn (whose retrain baseline trains with the same settings). */
#ifndef LETHE_APP_TRAIN_SETUP_H
#define LETHE_APP_TRAIN_SETUP_H

#include "lethe/checkpoint.h"
#include "lethe/deck.h"
#include "lethe/linalg.h"
#include "lethe/model.h"
#include "lethe/optim.h"
#include "lethe/trainer.h"

/* The MLP of [model] for in_dim features and out_dim classes; max_batch holds the
 * rank's share of [optim] batch_size (at least 256 rows, for evaluation chunks,
 * and the replay batch); pad_ranks = ctx->size. */
void lt_app_model_cfg(const lt_ctx *ctx, const lt_deck *d, int in_dim, int out_dim,
                      lt_model_cfg *mc);
/* [optim] as an optimizer configuration (total_steps left 0: the caller sets it). */
void lt_app_optim_cfg(const lt_deck *d, lt_optim_cfg *oc);
/* [optim] lr_mult = fc1:0.1,fc2:0.5 then [optim] freeze = fc1 (freeze wins). */
LT_WUR lt_status lt_app_apply_layer_lr(lt_ctx *ctx, const lt_deck *d, const lt_model *m,
                                       lt_optim *opt);
/* The snapshot registry every run of a deck has, in lethe train's order: the model's
 * layout, theta, the optimizer's state and the ctx stream (lethe unlearn reads train's
 * snapshots through it). Collective. The caller adds its own entries after these. */
LT_WUR lt_status lt_app_ckpt_create(lt_ctx *ctx, const lt_model *m, lt_trainer *tr,
                                    const char *deck_text, const lt_blas_info *blas,
                                    lt_ckpt **ck);

#endif
