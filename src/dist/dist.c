/* Ownership ranges and the collectives of data-parallel training. */
#include "lethe/dist.h"

lt_status lt_shard_init(lt_ctx *ctx, size_t n, size_t n_pad, lt_shard *sh) {
  if (n_pad < n || n_pad % (size_t)ctx->size != 0)
    LT_ERROR(ctx, LT_ERR_INTERNAL,
             "padded length %zu does not split into %d slices (n = %zu): build the model with "
             "pad_ranks >= the rank count",
             n_pad, ctx->size, n);
  sh->n = n;
  sh->n_pad = n_pad;
  sh->rank = ctx->rank;
  sh->size = ctx->size;
  sh->slice = n_pad / (size_t)ctx->size;
  sh->lo = sh->slice * (size_t)ctx->rank;
  sh->hi = sh->lo + sh->slice;
  sh->coll = LT_COLL_RING;
  return LT_OK;
}

/* y[n] += x[n] */
static void add_into(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* Ring reduce-scatter in place: after step s (0-based) the partial sum of block
 * (r - 2 - s) mod P on rank r holds the contributions of s + 2 ranks; block
 * (r - 1 - s) travels right. The partial arriving at the last step is block r
 * itself, summed into owned. The sum order of each block is fixed by P, so
 * results are deterministic for a given rank count. */
static lt_status ring_reduce_scatter(lt_ctx *ctx, const lt_shard *sh, float *full, float *owned) {
  int P = sh->size, r = sh->rank;
  size_t blk = sh->slice;
  if (P == 1) {
    for (size_t i = 0; i < blk; i++) owned[i] = full[i];
    return LT_OK;
  }
  int right = (r + 1) % P, left = (r - 1 + P) % P;
  for (int s = 0; s < P - 1; s++) {
    int sb = ((r - 1 - s) % P + P) % P, rb = ((r - 2 - s) % P + P) % P;
    LT_CHECK_MPI(ctx, MPI_Sendrecv(full + (size_t)sb * blk, (int)blk, MPI_FLOAT, right, 71, owned,
                                   (int)blk, MPI_FLOAT, left, 71, ctx->comm, MPI_STATUS_IGNORE));
    if (s < P - 2)
      add_into(full + (size_t)rb * blk, owned, blk);
    else
      add_into(owned, full + (size_t)rb * blk, blk); /* rb == r */
  }
  return LT_OK;
}

lt_status lt_dist_reduce_grad(lt_ctx *ctx, const lt_shard *sh, lt_dist_mode mode, float *full,
                              float *owned) {
  if (sh->slice > (size_t)INT32_MAX)
    LT_ERROR(ctx, LT_ERR_ARG, "slice of %zu floats exceeds MPI's int count", sh->slice);
  if (mode == LT_DIST_SHARDED && sh->coll == LT_COLL_RING) {
    LT_CHECK(ctx, ring_reduce_scatter(ctx, sh, full, owned));
  } else if (mode == LT_DIST_SHARDED) {
    LT_CHECK_MPI(ctx, MPI_Reduce_scatter_block(full, owned, (int)sh->slice, MPI_FLOAT, MPI_SUM,
                                               ctx->comm));
  } else {
    LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, full, (int)sh->n_pad, MPI_FLOAT, MPI_SUM,
                                    ctx->comm));
    for (size_t i = 0; i < sh->slice; i++) owned[i] = full[sh->lo + i];
  }
  return LT_OK;
}

lt_status lt_dist_allgather(lt_ctx *ctx, const lt_shard *sh, float *full) {
  if (sh->size == 1) return LT_OK;
  LT_CHECK_MPI(ctx, MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, full, (int)sh->slice,
                                  MPI_FLOAT, ctx->comm));
  return LT_OK;
}
