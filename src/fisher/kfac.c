/* K-FAC factors: A = E[a a^T], G = E[g g^T] per dense layer (see kfac.h). */
#include <math.h>
#include <string.h>

#include "lethe/fisher.h"
#include "lethe/kfac.h"

const char *lt_kfac_damp_name(lt_kfac_damp kind) {
  return kind == LT_KFAC_DAMP_PI ? "pi" : kind == LT_KFAC_DAMP_PLAIN ? "plain" : "unknown";
}

lt_status lt_kfac_create(lt_ctx *ctx, const lt_model *m, lt_kfac **out) {
  *out = NULL;
  lt_kfac *k = NULL;
  LT_CALLOC(ctx, k, 1);
  k->nlayers = m->nlayers;
  for (int l = 0; l < m->nlayers; l++) {
    k->da[l] = m->layer[l].in + 1;
    k->dg[l] = m->layer[l].out;
    size_t na = (size_t)k->da[l] * (size_t)k->da[l], ng = (size_t)k->dg[l] * (size_t)k->dg[l];
    if (lt_calloc_aligned((void **)&k->A[l], na, sizeof(double)) != 0 ||
        lt_calloc_aligned((void **)&k->G[l], ng, sizeof(double)) != 0) {
      lt_kfac_destroy(&k);
      LT_ERROR(ctx, LT_ERR_MEM, "kfac: out of memory for the factors of layer %d (%zu doubles)",
               l + 1, na + ng);
    }
  }
  *out = k;
  return LT_OK;
}

void lt_kfac_destroy(lt_kfac **pk) {
  if (!pk || !*pk) return;
  for (int l = 0; l < (*pk)->nlayers; l++) {
    lt_free((*pk)->A[l]);
    lt_free((*pk)->G[l]);
  }
  lt_free(*pk);
  *pk = NULL;
}

size_t lt_kfac_bytes(const lt_kfac *k) {
  size_t b = sizeof(*k);
  for (int l = 0; l < k->nlayers; l++)
    b += ((size_t)k->da[l] * k->da[l] + (size_t)k->dg[l] * k->dg[l]) * sizeof(double);
  return b;
}

static lt_status check_args(lt_ctx *ctx, const lt_model *m, const lt_dataset *ds, int global_batch,
                            long n_loc, const lt_kfac *k) {
  if (global_batch < 1) LT_ERROR(ctx, LT_ERR_ARG, "kfac: global batch %d, must be >= 1", global_batch);
  if (ds->d != m->in_dim)
    LT_ERROR(ctx, LT_ERR_ARG, "kfac: dataset '%s' has %d features, the model takes %d", ds->name,
             ds->d, m->in_dim);
  if (k->nlayers != m->nlayers)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "kfac: factors for %d layers, the model has %d", k->nlayers,
             m->nlayers);
  for (long i = 0; i < n_loc; i++)
    if (ds->y[i] < 0 || ds->y[i] >= m->out_dim)
      LT_ERROR(ctx, LT_ERR_DATA, "kfac: dataset '%s' row %ld has label %d, allowed 0..%d",
               ds->name, i, (int)ds->y[i], m->out_dim - 1);
  return LT_OK;
}

/* One pass over this rank's rows in chunks: forward, labels (true or sampled from
 * the stream (seed, rank, LT_RNG_FISHER)), each row's own CE gradient (scale 1)
 * backward, so that m->act[l] holds layer l's inputs and m->dz[l + 1] the rows'
 * pre-activation gradients; then fn(user, m, rows). No communication. */
typedef void (*chunk_fn)(void *user, const lt_model *m, int rows, double *X);
static void chunk_pass(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled, int chunk,
                       long n_loc, float *gscratch, int32_t *ys, double *X, chunk_fn fn,
                       void *user) {
  lt_rng r;
  lt_rng_seed(&r, ctx->seed, (uint64_t)ctx->rank, LT_RNG_FISHER);
  float *dl = m->dz[m->nlayers];
  for (long i = 0; i < n_loc; i += chunk) {
    int b = n_loc - i < chunk ? (int)(n_loc - i) : chunk;
    const float *logits = lt_model_forward(m, ds->x + (size_t)i * (size_t)ds->d, b);
    const int32_t *y = ds->y + i;
    if (sampled) {
      lt_fisher_sample_labels(ys, &r, logits, b, m->out_dim);
      y = ys;
    }
    (void)lt_softmax_xent(dl, NULL, logits, y, NULL, b, m->out_dim, 1.0f);
    lt_model_backward(m, dl, b, gscratch, 0.0f);
    fn(user, m, b, X);
  }
}

