/* Replay buffer of the cl module (internal to src/cl): a reservoir of at most M
 * samples over all ranks, sharded: rank r keeps at most M_r = M/P (+1 for the
 * first M mod P ranks) of the samples it has seen, chosen by Vitter's reservoir
 * algorithm R over its own stream, so every sample seen by rank r is kept with
 * probability M_r / n_r. With DER the logits at insertion are stored too.
 *
 * Algorithm R, for the k-th sample offered on this rank (k = 0, 1, ...): if
 * k < M_r it goes to slot k; otherwise j = lt_rng_below(reservoir, k + 1) and
 * it replaces slot j when j < M_r. (With M_r = 0 nothing is drawn.)
 *
 * Memory: the buffer (M_r rows of x, y, logits and stream index) is allocated
 * at create. The two minibatch slots are allocated in the first
 * lt_replay_sample into that slot, for global_rows rows (the most one rank can
 * be given: all rows when it alone holds samples); a later draw with a larger
 * global_rows reallocates that slot only, so with a fixed replay batch nothing
 * is allocated after the first draw. */
#ifndef LETHE_CL_REPLAY_H
#define LETHE_CL_REPLAY_H

#include "lethe/core.h"
#include "lethe/trainer.h"

typedef struct lt_replay lt_replay;

/* d features, C classes; store_logits for DER/DER++. The reservoir stream is
 * (ctx->seed, rank, LT_RNG_USER + 1), the sampling stream (ctx->seed, rank,
 * LT_RNG_USER + 2). ctx must outlive the buffer. Collective only in that all
 * ranks call it. */
LT_WUR lt_status lt_replay_create(lt_ctx *ctx, long M, int d, int C, int store_logits,
                                  lt_replay **rb);
void lt_replay_destroy(lt_replay **rb);

/* Offer rows samples of this rank's stream (x [rows, d], y [rows], logits
 * [rows, C] or NULL). Not collective; never allocates. Labels are stored as
 * given (not checked). With store_logits, logits must not be NULL: if it is,
 * the stored logits of the kept rows are NaN (a misuse that poisons the DER
 * loss instead of passing silently). */
void lt_replay_add(lt_replay *rb, const float *x, const int32_t *y, const float *logits,
                   int rows);

/* Draw a minibatch of global_rows rows over all ranks (each rank its share of
 * the rows, drawn uniformly with replacement from its local buffer; ranks with
 * an empty buffer take 0 rows and the share moves to others) into internal
 * storage slot (0 or 1: DER++ draws two), and describe it as a loss term of
 * the given kind (LT_TERM_CE: labels; LT_TERM_MSE_LOGITS: stored logits) and
 * weight. term->rows may be 0 on some ranks; when the whole buffer is empty
 * term->global_rows is 0 and the caller must leave the term out.
 *
 * Shares: with K ranks holding samples, the k-th of them in rank order takes
 * lt_local_batch(global_rows, k, K) rows (so a rank may get up to global_rows
 * rows: the trainer's max_batch must allow that). term->x/y/z point into the
 * slot, valid until the next draw into the same slot (the other slot is not
 * touched); term->mask is NULL; term->z is NULL without stored logits and
 * term->y is always set. Collective: one MPI_Allgather of the fill counts
 * (with each rank's allocation status, so a failed slot allocation on one rank
 * is an error on every rank). Errors: slot not 0/1, global_rows < 0, an
 * unknown kind, LT_TERM_MSE_LOGITS without stored logits (LT_ERR_ARG, before
 * any communication). */
LT_WUR lt_status lt_replay_sample(lt_replay *rb, int slot, int global_rows, lt_term_kind kind,
                                  double weight, lt_loss_term *term);

long lt_replay_local_count(const lt_replay *rb); /* samples held on this rank */
long lt_replay_seen(const lt_replay *rb);        /* samples offered on this rank */
long lt_replay_capacity(const lt_replay *rb);    /* M_r: the most this rank holds */
/* Global index (into this rank's stream) of local slot i, for tests; -1 when
 * slot i is not filled. */
long lt_replay_stream_index(const lt_replay *rb, long i);
/* Bytes allocated on this rank (buffer, slots, scratch). */
size_t lt_replay_bytes(const lt_replay *rb);

/* State for checkpoints: this rank's buffer and streams. Exact restart needs
 * the same rank count and M (capacity and shares depend on them); resharding
 * a buffer is not supported. */
typedef struct {
  long capacity;       /* M_r: rows the arrays have room for */
  long count;          /* rows filled: min(seen, capacity); only these are state */
  long seen;           /* samples offered on this rank */
  int d;               /* features per row */
  int C;               /* classes: labels in [0, C), logits columns */
  int store_logits;    /* logits is non-NULL */
  float *x;            /* [capacity, d] */
  int32_t *y;          /* [capacity] */
  float *logits;       /* [capacity, C] or NULL */
  int64_t *index;      /* [capacity] stream index (0-based, this rank) of each row */
  lt_rng reservoir;    /* stream (key, counter) of algorithm R */
  lt_rng sample;       /* stream (key, counter) of lt_replay_sample's draws */
} lt_replay_state;

/* Fill st with the sizes, scalars and streams, and pointers to the buffer's
 * own arrays (writable: a checkpoint reader may read rows into them in place). */
void lt_replay_get_state(lt_replay *rb, lt_replay_state *st);
/* Restore from st (as lt_replay_get_state describes it): capacity, d, C and
 * store_logits must equal this buffer's, count must be min(seen, capacity),
 * the first count stream indices must lie in [0, seen) (and be 0, 1, ... while
 * the buffer is not yet full) and labels in [0, C); LT_ERR_DATA otherwise,
 * naming the value. The first count rows of each array are copied unless st
 * points at this buffer's own arrays. On error nothing is changed. Not
 * collective; never allocates. */
LT_WUR lt_status lt_replay_set_state(lt_replay *rb, const lt_replay_state *st);

#endif
