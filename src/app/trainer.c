/* One data-parallel training step, and evaluation. */
#include "lethe/trainer.h"

lt_status lt_trainer_create(lt_ctx *ctx, lt_model *m, const lt_optim_cfg *ocfg,
                            lt_dist_mode mode, lt_trainer **out) {
  *out = NULL;
  lt_trainer *t = NULL;
  LT_CALLOC(ctx, t, 1);
  t->ctx = ctx;
  t->m = m;
  t->mode = mode;
  lt_status st = lt_shard_init(ctx, m->n, m->n_pad, &t->sh);
  if (st == LT_OK) st = lt_optim_create(ctx, ocfg, t->sh.lo, t->sh.hi, &t->opt);
  if (st == LT_OK && lt_calloc_aligned((void **)&t->grad_owned, t->sh.slice, sizeof(float)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory for the owned gradient (%zu floats)", t->sh.slice);
  if (st != LT_OK) {
    lt_trainer_destroy(&t);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  *out = t;
  return LT_OK;
}

void lt_trainer_destroy(lt_trainer **pt) {
  if (!pt || !*pt) return;
  lt_trainer *t = *pt;
  lt_optim_destroy(&t->opt);
  lt_free(t->grad_owned);
  lt_free(t);
  *pt = NULL;
}

lt_status lt_trainer_step(lt_trainer *t, const float *x, const int32_t *y, int local_rows,
                          long global_rows, const uint8_t *mask, lt_step_stats *stats) {
  lt_ctx *ctx = t->ctx;
  lt_model *m = t->m;
  if (local_rows > m->max_batch)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "batch of %d rows exceeds the model's workspace (%d)",
             local_rows, m->max_batch);
  lt_timer_start(ctx, "forward+backward");
  const float *logits = lt_model_forward(m, x, local_rows);
  long correct = 0;
  /* dlogits lives in the model's last dz buffer */
  float *dlogits = m->dz[m->nlayers];
  double loss = lt_softmax_xent(dlogits, &correct, logits, y, mask, local_rows, m->out_dim,
                                (float)(1.0 / (double)global_rows));
  lt_model_backward(m, dlogits, local_rows, m->grad, 0.0f);
  lt_timer_stop(ctx, "forward+backward");

  lt_timer_start(ctx, "reduce");
  LT_CHECK(ctx, lt_dist_reduce_grad(ctx, &t->sh, t->mode, m->grad, t->grad_owned));
  lt_timer_stop(ctx, "reduce");

  lt_timer_start(ctx, "update");
  lt_optim_step(t->opt, m->theta + t->sh.lo, t->grad_owned);
  lt_timer_stop(ctx, "update");

  lt_timer_start(ctx, "allgather");
  LT_CHECK(ctx, lt_dist_allgather(ctx, &t->sh, m->theta));
  lt_timer_stop(ctx, "allgather");

  if (stats) {
    double v[2] = {loss, (double)correct};
    LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, ctx->comm));
    stats->loss = v[0] / (double)global_rows;
    stats->correct = (long)v[1];
    stats->rows = global_rows;
  }
  return LT_OK;
}

lt_status lt_evaluate(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const uint8_t *mask,
                      double *acc, double *loss) {
  double v[3] = {0.0, 0.0, (double)ds->n}; /* loss sum, correct, rows */
  float *dl = m->dz[m->nlayers];
  for (int i = 0; i < ds->n; i += m->max_batch) {
    int b = ds->n - i < m->max_batch ? ds->n - i : m->max_batch;
    const float *logits = lt_model_forward(m, ds->x + (size_t)i * (size_t)ds->d, b);
    long c = 0;
    v[0] += lt_softmax_xent(dl, &c, logits, ds->y + i, mask, b, m->out_dim, 1.0f);
    v[1] += (double)c;
  }
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_SUM, ctx->comm));
  *acc = v[2] > 0 ? v[1] / v[2] : 0.0;
  *loss = v[2] > 0 ? v[0] / v[2] : 0.0;
  return LT_OK;
}