/* Lower triangles: A += [a 1]^T [a 1], G += g^T g over the chunk's rows (dsyrk, double);
 * X [chunk x max(in + 1, out)] scratch. */
static void factor_chunk(void *user, const lt_model *m, int b, double *X) {
  lt_kfac *k = user;
  for (int l = 0; l < m->nlayers; l++) {
    int da = k->da[l], dg = k->dg[l], in = da - 1;
    const float *a = m->act[l], *g = m->dz[l + 1];
    for (int s = 0; s < b; s++) {
      double *xr = X + (size_t)s * (size_t)da;
      for (int j = 0; j < in; j++) xr[j] = (double)a[(size_t)s * (size_t)in + (size_t)j];
      xr[in] = 1.0;
    }
    lt_dsyrk_lower_t(da, b, 1.0, X, da, k->A[l], da);
    for (size_t s = 0; s < (size_t)b * (size_t)dg; s++) X[s] = (double)g[s];
    lt_dsyrk_lower_t(dg, b, 1.0, X, dg, k->G[l], dg);
  }
}

/* One collective pass: local rows (max_samples as lt_fisher_diag), agreed checks,
 * scratch (X [chunk x width] doubles for fn), chunk_pass, and the global row count. */
static lt_status run_pass(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled,
                          int global_batch, long max_samples, const lt_kfac *k, int width,
                          chunk_fn fn, void *user, long *n_glob) {
  long n_loc = ds->n;
  if (max_samples > 0) {
    long lim = lt_shard_count(max_samples, ctx->rank, ctx->size);
    if (lim < n_loc) n_loc = lim;
  }
  LT_CHECK(ctx, lt_agree(ctx, check_args(ctx, m, ds, global_batch, n_loc, k)));
  int chunk = global_batch >= ctx->size ? lt_local_batch(global_batch, ctx->rank, ctx->size) : 1;
  if (chunk > m->max_batch) chunk = m->max_batch;
  if (chunk < 1) chunk = 1;
  double *X = NULL;
  float *gs = NULL;
  int32_t *ys = NULL;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&X, (size_t)chunk * (size_t)width, sizeof(double)) != 0 ||
      lt_calloc_aligned((void **)&gs, m->n_pad, sizeof(float)) != 0 ||
      lt_calloc_aligned((void **)&ys, (size_t)chunk, sizeof(int32_t)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "kfac: out of memory for the scratch (%d x %d doubles)", chunk, width);
  st = lt_agree(ctx, st);
  if (st == LT_OK) chunk_pass(ctx, m, ds, sampled, chunk, n_loc, gs, ys, X, fn, user);
  lt_free(X);
  lt_free(gs);
  lt_free(ys);
  LT_CHECK(ctx, st);
  LT_CHECK_MPI(ctx, MPI_Allreduce(&n_loc, n_glob, 1, MPI_LONG, MPI_SUM, ctx->comm));
  return LT_OK;
}

size_t lt_kfac_widest_layer(const lt_model *m) {
  size_t big = 0;
  for (int l = 0; l < m->nlayers; l++) {
    size_t s = (size_t)m->layer[l].out * (size_t)(m->layer[l].in + 1);
    big = s > big ? s : big;
  }
  return big;
}

lt_status lt_kfac_compute(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled,
                          int global_batch, long max_samples, lt_kfac *k) {
  int widest = 1;
  for (int l = 0; l < k->nlayers; l++) {
    if (k->da[l] > widest) widest = k->da[l];
    if (k->dg[l] > widest) widest = k->dg[l];
    memset(k->A[l], 0, (size_t)k->da[l] * k->da[l] * sizeof(double));
    memset(k->G[l], 0, (size_t)k->dg[l] * k->dg[l] * sizeof(double));
  }
  long n_glob = 0;
  LT_CHECK(ctx, run_pass(ctx, m, ds, sampled, global_batch, max_samples, k, widest, factor_chunk,
                         k, &n_glob));
  double s = n_glob > 0 ? 1.0 / (double)n_glob : 0.0;
  for (int l = 0; l < k->nlayers; l++) {
    int dims[2] = {k->da[l], k->dg[l]};
    double *F[2] = {k->A[l], k->G[l]};
    for (int f = 0; f < 2; f++) {
      size_t nn = (size_t)dims[f] * (size_t)dims[f];
      LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, F[f], (int)nn, MPI_DOUBLE, MPI_SUM, ctx->comm));
      for (size_t i = 0; i < nn; i++) F[f][i] *= s;
      lt_dsym_from_lower(F[f], dims[f], dims[f]);
    }
  }
  return LT_OK;
}

