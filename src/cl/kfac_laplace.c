/* K-FAC Laplace penalty (see kfac_laplace.h). */
#include "kfac_laplace.h"

#include <stdio.h>
#include <string.h>

#include "lethe/checkpoint.h"
#include "lethe/linalg.h"

struct lt_kfl {
  lt_ctx *ctx;
  lt_trainer *t;
  double lambda, gamma;
  int nb;
  lt_kfac *F;     /* running factors (replicated) */
  float *anchor;  /* [n_pad] theta* (replicated) */
  /* per step, in float (sgemm: twice the double rate; the penalty's gradient is
   * a float anyway): the factors' float copies, made when `done` changed (after a
   * task end or a restart), and workspaces [max out x (in+1)] each */
  float *Af[LT_MAX_LAYERS], *Gf[LT_MAX_LAYERS];
  long conv_done;
  float *dW, *T, *H;
};

lt_status lt_kfl_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, lt_kfl **out) {
  *out = NULL;
  lt_kfl *p = NULL;
  LT_CALLOC(ctx, p, 1);
  p->ctx = ctx;
  p->t = t;
  p->lambda = cfg->kfac_lambda;
  p->gamma = cfg->kfac_gamma;
  p->nb = cfg->kfac_block;
  const lt_model *m = t->m;
  size_t big = lt_kfac_widest_layer(m);
  p->conv_done = -1;
  lt_status st = lt_kfac_create(ctx, m, &p->F);
  int ok = st == LT_OK;
  for (int l = 0; l < m->nlayers && ok; l++)
    ok = lt_calloc_aligned((void **)&p->Af[l], (size_t)p->F->da[l] * p->F->da[l], sizeof(float)) == 0 &&
         lt_calloc_aligned((void **)&p->Gf[l], (size_t)p->F->dg[l] * p->F->dg[l], sizeof(float)) == 0;
  if (st == LT_OK && (!ok || lt_calloc_aligned((void **)&p->anchor, m->n_pad, sizeof(float)) != 0 ||
                      lt_calloc_aligned((void **)&p->dW, big, sizeof(float)) != 0 ||
                      lt_calloc_aligned((void **)&p->T, big, sizeof(float)) != 0 ||
                      lt_calloc_aligned((void **)&p->H, big, sizeof(float)) != 0))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "kfac: out of memory for the Laplace penalty's anchor and workspaces");
  if (st != LT_OK) {
    lt_kfl_destroy(&p);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  *out = p;
  return LT_OK;
}

void lt_kfl_destroy(lt_kfl **pp) {
  if (!pp || !*pp) return;
  lt_kfl *p = *pp;
  for (int l = 0; l < LT_MAX_LAYERS; l++) {
    lt_free(p->Af[l]);
    lt_free(p->Gf[l]);
  }
  lt_kfac_destroy(&p->F);
  lt_free(p->anchor);
  lt_free(p->dW);
  lt_free(p->T);
  lt_free(p->H);
  lt_free(p);
  *pp = NULL;
}

static void to_float(float *dst, const double *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

double lt_kfl_eval(lt_kfl *p, long done, float *grad_owned) {
  if (done <= 0) return 0.0;
  const lt_model *m = p->t->m;
  const lt_shard *sh = &p->t->sh;
  if (p->conv_done != done) {
    for (int l = 0; l < m->nlayers; l++) {
      to_float(p->Af[l], p->F->A[l], (size_t)p->F->da[l] * p->F->da[l]);
      to_float(p->Gf[l], p->F->G[l], (size_t)p->F->dg[l] * p->F->dg[l]);
    }
    p->conv_done = done;
  }
  size_t hi = sh->hi < m->n ? sh->hi : m->n;
  double s = 0.0;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    int iv[2][2], da = ly->in + 1, dg = ly->out;
    lt_kfac_owned_rows(ly, sh->lo, hi, iv[0], iv[1]);
    if (iv[0][0] == iv[0][1] && iv[1][0] == iv[1][1]) continue;
    for (int r = 0; r < dg; r++) /* dW = Wbar - Wbar* */
      for (int j = 0; j < da; j++) {
        size_t i = lt_kfac_index(ly, r, j);
        p->dW[(size_t)r * da + j] = m->theta[i] - p->anchor[i];
      }
    for (int k = 0; k < 2; k++) { /* k = 0: W's columns 0..in-1, k = 1: the bias column */
      int r0 = iv[k][0], nr = iv[k][1] - iv[k][0];
      if (nr == 0) continue;
      /* T[nr, da] = G[r0:r0+nr, :] dW;  H[r0:r0+nr, :] = T A */
      lt_sgemm(0, 0, nr, da, dg, 1.0f, p->Gf[l] + (size_t)r0 * dg, dg, p->dW, da, 0.0f, p->T, da);
      lt_sgemm(0, 0, nr, da, da, 1.0f, p->T, da, p->Af[l], da, 0.0f, p->H + (size_t)r0 * da, da);
      int j0 = k == 0 ? 0 : ly->in, j1 = k == 0 ? ly->in : da;
      for (int r = r0; r < r0 + nr; r++)
        for (int j = j0; j < j1; j++) {
          size_t i = lt_kfac_index(ly, r, j);
          if (i < sh->lo || i >= hi) continue;
          double h = p->H[(size_t)r * da + j];
          s += (double)p->dW[(size_t)r * da + j] * h;
          if (grad_owned) grad_owned[i - sh->lo] += (float)(p->lambda * h);
        }
    }
  }
  return 0.5 * p->lambda * s;
}

