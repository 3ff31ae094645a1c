/* The MLP: layout of the flat parameter buffer, workspaces, forward, backward and
 * the per-sample squared-gradient pass. All products go through lt_sgemm. */
#include <math.h>
#include <string.h>

#include "lethe/linalg.h"
#include "lethe/model.h"
#include "model_internal.h"

static lt_status check_cfg(lt_ctx *ctx, const lt_model_cfg *c) {
  if (c->in_dim < 1) LT_ERROR(ctx, LT_ERR_ARG, "model: in_dim = %d, must be >= 1", c->in_dim);
  if (c->out_dim < 1) LT_ERROR(ctx, LT_ERR_ARG, "model: out_dim = %d, must be >= 1", c->out_dim);
  if (c->nhidden < 0 || c->nhidden > LT_MAX_LAYERS - 1)
    LT_ERROR(ctx, LT_ERR_ARG, "model: nhidden = %d, allowed 0..%d", c->nhidden,
             LT_MAX_LAYERS - 1);
  for (int i = 0; i < c->nhidden; i++)
    if (c->hidden[i] < 1)
      LT_ERROR(ctx, LT_ERR_ARG, "model: hidden[%d] = %d, must be >= 1", i, c->hidden[i]);
  if (c->max_batch < 1)
    LT_ERROR(ctx, LT_ERR_ARG, "model: max_batch = %d, must be >= 1", c->max_batch);
  if ((unsigned)c->act > (unsigned)LT_ACT_NONE)
    LT_ERROR(ctx, LT_ERR_ARG, "model: activation %d unknown (relu, tanh, gelu, none)", (int)c->act);
  if ((unsigned)c->init > (unsigned)LT_INIT_XAVIER)
    LT_ERROR(ctx, LT_ERR_ARG, "model: init %d unknown (kaiming, xavier)", (int)c->init);
  if ((unsigned)c->kind > (unsigned)LT_MODEL_TEMPLATE)
    LT_ERROR(ctx, LT_ERR_ARG, "model: kind %d unknown (dense, template)", (int)c->kind);
  if (c->kind == LT_MODEL_TEMPLATE) {
    if (c->nhidden < 1)
      LT_ERROR(ctx, LT_ERR_ARG, "model: kind = template needs at least one hidden layer");
    for (int i = 0; i < c->nhidden; i++)
      if (c->hidden[i] % 2 != 0)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "model: kind = template: hidden[%d] = %d must be even (two half-width members)",
                 i, c->hidden[i]);
    if (c->ntemplates != 0 && (c->ntemplates < 2 || c->ntemplates > 8))
      LT_ERROR(ctx, LT_ERR_ARG, "model: %d templates per set, allowed 2..8", c->ntemplates);
  }
  if (c->pad_ranks > 0 && (c->pad_ranks < ctx->size || c->pad_ranks % ctx->size != 0))
    LT_ERROR(ctx, LT_ERR_ARG,
             "model: pad_ranks = %d must be a multiple of the rank count %d (or <= 0 for %d)",
             c->pad_ranks, ctx->size, ctx->size);
  return LT_OK;
}

