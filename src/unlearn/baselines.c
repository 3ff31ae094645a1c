/* Baselines of unlearning: the plain training loop (retrain from scratch and
 * fine-tune on the retain set) and NegGrad (gradient ascent on the forget set). */
#include <math.h>

#include "lethe/unlearn.h"

lt_status lt_unlearn_train_epochs(lt_ctx *ctx, lt_trainer *t, const lt_dataset *ds,
                                  int global_batch, int epochs) {
  lt_batcher *b = NULL;
  LT_CHECK(ctx, lt_batcher_create(ctx, ds, global_batch, &b));
  lt_status st = LT_OK;
  for (int e = 0; e < epochs && st == LT_OK; e++) {
    lt_batcher_epoch(b, e);
    for (int rows; st == LT_OK && (rows = lt_batcher_next(b)) > 0;)
      st = lt_trainer_step(t, b->xb, b->yb, rows, global_batch, NULL, NULL);
  }
  lt_batcher_destroy(&b);
  LT_CHECK(ctx, st);
  return LT_OK;
}

lt_status lt_unlearn_neggrad(lt_ctx *ctx, lt_trainer *t, const lt_dataset *ds, int global_batch,
                             long steps) {
  lt_batcher *b = NULL;
  LT_CHECK(ctx, lt_batcher_create(ctx, ds, global_batch, &b));
  lt_status st = LT_OK;
  long e = 0;
  for (long s = 0; s < steps && st == LT_OK; s++) {
    int rows = lt_batcher_next(b);
    if (rows == 0) {
      lt_batcher_epoch(b, ++e);
      rows = lt_batcher_next(b);
    }
    /* ascent: the gradient of minus the mean cross-entropy */
    lt_loss_term term = {.kind = LT_TERM_CE, .x = b->xb, .rows = rows,
                         .global_rows = global_batch, .y = b->yb, .weight = -1.0};
    lt_step_stats stt;
    st = lt_trainer_step_terms(t, &term, 1, &stt);
    if (st == LT_OK && !isfinite(stt.loss))
      st = lt_error_set(ctx, LT_ERR_NUM, __FILE__, __LINE__, __func__,
                        "NegGrad diverged at step %ld: the forget-set loss is %g; lower [unlearn] "
                        "neggrad_lr or neggrad_steps", s + 1, stt.loss);
  }
  lt_batcher_destroy(&b);
  LT_CHECK(ctx, st);
  return LT_OK;
}
