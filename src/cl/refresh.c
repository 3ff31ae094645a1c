/* Refresh learning's unlearn step (see refresh.h). */
#include "refresh.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lethe/checkpoint.h"

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
  /* kfac form */
  lt_kfac *K;                 /* running factors */
  int inv_ready, nb;
  lt_kfac_damp damp;
  lt_pgrid *g;
  double *Ai[LT_MAX_LAYERS], *Gi[LT_MAX_LAYERS], *CAt[LT_MAX_LAYERS], *CG[LT_MAX_LAYERS];
  float *full;                /* [n_pad] the whole gradient */
  double *D, *E, *T, *H, *N;  /* per-step workspaces [max out x (in+1)] */
};

static lt_status kfac_alloc(lt_refresh *r, const lt_cl_cfg *cfg) {
  lt_ctx *ctx = r->ctx;
  const lt_model *m = r->t->m;
  r->nb = cfg->kfac_block;
  r->damp = (lt_kfac_damp)cfg->kfac_damping;
  LT_CHECK(ctx, lt_kfac_create(ctx, m, &r->K));
  size_t big = 0;
  int ok = 1;
  for (int l = 0; l < m->nlayers; l++) {
    size_t na = (size_t)r->K->da[l] * r->K->da[l], ng = (size_t)r->K->dg[l] * r->K->dg[l];
    size_t s = (size_t)r->K->dg[l] * r->K->da[l];
    big = s > big ? s : big;
    ok = ok && lt_calloc_aligned((void **)&r->Ai[l], na, sizeof(double)) == 0 &&
         lt_calloc_aligned((void **)&r->CAt[l], na, sizeof(double)) == 0 &&
         lt_calloc_aligned((void **)&r->Gi[l], ng, sizeof(double)) == 0 &&
         lt_calloc_aligned((void **)&r->CG[l], ng, sizeof(double)) == 0;
  }
  ok = ok && lt_calloc_aligned((void **)&r->full, m->n_pad, sizeof(float)) == 0;
  double **w[5] = {&r->D, &r->E, &r->T, &r->H, &r->N};
  for (int k = 0; k < 5 && ok; k++) ok = lt_calloc_aligned((void **)w[k], big, sizeof(double)) == 0;
  if (!ok) LT_ERROR(ctx, LT_ERR_MEM, "out of memory for the refresh kfac form's inverses");
  return LT_OK;
}

static void kfac_free(lt_refresh *r) {
  for (int l = 0; l < LT_MAX_LAYERS; l++) {
    lt_free(r->Ai[l]);
    lt_free(r->Gi[l]);
    lt_free(r->CAt[l]);
    lt_free(r->CG[l]);
  }
  lt_free(r->full);
  lt_free(r->D);
  lt_free(r->E);
  lt_free(r->T);
  lt_free(r->H);
  lt_free(r->N);
  lt_kfac_destroy(&r->K);
  lt_pgrid_destroy(&r->g);
}

/* Damped inverses and the Cholesky factors of the inverses (CA stored transposed). Collective. */
static lt_status kfac_inverses(lt_refresh *r) {
  lt_ctx *ctx = r->ctx;
  if (!r->g) LT_CHECK(ctx, lt_pgrid_create(ctx, 0, 0, &r->g));
  lt_timer_start(ctx, "refresh_kfac_inv");
  lt_status st = lt_kfac_inverses(ctx, r->K, r->g, r->nb, r->damping, r->damp, r->Ai, r->Gi,
                                  r->CAt, r->CG);
  lt_timer_stop(ctx, "refresh_kfac_inv");
  LT_CHECK(ctx, st);
  for (int l = 0; l < r->K->nlayers; l++) { /* CA (lower) -> CA^T in place */
    int n = r->K->da[l];
    double *C = r->CAt[l];
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++) {
        C[(size_t)i * n + j] = C[(size_t)j * n + i];
        C[(size_t)j * n + i] = 0.0;
      }
  }
  r->inv_ready = 1;
  return LT_OK;
}

