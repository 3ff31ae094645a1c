/* Replay buffer: a sharded reservoir (Vitter's algorithm R per rank) and its
 * minibatch draws as loss terms. See replay.h. */
#include "replay.h"

#include <math.h>
#include <string.h>

#include "lethe/data.h"

/* One minibatch slot: rows of x, labels and (DER) logits. */
typedef struct {
  int cap;    /* rows allocated (0: not yet) */
  float *x;   /* [cap, d] */
  int32_t *y; /* [cap] */
  float *z;   /* [cap, C] or NULL */
} replay_slot;

struct lt_replay {
  lt_ctx *ctx;
  long M;            /* over all ranks */
  long cap;          /* M_r */
  int d, C, store_logits;
  long count, seen;
  float *x;          /* [cap, d] */
  int32_t *y;        /* [cap] */
  float *logits;     /* [cap, C] or NULL */
  int64_t *index;    /* [cap] stream index of each slot */
  lt_rng rng;        /* reservoir stream (seed, rank, LT_RNG_USER + 1) */
  lt_rng srng;       /* sampling stream (seed, rank, LT_RNG_USER + 2) */
  int64_t *fill;     /* [2 P] allgather scratch: (count, status) per rank */
  replay_slot slot[2];
};

lt_status lt_replay_create(lt_ctx *ctx, long M, int d, int C, int store_logits,
                           lt_replay **out) {
  *out = NULL;
  if (M < 0) LT_ERROR(ctx, LT_ERR_ARG, "replay buffer size M = %ld (allowed: >= 0)", M);
  if (d < 1) LT_ERROR(ctx, LT_ERR_ARG, "replay buffer: %d features per sample (allowed: >= 1)", d);
  if (C < 1) LT_ERROR(ctx, LT_ERR_ARG, "replay buffer: %d classes (allowed: >= 1)", C);
  const int P = ctx->size, me = ctx->rank;
  long cap = M / P + (me < M % P);
  lt_replay *rb = NULL;
  LT_CALLOC(ctx, rb, 1);
  rb->ctx = ctx;
  rb->M = M;
  rb->cap = cap;
  rb->d = d;
  rb->C = C;
  rb->store_logits = store_logits != 0;
  lt_rng_seed(&rb->rng, ctx->seed, (uint64_t)me, LT_RNG_USER + 1);
  lt_rng_seed(&rb->srng, ctx->seed, (uint64_t)me, LT_RNG_USER + 2);
  /* cap * d and cap * C may overflow size_t on absurd M: lt_calloc_aligned checks n * size,
   * the products of the row counts are checked here */
  int bad = (size_t)cap > SIZE_MAX / (size_t)d || (size_t)cap > SIZE_MAX / (size_t)C ||
            lt_calloc_aligned((void **)&rb->x, (size_t)cap * (size_t)d, sizeof(float)) ||
            lt_calloc_aligned((void **)&rb->y, (size_t)cap, sizeof(int32_t)) ||
            lt_calloc_aligned((void **)&rb->index, (size_t)cap, sizeof(int64_t)) ||
            lt_calloc_aligned((void **)&rb->fill, 2 * (size_t)P, sizeof(int64_t)) ||
            (rb->store_logits &&
             lt_calloc_aligned((void **)&rb->logits, (size_t)cap * (size_t)C, sizeof(float)));
  if (bad) {
    lt_replay_destroy(&rb);
    LT_ERROR(ctx, LT_ERR_MEM,
             "out of memory for a replay buffer of %ld rows x %d features%s on rank %d (M = %ld)",
             cap, d, store_logits ? " + logits" : "", me, M);
  }
  *out = rb;
  return LT_OK;
}

static void slot_free(replay_slot *s) {
  LT_FREE(s->x);
  LT_FREE(s->y);
  LT_FREE(s->z);
  s->cap = 0;
}

void lt_replay_destroy(lt_replay **prb) {
  if (!prb || !*prb) return;
  lt_replay *rb = *prb;
  lt_free(rb->x);
  lt_free(rb->y);
  lt_free(rb->logits);
  lt_free(rb->index);
  lt_free(rb->fill);
  slot_free(&rb->slot[0]);
  slot_free(&rb->slot[1]);
  lt_free(rb);
  *prb = NULL;
}

