/* Replay buffer of the cl module (internal to src/cl): a reservoir of at most M
 * samples over all ranks, sharded: rank r keeps at most M_r = M/P (+1 for the
 * first M mod P ranks) of the samples it has seen, chosen by Vitter's reservoir
 * algorithm R over its own stream, so every sample seen by rank r is kept with
 * probability M_r / n_r. With DER the logits at insertion are stored too. */
#ifndef LETHE_CL_REPLAY_H
#define LETHE_CL_REPLAY_H

#include "lethe/core.h"
#include "lethe/trainer.h"

typedef struct lt_replay lt_replay;

/* d features, C classes; store_logits for DER/DER++. The reservoir stream is
 * (ctx->seed, rank, LT_RNG_USER + 1). Collective only in that all ranks call it. */
LT_WUR lt_status lt_replay_create(lt_ctx *ctx, long M, int d, int C, int store_logits,
                                  lt_replay **rb);
void lt_replay_destroy(lt_replay **rb);

/* Offer rows samples of this rank's stream (x [rows, d], y [rows], logits
 * [rows, C] or NULL). Not collective; never allocates. */
void lt_replay_add(lt_replay *rb, const float *x, const int32_t *y, const float *logits,
                   int rows);

/* Draw a minibatch of global_rows rows over all ranks (each rank its share of
 * the rows, drawn uniformly with replacement from its local buffer; ranks with
 * an empty buffer take 0 rows and the share moves to others) into internal
 * storage slot (0 or 1: DER++ draws two), and describe it as a loss term of
 * the given kind (LT_TERM_CE: labels; LT_TERM_MSE_LOGITS: stored logits) and
 * weight. term->rows may be 0 on some ranks; when the whole buffer is empty
 * term->global_rows is 0 and the caller must leave the term out. Collective
 * (one small allreduce of the buffer fill counts). */
LT_WUR lt_status lt_replay_sample(lt_replay *rb, int slot, int global_rows, lt_term_kind kind,
                                  double weight, lt_loss_term *term);

long lt_replay_local_count(const lt_replay *rb); /* samples held on this rank */
long lt_replay_seen(const lt_replay *rb);        /* samples offered on this rank */
/* Global index (into this rank's stream) of local slot i, for tests. */
long lt_replay_stream_index(const lt_replay *rb, long i);
size_t lt_replay_bytes(const lt_replay *rb);

#endif
