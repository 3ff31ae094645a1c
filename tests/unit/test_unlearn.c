/* Unlearning on one rank against known answers:
 *
 * - lt_ssd_dampen on hand-written importances: which entries are selected
 *   (strictly I_Df > alpha I_D; I_D = 0 with I_Df > 0 selected and zeroed; 0/0 not
 *   selected) and the factors min(lambda I_D / I_Df, 1), written out by hand.
 * - SSD end to end on a hand-built linear softmax model (2 features, 2 classes,
 *   4 samples, 2 per class, batch 2, by_class batches = the two classes): the
 *   importances against the closed form dW = (p - e_y) x^T, db = p - e_y of the
 *   mean batch gradient, evaluated in double by the test; the dampened theta
 *   against the selection and factors computed from those. The theta chosen makes
 *   some parameters selected and others not (asserted, so the test can fail both
 *   ways). Tolerance 1e-5 relative: the library works in float (relative error
 *   ~1e-7 per operation, a handful of operations).
 * - Logistic regression: an inseparable binary feature without penalty, whose
 *   optimum has the closed form sigmoid(b) = weighted fraction of class 1 at x = 0,
 *   sigmoid(w + b) = the same at x = 1 (tolerance 1e-8: Newton converges
 *   quadratically to a gradient below 1e-10 of the weight total); a separable
 *   symmetric case with balanced weights and the L2 penalty, where b = 0 by
 *   symmetry and w solves w / C = N sigmoid(-w) (bisection in the test); the
 *   separable case without penalty is an error (no optimum).
 * - AUC of a textbook example (0.75) and of ties (0.5); softmax entropy of equal
 *   logits (log C) and of a dominant logit (~0).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/unlearn.h"
#include "testutil.h"

static void test_dampen_known(void **state) {
  (void)state;
  float theta[6] = {2.0f, 3.0f, -4.0f, 5.0f, 10.0f, 1.0f};
  const float I_D[6] = {1.0f, 1.0f, 0.0f, 0.0f, 1.0f, 4.0f};
  const float I_Df[6] = {3.0f, 2.0f, 0.1f, 0.0f, 10.0f, 9.0f};
  /* alpha 2: selected 0 (3 > 2), 2 (0.1 > 0), 4 (10 > 2), 5 (9 > 8); not 1 (2 = 2), 3 (0 = 0)
   * lambda 0.5: factors 0.5/3, 0, 0.05, min(0.5*4/9, 1) = 2/9 */
  long sel = lt_ssd_dampen(theta, I_D, I_Df, 6, 2.0, 0.5);
  assert_int_equal(sel, 4);
  const float want[6] = {2.0f / 6.0f, 3.0f, 0.0f, 5.0f, 0.5f, 2.0f / 9.0f};
  for (int i = 0; i < 6; i++) assert_float_equal(theta[i], want[i], 1e-6);
  /* lambda large: the factor is capped at 1, nothing grows */
  float t2[6] = {2.0f, 3.0f, -4.0f, 5.0f, 10.0f, 1.0f};
  sel = lt_ssd_dampen(t2, I_D, I_Df, 6, 2.0, 100.0);
  assert_int_equal(sel, 4);
  const float want2[6] = {2.0f, 3.0f, 0.0f, 5.0f, 10.0f, 1.0f};
  for (int i = 0; i < 6; i++) assert_float_equal(t2[i], want2[i], 1e-6);
}

/* Gradient of the CE of sample (x, y) for the linear model theta = [W (2x2) row-major, b (2)]. */
static void grad_closed_form(double *g, const float *theta, const float *x, int y) {
  double z[2];
  for (int o = 0; o < 2; o++) z[o] = theta[o * 2] * x[0] + theta[o * 2 + 1] * x[1] + theta[4 + o];
  double mx = z[0] > z[1] ? z[0] : z[1];
  double e0 = exp(z[0] - mx), e1 = exp(z[1] - mx);
  double p[2] = {e0 / (e0 + e1), e1 / (e0 + e1)};
  for (int o = 0; o < 2; o++) {
    double d = p[o] - (o == y ? 1.0 : 0.0);
    g[o * 2] = d * x[0];
    g[o * 2 + 1] = d * x[1];
    g[4 + o] = d;
  }
}

