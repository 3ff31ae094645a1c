/* lethe trainer: one data-parallel training step and evaluation (DESIGN §3).
 *
 *   forward on the local rows with the replicated theta
 *   -> dlogits = (softmax - onehot) / global_rows   (so the backward gives the mean gradient)
 *   -> backward into the model's full-length local gradient
 *   -> reduce (sharded: Reduce_scatter_block; allreduce mode: Allreduce) to the owned slice
 *   -> optimizer update of the owned slice
 *   -> Allgather of theta
 */
#ifndef LETHE_TRAINER_H
#define LETHE_TRAINER_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/dist.h"
#include "lethe/model.h"
#include "lethe/optim.h"

typedef struct {
  lt_ctx *ctx;
  lt_model *m;      /* not owned */
  lt_shard sh;
  lt_optim *opt;    /* owned */
  lt_dist_mode mode;
  float *grad_owned; /* [sh.slice] */
} lt_trainer;

typedef struct {
  double loss;   /* mean loss over the global batch */
  long correct;  /* correct predictions over the global batch */
  long rows;     /* global rows */
} lt_step_stats;

LT_WUR lt_status lt_trainer_create(lt_ctx *ctx, lt_model *m, const lt_optim_cfg *ocfg,
                                   lt_dist_mode mode, lt_trainer **t);
void lt_trainer_destroy(lt_trainer **t);

/* One step on this rank's local_rows rows (x [local_rows, d], y [local_rows]) of a
 * global batch of global_rows rows. mask: NULL or [classes] logit mask.
 * stats may be NULL (saves one small allreduce). Collective. */
LT_WUR lt_status lt_trainer_step(lt_trainer *t, const float *x, const int32_t *y,
                                 int local_rows, long global_rows, const uint8_t *mask,
                                 lt_step_stats *stats);

/* Accuracy and mean loss of the model over all ranks' shards of ds, in chunks of
 * at most m->max_batch rows. mask: NULL or [classes]. Collective. */
LT_WUR lt_status lt_evaluate(lt_ctx *ctx, lt_model *m, const lt_dataset *ds,
                             const uint8_t *mask, double *acc, double *loss);

#endif
