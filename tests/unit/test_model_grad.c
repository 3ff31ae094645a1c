/* Model gradients against central finite differences of an independent
 * double-precision forward pass written here (not lt_model_forward), for every
 * activation; masked loss; beta = 1 accumulation; zero padding; the per-sample
 * squared-gradient pass against a loop of single-sample backward passes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/model.h"

enum { IN = 6, H1 = 7, H2 = 5, OUT = 4, B = 5 };
static const int dims[4] = {IN, H1, H2, OUT}; /* 3 dense layers */

/* ------------------------------------------------------------ reference (double) */

static double ref_act(lt_act a, double z) {
  switch (a) {
  case LT_ACT_RELU: return z > 0 ? z : 0;
  case LT_ACT_TANH: return tanh(z);
  case LT_ACT_GELU: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
  case LT_ACT_NONE: return z;
  }
  return NAN;
}

/* Documented layout, computed here independently: per layer W [out, in] then b [out]. */
static size_t ref_w_off(int l) {
  size_t off = 0;
  for (int i = 0; i < l; i++) off += (size_t)dims[i] * dims[i + 1] + dims[i + 1];
  return off;
}

/* Sum over rows of the (masked) softmax cross-entropy, forward in double.
 * *minz (if non-NULL) receives the smallest |pre-activation| of the hidden layers. */
static double ref_loss(const double *th, const float *x, const int32_t *y, const uint8_t *mask,
                       int rows, lt_act act, double *logits, double *minz) {
  double total = 0.0, mz = INFINITY;
  for (int r = 0; r < rows; r++) {
    double a[16], z[16];
    for (int j = 0; j < IN; j++) a[j] = x[r * IN + j];
    for (int l = 0; l < 3; l++) {
      const double *W = th + ref_w_off(l), *b = W + dims[l] * dims[l + 1];
      for (int o = 0; o < dims[l + 1]; o++) {
        z[o] = b[o];
        for (int i = 0; i < dims[l]; i++) z[o] += W[o * dims[l] + i] * a[i];
      }
      for (int o = 0; o < dims[l + 1]; o++) {
        if (l < 2 && fabs(z[o]) < mz) mz = fabs(z[o]);
        a[o] = l < 2 ? ref_act(act, z[o]) : z[o];
      }
    }
    double s = 0.0;
    for (int c = 0; c < OUT; c++)
      if (!mask || mask[c]) s += exp(a[c]);
    total += log(s) - a[y[r]];
    if (logits)
      for (int c = 0; c < OUT; c++) logits[r * OUT + c] = a[c];
  }
  if (minz) *minz = mz;
  return total;
}

/* ------------------------------------------------------------ fixtures */

static lt_model *make_model(lt_ctx *ctx, lt_act act, int max_batch) {
  lt_model_cfg cfg = {.in_dim = IN, .nhidden = 2, .hidden = {H1, H2}, .out_dim = OUT, .act = act,
                      .init = LT_INIT_KAIMING, .max_batch = max_batch, .pad_ranks = 1};
  lt_model *m = NULL;
  assert_int_equal(lt_model_create(ctx, &cfg, &m), LT_OK);
  return m;
}

/* small random weights AND biases, so that the bias path is exercised */
static void fill(float *v, size_t n, lt_rng *r, double amp) {
  for (size_t i = 0; i < n; i++) v[i] = (float)(amp * (2.0 * lt_rng_uniform(r) - 1.0));
}

static void fill_batch(float *x, int32_t *y, int rows, lt_rng *r, const uint8_t *mask) {
  for (int i = 0; i < rows * IN; i++) x[i] = (float)lt_rng_normal(r);
  for (int i = 0; i < rows; i++) {
    do y[i] = (int32_t)lt_rng_below(r, OUT);
    while (mask && !mask[y[i]]);
  }
}

static double maxabs(const double *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
  return m;
}

/* ------------------------------------------------------------ tests */