typedef struct {
  int layer, nr, nc;
  const int *rows, *cols;
  double *F; /* [nr nc]^2 lower */
} block_acc;

/* v_n = vec(g_n[rows] a_n[cols]^T) (a with its 1) into V [chunk x nr nc], F += sum_n v_n v_n^T. */
static void block_chunk(void *user, const lt_model *m, int b, double *V) {
  block_acc *ba = user;
  const lt_layer *ly = &m->layer[ba->layer];
  int in = ly->in, S = ba->nr * ba->nc;
  const float *a = m->act[ba->layer], *g = m->dz[ba->layer + 1];
  for (int s = 0; s < b; s++)
    for (int i = 0; i < ba->nr; i++)
      for (int j = 0; j < ba->nc; j++) {
        double av = ba->cols[j] == in ? 1.0 : (double)a[(size_t)s * in + ba->cols[j]];
        V[(size_t)s * S + (size_t)i * ba->nc + j] =
            (double)g[(size_t)s * ly->out + ba->rows[i]] * av;
      }
  lt_dsyrk_lower_t(S, b, 1.0, V, S, ba->F, S);
}

lt_status lt_kfac_exact_block(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, int sampled,
                              int global_batch, long max_samples, int layer, const int *rows,
                              int nr, const int *cols, int nc, double *F) {
  if (layer < 0 || layer >= m->nlayers || nr < 1 || nc < 1)
    LT_ERROR(ctx, LT_ERR_ARG, "kfac: block of %d x %d weights of layer %d (model has %d layers)",
             nr, nc, layer + 1, m->nlayers);
  for (int i = 0; i < nr; i++)
    if (rows[i] < 0 || rows[i] >= m->layer[layer].out)
      LT_ERROR(ctx, LT_ERR_ARG, "kfac: block row %d outside layer %d's %d rows", rows[i],
               layer + 1, m->layer[layer].out);
  for (int j = 0; j < nc; j++)
    if (cols[j] < 0 || cols[j] > m->layer[layer].in)
      LT_ERROR(ctx, LT_ERR_ARG, "kfac: block column %d outside layer %d's %d + 1 columns",
               cols[j], layer + 1, m->layer[layer].in);
  int S = nr * nc;
  lt_kfac dummy = {.nlayers = m->nlayers};
  block_acc ba = {layer, nr, nc, rows, cols, F};
  memset(F, 0, (size_t)S * S * sizeof(double));
  long n_glob = 0;
  LT_CHECK(ctx, run_pass(ctx, m, ds, sampled, global_batch, max_samples, &dummy, S, block_chunk,
                         &ba, &n_glob));
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, F, S * S, MPI_DOUBLE, MPI_SUM, ctx->comm));
  double sc = n_glob > 0 ? 1.0 / (double)n_glob : 0.0;
  for (size_t i = 0; i < (size_t)S * S; i++) F[i] *= sc;
  lt_dsym_from_lower(F, S, S);
  return LT_OK;
}

void lt_kfac_axpby(lt_kfac *dst, double gamma, const lt_kfac *src) {
  for (int l = 0; l < dst->nlayers; l++) {
    size_t na = (size_t)dst->da[l] * dst->da[l], ng = (size_t)dst->dg[l] * dst->dg[l];
    for (size_t i = 0; i < na; i++) dst->A[l][i] = gamma * dst->A[l][i] + src->A[l][i];
    for (size_t i = 0; i < ng; i++) dst->G[l][i] = gamma * dst->G[l][i] + src->G[l][i];
  }
}

static double mean_diag(const double *X, int n) {
  double t = 0.0;
  for (int i = 0; i < n; i++) t += X[(size_t)i * n + i];
  return t / n;
}

void lt_kfac_damping(const lt_kfac *k, int l, double eps, lt_kfac_damp kind, double *addA,
                     double *addG) {
  double se = sqrt(eps), pi = 1.0;
  if (kind == LT_KFAC_DAMP_PI) {
    double ta = mean_diag(k->A[l], k->da[l]), tg = mean_diag(k->G[l], k->dg[l]);
    if (ta > 0.0 && tg > 0.0) pi = sqrt(ta / tg);
  }
  *addA = pi * se;
  *addG = se / pi;
}