/* Wbar += gamma Gi Delta Ai + sqrt(2 gamma) CG E CA^T on the owned entries (see refresh.h). */
static lt_status kfac_unlearn(lt_refresh *r, uint64_t counter) {
  lt_ctx *ctx = r->ctx;
  lt_trainer *t = r->t;
  const lt_model *m = t->m;
  const lt_shard *sh = &t->sh;
  if (!r->inv_ready) LT_CHECK(ctx, kfac_inverses(r));
  memcpy(r->full + sh->lo, t->grad_owned, sh->slice * sizeof(float));
  LT_CHECK(ctx, lt_dist_allgather(ctx, sh, r->full));
  lt_timer_start(ctx, "refresh");
  float *theta = m->theta;
  size_t hi = sh->hi < m->n ? sh->hi : m->n;
  double noise = sqrt(2.0 * r->gamma);
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    int iv[2][2], da = ly->in + 1, dg = ly->out;
    lt_kfac_owned_rows(ly, sh->lo, hi, iv[0], iv[1]);
    if (iv[0][0] == iv[0][1] && iv[1][0] == iv[1][1]) continue;
    lt_kfac_layer_get(ly, r->full, NULL, r->D);
    for (int q = 0; q < dg; q++) /* eps of entry (q, j) = output pair index(q, j) of the stream */
      for (int j = 0; j < da; j++) {
        lt_rng rng;
        lt_rng_seed(&rng, ctx->seed, counter, LT_RNG_NOISE);
        lt_rng_jump(&rng, 2 * (uint64_t)lt_kfac_index(ly, q, j));
        r->E[(size_t)q * da + j] = lt_rng_normal(&rng);
      }
    for (int k = 0; k < 2; k++) {
      if (iv[k][0] == iv[k][1]) continue;
      lt_kfac_sandwich_rows(r->H, r->T, r->Gi[l], r->D, r->Ai[l], dg, da, iv[k][0], iv[k][1]);
      lt_kfac_sandwich_rows(r->N, r->T, r->CG[l], r->E, r->CAt[l], dg, da, iv[k][0], iv[k][1]);
      int j0 = k == 0 ? 0 : ly->in, j1 = k == 0 ? ly->in : da;
      for (int q = iv[k][0]; q < iv[k][1]; q++)
        for (int j = j0; j < j1; j++) {
          size_t i = lt_kfac_index(ly, q, j);
          if (i < sh->lo || i >= hi) continue;
          size_t e = (size_t)q * da + j;
          theta[i] += (float)(r->gamma * r->H[e] + noise * r->N[e]);
        }
    }
  }
  lt_timer_stop(ctx, "refresh");
  lt_timer_start(ctx, "allgather");
  LT_CHECK(ctx, lt_dist_allgather(ctx, sh, theta));
  lt_timer_stop(ctx, "allgather");
  return LT_OK;
}

void lt_refresh_end_task_kfac(lt_refresh *r, const lt_kfac *Ft) {
  lt_kfac_axpby(r->K, 1e-5, Ft);
  r->inv_ready = 0;
}

lt_status lt_refresh_ckpt_add(lt_refresh *r, lt_ckpt *ck) {
  if (r->kind != LT_REFRESH_KFAC) return LT_OK;
  for (int l = 0; l < r->K->nlayers; l++) {
    char path[64];
    snprintf(path, sizeof(path), "/strategy/refresh/kfac_A_%d", l);
    LT_CHECK(r->ctx, lt_ckpt_add_replicated(ck, path, LT_CKPT_F64, r->K->A[l],
                                            (size_t)r->K->da[l] * r->K->da[l]));
    snprintf(path, sizeof(path), "/strategy/refresh/kfac_G_%d", l);
    LT_CHECK(r->ctx, lt_ckpt_add_replicated(ck, path, LT_CKPT_F64, r->K->G[l],
                                            (size_t)r->K->dg[l] * r->K->dg[l]));
  }
  return LT_OK;
}

lt_status lt_refresh_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, lt_refresh **out) {
  *out = NULL;
  if (cfg->refresh != LT_REFRESH_CODE && cfg->refresh != LT_REFRESH_PAPER &&
      cfg->refresh != LT_REFRESH_KFAC)
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
  if (r->kind == LT_REFRESH_KFAC) {
    lt_status st = kfac_alloc(r, cfg);
    if (st != LT_OK) {
      lt_refresh_destroy(&r);
      return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
    }
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
  kfac_free(*pr);
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
  if (r->kind == LT_REFRESH_KFAC) {
    LT_CHECK(ctx, kfac_unlearn(r, counter));
    return LT_OK;
  }

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
  size_t b = sizeof(*r) + r->t->sh.slice * sizeof(float);
  if (r->K) { /* factors, 2 inverses and 2 Cholesky factors of each, gradient, workspaces */
    const lt_model *m = r->t->m;
    size_t big = lt_kfac_widest_layer(m);
    b += 3 * lt_kfac_bytes(r->K) + m->n_pad * sizeof(float) + 5 * big * sizeof(double);
  }
  return b;
}
