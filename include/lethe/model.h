/* lethe model: dense layers over one flat parameter buffer, activations, losses.
 *
 * All trainable parameters live in one contiguous float32 buffer theta[n_pad]
 * (n real parameters, zero padding up to n_pad, a multiple of 16 * pad_ranks, so
 * that any rank count dividing pad_ranks splits it into 16-float (64-byte)
 * aligned slices). Layer l is a view: weight W_l [out, in] row-major at w_off,
 * bias b_l [out] at b_off; layers are stored in order, each W then b.
 *
 * Forward:   Z_l = A_{l-1} W_l^T + 1 b_l^T,  A_l = act(Z_l)  (no act on the last layer)
 * Loss:      softmax cross-entropy on the logits Z_L (optionally masked)
 * Backward:  dZ_l = dA_l .* act'(Z_l);  dW_l = dZ_l^T A_{l-1};  db_l = sum_rows dZ_l;
 *            dA_{l-1} = dZ_l W_l
 * The buffers for A and dZ are sized for max_batch rows at creation: forward
 * and backward never allocate.
 */
#ifndef LETHE_MODEL_H
#define LETHE_MODEL_H

#include "lethe/core.h"

typedef enum { LT_ACT_RELU = 0, LT_ACT_TANH, LT_ACT_GELU, LT_ACT_NONE } lt_act;
typedef enum { LT_INIT_KAIMING = 0, LT_INIT_XAVIER } lt_init;
typedef enum { LT_MODEL_DENSE = 0, LT_MODEL_TEMPLATE } lt_model_kind;

#define LT_MAX_LAYERS 32
#define LT_LAYER_NAME 32

typedef struct {
  char name[LT_LAYER_NAME]; /* "fc1", "fc2", ... */
  const char *kind;         /* "dense" */
  size_t w_off, b_off;      /* offsets into theta */
  int in, out;              /* W is [out, in] */
  lt_act act;               /* activation after this layer (LT_ACT_NONE on the last) */
} lt_layer;

/* Template layer (kind = template, MixtureGrowth, Pham et al. WACV 2024; code in
 * src/model/template.c). The full weight W [full_out, full_in] is a grid of blocks;
 * block b covers rows [brow tr, (brow+1) tr) and columns [bcol tc, (bcol+1) tc) and is
 *     W_b = sum_k c_b[k] T_{bset}[k]          (T_s[k] [tr, tc], c_b [nt])
 * with 2 template sets of nt templates. First layer: tr = out/2, tc = in, blocks
 * 0 (rows 0, set 0), 1 (rows 1, set 1): W = [W0; W1]. Hidden layers: tr = out/2,
 * tc = in/2, blocks 0 (0,0,set 0), 1 (1,1,set 1), 2 (0,1,set 0), 3 (1,0,set 1):
 * W = [[W0, W2], [W3, W1]]. Classifier: tr = out, tc = in/2, blocks 0 (cols 0, set 0),
 * 1 (cols 1, set 1): W = [W0, W1]. Layout in theta per layer: T [2][nt][tr*tc] at t_off,
 * c [nblocks][nt] at c_off, bias at bias_off: [full_out], except the classifier's two
 * biases [2][full_out] (member m's is the m-th; the grown network uses the first).
 * Member m (0 or 1) is the half-width network of block m of every layer. */
typedef struct {
  int nblocks, tr, tc, full_in, full_out;
  int brow[4], bcol[4], bset[4];
  size_t t_off, c_off, bias_off;
  size_t wk_off; /* this layer's weight in m->wbuf / m->gwbuf */
} lt_tmpl_layer;

typedef struct {
  int nlayers;
  lt_layer layer[LT_MAX_LAYERS];
  int in_dim, out_dim; /* features in, classes out */
  size_t n;            /* real parameter count */
  size_t n_pad;        /* padded length of theta and grad */
  int max_batch;       /* rows the workspaces hold */
  float *theta;        /* [n_pad] parameters (replicated on every rank) */
  float *grad;         /* [n_pad] gradient buffer (local sum over this rank's batch) */
  /* workspaces */
  float **act;   /* act[l] = A_l, l = 0..nlayers; act[0] points at the caller's input */
  float **dz;    /* dz[l] for l = 1..nlayers: gradient w.r.t. Z_l */
  float **z;     /* z[l] pre-activations for l = 1..nlayers (needed by tanh/GELU backward) */
  float *ones;   /* [max_batch] of 1.0f for bias GEMMs */
  float *sq_a;   /* [max_batch * widest] scratch of lt_model_backward_sqgrad: A .* A */
  float *sq_dz;  /* [max_batch * widest] scratch of lt_model_backward_sqgrad: dZ .* dZ */
  int widest;    /* max(in_dim, widths of all layers) */
  lt_ctx *ctx;
  /* template kind only (NULL / 0 for dense): per-layer templates, the active network
   * (member 0 or 1, or -1 the full width; lt_layer in, out, b_off follow it), and the
   * assembled weights and their gradients (work buffers, full-width size) */
  lt_tmpl_layer *tmpl;
  int ntemplates, member;
  float *wbuf, *gwbuf;
} lt_model;

