/* Replay buffer, one rank: the reservoir's kept set is a uniform M-subset of the
 * stream (the full joint law, not only the marginals), the checkpoint state
 * round trip continues bit for bit, the slots' memory life cycle, and errors.
 * Serial, so leak-checked under ASan. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cl/replay.h"
#include "testutil.h"

enum { D = 2, C = 3 };

/* Sample g: x = (g, g + 0.5), label g % C, logits (-g, -g - 1, -g - 2). */
static void encode(float *x, int32_t *y, float *z, long g) {
  x[0] = (float)g;
  x[1] = (float)g + 0.5f;
  *y = (int32_t)(g % C);
  for (int c = 0; c < C; c++) z[c] = -(float)g - (float)c;
}

static void offer(lt_replay *rb, long from, long count) {
  float x[D], z[C];
  int32_t y;
  for (long g = from; g < from + count; g++) {
    encode(x, &y, z, g);
    lt_replay_add(rb, x, &y, z, 1);
  }
}

/* Cell of the 2-subset {a < b} of {0..5}: 15 cells. */
static int pair_cell(long a, long b) {
  if (a > b) { long t = a; a = b; b = t; }
  int cell = 0;
  for (long i = 0; i < a; i++) cell += 5 - (int)i;
  return cell + (int)(b - a - 1);
}

static double pearson(const long *cnt, int K, double e) {
  double s = 0.0;
  for (int k = 0; k < K; k++) s += ((double)cnt[k] - e) * ((double)cnt[k] - e) / e;
  return s;
}

/* n = 6 samples (offered as 4 rows then 2) through M = 2, T = 150000 trials with
 * seeds 1 .. T: algorithm R keeps each of the 15 pairs with probability 1/15
 * (E = 10000). Pearson chi-square, 14 degrees of freedom: upper 1e-3 point
 * 36.12 (table). At this small n the classic off-by-one j = below(k) instead of
 * below(k + 1) keeps samples 0 and 1 with probability 1/5 instead of 1/3, which
 * the same statistic rejects by thousands; it is fed to it below as the power
 * check (with the wrong reservoir written out here). */
static void test_kept_set_uniform(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  assert_int_equal(ctx->size, 1);
  enum { N = 6, M = 2, T = 150000, CELLS = 15 };
  long cnt[CELLS] = {0}, bug[CELLS] = {0};
  float x[N * D], z[N * C];
  int32_t y[N];
  for (int g = 0; g < N; g++) encode(x + g * D, y + g, z + g * C, g);
  for (long t = 1; t <= T; t++) {
    ctx->seed = (uint64_t)t;
    lt_replay *rb = NULL;
    assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &rb), LT_OK);
    lt_replay_add(rb, x, y, z, 4);
    lt_replay_add(rb, x + 4 * D, y + 4, z + 4 * C, 2);
    assert_int_equal(lt_replay_local_count(rb), M);
    long a = lt_replay_stream_index(rb, 0), b = lt_replay_stream_index(rb, 1);
    assert_true(a >= 0 && a < N && b >= 0 && b < N && a != b);
    cnt[pair_cell(a, b)]++;
    lt_replay_destroy(&rb);

    lt_rng r; /* the off-by-one reservoir */
    lt_rng_seed(&r, (uint64_t)t, 0, LT_RNG_USER + 1);
    long slot[M] = {0, 1};
    for (long k = M; k < N; k++) {
      uint64_t j = lt_rng_below(&r, (uint64_t)k);
      if (j < M) slot[j] = k;
    }
    bug[pair_cell(slot[0], slot[1])]++;
  }
  double e = (double)T / CELLS, x2 = pearson(cnt, CELLS, e), xb = pearson(bug, CELLS, e);
  fprintf(stderr, "kept pairs: chi2 %.1f (df 14, 1e-3 crit 36.12); off-by-one reservoir %.1f\n",
          x2, xb);
  assert_true(x2 < 36.12);
  assert_true(xb > 36.12);
  lt_ctx_destroy(&ctx);
}

/* A buffer restored from another's state (into separate arrays, as a checkpoint
 * reader would hold them, and in place through lt_replay_get_state's pointers)
 * then continues exactly like the original: same kept rows after more offers,
 * same minibatch draws. The copy is created under another seed, so without the
 * restored streams its draws would differ. */
