/* Template dense layers (MixtureGrowth): layout in theta, initialisation, the
 * active network (member 0, member 1 or full width), assembly of the weights
 * from templates and coefficients, and the backward pass into templates and
 * coefficients. See lt_tmpl_layer in lethe/model.h for the block grid. */
#include <math.h>
#include <string.h>

#include "lethe/linalg.h"
#include "model_internal.h"

/* Block grid of layer l of L (first, hidden or classifier). */
static void grid(lt_tmpl_layer *t, int l, int L, int in, int out) {
  t->full_in = in;
  t->full_out = out;
  if (l == L - 1) { /* classifier: W = [W0, W1], all outputs */
    t->nblocks = 2;
    t->tr = out;
    t->tc = in / 2;
    for (int b = 0; b < 2; b++) t->brow[b] = 0, t->bcol[b] = b, t->bset[b] = b;
  } else if (l == 0) { /* first layer: W = [W0; W1], full input */
    t->nblocks = 2;
    t->tr = out / 2;
    t->tc = in;
    for (int b = 0; b < 2; b++) t->brow[b] = b, t->bcol[b] = 0, t->bset[b] = b;
  } else { /* hidden: W = [[W0, W2], [W3, W1]] */
    static const int r[4] = {0, 1, 0, 1}, c[4] = {0, 1, 1, 0}, s[4] = {0, 1, 0, 1};
    t->nblocks = 4;
    t->tr = out / 2;
    t->tc = in / 2;
    for (int b = 0; b < 4; b++) t->brow[b] = r[b], t->bcol[b] = c[b], t->bset[b] = s[b];
  }
}

lt_status lt_tmpl_build(lt_ctx *ctx, const lt_model_cfg *c, lt_model *m) {
  int L = m->nlayers;
  int nt = c->ntemplates > 0 ? c->ntemplates : 2;
  m->ntemplates = nt;
  LT_CALLOC(ctx, m->tmpl, L);
  size_t off = 0, wk = 0;
  for (int l = 0; l < L; l++) {
    lt_layer *ly = &m->layer[l];
    lt_tmpl_layer *t = &m->tmpl[l];
    grid(t, l, L, ly->in, ly->out);
    ly->kind = "template";
    t->t_off = off;
    off += 2 * (size_t)nt * (size_t)t->tr * (size_t)t->tc;
    t->c_off = off;
    off += (size_t)t->nblocks * (size_t)nt;
    t->bias_off = off;
    off += (size_t)ly->out * (l == L - 1 ? 2u : 1u);
    t->wk_off = wk;
    wk += (size_t)ly->in * (size_t)ly->out;
    ly->w_off = t->t_off;
    ly->b_off = t->bias_off;
  }
  m->n = off;
  m->member = -1; /* full width */
  LT_CALLOC(ctx, m->wbuf, wk);
  LT_CALLOC(ctx, m->gwbuf, wk);
  return LT_OK;
}

lt_status lt_model_set_member(lt_model *m, int member) {
  if (!m->tmpl) LT_ERROR(m->ctx, LT_ERR_ARG, "model: members exist only for kind = template");
  if (member < -1 || member > 1)
    LT_ERROR(m->ctx, LT_ERR_ARG, "model: member %d (allowed 0, 1, or -1 for the full width)",
             member);
  m->member = member;
  for (int l = 0; l < m->nlayers; l++) {
    lt_layer *ly = &m->layer[l];
    const lt_tmpl_layer *t = &m->tmpl[l];
    if (member < 0) {
      ly->in = t->full_in;
      ly->out = t->full_out;
      ly->b_off = t->bias_off;
    } else {
      ly->in = t->tc;
      ly->out = t->tr;
      /* hidden bias halves; the classifier's member biases are separate vectors */
      ly->b_off = t->bias_off + (size_t)member * (size_t)t->tr;
    }
  }
  return LT_OK;
}

/* Random orthogonal n x n matrix q (rows orthonormal): Gram-Schmidt of Gaussian rows
 * (twice, for accuracy), in double. */
static void random_orthogonal(double *q, int n, lt_rng *r) {
  for (int i = 0; i < n; i++) {
    double *v = q + (size_t)i * (size_t)n;
    for (;;) {
      for (int j = 0; j < n; j++) v[j] = lt_rng_normal(r);
      for (int pass = 0; pass < 2; pass++)
        for (int p = 0; p < i; p++) {
          const double *u = q + (size_t)p * (size_t)n;
          double d = 0.0;
          for (int j = 0; j < n; j++) d += u[j] * v[j];
          for (int j = 0; j < n; j++) v[j] -= d * u[j];
        }
      double nn = 0.0;
      for (int j = 0; j < n; j++) nn += v[j] * v[j];
      if (nn > 1e-12) {
        for (int j = 0; j < n; j++) v[j] /= sqrt(nn);
        break;
      }
    }
  }
}

