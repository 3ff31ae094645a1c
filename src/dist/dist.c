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
  return LT_OK;
}

lt_status lt_dist_reduce_grad(lt_ctx *ctx, const lt_shard *sh, lt_dist_mode mode, float *full,
                              float *owned) {
  if (sh->slice > (size_t)INT32_MAX)
    LT_ERROR(ctx, LT_ERR_ARG, "slice of %zu floats exceeds MPI's int count", sh->slice);
  if (mode == LT_DIST_SHARDED) {
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