static void test_ssd_tiny_model(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_model_cfg cfg = {.in_dim = 2, .nhidden = 0, .out_dim = 2, .act = LT_ACT_RELU,
                      .init = LT_INIT_KAIMING, .max_batch = 8, .pad_ranks = 1};
  lt_model *m = NULL;
  assert_int_equal(lt_model_create(ctx, &cfg, &m), LT_OK);
  assert_int_equal((int)m->n, 6);
  const float theta[6] = {1.0f, -0.5f, 0.25f, 2.0f, 0.1f, -0.2f};
  memcpy(m->theta, theta, sizeof(theta));
  /* class 0: features mostly on x0; class 1: on x1 */
  float x[8] = {1.0f, 0.1f, 0.8f, -0.2f, 0.0f, 1.0f, 0.3f, 1.2f};
  int32_t y[4] = {0, 0, 1, 1};
  lt_dataset all = {0}, fg = {0};
  assert_int_equal(lt_test_shard(&all, x, y, 4, 2, 2, 0, 1), 0);
  assert_int_equal(lt_test_shard(&fg, x, y, 2, 2, 2, 0, 1), 0); /* D_f: the class-0 samples */
  lt_shard sh;
  assert_int_equal(lt_shard_init(ctx, m->n, m->n_pad, &sh), LT_OK);
  float *ID = calloc(sh.slice, sizeof(float)), *IDf = calloc(sh.slice, sizeof(float));
  assert_int_equal(lt_ssd_importance(ctx, m, &sh, &all, LT_IMP_BATCH_MEAN, LT_IMP_BY_CLASS, 2, 1, ID),
                   LT_OK);
  assert_int_equal(lt_ssd_importance(ctx, m, &sh, &fg, LT_IMP_BATCH_MEAN, LT_IMP_BY_CLASS, 2, 1, IDf),
                   LT_OK);
  /* by_class batches of 2: batch 0 = samples 0, 1 (class 0), batch 1 = samples 2, 3 */
  double gb[2][6] = {{0}}, ga[6], gbb[6];
  for (int k = 0; k < 2; k++) {
    grad_closed_form(ga, theta, x + 4 * k, y[2 * k]);
    grad_closed_form(gbb, theta, x + 4 * k + 2, y[2 * k + 1]);
    for (int j = 0; j < 6; j++) gb[k][j] = 0.5 * (ga[j] + gbb[j]);
  }
  double wD[6], wDf[6], wtheta[6];
  int nsel = 0;
  const double alpha = 1.5, lambda = 0.5;
  for (int j = 0; j < 6; j++) {
    wD[j] = 0.5 * (gb[0][j] * gb[0][j] + gb[1][j] * gb[1][j]);
    wDf[j] = gb[0][j] * gb[0][j];
    int s = wDf[j] > alpha * wD[j];
    nsel += s;
    double f = s ? fmin(lambda * wD[j] / wDf[j], 1.0) : 1.0;
    wtheta[j] = theta[j] * f;
  }
  assert_true(nsel > 0 && nsel < 6); /* some selected, some not: the test can fail both ways */
  for (int j = 0; j < 6; j++) {
    assert_true(fabs(ID[j] - wD[j]) <= 1e-5 * fabs(wD[j]) + 1e-12);
    assert_true(fabs(IDf[j] - wDf[j]) <= 1e-5 * fabs(wDf[j]) + 1e-12);
  }
  float th[6];
  memcpy(th, theta, sizeof(th));
  long sel = lt_ssd_dampen(th, ID, IDf, 6, alpha, lambda);
  assert_int_equal(sel, nsel);
  for (int j = 0; j < 6; j++) assert_true(fabs(th[j] - wtheta[j]) <= 1e-5 * fabs(wtheta[j]) + 1e-9);
  /* I_Df / I_D <= N / N_f = 2 for by_class batches that are whole classes */
  for (int j = 0; j < 6; j++) assert_true(IDf[j] <= 2.0 * ID[j] * (1 + 1e-6) + 1e-12);
  free(ID);
  free(IDf);
  lt_test_shard_free(&all);
  lt_test_shard_free(&fg);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static double logit(double p) { return log(p / (1.0 - p)); }
static double sigm(double u) { return 1.0 / (1.0 + exp(-u)); }

static void test_logreg_closed_form(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  /* x = 0: 10 members, 60 non-members; x = 1: 40 members, 20 non-members */
  enum { N = 130 };
  double x[N];
  uint8_t y[N];
  int k = 0;
  for (int i = 0; i < 10; i++) x[k] = 0, y[k++] = 1;
  for (int i = 0; i < 60; i++) x[k] = 0, y[k++] = 0;
  for (int i = 0; i < 40; i++) x[k] = 1, y[k++] = 1;
  for (int i = 0; i < 20; i++) x[k] = 1, y[k++] = 0;
  double w, b;
  assert_int_equal(lt_logreg_fit(ctx, x, y, N, 1, 0.0, &w, &b), LT_OK);
  double s1 = N / (2.0 * 50), s0 = N / (2.0 * 80);
  double p0 = s1 * 10 / (s1 * 10 + s0 * 60), p1 = s1 * 40 / (s1 * 40 + s0 * 20);
  assert_float_equal(b, logit(p0), 1e-8);
  assert_float_equal(w + b, logit(p1), 1e-8);
  /* unweighted: the plain fractions */
  assert_int_equal(lt_logreg_fit(ctx, x, y, N, 0, 0.0, &w, &b), LT_OK);
  assert_float_equal(b, logit(10.0 / 70.0), 1e-8);
  assert_float_equal(w + b, logit(40.0 / 60.0), 1e-8);
  lt_ctx_destroy(&ctx);
}

static void test_logreg_separable(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  /* class 0 at x = -1 (5 samples), class 1 at x = +1 (15): balanced weights give each
   * class the total weight N/2 = 10, so b = 0 and w / C = 20 sigmoid(-w) */
  enum { N = 20 };
  double x[N];
  uint8_t y[N];
  for (int i = 0; i < N; i++) {
    y[i] = i >= 5;
    x[i] = y[i] ? 1.0 : -1.0;
  }
  const double C = LT_MIA_C;
  double w, b;
  assert_int_equal(lt_logreg_fit(ctx, x, y, N, 1, C, &w, &b), LT_OK);
  double lo = 0, hi = 100;
  for (int it = 0; it < 200; it++) {
    double mid = 0.5 * (lo + hi);
    if (mid / C - N * sigm(-mid) < 0) lo = mid; else hi = mid;
  }
  assert_float_equal(b, 0.0, 1e-8);
  assert_float_equal(w, 0.5 * (lo + hi), 1e-8);
  assert_true(w > 0); /* every sample on the right side */
  /* without the penalty there is no optimum */
  assert_int_equal(lt_logreg_fit(ctx, x, y, N, 1, 0.0, &w, &b), LT_ERR_NUM);
  assert_non_null(strstr(ctx->errmsg, "did not converge"));
  lt_error_clear(ctx);
  /* one class only */
  for (int i = 0; i < N; i++) y[i] = 1;
  assert_int_equal(lt_logreg_fit(ctx, x, y, N, 1, C, &w, &b), LT_ERR_DATA);
  lt_ctx_destroy(&ctx);
}

static void test_auc_entropy(void **state) {
  (void)state;
  const double s[4] = {0.1, 0.4, 0.35, 0.8};
  const uint8_t y[4] = {0, 0, 1, 1};
  assert_float_equal(lt_auc(s, y, 4), 0.75, 1e-12);
  const double t[2] = {1.0, 1.0};
  const uint8_t ty[2] = {0, 1};
  assert_float_equal(lt_auc(t, ty, 2), 0.5, 1e-12);
  const float z[6] = {0.3f, 0.3f, 0.3f, 50.0f, 0.0f, 0.0f};
  double h[2];
  lt_softmax_entropy(h, z, 2, 3);
  assert_float_equal(h[0], log(3.0), 1e-12);
  assert_true(h[1] >= 0 && h[1] < 1e-18);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dampen_known),       cmocka_unit_test(test_ssd_tiny_model),
    cmocka_unit_test(test_logreg_closed_form), cmocka_unit_test(test_logreg_separable),
    cmocka_unit_test(test_auc_entropy),
};
LT_TEST_MPI_MAIN("unlearn", tests)
