/* lethe dist: ownership of the flat parameter buffer and the collectives of
 * data-parallel training.
 *
 * The padded buffer of n_pad floats is split into P equal slices of
 * slice = n_pad / P floats (n_pad is a multiple of 16 P, so slices are
 * 64-byte aligned); rank r owns [lo, hi) = [r slice, (r+1) slice). Every
 * per-parameter state (optimizer moments, Fisher, anchors) exists only for
 * the owned slice.
 *
 *   sharded mode:   grad (full, local sum) --Reduce_scatter_block--> owned grad (global sum)
 *                   update owned slice of theta --Allgather--> theta replicated
 *   allreduce mode: grad --Allreduce--> full global sum on every rank; every
 *                   rank updates its owned slice the same way, then Allgather
 *                   (kept for comparison; same result, more traffic)
 *
 * The sharded reduce-scatter runs lethe's own ring by default: P-1 steps, each
 * an MPI_Sendrecv of one slice to the right neighbour and a vectorised sum of
 * the slice received from the left. On one node with Open MPI 4.1 it measured
 * 5-10x faster than MPI_Reduce_scatter_block for the 2 MB gradients of the
 * quick-start model (0.7-1.8 ms vs 7-9 ms at 2 ranks), whose tuned component
 * falls back to a reduce + scatter. LT_COLL_MPI selects the library's collective.
 */
#ifndef LETHE_DIST_H
#define LETHE_DIST_H

#include "lethe/core.h"

typedef enum { LT_DIST_SHARDED = 0, LT_DIST_ALLREDUCE } lt_dist_mode;

typedef enum { LT_COLL_RING = 0, LT_COLL_MPI } lt_coll;

typedef struct {
  size_t n, n_pad; /* real and padded lengths */
  size_t lo, hi;   /* owned range */
  size_t slice;    /* hi - lo, equal on every rank */
  int rank, size;
  lt_coll coll;    /* reduce-scatter algorithm (LT_COLL_RING after init) */
} lt_shard;

/* n_pad must be a multiple of ctx->size (the model pads it). */
LT_WUR lt_status lt_shard_init(lt_ctx *ctx, size_t n, size_t n_pad, lt_shard *sh);

/* Sum the full-length local vectors of all ranks; the owner's slice of the sum
 * lands in owned[slice]. full is used as scratch: its contents are undefined
 * afterwards (in allreduce mode it holds the global sum). */
LT_WUR lt_status lt_dist_reduce_grad(lt_ctx *ctx, const lt_shard *sh, lt_dist_mode mode,
                                     float *full, float *owned);

/* Replicate: every rank contributes full[lo, hi) and receives all slices (in place). */
LT_WUR lt_status lt_dist_allgather(lt_ctx *ctx, const lt_shard *sh, float *full);

#endif