/* Damped inverse of one factor X [n x n] (+ add I) into inv, and optionally
 * the Cholesky factor of that inverse into chol. */
static lt_status damped_inverse(lt_ctx *ctx, lt_pgrid *g, int nb, const double *X, int n,
                                double add, double *inv, double *chol) {
  lt_pmat *pm = NULL;
  LT_CHECK(ctx, lt_pmat_create(g, n, n, nb, &pm));
  lt_pmat_set_full(pm, X, n); /* symmetric: row- and column-major agree */
  lt_pmat_add_diag(pm, add);
  lt_status st = lt_pinv_spd(pm);
  if (st == LT_OK) st = lt_pmat_get_full(pm, inv, 1);
  if (st == LT_OK && chol) {
    lt_pmat_set_full(pm, inv, n);
    st = lt_pchol(pm);
    /* column-major lower L read row-major is L^T (upper): transpose into row-major L */
    if (st == LT_OK) st = lt_pmat_get_full(pm, chol, 2);
    if (st == LT_OK)
      for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
          chol[(size_t)j * n + i] = chol[(size_t)i * n + j];
          chol[(size_t)i * n + j] = 0.0;
        }
  }
  lt_pmat_destroy(&pm);
  LT_CHECK(ctx, st);
  return LT_OK;
}

lt_status lt_kfac_inverses(lt_ctx *ctx, const lt_kfac *k, lt_pgrid *g, int nb, double eps,
                           lt_kfac_damp kind, double *const *Ainv, double *const *Ginv,
                           double *const *CA, double *const *CG) {
  if (!(eps > 0.0) || !isfinite(eps))
    LT_ERROR(ctx, LT_ERR_ARG, "kfac: damping %g, must be finite and > 0", eps);
  for (int l = 0; l < k->nlayers; l++) {
    double addA, addG;
    lt_kfac_damping(k, l, eps, kind, &addA, &addG);
    LT_CHECK(ctx, damped_inverse(ctx, g, nb, k->A[l], k->da[l], addA, Ainv[l], CA ? CA[l] : NULL));
    LT_CHECK(ctx, damped_inverse(ctx, g, nb, k->G[l], k->dg[l], addG, Ginv[l], CG ? CG[l] : NULL));
  }
  return LT_OK;
}

void lt_kfac_layer_get(const lt_layer *ly, const float *theta, const float *anchor, double *out) {
  int da = ly->in + 1;
  for (int r = 0; r < ly->out; r++)
    for (int j = 0; j < da; j++) {
      size_t i = lt_kfac_index(ly, r, j);
      out[(size_t)r * da + j] = (double)theta[i] - (anchor ? (double)anchor[i] : 0.0);
    }
}

void lt_kfac_owned_rows(const lt_layer *ly, size_t lo, size_t hi, int wrows[2], int brows[2]) {
  size_t in = (size_t)ly->in, w_end = ly->w_off + in * (size_t)ly->out;
  size_t a = lo > ly->w_off ? lo : ly->w_off, b = hi < w_end ? hi : w_end;
  wrows[0] = wrows[1] = 0;
  if (a < b && in > 0) {
    wrows[0] = (int)((a - ly->w_off) / in);
    wrows[1] = (int)((b - 1 - ly->w_off) / in) + 1;
  }
  size_t b_end = ly->b_off + (size_t)ly->out;
  a = lo > ly->b_off ? lo : ly->b_off;
  b = hi < b_end ? hi : b_end;
  brows[0] = brows[1] = 0;
  if (a < b) {
    brows[0] = (int)(a - ly->b_off);
    brows[1] = (int)(b - ly->b_off);
  }
}

void lt_kfac_sandwich_rows(double *H, double *T, const double *L, const double *X,
                           const double *R, int dg, int da, int r0, int r1) {
  int nr = r1 - r0;
  if (nr <= 0) return;
  /* T[nr, da] = L[r0:r1, dg] X[dg, da];  H[r0:r1, da] = T R[da, da] */
  lt_dgemm(0, 0, nr, da, dg, 1.0, L + (size_t)r0 * dg, dg, X, da, 0.0, T, da);
  lt_dgemm(0, 0, nr, da, da, 1.0, T, da, R, da, 0.0, H + (size_t)r0 * da, da);
}