/* Layout and allocations; on failure the caller destroys the half-built model. */
static lt_status model_build(lt_ctx *ctx, const lt_model_cfg *c, lt_model *m) {
  int L = c->nhidden + 1;
  m->nlayers = L;
  m->in_dim = c->in_dim;
  m->out_dim = c->out_dim;
  m->max_batch = c->max_batch;
  m->ctx = ctx;
  size_t off = 0;
  int widest = c->in_dim;
  for (int l = 0; l < L; l++) {
    lt_layer *ly = &m->layer[l];
    snprintf(ly->name, sizeof(ly->name), "fc%d", l + 1);
    ly->kind = "dense";
    ly->in = l == 0 ? c->in_dim : c->hidden[l - 1];
    ly->out = l == L - 1 ? c->out_dim : c->hidden[l];
    ly->act = l == L - 1 ? LT_ACT_NONE : c->act;
    ly->w_off = off;
    off += (size_t)ly->in * (size_t)ly->out;
    ly->b_off = off;
    off += (size_t)ly->out;
    if (ly->out > widest) widest = ly->out;
  }
  m->n = off;
  m->widest = widest;
  if (c->kind == LT_MODEL_TEMPLATE) LT_CHECK(ctx, lt_tmpl_build(ctx, c, m)); /* sets n */
  size_t pr = (size_t)(c->pad_ranks > 0 ? c->pad_ranks : ctx->size);
  size_t q = 16 * pr;
  m->n_pad = (m->n + q - 1) / q * q;

  LT_CALLOC(ctx, m->theta, m->n_pad);
  LT_CALLOC(ctx, m->grad, m->n_pad);
  LT_CALLOC(ctx, m->act, L + 1);
  LT_CALLOC(ctx, m->dz, L + 1);
  LT_CALLOC(ctx, m->z, L + 1);
  size_t rows = (size_t)c->max_batch;
  for (int l = 1; l <= L; l++) {
    size_t w = (size_t)m->layer[l - 1].out;
    LT_CALLOC(ctx, m->z[l], rows * w);
    LT_CALLOC(ctx, m->dz[l], rows * w);
    if (l < L) LT_CALLOC(ctx, m->act[l], rows * w);
  }
  m->act[L] = m->z[L]; /* the last layer has no activation: A_L = Z_L = logits */
  LT_CALLOC(ctx, m->ones, rows);
  for (size_t i = 0; i < rows; i++) m->ones[i] = 1.0f;
  LT_CALLOC(ctx, m->sq_a, rows * (size_t)widest);
  LT_CALLOC(ctx, m->sq_dz, rows * (size_t)widest);
  return LT_OK;
}

lt_status lt_model_create(lt_ctx *ctx, const lt_model_cfg *cfg, lt_model **pm) {
  *pm = NULL;
  LT_CHECK(ctx, check_cfg(ctx, cfg));
  lt_model *m = NULL;
  LT_CALLOC(ctx, m, 1);
  lt_status st = model_build(ctx, cfg, m);
  if (st != LT_OK) {
    lt_model_destroy(&m);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  lt_model_init(m, ctx->seed, cfg->init);
  *pm = m;
  return LT_OK;
}

void lt_model_destroy(lt_model **pm) {
  if (!pm || !*pm) return;
  lt_model *m = *pm;
  for (int l = 1; l <= m->nlayers; l++) {
    if (m->z) lt_free(m->z[l]);
    if (m->dz) lt_free(m->dz[l]);
    if (m->act && l < m->nlayers) lt_free(m->act[l]); /* act[L] aliases z[L] */
  }
  lt_free(m->z);
  lt_free(m->dz);
  lt_free(m->act);
  lt_free(m->theta);
  lt_free(m->grad);
  lt_free(m->ones);
  lt_free(m->sq_a);
  lt_free(m->sq_dz);
  lt_free(m->tmpl);
  lt_free(m->wbuf);
  lt_free(m->gwbuf);
  lt_free(m);
  *pm = NULL;
}

const float *lt_model_weight(const lt_model *m, int l) {
  if (m->tmpl) return m->wbuf + m->tmpl[l].wk_off;
  return m->theta + m->layer[l].w_off;
}

void lt_model_init(lt_model *m, uint64_t seed, lt_init init) {
  if (m->tmpl) {
    lt_tmpl_init(m, seed, init);
    return;
  }
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_INIT);
  memset(m->theta, 0, m->n_pad * sizeof(*m->theta));
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    double fan_in = ly->in, fan_out = ly->out;
    double b = init == LT_INIT_XAVIER ? sqrt(6.0 / (fan_in + fan_out)) : sqrt(6.0 / fan_in);
    float *W = m->theta + ly->w_off;
    size_t nw = (size_t)ly->in * (size_t)ly->out;
    for (size_t i = 0; i < nw; i++) W[i] = (float)(b * (2.0 * lt_rng_uniform(&r) - 1.0));
  }
}

