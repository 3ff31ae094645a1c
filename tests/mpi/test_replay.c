/* Sharded replay buffer at 1-4 ranks: reservoir inclusion frequencies (chi-square
 * against M_r / n_r on every rank), the exact slot contents against algorithm R
 * written out here from its definition, and the minibatch draws (shares over
 * the non-empty ranks, copies of stored rows, uniform slot frequencies).
 *
 * Samples are identified by their content: global sample g has x = (4g, 4g+1,
 * 4g+2), label (g / 5) % C and logits (-g, -g - 1/4, ...), all exact in float for
 * g < 2^20, so a row drawn from the buffer tells which sample it is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cl/replay.h"
#include "testutil.h"

enum { D = 3, C = 4 };

static void encode(float *x, int32_t *y, float *z, long g) {
  for (int c = 0; c < D; c++) x[c] = (float)(4 * g + c);
  *y = (int32_t)((g / 5) % C); /* not g % C: at P = 4 that is constant on a rank */
  for (int c = 0; c < C; c++) z[c] = -(float)g - 0.25f * (float)c;
}

static long decode(const float *x) { return (long)(x[0] / 4.0f); }

/* Upper 1e-3 quantile of chi-square with df degrees of freedom, Wilson-Hilferty:
 * df (1 - 2/(9df) + z sqrt(2/(9df)))^3 with z = 3.0902 (normal 1 - 1e-3). Its
 * relative error is below 0.5% at df >= 11 (df 11: 31.40 vs the table's 31.26;
 * df 49: 85.43 vs 85.35), and it errs high there, so a correct implementation
 * fails with probability at most about 1e-3 per statistic (and the seeds are
 * fixed: a pass is stable). */
static double chi2_crit(double df) {
  double a = 2.0 / (9.0 * df);
  double t = 1.0 - a + 3.0902 * sqrt(a);
  return df * t * t * t;
}

/* Offer this rank's stream: its strided shard g = rank + P i of n global samples,
 * i = 0 .. n_r - 1 (so stream index i is global sample rank + P i), in chunks of
 * 1, 7, 64, 13 rows (batches straddle the point where the buffer fills). After
 * each chunk: count = min(seen, M_r), and every filled slot holds exactly the
 * rows of the sample whose stream index it records. Returns the failures. */
static int offer_stream(lt_ctx *ctx, lt_replay *rb, long n) {
  static const int chunks[4] = {1, 7, 64, 13};
  enum { MAXCHUNK = 64 };
  float x[MAXCHUNK * D], z[MAXCHUNK * C];
  int32_t y[MAXCHUNK];
  long nr = (n - ctx->rank + ctx->size - 1) / ctx->size, cap = lt_replay_capacity(rb);
  int bad = 0;
  lt_replay_state st;
  lt_replay_get_state(rb, &st);
  for (long i = 0, c = 0; i < nr; c++) {
    int rows = chunks[c % 4];
    if (rows > nr - i) rows = (int)(nr - i);
    for (int k = 0; k < rows; k++)
      encode(x + k * D, y + k, z + k * C, ctx->rank + (long)ctx->size * (i + k));
    lt_replay_add(rb, x, y, z, rows);
    i += rows;
    long cnt = lt_replay_local_count(rb);
    bad += lt_replay_seen(rb) != i || cnt != (i < cap ? i : cap);
    for (long s = 0; s < cnt; s++) {
      long k = lt_replay_stream_index(rb, s);
      bad += k < 0 || k >= i || (i <= cap && k != s); /* filled in order while not full */
      float ex[D], ez[C];
      int32_t ey;
      encode(ex, &ey, ez, ctx->rank + (long)ctx->size * k);
      bad += memcmp(st.x + s * D, ex, sizeof(ex)) != 0 || st.y[s] != ey ||
             memcmp(st.logits + s * C, ez, sizeof(ez)) != 0;
    }
  }
  return bad;
}