/* Copy row i of the offered arrays into buffer slot j. */
static void store_row(lt_replay *rb, long j, const float *x, const int32_t *y,
                      const float *logits, int i, long stream_index) {
  const size_t d = (size_t)rb->d, C = (size_t)rb->C;
  memcpy(rb->x + (size_t)j * d, x + (size_t)i * d, d * sizeof(float));
  rb->y[j] = y[i];
  rb->index[j] = stream_index;
  if (!rb->store_logits) return;
  float *dst = rb->logits + (size_t)j * C;
  if (logits)
    memcpy(dst, logits + (size_t)i * C, C * sizeof(float));
  else
    for (size_t c = 0; c < C; c++) dst[c] = NAN;
}

void lt_replay_add(lt_replay *rb, const float *x, const int32_t *y, const float *logits,
                   int rows) {
  for (int i = 0; i < rows; i++) {
    long k = rb->seen++;
    if (k < rb->cap) {
      store_row(rb, k, x, y, logits, i, k);
      rb->count = k + 1;
    } else if (rb->cap > 0) {
      uint64_t j = lt_rng_below(&rb->rng, (uint64_t)k + 1);
      if (j < (uint64_t)rb->cap) store_row(rb, (long)j, x, y, logits, i, k);
    }
  }
}

/* Make slot s hold at least rows rows; 0 on success. Contents are not kept. */
static int slot_reserve(lt_replay *rb, replay_slot *s, int rows) {
  if (rows <= s->cap) return 0;
  slot_free(s);
  if (lt_calloc_aligned((void **)&s->x, (size_t)rows * (size_t)rb->d, sizeof(float)) ||
      lt_calloc_aligned((void **)&s->y, (size_t)rows, sizeof(int32_t)) ||
      (rb->store_logits &&
       lt_calloc_aligned((void **)&s->z, (size_t)rows * (size_t)rb->C, sizeof(float)))) {
    slot_free(s);
    return 1;
  }
  s->cap = rows;
  return 0;
}

lt_status lt_replay_sample(lt_replay *rb, int slot, int global_rows, lt_term_kind kind,
                           double weight, lt_loss_term *term) {
  lt_ctx *ctx = rb->ctx;
  const int P = ctx->size, me = ctx->rank;
  if (slot < 0 || slot > 1)
    LT_ERROR(ctx, LT_ERR_ARG, "replay minibatch slot %d (allowed: 0 or 1)", slot);
  if (global_rows < 0)
    LT_ERROR(ctx, LT_ERR_ARG, "replay minibatch of %d rows (allowed: >= 0)", global_rows);
  if (kind != LT_TERM_CE && kind != LT_TERM_MSE_LOGITS)
    LT_ERROR(ctx, LT_ERR_ARG, "replay loss term kind %d (allowed: CE or MSE to logits)",
             (int)kind);
  if (kind == LT_TERM_MSE_LOGITS && !rb->store_logits)
    LT_ERROR(ctx, LT_ERR_ARG,
             "replay term on stored logits, but this buffer keeps no logits (DER/DER++ "
             "need store_logits)");
  replay_slot *s = &rb->slot[slot];
  int64_t mine[2] = {rb->count, slot_reserve(rb, s, global_rows)};
  LT_CHECK_MPI(ctx, MPI_Allgather(mine, 2, MPI_INT64_T, rb->fill, 2, MPI_INT64_T, ctx->comm));

  int K = 0, k_me = -1, failed = -1;
  for (int r = 0; r < P; r++) {
    if (rb->fill[2 * r + 1] && failed < 0) failed = r;
    if (rb->fill[2 * r] > 0) {
      if (r == me) k_me = K;
      K++;
    }
  }
  if (failed >= 0)
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory for a replay minibatch of %d rows on rank %d",
             global_rows, failed);
  int rows = k_me >= 0 ? lt_local_batch(global_rows, k_me, K) : 0;

  const size_t d = (size_t)rb->d, C = (size_t)rb->C;
  for (int i = 0; i < rows; i++) {
    size_t j = (size_t)lt_rng_below(&rb->srng, (uint64_t)rb->count);
    memcpy(s->x + (size_t)i * d, rb->x + j * d, d * sizeof(float));
    s->y[i] = rb->y[j];
    if (rb->store_logits) memcpy(s->z + (size_t)i * C, rb->logits + j * C, C * sizeof(float));
  }
  *term = (lt_loss_term){.kind = kind, .x = s->x, .rows = rows,
                         .global_rows = K > 0 ? global_rows : 0, .y = s->y, .mask = NULL,
                         .z = rb->store_logits ? s->z : NULL, .weight = weight};
  return LT_OK;
}

