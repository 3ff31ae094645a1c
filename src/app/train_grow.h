/* lethe train with [model] kind = template: the MixtureGrowth phases as the run's
 * tasks (src/app/train_grow.c). Used by cmd_train.c only. */
#ifndef LETHE_TRAIN_GROW_H
#define LETHE_TRAIN_GROW_H

#include "lethe/checkpoint.h"
#include "lethe/deck.h"
#include "lethe/grow.h"
#include "lethe/metrics.h"
#include "lethe/trainer.h"

#define LT_RNG_GROW (LT_RNG_USER + 7) /* growth's random coefficients (rank-independent) */

typedef struct {
  lt_ctx *ctx;
  lt_grow_plan plan;
  lt_grow_init init;
  double noise, grown_lr, wd;
  lt_optim_cfg base; /* the deck's optimizer; its weight decay moves to the templates */
  long spe;          /* steps per epoch */
  lt_model *m;
  lt_trainer *t;
  /* saved in snapshots (/grow/...): grown flag, active member, templates per set,
   * phases, the phase; cumulative training FLOPs; per phase: epochs, FLOPs and test accuracy at
   * its end (also written to metrics.h5 /grow) */
  int64_t state[5];
  double flops;
  double phase_epochs[3], phase_flops[3], phase_acc[3];
} lt_train_grow;

/* The plan from the deck. */
LT_WUR lt_status lt_train_grow_create(lt_ctx *ctx, const lt_deck *d, lt_train_grow **g);
/* oc is the optimizer configuration the run's trainer is created with: kept as the
 * phases' base, and its weight decay set to 0 (the decay goes to templates only). */
void lt_train_grow_optim(lt_train_grow *g, long steps_per_epoch, lt_optim_cfg *oc);
void lt_train_grow_destroy(lt_train_grow **g);
/* The model (created at full width) and trainer: the template decay hook. */
LT_WUR lt_status lt_train_grow_attach(lt_train_grow *g, lt_model *m, lt_trainer *t);
LT_WUR lt_status lt_train_grow_ckpt_add(lt_train_grow *g, lt_ckpt *ck);
LT_WUR lt_status lt_train_grow_metrics_add(lt_train_grow *g, lt_metrics *mt);
/* Enter phase k: the active member and the phase's optimizer schedule; fresh = 1
 * also zeroes the optimizer state and step counter. */
LT_WUR lt_status lt_train_grow_enter(lt_train_grow *g, int k, int fresh);
/* The growth step (MixtureGrowth) before phase k, if the plan has one there and it
 * has not happened yet (*grew = 1 when it ran). */
LT_WUR lt_status lt_train_grow_grow(lt_train_grow *g, int k, uint64_t seed, int *grew);
/* Account one training step of rows samples. */
void lt_train_grow_step(lt_train_grow *g, long rows);
/* Phase k ended with test accuracy acc. */
void lt_train_grow_phase_end(lt_train_grow *g, int k, double acc);

#endif