static void test_layout(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = make_model(ctx, LT_ACT_RELU, 8);
  assert_int_equal(m->nlayers, 3);
  for (int l = 0; l < 3; l++) {
    char name[8];
    snprintf(name, sizeof(name), "fc%d", l + 1);
    assert_string_equal(m->layer[l].name, name);
    assert_string_equal(m->layer[l].kind, "dense");
    assert_int_equal(m->layer[l].in, dims[l]);
    assert_int_equal(m->layer[l].out, dims[l + 1]);
    assert_int_equal(m->layer[l].w_off, ref_w_off(l));
    assert_int_equal(m->layer[l].b_off, ref_w_off(l) + (size_t)dims[l] * dims[l + 1]);
    assert_int_equal(m->layer[l].act, l < 2 ? LT_ACT_RELU : LT_ACT_NONE);
  }
  assert_int_equal(m->n, ref_w_off(3));
  assert_int_equal(m->n_pad % 16, 0);
  assert_true(m->n_pad >= m->n && m->n_pad < m->n + 16);
  assert_int_equal((uintptr_t)m->theta % 64, 0);
  assert_int_equal((uintptr_t)m->grad % 64, 0);
  lt_model_destroy(&m);
  assert_null(m);
  lt_model_destroy(&m); /* NULL is fine */

  /* bad configurations are errors with a message */
  lt_model_cfg good = {.in_dim = 3, .nhidden = 1, .hidden = {4}, .out_dim = 2,
                       .act = LT_ACT_TANH, .init = LT_INIT_XAVIER, .max_batch = 2, .pad_ranks = 4};
  assert_int_equal(lt_model_create(ctx, &good, &m), LT_OK);
  assert_int_equal(m->n_pad % 64, 0); /* 16 * pad_ranks */
  lt_model_destroy(&m);
  lt_model_cfg bad[5];
  for (int i = 0; i < 5; i++) bad[i] = good;
  bad[0].in_dim = 0;
  bad[1].hidden[0] = 0;
  bad[2].max_batch = 0;
  bad[3].nhidden = LT_MAX_LAYERS;
  bad[4].out_dim = -1;
  for (int i = 0; i < 5; i++) {
    lt_error_clear(ctx);
    assert_int_equal(lt_model_create(ctx, &bad[i], &m), LT_ERR_ARG);
    assert_null(m);
    assert_true(strstr(ctx->errmsg, "must be") || strstr(ctx->errmsg, "allowed"));
  }
  lt_ctx_destroy(&ctx);
}

/* Gradient of the summed loss vs central differences of ref_loss in double.
 * The float code sees exactly the parameters the reference uses (theta's float
 * values promoted), so the gap is float32 rounding in the implementation: with
 * widths <= 7, 3 layers and 5 rows every entry is a sum of < 50 terms, giving
 * relative errors ~1e-6; the double differences (h = 1e-6) are accurate to
 * ~1e-9. Tolerance 1e-4 * max|g| + 1e-3 |g| leaves 100x margin, while a wrong
 * derivative, transpose or missing term gives errors of order |g|. */