long lt_replay_local_count(const lt_replay *rb) { return rb->count; }
long lt_replay_seen(const lt_replay *rb) { return rb->seen; }
long lt_replay_capacity(const lt_replay *rb) { return rb->cap; }

long lt_replay_stream_index(const lt_replay *rb, long i) {
  return i >= 0 && i < rb->count ? (long)rb->index[i] : -1;
}

size_t lt_replay_bytes(const lt_replay *rb) {
  size_t row = (size_t)rb->d * sizeof(float) + sizeof(int32_t) +
               (rb->store_logits ? (size_t)rb->C * sizeof(float) : 0);
  size_t b = sizeof(*rb) + (size_t)rb->cap * (row + sizeof(int64_t)) +
             2 * (size_t)rb->ctx->size * sizeof(int64_t);
  for (int s = 0; s < 2; s++) b += (size_t)rb->slot[s].cap * row;
  return b;
}

void lt_replay_get_state(lt_replay *rb, lt_replay_state *st) {
  *st = (lt_replay_state){.capacity = rb->cap, .count = rb->count, .seen = rb->seen,
                          .d = rb->d, .C = rb->C, .store_logits = rb->store_logits,
                          .x = rb->x, .y = rb->y, .logits = rb->logits, .index = rb->index,
                          .reservoir = rb->rng, .sample = rb->srng};
}

/* Copy n elements of size sz from src to dst unless they are the same array. */
static void copy_unless_same(void *dst, const void *src, size_t n, size_t sz) {
  if (dst != src && n > 0) memcpy(dst, src, n * sz);
}

lt_status lt_replay_set_state(lt_replay *rb, const lt_replay_state *st) {
  lt_ctx *ctx = rb->ctx;
  if (st->capacity != rb->cap || st->d != rb->d || st->C != rb->C ||
      (st->store_logits != 0) != rb->store_logits)
    LT_ERROR(ctx, LT_ERR_DATA,
             "replay state of rank %d: capacity %ld, %d features, %d classes, logits %s; this "
             "buffer has %ld, %d, %d, %s (restore needs the same M and rank count)",
             ctx->rank, st->capacity, st->d, st->C, st->store_logits ? "yes" : "no", rb->cap,
             rb->d, rb->C, rb->store_logits ? "yes" : "no");
  long want = st->seen < rb->cap ? st->seen : rb->cap;
  if (st->seen < 0 || st->count != want)
    LT_ERROR(ctx, LT_ERR_DATA,
             "replay state of rank %d: %ld rows held after %ld samples seen (allowed: "
             "min(seen, capacity %ld))", ctx->rank, st->count, st->seen, rb->cap);
  if (st->count > 0 && (!st->x || !st->y || !st->index || (rb->store_logits && !st->logits)))
    LT_ERROR(ctx, LT_ERR_ARG, "replay state of rank %d: missing array", ctx->rank);
  for (long i = 0; i < st->count; i++) {
    int64_t k = st->index[i];
    if (k < 0 || k >= st->seen || (st->seen <= rb->cap && k != i))
      LT_ERROR(ctx, LT_ERR_DATA,
               "replay state of rank %d: row %ld holds stream index %lld (allowed: %s)",
               ctx->rank, i, (long long)k, st->seen <= rb->cap ? "its row number" : "[0, seen)");
    if (st->y[i] < 0 || st->y[i] >= rb->C)
      LT_ERROR(ctx, LT_ERR_DATA,
               "replay state of rank %d: row %ld has label %d (allowed: [0, %d))", ctx->rank,
               i, (int)st->y[i], rb->C);
  }
  size_t n = (size_t)st->count;
  copy_unless_same(rb->x, st->x, n * (size_t)rb->d, sizeof(float));
  copy_unless_same(rb->y, st->y, n, sizeof(int32_t));
  copy_unless_same(rb->index, st->index, n, sizeof(int64_t));
  if (rb->store_logits) copy_unless_same(rb->logits, st->logits, n * (size_t)rb->C, sizeof(float));
  rb->count = st->count;
  rb->seen = st->seen;
  rb->rng = st->reservoir;
  rb->srng = st->sample;
  return LT_OK;
}
