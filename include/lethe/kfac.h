/* lethe kfac: Kronecker-factored Fisher (K-FAC) of the dense layers.
 *
 * For dense layer l with input a (the previous layer's activation, with a 1
 * appended for the bias: a in R^{in+1}) and pre-activation gradient g in R^{out}
 * (of one sample's CE, unscaled), the block of the Fisher for the layer's
 * weights Wbar = [W | b] (out x (in+1)) is approximated by
 *
 *     F_l ~ G_l (x) A_l,   A_l = E[a a^T]  ((in+1) x (in+1)),   G_l = E[g g^T]  (out x out)
 *
 * (Martens & Grosse 2015), i.e. vec_r(dW)^T F_l vec_r(dW) = tr(dW^T G dW A) for
 * the row-major vectorisation. The expectations are means over the samples;
 * labels are the true ones (empirical) or drawn from the model's predictive
 * distribution (sampled: the true Fisher), with the label stream of the
 * diagonal Fisher (seed, rank, LT_RNG_FISHER, seeded afresh per call). Each
 * rank sums a a^T and g g^T over its rows with BLIS rank-k updates (dsyrk, in
 * double), then the sums are allreduced, so every rank ends with the same full
 * (both triangles) A_l and G_l, row-major doubles.
 *
 * Damping (for inverting the factors): with eps > 0,
 *   pi-balanced: A + pi sqrt(eps) I,  G + sqrt(eps)/pi I,
 *                pi = sqrt((tr(A)/dim A) / (tr(G)/dim G))  (Martens & Grosse §6.3;
 *                1 when either trace is 0)
 *   plain:       A + sqrt(eps) I,  G + sqrt(eps) I
 * so that (G + .)(x)(A + .) ~ G (x) A + eps I + cross terms.
 */
#ifndef LETHE_KFAC_H
#define LETHE_KFAC_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/model.h"
#include "lethe/pdense.h"

typedef enum { LT_KFAC_DAMP_PI = 0, LT_KFAC_DAMP_PLAIN } lt_kfac_damp;

typedef struct {
  int nlayers;
  int da[LT_MAX_LAYERS];    /* in + 1 */
  int dg[LT_MAX_LAYERS];    /* out */
  double *A[LT_MAX_LAYERS]; /* [da * da] row-major, symmetric */
  double *G[LT_MAX_LAYERS]; /* [dg * dg] */
} lt_kfac;

/* Zeroed factors shaped for m's layers. */
LT_WUR lt_status lt_kfac_create(lt_ctx *ctx, const lt_model *m, lt_kfac **k);
void lt_kfac_destroy(lt_kfac **k);
size_t lt_kfac_bytes(const lt_kfac *k);

/* Mean factors at the model's current theta over the dataset's samples (every
 * rank its shard; max_samples > 0 limits the global count as lt_fisher_diag
 * does), in chunks of min(lt_local_batch(global_batch, rank, P), m->max_batch)
 * rows. sampled: labels from the model (true Fisher), else the true labels.
 * Overwrites k. Collective; bad labels or feature counts are errors on every rank. */
LT_WUR lt_status lt_kfac_compute(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled,
                                 int global_batch, long max_samples, lt_kfac *k);

/* The exact Fisher of a block of layer `layer`'s Wbar: the weights (rows[i], cols[j])
 * (cols[j] == in: the bias), vectorised row by row (index i nc + j), S = nr nc:
 * F [S x S] = mean over the samples of v v^T, v = that block of one sample's
 * gradient g a^T; the same samples, chunks and labels as lt_kfac_compute, so that
 * G[rows, rows] (x) A[cols, cols] is its Kronecker approximation and its diagonal
 * the diagonal Fisher's entries. Collective. */
LT_WUR lt_status lt_kfac_exact_block(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled,
                                     int global_batch, long max_samples, int layer,
                                     const int *rows, int nr, const int *cols, int nc, double *F);

/* dst <- gamma dst + src (layer by layer; same shapes). */
void lt_kfac_axpby(lt_kfac *dst, double gamma, const lt_kfac *src);

/* pi of layer l and the two diagonal shifts (addA, addG) of the damping above. */
void lt_kfac_damping(const lt_kfac *k, int l, double eps, lt_kfac_damp kind, double *addA,
                     double *addG);

/* For every layer: the inverses of the damped factors, Ainv[l] and Ginv[l] (full,
 * row-major), from ScaLAPACK's pdpotrf + pdpotri on the grid g with block size
 * nb; when CA/CG are not NULL also the lower Cholesky factors of those inverses
 * (CA[l] CA[l]^T = Ainv[l]), for drawing noise with covariance Ginv (x) Ainv.
 * Arrays are caller-allocated [da*da] / [dg*dg]. Collective. */
LT_WUR lt_status lt_kfac_inverses(lt_ctx *ctx, const lt_kfac *k, lt_pgrid *g, int nb, double eps,
                                  lt_kfac_damp kind, double *const *Ainv, double *const *Ginv,
                                  double *const *CA, double *const *CG);

const char *lt_kfac_damp_name(lt_kfac_damp kind);

/* ------------------------------------------------ layer matrices in the flat layout
 * Wbar_l = [W_l | b_l] (out x (in+1)): entry (r, j < in) is theta[w_off + r in + j],
 * entry (r, in) is theta[b_off + r]. */
static inline size_t lt_kfac_index(const lt_layer *ly, int r, int j) {
  return j < ly->in ? ly->w_off + (size_t)r * (size_t)ly->in + (size_t)j
                    : ly->b_off + (size_t)r;
}

/* max over layers of out (in + 1): the size of the largest Wbar. */
size_t lt_kfac_widest_layer(const lt_model *m);

/* out[r][j] = theta(r, j) - anchor(r, j) (anchor NULL: 0), double, row-major [out x (in+1)]. */
void lt_kfac_layer_get(const lt_layer *ly, const float *theta, const float *anchor, double *out);

/* The rows of Wbar whose W entries (columns < in) lie in the flat range [lo, hi):
 * [wrows[0], wrows[1]); those whose bias entry (column in) does: [brows[0], brows[1])
 * (empty intervals have equal ends). */
void lt_kfac_owned_rows(const lt_layer *ly, size_t lo, size_t hi, int wrows[2], int brows[2]);

/* H[r0:r1, :] = L[r0:r1, :] X R for L [dg x dg], X [dg x da], R [da x da] (row-major
 * doubles; H is [dg x da], only rows r0..r1-1 written), T scratch [(r1 - r0) x da]:
 * two dgemms of (r1 - r0) dg da + (r1 - r0) da^2 multiply-adds. */
void lt_kfac_sandwich_rows(double *H, double *T, const double *L, const double *X,
                           const double *R, int dg, int da, int r0, int r1);

#endif
