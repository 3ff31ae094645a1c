/* K-FAC Laplace penalty (see kfac_laplace.h). */
#include "kfac_laplace.h"

#include <stdio.h>
#include <string.h>

#include "lethe/checkpoint.h"

struct lt_kfl {
  lt_ctx *ctx;
  lt_trainer *t;
  double lambda, gamma;
  lt_kfac *F;     /* running factors (replicated) */
  float *anchor;  /* [n_pad] theta* (replicated) */
  double *dW, *T, *H; /* per-step workspaces, [max out x (in+1)] each */
};

lt_status lt_kfl_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, lt_kfl **out) {
  *out = NULL;
  lt_kfl *p = NULL;
  LT_CALLOC(ctx, p, 1);
  p->ctx = ctx;
  p->t = t;
  p->lambda = cfg->kfac_lambda;
  p->gamma = cfg->kfac_gamma;
  const lt_model *m = t->m;
  size_t big = 0;
  for (int l = 0; l < m->nlayers; l++) {
    size_t s = (size_t)m->layer[l].out * (size_t)(m->layer[l].in + 1);
    big = s > big ? s : big;
  }
  lt_status st = lt_kfac_create(ctx, m, &p->F);
  if (st == LT_OK && (lt_calloc_aligned((void **)&p->anchor, m->n_pad, sizeof(float)) != 0 ||
                      lt_calloc_aligned((void **)&p->dW, big, sizeof(double)) != 0 ||
                      lt_calloc_aligned((void **)&p->T, big, sizeof(double)) != 0 ||
                      lt_calloc_aligned((void **)&p->H, big, sizeof(double)) != 0))
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
  lt_kfac_destroy(&p->F);
  lt_free(p->anchor);
  lt_free(p->dW);
  lt_free(p->T);
  lt_free(p->H);
  lt_free(p);
  *pp = NULL;
}

double lt_kfl_eval(lt_kfl *p, long done, float *grad_owned) {
  if (done <= 0) return 0.0;
  const lt_model *m = p->t->m;
  const lt_shard *sh = &p->t->sh;
  size_t hi = sh->hi < m->n ? sh->hi : m->n;
  double s = 0.0;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    int iv[2][2], da = ly->in + 1, dg = ly->out;
    lt_kfac_owned_rows(ly, sh->lo, hi, iv[0], iv[1]);
    if (iv[0][0] == iv[0][1] && iv[1][0] == iv[1][1]) continue;
    lt_kfac_layer_get(ly, m->theta, p->anchor, p->dW);
    for (int k = 0; k < 2; k++) { /* k = 0: W's columns 0..in-1, k = 1: the bias column */
      if (iv[k][0] == iv[k][1]) continue;
      lt_kfac_sandwich_rows(p->H, p->T, p->F->G[l], p->dW, p->F->A[l], dg, da, iv[k][0],
                            iv[k][1]);
      int j0 = k == 0 ? 0 : ly->in, j1 = k == 0 ? ly->in : da;
      for (int r = iv[k][0]; r < iv[k][1]; r++)
        for (int j = j0; j < j1; j++) {
          size_t i = lt_kfac_index(ly, r, j);
          if (i < sh->lo || i >= hi) continue;
          double h = p->H[(size_t)r * da + j];
          s += p->dW[(size_t)r * da + j] * h;
          if (grad_owned) grad_owned[i - sh->lo] += (float)(p->lambda * h);
        }
    }
  }
  return 0.5 * p->lambda * s;
}

void lt_kfl_end_task(lt_kfl *p, long done, const lt_kfac *Ft) {
  lt_kfac_axpby(p->F, done > 0 ? p->gamma : 0.0, Ft);
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

lt_kfac *lt_kfl_factors(lt_kfl *p) { return p->F; }
float *lt_kfl_anchor(lt_kfl *p) { return p->anchor; }

size_t lt_kfl_bytes(const lt_kfl *p) {
  const lt_model *m = p->t->m;
  size_t big = 0;
  for (int l = 0; l < m->nlayers; l++) {
    size_t s = (size_t)m->layer[l].out * (size_t)(m->layer[l].in + 1);
    big = s > big ? s : big;
  }
  return sizeof(*p) + lt_kfac_bytes(p->F) + m->n_pad * sizeof(float) + 3 * big * sizeof(double);
}
