/* Diagonal Fisher on the owners' slices: per-sample (empirical, sampled) through
 * lt_model_backward_sqgrad, and squared mean gradients of global batches. */
#include <math.h>
#include <string.h>

#include "lethe/fisher.h"

const char *lt_fisher_mode_name(lt_fisher_mode mode) {
  switch (mode) {
  case LT_FISHER_EMPIRICAL: return "empirical";
  case LT_FISHER_SAMPLED: return "sampled";
  case LT_FISHER_BATCH_MEAN: return "batch_mean";
  }
  return "unknown";
}

/* y[B], logits[B, C] */
void lt_fisher_sample_labels(int32_t *y, lt_rng *r, const float *logits, int B, int C) {
  for (int i = 0; i < B; i++) {
    const float *row = logits + (size_t)i * (size_t)C;
    float mx = row[0];
    for (int c = 1; c < C; c++) mx = row[c] > mx ? row[c] : mx;
    double sum = 0.0;
    for (int c = 0; c < C; c++) sum += exp((double)(row[c] - mx));
    double u = lt_rng_uniform(r) * sum, cum = 0.0;
    int pick = C - 1;
    for (int c = 0; c < C; c++) {
      cum += exp((double)(row[c] - mx));
      if (u < cum) {
        pick = c;
        break;
      }
    }
    y[i] = pick;
  }
}

/* Local checks; no collectives (the caller agrees on the result). */
static lt_status check_args(lt_ctx *ctx, const lt_model *m, const lt_shard *sh,
                            const lt_dataset *ds, lt_fisher_mode mode, int global_batch,
                            long n_loc) {
  if ((unsigned)mode > (unsigned)LT_FISHER_BATCH_MEAN)
    LT_ERROR(ctx, LT_ERR_ARG, "fisher: mode %d unknown (empirical, sampled, batch_mean)",
             (int)mode);
  if (global_batch < 1)
    LT_ERROR(ctx, LT_ERR_ARG, "fisher: global batch %d, must be >= 1", global_batch);
  if (mode == LT_FISHER_BATCH_MEAN && global_batch < ctx->size)
    LT_ERROR(ctx, LT_ERR_ARG,
             "fisher: batch_mean needs a global batch >= the rank count (%d < %d)", global_batch,
             ctx->size);
  if (sh->n_pad != m->n_pad || sh->size != ctx->size || sh->rank != ctx->rank)
    LT_ERROR(ctx, LT_ERR_INTERNAL,
             "fisher: shard (n_pad %zu, %d ranks) does not match the model (n_pad %zu, %d ranks)",
             sh->n_pad, sh->size, m->n_pad, ctx->size);
  if (ds->d != m->in_dim)
    LT_ERROR(ctx, LT_ERR_ARG, "fisher: dataset '%s' has %d features, the model takes %d",
             ds->name, ds->d, m->in_dim);
  for (long i = 0; i < n_loc; i++)
    if (ds->y[i] < 0 || ds->y[i] >= m->out_dim)
      LT_ERROR(ctx, LT_ERR_DATA, "fisher: dataset '%s' row %ld has label %d, allowed 0..%d",
               ds->name, i, (int)ds->y[i], m->out_dim - 1);
  return LT_OK;
}

static const float *rows_of(const lt_dataset *ds, long i) {
  return ds->x + (size_t)i * (size_t)ds->d;
}

/* F_owned = reduce(sum over local rows of g_n .* g_n) / N */
static lt_status fisher_per_sample(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                   const lt_dataset *ds, int sampled, int global_batch,
                                   long n_loc, long n_glob, float *F_owned) {
  int chunk = lt_local_batch(global_batch, ctx->rank, ctx->size);
  if (chunk > m->max_batch) chunk = m->max_batch;
  if (chunk < 1) chunk = 1;
  float *acc = NULL;
  int32_t *ys = NULL;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&acc, m->n_pad, sizeof(*acc)) != 0 ||
      (sampled && lt_calloc_aligned((void **)&ys, (size_t)chunk, sizeof(*ys)) != 0))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "fisher: out of memory allocating the accumulator (%zu floats)", m->n_pad);
  st = lt_agree(ctx, st); /* no rank enters the reduce alone */
  if (st == LT_OK) {
    lt_rng r;
    lt_rng_seed(&r, ctx->seed, (uint64_t)ctx->rank, LT_RNG_FISHER);
    float *dl = m->dz[m->nlayers];
    for (long i = 0; i < n_loc; i += chunk) {
      int b = n_loc - i < chunk ? (int)(n_loc - i) : chunk;
      const float *logits = lt_model_forward(m, rows_of(ds, i), b);
      const int32_t *y = ds->y + i;
      if (sampled) {
        lt_fisher_sample_labels(ys, &r, logits, b, m->out_dim);
        y = ys;
      }
      (void)lt_softmax_xent(dl, NULL, logits, y, NULL, b, m->out_dim, 1.0f);
      lt_model_backward_sqgrad(m, dl, b, acc);
    }
    st = lt_dist_reduce_grad(ctx, sh, LT_DIST_SHARDED, acc, F_owned);
  }
  lt_free(acc);
  lt_free(ys);
  LT_CHECK(ctx, st);
  float s = n_glob > 0 ? (float)(1.0 / (double)n_glob) : 0.0f;
  for (size_t j = 0; j < sh->slice; j++) F_owned[j] *= s;
  return LT_OK;
}

