/* Refresh learning's unlearn step (see refresh.h). */
#include "refresh.h"

#include <math.h>
#include <string.h>

#define LT_REFRESH_TENSORS (2 * LT_MAX_LAYERS)

struct lt_refresh {
  lt_ctx *ctx;
  lt_trainer *t;
  lt_refresh_kind kind;
  double delta, kappa, sigma; /* code form */
  double gamma, damping;      /* paper form */
  float *F;                   /* [slice] running Fisher */
  int ntens;                  /* tensors with owned entries */
  size_t lo[LT_REFRESH_TENSORS], hi[LT_REFRESH_TENSORS]; /* their owned global ranges */
  double sums[2 * LT_REFRESH_TENSORS]; /* per tensor: sum theta^2, sum Delta^2 */
};

lt_status lt_refresh_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, lt_refresh **out) {
  *out = NULL;
  if (cfg->refresh != LT_REFRESH_CODE && cfg->refresh != LT_REFRESH_PAPER)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "refresh kind %d has no state", (int)cfg->refresh);
  lt_refresh *r = NULL;
  LT_CALLOC(ctx, r, 1);
  r->ctx = ctx;
  r->t = t;
  r->kind = cfg->refresh;
  r->delta = cfg->refresh_delta;
  r->kappa = cfg->refresh_kappa;
  r->sigma = cfg->refresh_sigma;
  r->gamma = cfg->refresh_gamma;
  r->damping = cfg->refresh_damping;
  if (lt_calloc_aligned((void **)&r->F, t->sh.slice, sizeof(float)) != 0) {
    lt_free(r);
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory for the refresh Fisher (%zu floats)", t->sh.slice);
  }
  /* every tensor (W, b of each layer) clipped to the owned real range; the
   * tensor index is kept in the same order on every rank (empty ranges too),
   * so that one allreduce sums the partial norms of the same tensors */
  const lt_model *m = t->m;
  size_t own_hi = t->sh.hi < m->n ? t->sh.hi : m->n;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    size_t a[2] = {ly->w_off, ly->b_off};
    size_t b[2] = {ly->w_off + (size_t)ly->in * (size_t)ly->out, ly->b_off + (size_t)ly->out};
    for (int k = 0; k < 2; k++) {
      size_t x = a[k] > t->sh.lo ? a[k] : t->sh.lo, y = b[k] < own_hi ? b[k] : own_hi;
      r->lo[r->ntens] = x;
      r->hi[r->ntens] = y > x ? y : x;
      r->ntens++;
    }
  }
  *out = r;
  return LT_OK;
}

void lt_refresh_destroy(lt_refresh **pr) {
  if (!pr || !*pr) return;
  lt_free((*pr)->F);
  lt_free(*pr);
  *pr = NULL;
}

lt_status lt_refresh_unlearn(lt_refresh *r, const lt_loss_term *ce, uint64_t counter) {
  lt_ctx *ctx = r->ctx;
  lt_trainer *t = r->t;
  float *theta = t->m->theta;
  const float *g = t->grad_owned, *F = r->F;
  size_t off = t->sh.lo;
  LT_CHECK(ctx, lt_trainer_gradient(t, ce, 1, NULL, NULL));

  lt_timer_start(ctx, "refresh");
  if (r->kind == LT_REFRESH_CODE) { /* per-tensor norms: one allreduce for all tensors */
    for (int k = 0; k < r->ntens; k++) {
      double st = 0.0, sg = 0.0;
      for (size_t i = r->lo[k]; i < r->hi[k]; i++) {
        st += (double)theta[i] * (double)theta[i];
        sg += (double)g[i - off] * (double)g[i - off];
      }
      r->sums[2 * k] = st;
      r->sums[2 * k + 1] = sg;
    }
    LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, r->sums, 2 * r->ntens, MPI_DOUBLE, MPI_SUM,
                                    ctx->comm));
  }
  for (int k = 0; k < r->ntens; k++) {
    if (r->hi[k] == r->lo[k]) continue;
    lt_rng rng; /* eps_i is output pair i of the step's noise stream */
    lt_rng_seed(&rng, ctx->seed, counter, LT_RNG_NOISE);
    lt_rng_jump(&rng, 2 * (uint64_t)r->lo[k]);
    if (r->kind == LT_REFRESH_CODE) {
      double scale = sqrt(r->sums[2 * k]) / (sqrt(r->sums[2 * k + 1]) + 1e-20);
      for (size_t i = r->lo[k]; i < r->hi[k]; i++) {
        double eps = lt_rng_normal(&rng);
        double u = scale * (double)g[i - off] + r->sigma * eps;
        theta[i] += (float)(r->delta / (1.0 + r->kappa * (double)F[i - off]) * u);
      }
    } else {
      for (size_t i = r->lo[k]; i < r->hi[k]; i++) {
        double eps = lt_rng_normal(&rng);
        double inv = 1.0 / ((double)F[i - off] + r->damping);
        theta[i] += (float)(r->gamma * inv * (double)g[i - off] + sqrt(2.0 * r->gamma * inv) * eps);
      }
    }
  }
  lt_timer_stop(ctx, "refresh");

  lt_timer_start(ctx, "allgather");
  LT_CHECK(ctx, lt_dist_allgather(ctx, &t->sh, theta));
  lt_timer_stop(ctx, "allgather");
  return LT_OK;
}

void lt_refresh_end_task(lt_refresh *r, const float *F_t) {
  size_t n = r->t->sh.slice;
  for (size_t i = 0; i < n; i++) r->F[i] = 1e-5f * r->F[i] + F_t[i];
}

float *lt_refresh_fisher(lt_refresh *r) { return r->F; }

size_t lt_refresh_bytes(const lt_refresh *r) {
  return sizeof(*r) + r->t->sh.slice * sizeof(float);
}
