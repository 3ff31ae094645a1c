/* Softmax cross-entropy and argmax against direct double-precision formulas and
 * closed forms: moderate logits, huge logits (1e4), masked classes, counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/model.h"

/* Direct, unstabilised double computation (valid for moderate logits):
 * p_c = e^{l_c} / sum_{unmasked} e^{l_k}; loss = -log p_y; d = scale (p - onehot). */
static double direct(double *d, const float *l, int y, const uint8_t *mask, int C, double scale) {
  double s = 0;
  for (int c = 0; c < C; c++)
    if (!mask || mask[c]) s += exp((double)l[c]);
  for (int c = 0; c < C; c++) {
    double p = (!mask || mask[c]) ? exp((double)l[c]) / s : 0.0;
    d[c] = scale * (p - (c == y));
  }
  return -log(exp((double)l[y]) / s);
}

/* Float softmax of O(1) logits: loss within 1e-6 relative (+1e-6), dlogits within
 * 1e-6 absolute (probabilities in [0, 1], float rounding ~1e-7). */
static void check_rows(const float *l, const int32_t *y, const uint8_t *mask, int B, int C,
                       float scale) {
  float *d = malloc(sizeof(float) * (size_t)(B * C));
  double *dr = malloc(sizeof(double) * (size_t)C);
  double ref = 0;
  long ref_correct = 0;
  for (int i = 0; i < B; i++) {
    ref += direct(dr, l + i * C, y[i], mask, C, scale);
    int best = -1;
    for (int c = 0; c < C; c++)
      if ((!mask || mask[c]) && (best < 0 || l[i * C + c] > l[i * C + best])) best = c;
    ref_correct += best == y[i];
  }
  long correct = -1;
  double loss = lt_softmax_xent(d, &correct, l, y, mask, B, C, scale);
  assert_true(fabs(loss - ref) <= 1e-6 * fabs(ref) + 1e-6);
  assert_int_equal(correct, ref_correct);
  for (int i = 0; i < B; i++) {
    (void)direct(dr, l + i * C, y[i], mask, C, scale);
    for (int c = 0; c < C; c++) {
      assert_true(fabs(d[i * C + c] - dr[c]) <= 1e-6);
      if (mask && !mask[c]) assert_true(d[i * C + c] == 0.0f);
    }
  }
  /* dlogits may be NULL: same loss and count */
  correct = -1;
  assert_true(lt_softmax_xent(NULL, &correct, l, y, mask, B, C, scale) == loss);
  assert_int_equal(correct, ref_correct);
  free(d);
  free(dr);
}

static void test_random(void **state) {
  (void)state;
  enum { B = 9, C = 7 };
  lt_rng r;
  lt_rng_seed(&r, 11, 0, LT_RNG_USER);
  float l[B * C];
  int32_t y[B];
  for (int i = 0; i < B * C; i++) l[i] = (float)(3.0 * lt_rng_normal(&r));
  for (int i = 0; i < B; i++) y[i] = (int32_t)lt_rng_below(&r, C);
  check_rows(l, y, NULL, B, C, 1.0f);
  check_rows(l, y, NULL, B, C, 1.0f / B);
  static const uint8_t mask[C] = {1, 1, 0, 1, 0, 1, 1};
  for (int i = 0; i < B; i++)
    while (!mask[y[i]]) y[i] = (y[i] + 1) % C;
  check_rows(l, y, mask, B, C, 0.5f);
}

/* Huge logits: the unstabilised formula would overflow (e^{1e4}); closed form:
 * logits (1e4, 1e4 - 1, -1e4), label 0: loss = log(1 + e^-1 + e^-2e4) = log(1 + e^-1),
 * p = (1, e^-1, ~0) / (1 + e^-1). Tolerances: 1e-6 relative on O(1) quantities,
 * which the float row-max subtraction (exact for these values) easily meets. */
static void test_huge(void **state) {
  (void)state;
  const float l[2 * 3] = {1e4f, 1e4f - 1.0f, -1e4f, -1e4f, -1e4f, 1e4f};
  const int32_t y[2] = {0, 1};
  float d[6];
  long correct = -1;
  double loss = lt_softmax_xent(d, &correct, l, y, NULL, 2, 3, 1.0f);
  assert_int_equal(correct, 1);
  /* row 1: label 1 at -1e4 while the max is 1e4: loss = 2e4 + log(1 + 2 e^-2e4) = 2e4 */
  double ref0 = log1p(exp(-1.0)), ref1 = 2e4;
  assert_true(isfinite(loss));
  assert_true(fabs(loss - (ref0 + ref1)) <= 1e-6 * (ref0 + ref1));
  double l0 = lt_softmax_xent(NULL, NULL, l, y, NULL, 1, 3, 1.0f); /* row 0 alone */
  assert_true(fabs(l0 - ref0) <= 1e-6 * ref0);
  double p0 = 1.0 / (1.0 + exp(-1.0)), p1 = exp(-1.0) / (1.0 + exp(-1.0));
  assert_true(fabs(d[0] - (p0 - 1.0)) <= 1e-6);
  assert_true(fabs(d[1] - p1) <= 1e-6);
  assert_true(fabs(d[2]) <= 1e-30);
  assert_true(fabs(d[3]) <= 1e-30 && fabs(d[4] + 1.0) <= 1e-6 && fabs(d[5] - 1.0) <= 1e-6);
  for (int i = 0; i < 6; i++) assert_true(isfinite(d[i]));
}

/* A masked class with the largest logit must neither count for argmax nor
 * enter the normaliser: logits (0, 50, 1), mask (1, 0, 1), label 2 -> correct,
 * loss = log(1 + e^-1) exactly as for the two-class problem (0, 1). */
static void test_mask_and_counts(void **state) {
  (void)state;
  const float l[3] = {0.0f, 50.0f, 1.0f};
  const uint8_t mask[3] = {1, 0, 1};
  const int32_t y[1] = {2};
  float d[3];
  long correct = -1;
  double loss = lt_softmax_xent(d, &correct, l, y, mask, 1, 3, 1.0f);
  assert_true(fabs(loss - log1p(exp(-1.0))) <= 1e-6);
  assert_int_equal(correct, 1);
  assert_true(d[1] == 0.0f);
  assert_true(fabs(d[0] + d[2]) <= 1e-7); /* unmasked dlogits sum to 0 */
  correct = -1;
  (void)lt_softmax_xent(d, &correct, l, y, NULL, 1, 3, 1.0f);
  assert_int_equal(correct, 0); /* unmasked: class 1 wins */

  /* argmax: ties go to the first index; masked classes skipped */
  const float a[4 * 3] = {1, 3, 3, 5, 5, 5, -1, -2, -3, 0, 9, 2};
  int32_t out[4];
  lt_argmax_rows(out, a, NULL, 4, 3);
  assert_int_equal(out[0], 1);
  assert_int_equal(out[1], 0);
  assert_int_equal(out[2], 0);
  assert_int_equal(out[3], 1);
  lt_argmax_rows(out, a, mask, 4, 3);
  assert_int_equal(out[0], 2);
  assert_int_equal(out[1], 0);
  assert_int_equal(out[2], 0);
  assert_int_equal(out[3], 2);
  /* counts over a batch equal an independent count of matching argmaxes */
  const int32_t ya[4] = {1, 2, 0, 1};
  long c = -1;
  (void)lt_softmax_xent(NULL, &c, a, ya, NULL, 4, 3, 1.0f);
  assert_int_equal(c, 3);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random),
    cmocka_unit_test(test_huge),
    cmocka_unit_test(test_mask_and_counts),
};

LT_TEST_MPI_MAIN("loss", tests)
