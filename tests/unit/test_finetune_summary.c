/* lt_ft_summarize, the /finetune summary, against values worked out by hand:
 * accuracies {0.5, diverged, 0.9, 0.25, NaN} with threshold 0.3:
 *   finite {0.5, 0.9, 0.25}: mean 0.55, deviations -0.05, 0.35, -0.3,
 *   sum of squares 0.215, sample variance 0.1075, std sqrt(0.1075);
 *   min 0.25, max 0.9; failed: the diverged run, the NaN, 0.25 < 0.3 -> 3;
 *   diverged 1 (the NaN without the flag counts as failed, not diverged).
 * Tolerance 1e-14 (about 50 ulp): a handful of double operations on values of order 1. */
#include <math.h>

#include "lethe/finetune.h"
#include "testutil.h"

static void test_hand_values(void **u) {
  (void)u;
  const double acc[5] = {0.5, 0.123, 0.9, 0.25, NAN};
  const int div[5] = {0, 1, 0, 0, 0};
  lt_ft_summary s = lt_ft_summarize(acc, div, 5, 0.3);
  assert_int_equal(s.n, 5);
  assert_int_equal(s.finite, 3);
  assert_int_equal(s.failed, 3);
  assert_int_equal(s.diverged, 1);
  assert_true(fabs(s.mean - 0.55) < 1e-14);
  assert_true(fabs(s.std - sqrt(0.1075)) < 1e-14);
  assert_true(s.min == 0.25 && s.max == 0.9 && s.threshold == 0.3);
}

/* One finite run: no standard deviation; none: everything NaN. */
static void test_degenerate(void **u) {
  (void)u;
  const double acc[2] = {0.7, NAN};
  const int div[2] = {0, 1};
  lt_ft_summary s = lt_ft_summarize(acc, div, 2, 0.3);
  assert_true(s.mean == 0.7 && isnan(s.std) && s.failed == 1);
  s = lt_ft_summarize(acc + 1, div + 1, 1, 0.3);
  assert_true(isnan(s.mean) && isnan(s.min) && isnan(s.max) && s.failed == 1 && s.finite == 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_hand_values),
    cmocka_unit_test(test_degenerate),
};

LT_TEST_MPI_MAIN("finetune_summary", tests)