/* Algorithm R from its definition (replay.h), on the reservoir stream. */
static void reference_slots(uint64_t seed, int rank, long cap, long nr, long *slot) {
  lt_rng r;
  lt_rng_seed(&r, seed, (uint64_t)rank, LT_RNG_USER + 1);
  for (long k = 0; k < nr; k++) {
    if (k < cap) {
      slot[k] = k;
    } else if (cap > 0) {
      uint64_t j = lt_rng_below(&r, (uint64_t)k + 1);
      if (j < (uint64_t)cap) slot[j] = k;
    }
  }
}

/* Counts kept[k] of how often stream index k was kept over T trials, each with
 * kept set a uniform M-subset of n: Var kept[k] = T p (1-p) with p = M/n and
 * Cov = -T p (1-p) / (n-1), i.e. covariance T p (1-p) n/(n-1) times the
 * projection orthogonal to (1, ..., 1) (the total T M is fixed). So
 *   X = (n-1)/n * sum_k (kept[k] - T p)^2 / (T p (1-p))
 * is chi-square with n - 1 degrees of freedom (normal limit: T p >= 50 here). */
static double reservoir_chi2(const long *kept, long n, long M, long T) {
  double p = (double)M / (double)n, e = (double)T * p, v = e * (1.0 - p), s = 0.0;
  for (long k = 0; k < n; k++) s += ((double)kept[k] - e) * ((double)kept[k] - e) / v;
  return s * (double)(n - 1) / (double)n;
}

/* n = 2000 samples over the ranks through M = 50, T = 2000 trials with seeds
 * 7000 + t: each rank checks its own stream (n_r = n/P, M_r = M/P (+1)). Each
 * index is expected T M_r / n_r >= 2000 * 12/500 = 48 times. The statistic
 * rejects when about 1/4 of the indices are off by 10% (sum of (4.8)^2/48 over
 * 500 = 240 above the mean at P = 4) or worse, and the deliberately wrong
 * reservoir below (accepting with probability 1.2 M/(k+1)) by far. */
static void test_reservoir_frequencies(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  enum { N = 2000, M = 50, T = 2000 };
  const int P = ctx->size, me = ctx->rank;
  long nr = (N - me + P - 1) / P, cap = M / P + (me < M % P);
  long *kept = calloc((size_t)nr, sizeof(long)), *fake = calloc((size_t)nr, sizeof(long));
  long *ref = calloc((size_t)cap, sizeof(long)), *mark = calloc((size_t)nr, sizeof(long));
  assert_true(kept && fake && ref && mark);
  uint64_t seed0 = ctx->seed;
  int bad = 0, mism = 0;
  for (long t = 0; t < T; t++) {
    ctx->seed = 7000 + (uint64_t)t;
    lt_replay *rb = NULL;
    assert_int_equal(lt_replay_create(ctx, M, D, C, 1, &rb), LT_OK);
    assert_int_equal(lt_replay_capacity(rb), cap);
    bad += offer_stream(ctx, rb, N);
    reference_slots(ctx->seed, me, cap, nr, ref);
    /* exactly the slots of algorithm R on this stream, and no index twice */
    for (long s = 0; s < cap; s++) {
      long k = lt_replay_stream_index(rb, s);
      mism += k != ref[s];
      if (k >= 0 && k < nr) {
        bad += mark[k] == t + 1;
        mark[k] = t + 1;
        kept[k]++;
      }
    }
    lt_replay_destroy(&rb);
    assert_null(rb);

    /* a wrong reservoir for the power check: accepts with 1.2 M/(k+1) */
    lt_rng r;
    lt_rng_seed(&r, ctx->seed, (uint64_t)me, LT_RNG_USER + 3);
    for (long k = 0; k < nr; k++) {
      if (k < cap) ref[k] = k;
      else if (lt_rng_uniform(&r) < 1.2 * (double)cap / (double)(k + 1))
        ref[lt_rng_below(&r, (uint64_t)cap)] = k;
    }
    for (long s = 0; s < cap; s++) fake[ref[s]]++;
  }
  ctx->seed = seed0;
  assert_int_equal(bad, 0);
  assert_int_equal(mism, 0);
  double crit = chi2_crit((double)(nr - 1));
  double x = reservoir_chi2(kept, nr, cap, T), xf = reservoir_chi2(fake, nr, cap, T);
  fprintf(stderr, "[rank %d] reservoir: n_r %ld, M_r %ld, chi2 %.1f (df %ld, 1e-3 crit %.1f); "
          "biased reservoir %.1f\n", me, nr, cap, x, nr - 1, crit, xf);
  assert_true(x < crit);
  assert_true(xf > crit);
  /* the shards add up to M */
  long tot = 0;
  MPI_Allreduce(&cap, &tot, 1, MPI_LONG, MPI_SUM, ctx->comm);
  assert_int_equal(tot, M);
  free(kept);
  free(fake);
  free(ref);
  free(mark);
  lt_ctx_destroy(&ctx);
}

