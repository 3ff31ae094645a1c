/* Core: RNG statistics and stream independence, error propagation, timers. */
#include <math.h>
#include <string.h>

#include "testutil.h"

static void test_rng_uniform_moments(void **state) {
  (void)state;
  lt_rng r;
  lt_rng_seed(&r, 42, 0, LT_RNG_USER);
  /* mean and variance of U(0,1): 1/2 and 1/12; with n = 1e6 the standard
   * errors are 2.9e-4 and 8.3e-5, so 6-sigma bounds of 2e-3 and 6e-4 */
  const int n = 1000000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++) {
    double u = lt_rng_uniform(&r);
    assert_true(u >= 0.0 && u < 1.0);
    s += u;
    s2 += u * u;
  }
  double mean = s / n, var = s2 / n - mean * mean;
  assert_true(fabs(mean - 0.5) < 2e-3);
  assert_true(fabs(var - 1.0 / 12.0) < 6e-4);
}

static void test_rng_normal_moments(void **state) {
  (void)state;
  lt_rng r;
  lt_rng_seed(&r, 7, 3, LT_RNG_NOISE);
  const int n = 400000;
  double s = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; i++) {
    double z = lt_rng_normal(&r);
    s += z;
    s2 += z * z;
    s4 += z * z * z * z;
  }
  /* N(0,1): mean 0 (se 1.6e-3), var 1 (se 2.2e-3), 4th moment 3 (se 1.7e-2) */
  assert_true(fabs(s / n) < 1e-2);
  assert_true(fabs(s2 / n - 1.0) < 1.5e-2);
  assert_true(fabs(s4 / n - 3.0) < 0.1);
}

static void test_rng_below_uniform(void **state) {
  (void)state;
  lt_rng r;
  lt_rng_seed(&r, 1, 0, 0);
  enum { K = 7, N = 700000 };
  long c[K] = {0};
  for (int i = 0; i < N; i++) {
    uint64_t v = lt_rng_below(&r, K);
    assert_true(v < K);
    c[v]++;
  }
  /* chi-square with 6 dof: P(chi2 > 22.5) = 1e-3 */
  double chi = 0, e = (double)N / K;
  for (int k = 0; k < K; k++) chi += (c[k] - e) * (c[k] - e) / e;
  assert_true(chi < 22.5);
}

static void test_rng_streams_and_jump(void **state) {
  (void)state;
  lt_rng a, b, c;
  lt_rng_seed(&a, 5, 0, LT_RNG_SHUFFLE);
  lt_rng_seed(&b, 5, 1, LT_RNG_SHUFFLE); /* other rank */
  lt_rng_seed(&c, 5, 0, LT_RNG_FISHER);  /* other purpose */
  int same_b = 0, same_c = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = lt_rng_u64(&a), y = lt_rng_u64(&b), z = lt_rng_u64(&c);
    same_b += x == y;
    same_c += x == z;
  }
  assert_int_equal(same_b, 0);
  assert_int_equal(same_c, 0);
  /* jump(n) equals drawing n values */
  lt_rng p, q;
  lt_rng_seed(&p, 9, 2, 3);
  lt_rng_seed(&q, 9, 2, 3);
  for (int i = 0; i < 12345; i++) (void)lt_rng_u64(&p);
  lt_rng_jump(&q, 12345);
  assert_true(lt_rng_u64(&p) == lt_rng_u64(&q));
  /* reseeding reproduces the stream */
  lt_rng_seed(&p, 9, 2, 3);
  lt_rng_seed(&q, 9, 2, 3);
  for (int i = 0; i < 100; i++) assert_true(lt_rng_u64(&p) == lt_rng_u64(&q));
}

static void test_shuffle_is_permutation(void **state) {
  (void)state;
  lt_rng r;
  lt_rng_seed(&r, 3, 0, LT_RNG_SHUFFLE);
  enum { N = 1000 };
  uint32_t a[N];
  int seen[N] = {0};
  for (uint32_t i = 0; i < N; i++) a[i] = i;
  lt_rng_shuffle_u32(&r, a, N);
  int fixed = 0;
  for (int i = 0; i < N; i++) {
    seen[a[i]]++;
    fixed += a[i] == (uint32_t)i;
  }
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
  assert_true(fixed < 10); /* expected 1 fixed point */
}

static lt_status inner(lt_ctx *ctx, int v) {
  if (v < 0) LT_ERROR(ctx, LT_ERR_ARG, "value %d is negative", v);
  return LT_OK;
}
static lt_status outer(lt_ctx *ctx, int v) {
  LT_CHECK(ctx, inner(ctx, v));
  return LT_OK;
}

static void test_error_traceback(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  assert_int_equal(outer(ctx, 1), LT_OK);
  assert_int_equal(ctx->err, LT_OK);
  assert_int_equal(outer(ctx, -3), LT_ERR_ARG);
  assert_int_equal(ctx->err, LT_ERR_ARG);
  assert_string_equal(ctx->errmsg, "value -3 is negative");
  assert_non_null(strstr(ctx->trace, "inner()"));
  assert_non_null(strstr(ctx->trace, "outer()"));
  assert_true(strstr(ctx->trace, "inner()") < strstr(ctx->trace, "outer()"));
  /* the first message wins */
  assert_int_equal(inner(ctx, -9), LT_ERR_ARG);
  assert_string_equal(ctx->errmsg, "value -3 is negative");
  lt_error_clear(ctx);
  assert_int_equal(ctx->err, LT_OK);
  assert_int_equal(lt_agree(ctx, LT_OK), LT_OK);
  lt_ctx_destroy(&ctx);
  assert_null(ctx);
  lt_ctx_destroy(&ctx); /* NULL is fine */
}

static void test_timers(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_timer_start(ctx, "a");
  double t0 = lt_wtime();
  while (lt_wtime() - t0 < 0.01) {
  }
  lt_timer_stop(ctx, "a");
  assert_true(lt_timer_total(ctx, "a") >= 0.009);
  assert_true(lt_timer_total(ctx, "missing") == 0.0);
  FILE *f = tmpfile();
  assert_int_equal(lt_timer_report(ctx, f), LT_OK);
  rewind(f);
  char buf[512] = {0};
  size_t nread = fread(buf, 1, sizeof(buf) - 1, f);
  assert_true(nread > 0);
  assert_non_null(strstr(buf, "a "));
  fclose(f);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rng_uniform_moments), cmocka_unit_test(test_rng_normal_moments),
    cmocka_unit_test(test_rng_below_uniform),   cmocka_unit_test(test_rng_streams_and_jump),
    cmocka_unit_test(test_shuffle_is_permutation), cmocka_unit_test(test_error_traceback),
    cmocka_unit_test(test_timers),
};
LT_TEST_MPI_MAIN("core", tests)
