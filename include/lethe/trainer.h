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

/* A term of the loss: CE against labels, or squared error against stored logits
 * (DER), on rows of this rank; weight multiplies its loss and gradient. The mean
 * is over global_rows, the term's rows summed over all ranks. */
typedef enum { LT_TERM_CE = 0, LT_TERM_MSE_LOGITS } lt_term_kind;

typedef struct {
  lt_term_kind kind;
  const float *x;      /* [rows, d] */
  int rows;            /* this rank's rows (0 allowed) */
  long global_rows;    /* rows of the term over all ranks (> 0) */
  const int32_t *y;    /* CE: [rows] labels */
  const uint8_t *mask; /* CE: NULL or [classes] logit mask */
  const float *z;      /* MSE: [rows, classes] target logits */
  double weight;
} lt_loss_term;

typedef struct lt_trainer lt_trainer;

/* Hooks of a strategy on the owned slice: pre_update runs after the gradient is
 * reduced (t->grad_owned may be modified, e.g. a penalty's gradient added, and
 * *penalty set to this rank's part of the penalty value); post_update runs after
 * the optimizer changed the owned slice of theta, before the allgather. */
typedef lt_status (*lt_trainer_hook)(void *user, lt_trainer *t, double *penalty);

struct lt_trainer {
  lt_ctx *ctx;
  lt_model *m;      /* not owned */
  lt_shard sh;
  lt_optim *opt;    /* owned */
  lt_dist_mode mode;
  float *grad_owned; /* [sh.slice] */
  lt_trainer_hook pre_update, post_update; /* NULL: none */
  void *hook_user;
};

typedef struct {
  double loss;   /* mean loss of the reported term (the first unless chosen): the task's CE */
  double total;  /* weighted sum of all terms' mean losses plus the penalty */
  double penalty; /* penalty value summed over ranks */
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

/* The general step: the gradient of sum_k weight_k * mean loss of term k, then
 * pre_update, optimizer, post_update, allgather. stats (may be NULL) reports the
 * first term's loss and accuracy, the total and the penalty. Collective. */
LT_WUR lt_status lt_trainer_step_terms(lt_trainer *t, const lt_loss_term *terms, int nterms,
                                       lt_step_stats *stats);

/* The same step, reporting term `report` (0 <= report < nterms) instead of the first:
 * its loss, accuracy and rows go to stats->loss, correct, rows (total and penalty
 * as above). Lets a strategy put the current batch last (so that its forward pass,
 * whose logits stay in the model's output workspace m->z[m->nlayers] after the
 * step, is the last one) and still report it. Collective. */
LT_WUR lt_status lt_trainer_step_terms_report(lt_trainer *t, const lt_loss_term *terms,
                                              int nterms, int report, lt_step_stats *stats);

/* Only the reduced gradient of the terms into t->grad_owned (no update); local
 * sums of each term's loss and the first term's correct count are returned in
 * loss_sum[nterms] (may be NULL) and *correct (may be NULL). Collective. */
LT_WUR lt_status lt_trainer_gradient(lt_trainer *t, const lt_loss_term *terms, int nterms,
                                     double *loss_sum, long *correct);

/* Accuracy and mean loss of the model over all ranks' shards of ds, in chunks of
 * at most m->max_batch rows. mask: NULL or [classes]. Collective. */
LT_WUR lt_status lt_evaluate(lt_ctx *ctx, lt_model *m, const lt_dataset *ds,
                             const uint8_t *mask, double *acc, double *loss);

#endif