void lt_kfl_end_task(lt_kfl *p, long done, const lt_kfac *Ft) {
  /* w = gamma w + 1 task weights so far (w = 0 before the first): G is the decayed
   * sum, A the decayed mean, A <- (gamma w A + A_t) / (gamma w + 1) */
  double w = 0.0;
  for (long k = 0; k < done; k++) w = p->gamma * w + 1.0;
  double keepA = p->gamma * w, scale = 1.0 / (keepA + 1.0), keepG = done > 0 ? p->gamma : 0.0;
  for (int l = 0; l < p->F->nlayers; l++) {
    size_t na = (size_t)p->F->da[l] * p->F->da[l], ng = (size_t)p->F->dg[l] * p->F->dg[l];
    for (size_t i = 0; i < na; i++) p->F->A[l][i] = (keepA * p->F->A[l][i] + Ft->A[l][i]) * scale;
    for (size_t i = 0; i < ng; i++) p->F->G[l][i] = keepG * p->F->G[l][i] + Ft->G[l][i];
  }
  memcpy(p->anchor, p->t->m->theta, p->t->m->n_pad * sizeof(float));
}

lt_status lt_kfl_ckpt_add(lt_kfl *p, struct lt_ckpt *ck) {
  lt_ctx *ctx = p->ctx;
  for (int l = 0; l < p->F->nlayers; l++) {
    char path[64];
    snprintf(path, sizeof(path), "/strategy/kfac/A_%d", l);
    LT_CHECK(ctx, lt_ckpt_add_replicated(ck, path, LT_CKPT_F64, p->F->A[l],
                                         (size_t)p->F->da[l] * p->F->da[l]));
    snprintf(path, sizeof(path), "/strategy/kfac/G_%d", l);
    LT_CHECK(ctx, lt_ckpt_add_replicated(ck, path, LT_CKPT_F64, p->F->G[l],
                                         (size_t)p->F->dg[l] * p->F->dg[l]));
  }
  LT_CHECK(ctx, lt_ckpt_add_replicated(ck, "/strategy/kfac/anchor", LT_CKPT_F32, p->anchor,
                                       p->t->m->n_pad));
  return LT_OK;
}

lt_status lt_kfl_max_curvature(lt_kfl *p, double *mx) {
  lt_ctx *ctx = p->ctx;
  lt_pgrid *g = NULL;
  LT_CHECK(ctx, lt_pgrid_create(ctx, 0, 0, &g));
  lt_status st = LT_OK;
  double best = 0.0, *w = NULL;
  int widest = 1;
  for (int l = 0; l < p->F->nlayers; l++) {
    widest = p->F->da[l] > widest ? p->F->da[l] : widest;
    widest = p->F->dg[l] > widest ? p->F->dg[l] : widest;
  }
  if (lt_calloc_aligned((void **)&w, (size_t)widest, sizeof(double)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "kfac: out of memory for %d eigenvalues", widest);
  st = lt_agree(ctx, st);
  for (int l = 0; l < p->F->nlayers && st == LT_OK; l++) {
    double top[2] = {0.0, 0.0};
    const double *X[2] = {p->F->A[l], p->F->G[l]};
    int dims[2] = {p->F->da[l], p->F->dg[l]};
    for (int f = 0; f < 2 && st == LT_OK; f++) {
      lt_pmat *pm = NULL;
      st = lt_pmat_create(g, dims[f], dims[f], p->nb, &pm);
      if (st == LT_OK) {
        lt_pmat_set_full(pm, X[f], dims[f]);
        st = lt_peigvals(pm, w);
        top[f] = w[dims[f] - 1];
      }
      lt_pmat_destroy(&pm);
    }
    if (top[0] * top[1] > best) best = top[0] * top[1];
  }
  lt_free(w);
  lt_pgrid_destroy(&g);
  LT_CHECK(ctx, st);
  *mx = best;
  return LT_OK;
}

lt_kfac *lt_kfl_factors(lt_kfl *p) { return p->F; }
float *lt_kfl_anchor(lt_kfl *p) { return p->anchor; }

size_t lt_kfl_bytes(const lt_kfl *p) {
  const lt_model *m = p->t->m;
  size_t big = lt_kfac_widest_layer(m);
  /* double factors, their float copies, the anchor, three float workspaces */
  return sizeof(*p) + lt_kfac_bytes(p->F) * 3 / 2 + m->n_pad * sizeof(float) +
         3 * big * sizeof(float);
}