static void test_state_roundtrip(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  enum { M = 20 };
  lt_replay *a = NULL, *b = NULL, *c = NULL;
  ctx->seed = 11;
  assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &a), LT_OK);
  offer(a, 0, 70);
  lt_loss_term ta, tb, tc;
  assert_int_equal(lt_replay_sample(a, 0, 5, LT_TERM_CE, 1.0, &ta), LT_OK); /* moves the stream */
  ctx->seed = 99;
  assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &b), LT_OK);
  assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &c), LT_OK);

  lt_replay_state sa, sc;
  lt_replay_get_state(a, &sa);
  assert_int_equal(sa.capacity, M);
  assert_int_equal(sa.count, M);
  assert_int_equal(sa.seen, 70);
  /* separate arrays */
  lt_replay_state sb = sa;
  sb.x = malloc(M * D * sizeof(float));
  sb.y = malloc(M * sizeof(int32_t));
  sb.logits = malloc(M * C * sizeof(float));
  sb.index = malloc(M * sizeof(int64_t));
  memcpy(sb.x, sa.x, M * D * sizeof(float));
  memcpy(sb.y, sa.y, M * sizeof(int32_t));
  memcpy(sb.logits, sa.logits, M * C * sizeof(float));
  memcpy(sb.index, sa.index, M * sizeof(int64_t));
  assert_int_equal(lt_replay_set_state(b, &sb), LT_OK);
  /* in place */
  lt_replay_get_state(c, &sc);
  memcpy(sc.x, sa.x, M * D * sizeof(float));
  memcpy(sc.y, sa.y, M * sizeof(int32_t));
  memcpy(sc.logits, sa.logits, M * C * sizeof(float));
  memcpy(sc.index, sa.index, M * sizeof(int64_t));
  sc.count = sa.count;
  sc.seen = sa.seen;
  sc.reservoir = sa.reservoir;
  sc.sample = sa.sample;
  assert_int_equal(lt_replay_set_state(c, &sc), LT_OK);

  offer(a, 70, 300);
  offer(b, 70, 300);
  offer(c, 70, 300);
  for (long s = 0; s < M; s++) {
    assert_int_equal(lt_replay_stream_index(b, s), lt_replay_stream_index(a, s));
    assert_int_equal(lt_replay_stream_index(c, s), lt_replay_stream_index(a, s));
  }
  assert_int_equal(lt_replay_sample(a, 1, 17, LT_TERM_MSE_LOGITS, 0.5, &ta), LT_OK);
  assert_int_equal(lt_replay_sample(b, 1, 17, LT_TERM_MSE_LOGITS, 0.5, &tb), LT_OK);
  assert_int_equal(lt_replay_sample(c, 1, 17, LT_TERM_MSE_LOGITS, 0.5, &tc), LT_OK);
  assert_int_equal(ta.rows, 17);
  assert_memory_equal(ta.x, tb.x, 17 * D * sizeof(float));
  assert_memory_equal(ta.z, tb.z, 17 * C * sizeof(float));
  assert_memory_equal(ta.y, tb.y, 17 * sizeof(int32_t));
  assert_memory_equal(ta.x, tc.x, 17 * D * sizeof(float));

  /* a fresh buffer under seed 99 draws differently (the streams mattered) */
  lt_replay *e = NULL;
  assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &e), LT_OK);
  offer(e, 0, 370);
  int same = 1;
  for (long s = 0; s < M; s++) same &= lt_replay_stream_index(e, s) == lt_replay_stream_index(a, s);
  assert_false(same);
  lt_replay_destroy(&e);

  /* rejected states leave the buffer as it was */
  lt_replay_state bad = sb;
  long seen_b = lt_replay_seen(b);
  bad.count = M - 1;
  assert_int_equal(lt_replay_set_state(b, &bad), LT_ERR_DATA);
  assert_non_null(strstr(ctx->errmsg, "19 rows held after 70"));
  lt_error_clear(ctx);
  bad = sb;
  sb.index[3] = 70; /* seen is 70 in sb */
  assert_int_equal(lt_replay_set_state(b, &sb), LT_ERR_DATA);
  assert_non_null(strstr(ctx->errmsg, "stream index 70"));
  lt_error_clear(ctx);
  sb.index[3] = 3;
  sb.y[5] = C;
  assert_int_equal(lt_replay_set_state(b, &sb), LT_ERR_DATA);
  assert_non_null(strstr(ctx->errmsg, "label 3"));
  lt_error_clear(ctx);
  sb.y[5] = 0;
  bad.seen = 10;
  bad.count = 10; /* not full: rows must hold 0, 1, ... in order */
  sb.index[0] = 1;
  bad.index = sb.index;
  assert_int_equal(lt_replay_set_state(b, &bad), LT_ERR_DATA);
  lt_error_clear(ctx);
  assert_int_equal(lt_replay_seen(b), seen_b);
  lt_replay *other = NULL;
  assert_int_equal(lt_replay_create(ctx, M + 1, D, C, 1, &other), LT_OK);
  assert_int_equal(lt_replay_set_state(other, &sa), LT_ERR_DATA);
  assert_non_null(strstr(ctx->errmsg, "capacity"));
  lt_error_clear(ctx);
  lt_replay_destroy(&other);

  free(sb.x);
  free(sb.y);
  free(sb.logits);
  free(sb.index);
  lt_replay_destroy(&a);
  lt_replay_destroy(&b);
  lt_replay_destroy(&c);
  lt_ctx_destroy(&ctx);
}