/* Rows this rank should take: the k-th of the K ranks with samples (rank order)
 * takes B/K, one more for k < B mod K; counts from the test's own allgather. */
static int expected_rows(lt_ctx *ctx, long count, int B, long *K_out) {
  long *all = calloc((size_t)ctx->size, sizeof(long));
  MPI_Allgather(&count, 1, MPI_LONG, all, 1, MPI_LONG, ctx->comm);
  long K = 0, k_me = -1;
  for (int r = 0; r < ctx->size; r++)
    if (all[r] > 0) {
      if (r == ctx->rank) k_me = K;
      K++;
    }
  free(all);
  *K_out = K;
  if (k_me < 0) return 0;
  return (int)(B / K + (k_me < B % K));
}

#define EXPECT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "[rank %d] %s:%d: %s\n", ctx->rank, __FILE__, __LINE__, #cond); \
      bad++;                                                                   \
    }                                                                          \
  } while (0)

/* Draw into slot with kind and check the term: shares, sums, and every row a
 * copy of the stored row of the sample it encodes (not a pointer into the
 * buffer). Collective; returns local failures. */
static int check_draw(lt_ctx *ctx, lt_replay *rb, int slot, int B, lt_term_kind kind) {
  int bad = 0;
  lt_loss_term tm;
  memset(&tm, 0xff, sizeof(tm));
  EXPECT(lt_replay_sample(rb, slot, B, kind, 0.375, &tm) == LT_OK);
  long K = 0;
  int want = expected_rows(ctx, lt_replay_local_count(rb), B, &K);
  EXPECT(tm.rows == want);
  EXPECT(tm.global_rows == (K > 0 ? B : 0));
  EXPECT(tm.kind == kind && tm.weight == 0.375 && tm.mask == NULL);
  long sum = tm.rows;
  MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_LONG, MPI_SUM, ctx->comm);
  EXPECT(sum == tm.global_rows);
  lt_replay_state st;
  lt_replay_get_state(rb, &st);
  if (tm.rows > 0) { /* arrays of a slot, not of the buffer */
    EXPECT(tm.x != NULL && tm.y != NULL && tm.z != NULL);
    EXPECT(tm.x + (size_t)tm.rows * D <= st.x || tm.x >= st.x + (size_t)st.capacity * D);
  }
  long cnt = lt_replay_local_count(rb);
  for (int i = 0; i < tm.rows && bad == 0; i++) {
    long g = decode(tm.x + i * D), s = 0;
    while (s < cnt && decode(st.x + s * D) != g) s++;
    EXPECT(s < cnt); /* drawn from this rank's buffer */
    if (s == cnt) break;
    EXPECT(memcmp(tm.x + i * D, st.x + s * D, D * sizeof(float)) == 0);
    EXPECT(tm.y[i] == st.y[s]);
    EXPECT(memcmp(tm.z + i * C, st.logits + s * C, C * sizeof(float)) == 0);
  }
  return bad;
}