/* Global batch k: rows [k B_r, min((k+1) B_r, n_r)) of every rank r. */
static long batch_rows(long k, long n_r, int B_r) {
  long lo = k * (long)B_r, hi = lo + B_r;
  if (hi > n_r) hi = n_r;
  return hi > lo ? hi - lo : 0;
}

/* F_owned = 1/K sum_k reduce(gbar_k) .^ 2 */
static lt_status fisher_batch_mean(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                   const lt_dataset *ds, int global_batch, long n_loc,
                                   float *F_owned) {
  int P = ctx->size, me = ctx->rank;
  long *counts = NULL;
  float *g = NULL, *gown = NULL;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&counts, (size_t)P, sizeof(*counts)) != 0 ||
      lt_calloc_aligned((void **)&g, m->n_pad, sizeof(*g)) != 0 ||
      lt_calloc_aligned((void **)&gown, sh->slice, sizeof(*gown)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "fisher: out of memory allocating the batch gradient (%zu floats)",
                      m->n_pad);
  st = lt_agree(ctx, st); /* no rank enters the collectives below alone */
  if (st != LT_OK) goto done;
  if (MPI_Allgather(&n_loc, 1, MPI_LONG, counts, 1, MPI_LONG, ctx->comm) != MPI_SUCCESS) {
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__,
                      "fisher: MPI_Allgather of the shard sizes failed");
    goto done;
  }
  long K = 0; /* same on every rank: computed from the same counts */
  for (int r = 0; r < P; r++) {
    long B_r = lt_local_batch(global_batch, r, P); /* >= 1: global_batch >= P */
    long k_r = (counts[r] + B_r - 1) / B_r;
    if (k_r > K) K = k_r;
  }
  memset(F_owned, 0, sh->slice * sizeof(*F_owned));
  int B_me = lt_local_batch(global_batch, me, P);
  float *dl = m->dz[m->nlayers];
  for (long k = 0; k < K; k++) {
    long G = 0;
    for (int r = 0; r < P; r++) G += batch_rows(k, counts[r], lt_local_batch(global_batch, r, P));
    long rows = batch_rows(k, n_loc, B_me), first = k * (long)B_me;
    float scale = (float)(1.0 / (double)G); /* G >= 1 for k < K */
    if (rows == 0) memset(g, 0, m->n_pad * sizeof(*g));
    for (long i = 0; i < rows; i += m->max_batch) {
      int b = rows - i < m->max_batch ? (int)(rows - i) : m->max_batch;
      const float *logits = lt_model_forward(m, rows_of(ds, first + i), b);
      (void)lt_softmax_xent(dl, NULL, logits, ds->y + first + i, NULL, b, m->out_dim, scale);
      lt_model_backward(m, dl, b, g, i == 0 ? 0.0f : 1.0f);
    }
    st = lt_dist_reduce_grad(ctx, sh, LT_DIST_SHARDED, g, gown);
    if (st != LT_OK) {
      st = lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
      goto done;
    }
    for (size_t j = 0; j < sh->slice; j++) F_owned[j] += gown[j] * gown[j];
  }
  if (K > 0) {
    float s = (float)(1.0 / (double)K);
    for (size_t j = 0; j < sh->slice; j++) F_owned[j] *= s;
  }
done:
  lt_free(counts);
  lt_free(g);
  lt_free(gown);
  return st;
}

lt_status lt_fisher_diag(lt_ctx *ctx, lt_model *m, const lt_shard *sh, const lt_dataset *ds,
                         lt_fisher_mode mode, int global_batch, long max_samples,
                         float *F_owned) {
  long n_loc = ds->n;
  if (max_samples > 0) {
    long lim = lt_shard_count(max_samples, ctx->rank, ctx->size);
    if (lim < n_loc) n_loc = lim;
  }
  LT_CHECK(ctx, lt_agree(ctx, check_args(ctx, m, sh, ds, mode, global_batch, n_loc)));
  long n_glob = 0;
  LT_CHECK_MPI(ctx, MPI_Allreduce(&n_loc, &n_glob, 1, MPI_LONG, MPI_SUM, ctx->comm));
  if (mode == LT_FISHER_BATCH_MEAN)
    LT_CHECK(ctx, fisher_batch_mean(ctx, m, sh, ds, global_batch, n_loc, F_owned));
  else
    LT_CHECK(ctx, fisher_per_sample(ctx, m, sh, ds, mode == LT_FISHER_SAMPLED, global_batch,
                                    n_loc, n_glob, F_owned));
  return LT_OK;
}