static void check_grad(lt_act act, const uint8_t *mask) {
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = make_model(ctx, act, 8);
  lt_rng r;
  lt_rng_seed(&r, 42, 7, LT_RNG_USER + (uint64_t)act);
  fill(m->theta, m->n, &r, 0.5);
  float x[B * IN];
  int32_t y[B];
  fill_batch(x, y, B, &r, mask);

  size_t n = m->n;
  double *th = calloc(n, sizeof(double)), *gfd = calloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) th[i] = m->theta[i];
  double minz = 0, lref[B * OUT];
  double loss_ref = ref_loss(th, x, y, mask, B, act, lref, &minz);
  /* ReLU: no pre-activation near the kink, so that h-perturbations (|dz| <~ 1e-5) stay smooth */
  if (act == LT_ACT_RELU) assert_true(minz > 1e-3);

  const float *logits = lt_model_forward(m, x, B);
  for (int i = 0; i < B * OUT; i++) assert_true(fabs(logits[i] - lref[i]) <= 1e-5 * (1 + fabs(lref[i])));
  float dl[B * OUT];
  long correct = -1;
  double loss = lt_softmax_xent(dl, &correct, logits, y, mask, B, OUT, 1.0f);
  assert_true(fabs(loss - loss_ref) <= 1e-5 * (1 + fabs(loss_ref)));
  if (mask)
    for (int i = 0; i < B; i++)
      for (int c = 0; c < OUT; c++)
        if (!mask[c]) assert_true(dl[i * OUT + c] == 0.0f);
  /* padding of an arbitrary buffer: beta = 0 writes zeros there */
  float *g = NULL;
  assert_int_equal(lt_calloc_aligned((void **)&g, m->n_pad, sizeof(float)), 0);
  for (size_t i = 0; i < m->n_pad; i++) g[i] = 7.0f;
  lt_model_backward(m, dl, B, g, 0.0f);
  for (size_t i = n; i < m->n_pad; i++) assert_true(g[i] == 0.0f);

  const double h = 1e-6;
  for (size_t p = 0; p < n; p++) {
    double t = th[p];
    th[p] = t + h;
    double lp = ref_loss(th, x, y, mask, B, act, NULL, NULL);
    th[p] = t - h;
    double lm = ref_loss(th, x, y, mask, B, act, NULL, NULL);
    th[p] = t;
    gfd[p] = (lp - lm) / (2 * h);
  }
  double gmax = maxabs(gfd, n);
  assert_true(gmax > 1e-2); /* a meaningful gradient */
  size_t bad = 0;
  for (size_t p = 0; p < n; p++) {
    double err = fabs(g[p] - gfd[p]);
    if (err > 1e-4 * gmax + 1e-3 * fabs(gfd[p])) {
      if (bad++ < 5)
        print_error("%s: grad[%zu] = %.8g, finite differences %.8g\n", lt_act_name(act), p,
                    (double)g[p], gfd[p]);
    }
  }
  assert_int_equal(bad, 0);
  lt_free(g);
  free(th);
  free(gfd);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static void test_grad_relu(void **s) { (void)s; check_grad(LT_ACT_RELU, NULL); }
static void test_grad_tanh(void **s) { (void)s; check_grad(LT_ACT_TANH, NULL); }
static void test_grad_gelu(void **s) { (void)s; check_grad(LT_ACT_GELU, NULL); }
static void test_grad_none(void **s) { (void)s; check_grad(LT_ACT_NONE, NULL); }
static void test_grad_masked(void **s) {
  (void)s;
  static const uint8_t mask[OUT] = {1, 0, 1, 1};
  check_grad(LT_ACT_GELU, mask);
  check_grad(LT_ACT_TANH, mask);
}

/* beta = 1 adds to what is there: backward(a) then backward(b, beta = 1) equals
 * the sum of the separate gradients up to one float rounding per entry
 * (tolerance 1e-6 * max|g|). m->grad's padding stays exactly 0. */
