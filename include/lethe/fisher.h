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
 * first samples of each shard). global_batch is the batch of the batch_mean mode
 * and the chunk size of the others. Writes F_owned[sh->slice]. Collective. */
LT_WUR lt_status lt_fisher_diag(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                const lt_dataset *ds, lt_fisher_mode mode, int global_batch,
                                long max_samples, float *F_owned);

const char *lt_fisher_mode_name(lt_fisher_mode mode);

#endif