void lt_tmpl_init(lt_model *m, uint64_t seed, lt_init init) {
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_INIT);
  memset(m->theta, 0, m->n_pad * sizeof(*m->theta));
  int nt = m->ntemplates;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    double fi = t->tc, fo = t->tr;
    double b = init == LT_INIT_XAVIER ? sqrt(6.0 / (fi + fo)) : sqrt(6.0 / fi);
    size_t nw = 2 * (size_t)nt * (size_t)t->tr * (size_t)t->tc;
    float *T = m->theta + t->t_off;
    for (size_t i = 0; i < nw; i++) T[i] = (float)(b * (2.0 * lt_rng_uniform(&r) - 1.0));
  }
  double q[64];
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    for (int s = 0; s < 2; s++) {
      random_orthogonal(q, nt, &r);
      int row = 0;
      for (int b = 0; b < t->nblocks; b++) {
        if (t->bset[b] != s) continue;
        float *c = m->theta + t->c_off + (size_t)b * (size_t)nt;
        for (int k = 0; k < nt; k++) c[k] = (float)q[row * nt + k];
        row++;
      }
    }
  }
}

/* Block b of layer l in the active network: its origin in the work buffer
 * (leading dimension ld = the active layer's in). */
static size_t block_origin(const lt_model *m, int l, int b, int ld) {
  const lt_tmpl_layer *t = &m->tmpl[l];
  if (m->member >= 0) return 0;
  return (size_t)t->brow[b] * (size_t)t->tr * (size_t)ld + (size_t)t->bcol[b] * (size_t)t->tc;
}

static int block_active(const lt_model *m, int b) { return m->member < 0 || b == m->member; }

void lt_tmpl_assemble(lt_model *m) {
  int nt = m->ntemplates;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    int ld = m->layer[l].in;
    size_t tsz = (size_t)t->tr * (size_t)t->tc;
    for (int b = 0; b < t->nblocks; b++) {
      if (!block_active(m, b)) continue;
      /* W_b[tr, tc] = sum_k c_b[k] T_{set(b)}[k] */
      float *W = m->wbuf + t->wk_off + block_origin(m, l, b, ld);
      const float *c = m->theta + t->c_off + (size_t)b * (size_t)nt;
      const float *T = m->theta + t->t_off + (size_t)t->bset[b] * (size_t)nt * tsz;
      for (int i = 0; i < t->tr; i++) {
        float *w = W + (size_t)i * (size_t)ld;
        const float *ti = T + (size_t)i * (size_t)t->tc;
        for (int j = 0; j < t->tc; j++) w[j] = c[0] * ti[j];
        for (int k = 1; k < nt; k++) {
          const float *tk = ti + (size_t)k * tsz;
          for (int j = 0; j < t->tc; j++) w[j] += c[k] * tk[j];
        }
      }
    }
  }
}

/* From the weight gradient gW of layer l (active shape, in m->gwbuf) into grad:
 * dT_{set(b)}[k] += c_b[k] dW_b and dc_b[k] += <dW_b, T_{set(b)}[k]> over active blocks. */
static void scatter(const lt_model *m, int l, float *grad) {
  const lt_tmpl_layer *t = &m->tmpl[l];
  int nt = m->ntemplates, ld = m->layer[l].in;
  size_t tsz = (size_t)t->tr * (size_t)t->tc;
  for (int b = 0; b < t->nblocks; b++) {
    if (!block_active(m, b)) continue;
    const float *G = m->gwbuf + t->wk_off + block_origin(m, l, b, ld);
    size_t toff = t->t_off + (size_t)t->bset[b] * (size_t)nt * tsz;
    const float *c = m->theta + t->c_off + (size_t)b * (size_t)nt;
    float *dc = grad + t->c_off + (size_t)b * (size_t)nt;
    for (int k = 0; k < nt; k++) {
      const float *T = m->theta + toff + (size_t)k * tsz;
      float *dT = grad + toff + (size_t)k * tsz;
      double dot = 0.0;
      for (int i = 0; i < t->tr; i++) {
        const float *g = G + (size_t)i * (size_t)ld;
        const float *ti = T + (size_t)i * (size_t)t->tc;
        float *di = dT + (size_t)i * (size_t)t->tc;
        float rowdot = 0.0f;
        for (int j = 0; j < t->tc; j++) {
          di[j] += c[k] * g[j];
          rowdot += g[j] * ti[j];
        }
        dot += rowdot;
      }
      dc[k] += (float)dot;
    }
  }
}

void lt_tmpl_backward(lt_model *m, const float *dlogits, int B, float *grad, float beta) {
  if (beta == 0.0f) memset(grad, 0, m->n_pad * sizeof(*grad));
  if (B <= 0) return;
  lt_model_load_dlogits(m, dlogits, B);
  for (int l = m->nlayers; l >= 1; l--) {
    const lt_layer *ly = &m->layer[l - 1];
    float *gW = m->gwbuf + m->tmpl[l - 1].wk_off;
    /* dW[out, in] = dZ[B, out]^T A_{l-1}[B, in];  db[1, out] += 1[1, B] dZ[B, out] */
    lt_sgemm(1, 0, ly->out, ly->in, B, 1.0f, m->dz[l], ly->out, m->act[l - 1], ly->in, 0.0f, gW,
             ly->in);
    lt_sgemm(0, 0, 1, ly->out, B, 1.0f, m->ones, B, m->dz[l], ly->out, 1.0f, grad + ly->b_off,
             ly->out);
    scatter(m, l - 1, grad);
    if (l > 1) lt_model_backprop_dz(m, l, B);
  }
}