/* Offer `count` samples of this rank's stream (global ids rank + P i). */
static void offer(lt_ctx *ctx, lt_replay *rb, long count) {
  float x[D], z[C];
  int32_t y;
  for (long i = 0; i < count; i++) {
    encode(x, &y, z, ctx->rank + (long)ctx->size * (lt_replay_seen(rb)));
    lt_replay_add(rb, x, &y, z, 1);
  }
}

/* Shares and copies in several fill patterns: all empty, only even ranks with
 * samples, partly filled buffers (rank r holds r + 1 rows), M < P (the last
 * rank's capacity is 0), and a full buffer after replacements. */
static void test_sample_shares(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  const int P = ctx->size, me = ctx->rank;
  static const int Bs[] = {0, 1, 5, 7, 64};
  int bad = 0;
  for (int pattern = 0; pattern < 5; pattern++) {
    long M = pattern == 3 ? (P > 1 ? P - 1 : 1) : 50;
    lt_replay *rb = NULL;
    EXPECT(lt_replay_create(ctx, M, D, C, 1, &rb) == LT_OK);
    if (!rb) break;
    long n = 0;
    if (pattern == 1) n = me % 2 == 0 ? 3 : 0;
    if (pattern == 2) n = me + 1;
    if (pattern == 3) n = 10;
    if (pattern == 4) n = 400;
    offer(ctx, rb, n);
    for (size_t b = 0; b < sizeof(Bs) / sizeof(Bs[0]); b++) {
      bad += check_draw(ctx, rb, (int)(b % 2), Bs[b], LT_TERM_MSE_LOGITS);
      bad += check_draw(ctx, rb, (int)(b % 2), Bs[b], LT_TERM_CE);
    }
    if (pattern == 0) { /* nothing anywhere: the term must be left out */
      lt_loss_term tm;
      EXPECT(lt_replay_sample(rb, 0, 32, LT_TERM_CE, 1.0, &tm) == LT_OK);
      EXPECT(tm.global_rows == 0 && tm.rows == 0);
    }
    if (pattern == 3 && me == P - 1 && P > 1) EXPECT(lt_replay_capacity(rb) == 0);
    /* two slots are independent: drawing slot 1 leaves slot 0's rows as they were */
    lt_loss_term t0, t1;
    EXPECT(lt_replay_sample(rb, 0, 9, LT_TERM_CE, 1.0, &t0) == LT_OK);
    float keep[9 * D];
    memcpy(keep, t0.x, (size_t)t0.rows * D * sizeof(float));
    EXPECT(lt_replay_sample(rb, 1, 9, LT_TERM_CE, 1.0, &t1) == LT_OK);
    EXPECT(t0.x != t1.x && t0.y != t1.y);
    EXPECT(memcmp(keep, t0.x, (size_t)t0.rows * D * sizeof(float)) == 0);
    lt_replay_destroy(&rb);
  }
  int any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, ctx->comm);
  assert_int_equal(any, 0);
  lt_ctx_destroy(&ctx);
}

/* Pearson statistic of counts over K equally likely cells. */
static double uniform_chi2(const long *cnt, long K) {
  double tot = 0.0, s = 0.0;
  for (long k = 0; k < K; k++) tot += (double)cnt[k];
  double e = tot / (double)K;
  for (long k = 0; k < K; k++) s += ((double)cnt[k] - e) * ((double)cnt[k] - e) / e;
  return s;
}

/* Draw frequencies over a rank's slots: 2000 draws of 16 P rows (16 per rank,
 * all ranks full after 3 M_r + 5 offers), i.e. 32000 rows per rank over M_r
 * slots (E >= 2400 per slot). Pearson chi-square with M_r - 1 degrees of
 * freedom (e.g. 49 at P = 1: crit 85.4, 11 or 12 at P = 4). An index that is
 * never drawn alone contributes E = 2400; the power check below feeds the
 * statistic a sampler that misses the last slot (the below(count - 1) bug). */