/* Slots are allocated by the first draw of a size and reused for draws of that
 * size or less (same pointers, same byte count); a larger draw grows only its
 * slot. Bytes against the row sizes counted here. */
static void test_slots_and_bytes(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_replay *rb = NULL;
  assert_int_equal(lt_replay_create(ctx, 30, D, C, 1, &rb), LT_OK);
  offer(rb, 0, 40);
  const size_t row = D * sizeof(float) + sizeof(int32_t) + C * sizeof(float);
  size_t b0 = lt_replay_bytes(rb);
  assert_true(b0 >= 30 * (row + sizeof(int64_t)));
  lt_loss_term t1, t2;
  assert_int_equal(lt_replay_sample(rb, 0, 8, LT_TERM_CE, 1.0, &t1), LT_OK);
  assert_int_equal(lt_replay_bytes(rb), b0 + 8 * row);
  assert_int_equal(lt_replay_sample(rb, 0, 8, LT_TERM_CE, 1.0, &t2), LT_OK);
  assert_ptr_equal(t1.x, t2.x);
  assert_ptr_equal(t1.z, t2.z);
  assert_int_equal(lt_replay_sample(rb, 0, 3, LT_TERM_CE, 1.0, &t2), LT_OK);
  assert_ptr_equal(t1.x, t2.x);
  assert_int_equal(t2.rows, 3);
  assert_int_equal(lt_replay_bytes(rb), b0 + 8 * row);
  assert_int_equal(lt_replay_sample(rb, 1, 12, LT_TERM_CE, 1.0, &t2), LT_OK);
  assert_int_equal(lt_replay_bytes(rb), b0 + 20 * row);
  assert_int_equal(lt_replay_sample(rb, 0, 16, LT_TERM_CE, 1.0, &t1), LT_OK);
  assert_int_equal(lt_replay_bytes(rb), b0 + 28 * row);
  assert_int_equal(t1.rows, 16);
  lt_replay_destroy(&rb);
  lt_replay_destroy(&rb); /* NULL is fine */
  lt_replay_destroy(NULL);
  lt_ctx_destroy(&ctx);
}

/* M = 0 keeps nothing; missing logits with store_logits are NaN; argument errors. */
static void test_edges_and_errors(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_replay *rb = NULL;
  assert_int_equal(lt_replay_create(ctx, 0, D, C, 0, &rb), LT_OK);
  offer(rb, 0, 10);
  assert_int_equal(lt_replay_local_count(rb), 0);
  assert_int_equal(lt_replay_seen(rb), 10);
  assert_int_equal(lt_replay_stream_index(rb, 0), -1);
  lt_loss_term tm;
  assert_int_equal(lt_replay_sample(rb, 0, 4, LT_TERM_CE, 1.0, &tm), LT_OK);
  assert_int_equal(tm.global_rows, 0);
  assert_int_equal(tm.rows, 0);
  lt_replay_destroy(&rb);

  assert_int_equal(lt_replay_create(ctx, 4, D, C, 1, &rb), LT_OK);
  float x[D] = {1, 2};
  int32_t y = 1;
  lt_replay_add(rb, x, &y, NULL, 1);
  assert_int_equal(lt_replay_sample(rb, 0, 2, LT_TERM_MSE_LOGITS, 1.0, &tm), LT_OK);
  assert_int_equal(tm.rows, 2);
  for (int i = 0; i < 2 * C; i++) assert_true(isnan(tm.z[i]));
  assert_int_equal(lt_replay_stream_index(rb, 1), -1);
  lt_replay_destroy(&rb);

  assert_int_equal(lt_replay_create(ctx, -1, D, C, 0, &rb), LT_ERR_ARG);
  assert_non_null(strstr(ctx->errmsg, "M = -1"));
  lt_error_clear(ctx);
  assert_null(rb);
  assert_int_equal(lt_replay_create(ctx, 5, 0, C, 0, &rb), LT_ERR_ARG);
  lt_error_clear(ctx);
  assert_int_equal(lt_replay_create(ctx, 5, D, 0, 0, &rb), LT_ERR_ARG);
  lt_error_clear(ctx);
  assert_int_equal(lt_replay_create(ctx, 1L << 62, 1 << 20, C, 0, &rb), LT_ERR_MEM);
  lt_error_clear(ctx);
  assert_null(rb);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kept_set_uniform),
    cmocka_unit_test(test_state_roundtrip),
    cmocka_unit_test(test_slots_and_bytes),
    cmocka_unit_test(test_edges_and_errors),
};

LT_TEST_MPI_MAIN("replay_stats", tests)
