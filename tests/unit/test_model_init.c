/* Parameter initialisation against the closed-form distributions:
 * Kaiming-uniform U(-b, b), b = sqrt(6 / fan_in); Xavier-uniform b = sqrt(6 / (fan_in + fan_out));
 * biases and padding zero; the same seed gives the same theta. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#include "lethe/model.h"

/* For each layer: all |w| <= b; the sample mean and variance of its weights match
 * U(-b, b) (mean 0, variance b^2 / 3). With nw >= 8000 weights the standard error
 * of the mean is b / sqrt(3 nw) <= 0.0065 b, and that of the variance is
 * sqrt(4/45) b^2 / sqrt(nw) <= 1% of b^2 / 3. Allowed: mean within 0.04 b and
 * variance within 8% (> 5 standard errors), while a wrong bound (e.g. a missing or
 * extra ReLU gain sqrt 2, i.e. variance off by 2x) fails clearly. */
static void check_layers(const lt_model *m, lt_init init) {
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    double b = init == LT_INIT_XAVIER ? sqrt(6.0 / (ly->in + ly->out)) : sqrt(6.0 / ly->in);
    size_t nw = (size_t)ly->in * (size_t)ly->out;
    const float *W = m->theta + ly->w_off;
    double s = 0, s2 = 0, mx = 0;
    for (size_t i = 0; i < nw; i++) {
      assert_true(fabs(W[i]) <= b * (1 + 1e-6));
      s += W[i];
      s2 += (double)W[i] * W[i];
      mx = fmax(mx, fabs(W[i]));
    }
    double mean = s / (double)nw, var = s2 / (double)nw - mean * mean;
    assert_true(fabs(mean) <= 0.04 * b);
    assert_true(fabs(var / (b * b / 3.0) - 1.0) <= 0.08);
    assert_true(mx >= 0.99 * b); /* the whole interval is used */
    for (int o = 0; o < ly->out; o++) assert_true(m->theta[ly->b_off + (size_t)o] == 0.0f);
  }
  for (size_t i = m->n; i < m->n_pad; i++) assert_true(m->theta[i] == 0.0f);
}

static void test_init(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_model_cfg cfg = {.in_dim = 200, .nhidden = 2, .hidden = {100, 80}, .out_dim = 100,
                      .act = LT_ACT_RELU, .init = LT_INIT_KAIMING, .max_batch = 4, .pad_ranks = 3};
  lt_model *m = NULL, *m2 = NULL;
  assert_int_equal(lt_model_create(ctx, &cfg, &m), LT_OK);
  assert_int_equal(m->n_pad % 48, 0);
  check_layers(m, LT_INIT_KAIMING); /* create initialised with ctx->seed and cfg.init */
  /* identical on a second model with the same seed; different for another seed */
  assert_int_equal(lt_model_create(ctx, &cfg, &m2), LT_OK);
  assert_memory_equal(m->theta, m2->theta, m->n_pad * sizeof(float));
  lt_model_init(m2, ctx->seed + 1, LT_INIT_KAIMING);
  assert_memory_not_equal(m->theta, m2->theta, m->n * sizeof(float));
  /* re-initialising resets biases and padding (write garbage first) */
  for (size_t i = 0; i < m->n_pad; i++) m->theta[i] = 5.0f;
  lt_model_init(m, 99, LT_INIT_XAVIER);
  check_layers(m, LT_INIT_XAVIER);
  lt_model_destroy(&m);
  lt_model_destroy(&m2);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {cmocka_unit_test(test_init)};

LT_TEST_MPI_MAIN("model_init", tests)