static void test_sample_uniform(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  enum { M = 50, DRAWS = 2000, PER = 16 };
  const int P = ctx->size;
  int bad = 0;
  lt_replay *rb = NULL;
  assert_int_equal(lt_replay_create(ctx, M, D, C, 0, &rb), LT_OK);
  long cap = lt_replay_capacity(rb);
  offer(ctx, rb, 3 * cap + 5);
  long seen = lt_replay_seen(rb);
  long *slot_of = malloc((size_t)seen * sizeof(long)), *cnt = calloc((size_t)cap, sizeof(long));
  long *fake = calloc((size_t)cap, sizeof(long));
  assert_true(slot_of && cnt && fake);
  for (long k = 0; k < seen; k++) slot_of[k] = -1;
  for (long s = 0; s < cap; s++) slot_of[lt_replay_stream_index(rb, s)] = s;
  lt_rng r;
  lt_rng_seed(&r, 3, (uint64_t)ctx->rank, LT_RNG_USER + 3);
  for (int t = 0; t < DRAWS; t++) {
    lt_loss_term tm;
    EXPECT(lt_replay_sample(rb, t % 2, PER * P, LT_TERM_CE, 1.0, &tm) == LT_OK);
    EXPECT(tm.rows == PER && tm.z == NULL);
    for (int i = 0; i < tm.rows; i++) {
      long g = decode(tm.x + i * D);
      long k = (g - ctx->rank) / P; /* stream index */
      long s = k >= 0 && k < seen ? slot_of[k] : -1;
      EXPECT(s >= 0);
      if (s >= 0) cnt[s]++;
      fake[lt_rng_below(&r, (uint64_t)cap - 1)]++;
    }
  }
  double crit = chi2_crit((double)(cap - 1)), x = uniform_chi2(cnt, cap);
  double xf = uniform_chi2(fake, cap);
  fprintf(stderr, "[rank %d] draws: M_r %ld, chi2 %.1f (df %ld, 1e-3 crit %.1f); "
          "sampler missing a slot %.1f\n", ctx->rank, cap, x, cap - 1, crit, xf);
  EXPECT(x < crit);
  EXPECT(xf > crit);
  lt_replay_destroy(&rb);
  free(slot_of);
  free(cnt);
  free(fake);
  int any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, ctx->comm);
  assert_int_equal(any, 0);
  lt_ctx_destroy(&ctx);
}

/* Argument errors come before any communication, identically on every rank. */
static void test_sample_errors(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_replay *rb = NULL;
  assert_int_equal(lt_replay_create(ctx, 8, D, C, 0, &rb), LT_OK);
  lt_loss_term tm;
  assert_int_equal(lt_replay_sample(rb, 2, 4, LT_TERM_CE, 1.0, &tm), LT_ERR_ARG);
  assert_non_null(strstr(ctx->errmsg, "slot 2"));
  lt_error_clear(ctx);
  assert_int_equal(lt_replay_sample(rb, 0, -1, LT_TERM_CE, 1.0, &tm), LT_ERR_ARG);
  lt_error_clear(ctx);
  assert_int_equal(lt_replay_sample(rb, 0, 4, LT_TERM_MSE_LOGITS, 1.0, &tm), LT_ERR_ARG);
  assert_non_null(strstr(ctx->errmsg, "logits"));
  lt_error_clear(ctx);
  /* still usable, and the collective sequence is intact */
  assert_int_equal(lt_replay_sample(rb, 0, 4, LT_TERM_CE, 1.0, &tm), LT_OK);
  assert_int_equal(tm.global_rows, 0);
  lt_replay_destroy(&rb);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reservoir_frequencies),
    cmocka_unit_test(test_sample_shares),
    cmocka_unit_test(test_sample_uniform),
    cmocka_unit_test(test_sample_errors),
};

LT_TEST_MPI_MAIN("replay", tests)