static void test_accumulate(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = make_model(ctx, LT_ACT_TANH, 8);
  lt_rng r;
  lt_rng_seed(&r, 3, 0, LT_RNG_USER);
  fill(m->theta, m->n, &r, 0.5);
  float xa[B * IN], xb[3 * IN], dl[B * OUT];
  int32_t ya[B], yb[3];
  fill_batch(xa, ya, B, &r, NULL);
  fill_batch(xb, yb, 3, &r, NULL);
  size_t n = m->n;
  float *ga = calloc(n, sizeof(float)), *gb = calloc(n, sizeof(float));
  const float *lg = lt_model_forward(m, xb, 3);
  (void)lt_softmax_xent(dl, NULL, lg, yb, NULL, 3, OUT, 0.25f);
  lt_model_backward(m, dl, 3, m->grad, 0.0f);
  memcpy(gb, m->grad, n * sizeof(float));
  /* dlogits in the model's own dz buffer, as the trainer passes them */
  float *dz = m->dz[m->nlayers];
  lg = lt_model_forward(m, xa, B);
  (void)lt_softmax_xent(dz, NULL, lg, ya, NULL, B, OUT, 0.25f);
  lt_model_backward(m, dz, B, m->grad, 0.0f);
  memcpy(ga, m->grad, n * sizeof(float));
  lg = lt_model_forward(m, xb, 3);
  (void)lt_softmax_xent(dl, NULL, lg, yb, NULL, 3, OUT, 0.25f);
  lt_model_backward(m, dl, 3, m->grad, 1.0f);
  float gmax = 0;
  for (size_t i = 0; i < n; i++) gmax = fmaxf(gmax, fabsf(ga[i] + gb[i]));
  assert_true(gmax > 0);
  for (size_t i = 0; i < n; i++) assert_true(fabsf(m->grad[i] - (ga[i] + gb[i])) <= 1e-6f * gmax);
  for (size_t i = n; i < m->n_pad; i++) assert_true(m->grad[i] == 0.0f);
  free(ga);
  free(gb);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

/* Per-sample squared gradients against B single-sample backward passes squared
 * and summed in double. Both sides are float32 gradients of the same sums, so
 * they agree to ~1e-6 relative; tolerance 1e-5 * max + 1e-4 |ref|. acc is added
 * to (starts at 1), padding untouched, and the activations survive (a backward
 * after the squared pass gives the same gradient as one before it). */
static void test_sqgrad(void **state) {
  (void)state;
  for (lt_act act = LT_ACT_RELU; act <= LT_ACT_NONE; act++) {
    lt_ctx *ctx = lt_test_ctx();
    lt_model *m = make_model(ctx, act, 8);
    lt_rng r;
    lt_rng_seed(&r, 5, 1, LT_RNG_USER + (uint64_t)act);
    fill(m->theta, m->n, &r, 0.5);
    enum { NB = 7 };
    float x[NB * IN], dl[NB * OUT];
    int32_t y[NB];
    fill_batch(x, y, NB, &r, NULL);
    size_t n = m->n;
    double *ref = calloc(n, sizeof(double));
    float *g1 = calloc(m->n_pad, sizeof(float)), *g0 = calloc(n, sizeof(float));
    for (int i = 0; i < NB; i++) {
      const float *lg = lt_model_forward(m, x + i * IN, 1);
      (void)lt_softmax_xent(dl, NULL, lg, y + i, NULL, 1, OUT, 1.0f);
      lt_model_backward(m, dl, 1, g1, 0.0f);
      for (size_t p = 0; p < n; p++) ref[p] += (double)g1[p] * g1[p];
    }
    float *acc = calloc(m->n_pad, sizeof(float));
    for (size_t p = 0; p < m->n_pad; p++) acc[p] = 1.0f;
    const float *lg = lt_model_forward(m, x, NB);
    float *dz = m->dz[m->nlayers];
    (void)lt_softmax_xent(dz, NULL, lg, y, NULL, NB, OUT, 1.0f);
    memcpy(dl, dz, sizeof(dl));
    lt_model_backward(m, dl, NB, g1, 0.0f);
    memcpy(g0, g1, n * sizeof(float));
    lt_model_backward_sqgrad(m, dz, NB, acc);
    double rmax = maxabs(ref, n);
    for (size_t p = 0; p < n; p++)
      assert_true(fabs((acc[p] - 1.0) - ref[p]) <= 1e-5 * rmax + 1e-4 * ref[p]);
    for (size_t p = n; p < m->n_pad; p++) assert_true(acc[p] == 1.0f);
    lt_model_backward(m, dl, NB, g1, 0.0f);
    for (size_t p = 0; p < n; p++) assert_true(g1[p] == g0[p]);
    free(ref);
    free(g1);
    free(g0);
    free(acc);
    lt_model_destroy(&m);
    lt_ctx_destroy(&ctx);
  }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_layout),     cmocka_unit_test(test_grad_relu),
    cmocka_unit_test(test_grad_tanh),  cmocka_unit_test(test_grad_gelu),
    cmocka_unit_test(test_grad_none),  cmocka_unit_test(test_grad_masked),
    cmocka_unit_test(test_accumulate), cmocka_unit_test(test_sqgrad),
};

LT_TEST_MPI_MAIN("model_grad", tests)
