/* lethe data: mini-batches over a rank's rows of a dataset.
 *
 * Epoch e's order is a Fisher-Yates shuffle of the identity with the rank's
 * shuffle stream (seed, rank, LT_RNG_SHUFFLE) positioned at counter e * 2^40,
 * so it depends only on (seed, rank, e): a restart at (epoch, step) replays the
 * exact batches without knowing earlier epochs.
 *
 * The ranks may hold any numbers of rows (a strided shard, or this rank's rows
 * of one task of a scenario): create agrees on the steps per epoch with one
 * MPI_Allreduce (MINLOC of floor(n_r / B_r)). */
#include <string.h>

#include "lethe/data.h"

/* Each epoch owns 2^40 outputs of the stream; a shuffle of n < 2^32 rows
 * draws about n (plus rare rejections), far fewer. */
#define EPOCH_SHIFT 40

int lt_local_batch(int global_batch, int rank, int size) {
  if (size <= 0 || global_batch <= 0) return 0;
  return global_batch / size + (rank < global_batch % size);
}

long lt_shard_count(long n_global, int rank, int size) {
  if (size <= 0 || rank < 0 || n_global <= rank) return 0;
  return (n_global - rank + size - 1) / size;
}

lt_status lt_batcher_create(lt_ctx *ctx, const lt_dataset *ds, int global_batch,
                            lt_batcher **out) {
  *out = NULL;
  const int P = ctx->size, me = ctx->rank;
  const int lb = lt_local_batch(global_batch, me, P);
  /* local checks are folded into the one allreduce: a rank that failed
   * contributes -1, so every rank leaves create with an error together */
  lt_status st = LT_OK;
  if (!ds)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__, "batcher: no dataset");
  else if (global_batch < P)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "global batch size %d is smaller than the number of ranks %d: every rank "
                      "needs at least one row per step", global_batch, P);
  /* drop-last: the smallest number of full local batches over all ranks */
  struct {
    int steps, rank;
  } mine = {st != LT_OK ? -1 : ds->n / lb, me}, worst = {0, 0};
  LT_CHECK_MPI(ctx, MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MINLOC, ctx->comm));
  if (st != LT_OK) return st;
  if (worst.steps < 0)
    LT_ERROR(ctx, LT_ERR_ARG, "batcher: rank %d failed to create its batcher", worst.rank);
  if (worst.steps < 1) {
    /* every rank is here: tell all of them the short rank's sample count */
    int n_worst = ds->n;
    LT_CHECK_MPI(ctx, MPI_Bcast(&n_worst, 1, MPI_INT, worst.rank, ctx->comm));
    LT_ERROR(ctx, LT_ERR_ARG,
             "global batch size %d is too large for dataset '%s' of %ld samples on %d ranks: "
             "rank %d holds %d samples of it, fewer than its local batch of %d rows",
             global_batch, ds->name, ds->n_global, P, worst.rank, n_worst,
             lt_local_batch(global_batch, worst.rank, P));
  }
  const long steps = worst.steps;

  lt_batcher *b = NULL;
  LT_CALLOC(ctx, b, 1);
  b->ds = ds;
  b->global_batch = global_batch;
  b->local_batch = lb;
  b->steps_per_epoch = steps;
  lt_rng_seed(&b->rng, ctx->seed, (uint64_t)me, LT_RNG_SHUFFLE);
  if (lt_calloc_aligned((void **)&b->perm, (size_t)ds->n, sizeof(*b->perm)) ||
      lt_calloc_aligned((void **)&b->xb, (size_t)b->local_batch * (size_t)ds->d, sizeof(float)) ||
      lt_calloc_aligned((void **)&b->yb, (size_t)b->local_batch, sizeof(int32_t))) {
    lt_batcher_destroy(&b);
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory for a batcher of %d rows x %d features", global_batch,
             ds->d);
  }
  lt_batcher_epoch(b, 0);
  *out = b;
  return LT_OK;
}

void lt_batcher_destroy(lt_batcher **pb) {
  if (!pb || !*pb) return;
  lt_batcher *b = *pb;
  lt_free(b->perm);
  lt_free(b->xb);
  lt_free(b->yb);
  lt_free(b);
  *pb = NULL;
}

void lt_batcher_epoch(lt_batcher *b, long epoch) {
  const size_t n = (size_t)b->ds->n;
  for (size_t i = 0; i < n; i++) b->perm[i] = (uint32_t)i;
  lt_rng r = b->rng; /* the base stream (counter 0) is kept in b->rng */
  r.ctr = 0;
  lt_rng_jump(&r, (uint64_t)epoch << EPOCH_SHIFT);
  lt_rng_shuffle_u32(&r, b->perm, n);
  b->epoch = epoch;
  b->step = 0;
}

void lt_batcher_seek(lt_batcher *b, long epoch, long step) {
  lt_batcher_epoch(b, epoch);
  b->step = step < 0 ? 0 : step;
}

int lt_batcher_next(lt_batcher *b) {
  if (b->step >= b->steps_per_epoch) return 0;
  const lt_dataset *ds = b->ds;
  const size_t d = (size_t)ds->d;
  const uint32_t *rows = b->perm + (size_t)b->step * (size_t)b->local_batch;
  for (int k = 0; k < b->local_batch; k++) {
    memcpy(b->xb + (size_t)k * d, ds->x + (size_t)rows[k] * d, d * sizeof(float));
    b->yb[k] = ds->y[rows[k]];
  }
  b->step++;
  return b->local_batch;
}