typedef struct {
  int in_dim;           /* input features */
  int nhidden;          /* number of hidden layers */
  int hidden[LT_MAX_LAYERS - 1];
  int out_dim;          /* classes */
  lt_act act;
  lt_init init;
  int max_batch;
  int pad_ranks;        /* pad n so that it splits into this many aligned slices; must be a
                           multiple of ctx->size (e.g. ctx->size itself); <= 0 means ctx->size */
  lt_model_kind kind;   /* dense (0) or template: hidden widths are the full (grown) widths,
                           even, and nhidden >= 1 */
  int ntemplates;       /* template: templates per set (2..8; 0 means 2) */
} lt_model_cfg;

/* Validates cfg (dims >= 1, 0 <= nhidden < LT_MAX_LAYERS, max_batch >= 1, known act and
 * init, pad_ranks a multiple of ctx->size), allocates theta, grad and the workspaces
 * (64-byte aligned) and initialises theta with lt_model_init(m, ctx->seed, cfg->init). */
LT_WUR lt_status lt_model_create(lt_ctx *ctx, const lt_model_cfg *cfg, lt_model **m);
void lt_model_destroy(lt_model **m);

/* Seeded initialisation: weights U(-b, b), Kaiming-uniform with the ReLU gain sqrt(2):
 * b = sqrt(2) * sqrt(3 / fan_in) = sqrt(6 / fan_in), or Xavier-uniform:
 * b = sqrt(6 / (fan_in + fan_out)); biases and padding zero. Weights are drawn layer by
 * layer in row-major order, one uniform each, from the stream (seed, 0, LT_RNG_INIT), so
 * every rank gets the same theta. */
void lt_model_init(lt_model *m, uint64_t seed, lt_init init);

/* Forward pass of B <= max_batch rows of x [B, in_dim] with parameters m->theta.
 * Returns a pointer to the logits [B, out_dim] (owned by the model). x must stay
 * valid until the matching backward call. */
const float *lt_model_forward(lt_model *m, const float *x, int B);

/* Backward pass from dlogits [B, out_dim] (gradient of the loss w.r.t. the
 * logits of the last forward call; may be m->dz[m->nlayers]). Writes (beta = 0)
 * or accumulates (beta = 1) the parameter gradient into grad[n_pad] (may be
 * m->grad). beta = 0 also zeroes the padding grad[n, n_pad); beta = 1 leaves it. */
void lt_model_backward(lt_model *m, const float *dlogits, int B, float *grad, float beta);

/* Per-sample squared gradients, summed over the B samples of the last forward
 * call, ADDED to acc[n_pad]:  acc_W += (dZ .* dZ)^T (A .* A),  acc_b += sum_rows dZ .* dZ.
 * dlogits holds each sample's own loss gradient (unscaled by 1/B; may be
 * m->dz[m->nlayers]). One GEMM per layer. Overwrites m->dz (as the backward does)
 * and the scratch m->sq_a, m->sq_dz; the activations stay valid. acc's padding is
 * not touched. Dense models only: a template model's acc is left unchanged (lethe
 * train refuses [scenario] and [cl] with [model] kind = template). */
void lt_model_backward_sqgrad(lt_model *m, const float *dlogits, int B, float *acc);

/* Fused, numerically stable softmax cross-entropy over B rows of logits [B, C].
 * mask: NULL, or [C] with 1 for classes that take part (others get -inf logit).
 * Writes dlogits[B, C] = scale * (softmax - onehot(y)) unless dlogits is NULL
 * (masked classes get 0), and returns the SUM over rows of the per-row loss
 * (unscaled). Counts rows whose argmax (over unmasked classes, first index on
 * ties) equals the label into *correct when non-NULL (overwritten, not added).
 * Precondition: the mask leaves at least one class, and every label's class,
 * unmasked (a row whose label is masked has an infinite loss: a caller's bug). */
double lt_softmax_xent(float *dlogits, long *correct, const float *logits, const int32_t *y,
                       const uint8_t *mask, int B, int C, float scale);

/* Argmax per row (over unmasked classes). */
void lt_argmax_rows(int32_t *out, const float *logits, const uint8_t *mask, int B, int C);

/* Activation forward/backward, elementwise over n values.
 * backward: dz = da .* act'(z) (uses the pre-activation z and/or output a). */
void lt_act_forward(lt_act act, float *a, const float *z, size_t n);
void lt_act_backward(lt_act act, float *dz, const float *da, const float *z, const float *a,
                     size_t n);

const char *lt_act_name(lt_act a);

/* Template models (src/model/template.c). lt_model_init on a template model draws
 * every template Kaiming-uniform (b = sqrt(6 / tc), Xavier: sqrt(6 / (tr + tc))), in
 * layer, set, template order, then per layer and set a random orthogonal nt x nt
 * matrix (Gram-Schmidt of Gaussian draws); the blocks of a set take its rows in
 * block order, so every coefficient vector has unit norm and the two of a set are
 * orthogonal. Biases zero. Stream (seed, 0, LT_RNG_INIT). */
LT_WUR lt_status lt_model_set_member(lt_model *m, int member); /* 0, 1, or -1: full width */
/* Assemble the active network's weights into m->wbuf (forward does this itself). */
void lt_tmpl_assemble(lt_model *m);
/* Weight of layer l as used by the GEMMs: theta view (dense) or work buffer. */
const float *lt_model_weight(const lt_model *m, int l);

#endif