const float *lt_model_forward(lt_model *m, const float *x, int B) {
  m->act[0] = (float *)x; /* read only */
  if (m->tmpl) lt_tmpl_assemble(m);
  for (int l = 1; l <= m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l - 1];
    const float *W = lt_model_weight(m, l - 1), *b = m->theta + ly->b_off;
    float *Z = m->z[l];
    /* Z[B, out] = 1 b^T + A_{l-1}[B, in] W[out, in]^T */
    for (int i = 0; i < B; i++) memcpy(Z + (size_t)i * (size_t)ly->out, b, (size_t)ly->out * sizeof(*Z));
    lt_sgemm(0, 1, B, ly->out, ly->in, 1.0f, m->act[l - 1], ly->in, W, ly->in, 1.0f, Z, ly->out);
    if (l < m->nlayers) lt_act_forward(ly->act, m->act[l], Z, (size_t)B * (size_t)ly->out);
  }
  return m->z[m->nlayers];
}

void lt_model_backprop_dz(lt_model *m, int l, int B) {
  const lt_layer *ly = &m->layer[l - 1];
  const lt_layer *prev = &m->layer[l - 2];
  float *dprev = m->dz[l - 1];
  /* dA[B, in] = dZ[B, out] W[out, in] */
  lt_sgemm(0, 0, B, ly->in, ly->out, 1.0f, m->dz[l], ly->out, lt_model_weight(m, l - 1), ly->in,
           0.0f, dprev, ly->in);
  lt_act_backward(prev->act, dprev, dprev, m->z[l - 1], m->act[l - 1], (size_t)B * (size_t)ly->in);
}

void lt_model_load_dlogits(lt_model *m, const float *dlogits, int B) {
  float *d = m->dz[m->nlayers];
  if (dlogits != d) memcpy(d, dlogits, (size_t)B * (size_t)m->out_dim * sizeof(*d));
}

void lt_model_backward(lt_model *m, const float *dlogits, int B, float *grad, float beta) {
  if (m->tmpl) {
    lt_tmpl_backward(m, dlogits, B, grad, beta);
    return;
  }
  if (beta == 0.0f) memset(grad + m->n, 0, (m->n_pad - m->n) * sizeof(*grad));
  if (B <= 0) {
    if (beta == 0.0f) memset(grad, 0, m->n * sizeof(*grad));
    return;
  }
  lt_model_load_dlogits(m, dlogits, B);
  for (int l = m->nlayers; l >= 1; l--) {
    const lt_layer *ly = &m->layer[l - 1];
    /* dW[out, in] = dZ[B, out]^T A_{l-1}[B, in];  db[1, out] = 1[1, B] dZ[B, out] */
    lt_sgemm(1, 0, ly->out, ly->in, B, 1.0f, m->dz[l], ly->out, m->act[l - 1], ly->in, beta,
             grad + ly->w_off, ly->in);
    lt_sgemm(0, 0, 1, ly->out, B, 1.0f, m->ones, B, m->dz[l], ly->out, beta, grad + ly->b_off,
             ly->out);
    if (l > 1) lt_model_backprop_dz(m, l, B);
  }
}

static void square(float *out, const float *in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = in[i] * in[i];
}

void lt_model_backward_sqgrad(lt_model *m, const float *dlogits, int B, float *acc) {
  if (B <= 0 || m->tmpl) return; /* dense models only (see model.h) */
  lt_model_load_dlogits(m, dlogits, B);
  for (int l = m->nlayers; l >= 1; l--) {
    const lt_layer *ly = &m->layer[l - 1];
    square(m->sq_dz, m->dz[l], (size_t)B * (size_t)ly->out);
    square(m->sq_a, m->act[l - 1], (size_t)B * (size_t)ly->in);
    /* accW[out, in] += (dZ.^2)[B, out]^T (A.^2)[B, in];  accb[1, out] += 1[1, B] (dZ.^2)[B, out] */
    lt_sgemm(1, 0, ly->out, ly->in, B, 1.0f, m->sq_dz, ly->out, m->sq_a, ly->in, 1.0f,
             acc + ly->w_off, ly->in);
    lt_sgemm(0, 0, 1, ly->out, B, 1.0f, m->ones, B, m->sq_dz, ly->out, 1.0f, acc + ly->b_off,
             ly->out);
    if (l > 1) lt_model_backprop_dz(m, l, B); /* from the unsquared dz[l] */
  }
}
