/* One data-parallel training step, and evaluation. */
#include "lethe/trainer.h"

#include <string.h>

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

/* Backward of one term: dlogits = weight * d(mean loss)/d logits on this rank's rows. */
static double term_backward(lt_model *m, const lt_loss_term *tm, long *correct, float beta) {
  const float *logits = lt_model_forward(m, tm->x, tm->rows);
  float *dl = m->dz[m->nlayers];
  int C = m->out_dim;
  float scale = (float)(tm->weight / (double)tm->global_rows);
  double loss = 0.0;
  if (tm->kind == LT_TERM_CE) {
    loss = lt_softmax_xent(dl, correct, logits, tm->y, tm->mask, tm->rows, C, scale);
  } else { /* 1/2 ||f(x) - z||^2 summed over classes: gradient f(x) - z */
    for (size_t i = 0; i < (size_t)tm->rows * (size_t)C; i++) {
      float d = logits[i] - tm->z[i];
      loss += 0.5 * (double)d * (double)d;
      dl[i] = scale * d;
    }
  }
  lt_model_backward(m, dl, tm->rows, m->grad, beta);
  return loss;
}

/* The reduced gradient of the terms; *correct counts term `report`'s correct rows. */
static lt_status gradient(lt_trainer *t, const lt_loss_term *terms, int nterms, int report,
                          double *loss_sum, long *correct) {
  lt_ctx *ctx = t->ctx;
  lt_model *m = t->m;
  lt_timer_start(ctx, "forward+backward");
  float beta = 0.0f;
  if (correct) *correct = 0;
  for (int k = 0; k < nterms; k++) {
    const lt_loss_term *tm = &terms[k];
    if (tm->rows > m->max_batch || tm->rows < 0 || tm->global_rows <= 0)
      LT_ERROR(ctx, LT_ERR_INTERNAL,
               "loss term %d: %d local rows of %ld (workspace %d rows)", k, tm->rows,
               tm->global_rows, m->max_batch);
    double l = 0.0;
    if (tm->rows > 0) {
      l = term_backward(m, tm, k == report ? correct : NULL, beta);
      beta = 1.0f;
    }
    if (loss_sum) loss_sum[k] = l;
  }
  if (beta == 0.0f) memset(m->grad, 0, m->n_pad * sizeof(float)); /* no local rows */
  lt_timer_stop(ctx, "forward+backward");

  lt_timer_start(ctx, "reduce");
  LT_CHECK(ctx, lt_dist_reduce_grad(ctx, &t->sh, t->mode, m->grad, t->grad_owned));
  lt_timer_stop(ctx, "reduce");
  return LT_OK;
}

lt_status lt_trainer_gradient(lt_trainer *t, const lt_loss_term *terms, int nterms,
                              double *loss_sum, long *correct) {
  LT_CHECK(t->ctx, gradient(t, terms, nterms, 0, loss_sum, correct));
  return LT_OK;
}

#define LT_MAX_TERMS 8

lt_status lt_trainer_step_terms_report(lt_trainer *t, const lt_loss_term *terms, int nterms,
                                       int report, lt_step_stats *stats) {
  lt_ctx *ctx = t->ctx;
  lt_model *m = t->m;
  if (nterms < 1 || nterms > LT_MAX_TERMS)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "%d loss terms (allowed 1..%d)", nterms, LT_MAX_TERMS);
  if (report < 0 || report >= nterms)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "reported term %d of %d loss terms", report, nterms);
  double sums[LT_MAX_TERMS] = {0};
  long correct = 0;
  LT_CHECK(ctx, gradient(t, terms, nterms, report, sums, &correct));

  double penalty = 0.0;
  lt_timer_start(ctx, "update");
  if (t->pre_update) LT_CHECK(ctx, t->pre_update(t->hook_user, t, &penalty));
  lt_optim_step(t->opt, m->theta + t->sh.lo, t->grad_owned);
  if (t->post_update) LT_CHECK(ctx, t->post_update(t->hook_user, t, NULL));
  lt_timer_stop(ctx, "update");

  lt_timer_start(ctx, "allgather");
  LT_CHECK(ctx, lt_dist_allgather(ctx, &t->sh, m->theta));
  lt_timer_stop(ctx, "allgather");

  if (stats) {
    double v[LT_MAX_TERMS + 2];
    for (int k = 0; k < nterms; k++) v[k] = sums[k];
    v[nterms] = (double)correct;
    v[nterms + 1] = penalty;
    LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, nterms + 2, MPI_DOUBLE, MPI_SUM, ctx->comm));
    stats->loss = v[report] / (double)terms[report].global_rows;
    stats->total = v[nterms + 1];
    for (int k = 0; k < nterms; k++)
      stats->total += terms[k].weight * v[k] / (double)terms[k].global_rows;
    stats->penalty = v[nterms + 1];
    stats->correct = (long)v[nterms];
    stats->rows = terms[report].global_rows;
  }
  return LT_OK;
}

lt_status lt_trainer_step_terms(lt_trainer *t, const lt_loss_term *terms, int nterms,
                                lt_step_stats *stats) {
  LT_CHECK(t->ctx, lt_trainer_step_terms_report(t, terms, nterms, 0, stats));
  return LT_OK;
}

lt_status lt_trainer_step(lt_trainer *t, const float *x, const int32_t *y, int local_rows,
                          long global_rows, const uint8_t *mask, lt_step_stats *stats) {
  lt_loss_term term = {.kind = LT_TERM_CE, .x = x, .rows = local_rows,
                       .global_rows = global_rows, .y = y, .mask = mask, .weight = 1.0};
  LT_CHECK(t->ctx, lt_trainer_step_terms(t, &term, 1, stats));
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
