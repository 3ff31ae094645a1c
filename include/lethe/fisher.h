/* lethe fisher: diagonal Fisher information on the owners' slices.
 *
 * Modes (all normalised so that F is a mean over samples or batches):
 *   empirical:  F = 1/N sum_n g_n .* g_n, g_n the gradient of sample n's CE at its true label
 *   sampled:    the same with y_n ~ softmax(f(x_n)) drawn from the model (true Fisher, one
 *               sample per input), stream (seed, rank, LT_RNG_FISHER)
 *   batch_mean: F = 1/K sum_k gbar_k .* gbar_k, gbar_k the mean gradient of global batch k
 *               (what the SSD authors' code computes)
 * Per-sample modes use lt_model_backward_sqgrad: one GEMM per layer per batch,
 * (dZ .* dZ)^T (A .* A), never a loop over samples. Local sums are reduce-scattered
 * so that each rank ends with its owned slice.
 */
#ifndef LETHE_FISHER_H
#define LETHE_FISHER_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/dist.h"
#include "lethe/model.h"

typedef enum { LT_FISHER_EMPIRICAL = 0, LT_FISHER_SAMPLED, LT_FISHER_BATCH_MEAN } lt_fisher_mode;

/* Diagonal Fisher at the model's current theta over the dataset's samples
 * (every rank its shard; max_samples > 0 limits the global count, taken as the
 * first lt_shard_count(max_samples, rank, size) samples of each shard, which for
 * strided shards are the first max_samples samples of the split). global_batch is
 * the batch of the batch_mean mode and, split over the ranks like the batcher
 * and capped at m->max_batch, the chunk size of the others.
 * batch_mean: batch k takes rows [k B_r, (k+1) B_r) of rank r's shard, B_r =
 * lt_local_batch(global_batch, r, P); K = max over ranks of ceil(n_r / B_r);
 * gbar_k is the gradient of the mean CE over the rows of batch k on all ranks.
 * Needs global_batch >= P. With no samples at all F is zero.
 * Sampled labels come from the stream (ctx->seed, rank, LT_RNG_FISHER) seeded
 * afresh at every call, drawn over the rank's rows in order.
 * Writes F_owned[sh->slice] (padding entries 0). Collective; labels outside
 * [0, m->out_dim) or ds->d != m->in_dim are errors on every rank. */
LT_WUR lt_status lt_fisher_diag(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                const lt_dataset *ds, lt_fisher_mode mode, int global_batch,
                                long max_samples, float *F_owned);

const char *lt_fisher_mode_name(lt_fisher_mode mode);

/* The label sampler of the sampled mode: for each of the B rows of logits [B, C],
 * y[i] ~ softmax(logits[i]), by inverse CDF with exactly one lt_rng_uniform draw
 * per row, in row order (so the labels depend on the stream and the row order
 * only, not on how rows are chunked). */
void lt_fisher_sample_labels(int32_t *y, lt_rng *r, const float *logits, int B, int C);

#endif
