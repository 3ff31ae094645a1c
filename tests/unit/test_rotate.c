/* Bilinear image rotation (lt_rotate_bilinear) and the scenario permutation
 * against independent computations.
 *
 * Convention under test (scenario.h): positive angles rotate counter-clockwise
 * as the image is displayed (row 0 at the top) about the centre ((h-1)/2, (w-1)/2)
 * in pixel-index coordinates; points outside the image take `fill`.
 *
 * Independent reference: the rotation is written as the forward map of a point
 * (x = column, y = row, y pointing down), which for a counter-clockwise turn by a
 * is
 *   x' = cx + cos(a) (x - cx) + sin(a) (y - cy)
 *   y' = cy - sin(a) (x - cx) + cos(a) (y - cy),
 * and the source point of an output pixel is found by solving this 2 x 2 linear
 * system with Cramer's rule (not the closed-form inverse the implementation uses).
 * Bilinear interpolation is then the sum over ALL pixels of the tent weights
 * max(0, 1 - |dy|) max(0, 1 - |dx|), plus fill times the weight that falls on
 * lattice points outside the image (the tent weights over the whole lattice sum
 * to 1): no floor, no neighbour bookkeeping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/scenario.h"

static double tent(double t) { return fmax(0.0, 1.0 - fabs(t)); }

static void reference(double *out, const float *in, int h, int w, double deg, double fill) {
  const double a = deg * (4.0 * atan(1.0)) / 180.0, c = cos(a), s = sin(a);
  const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
  /* forward matrix M = [[c, s], [-s, c]] acting on (x - cx, y - cy) */
  const double m00 = c, m01 = s, m10 = -s, m11 = c, det = m00 * m11 - m01 * m10;
  for (int i = 0; i < h; i++)
    for (int j = 0; j < w; j++) {
      const double bx = j - cx, by = i - cy; /* M (x - cx, y - cy) = (bx, by) */
      const double xs = cx + (bx * m11 - m01 * by) / det;
      const double ys = cy + (m00 * by - bx * m10) / det;
      double acc = 0.0, inside = 0.0;
      for (int p = 0; p < h; p++)
        for (int q = 0; q < w; q++) {
          double wt = tent(ys - p) * tent(xs - q);
          acc += wt * in[p * w + q];
          inside += wt;
        }
      out[i * w + j] = acc + fill * (1.0 - inside);
    }
}

static void random_image(float *x, int n, uint64_t seed) {
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_USER);
  for (int k = 0; k < n; k++) x[k] = (float)lt_rng_uniform(&r);
}

/* 0 degrees (and whole turns) copy the image exactly. */
static void test_zero_is_identity(void **state) {
  (void)state;
  const int h = 7, w = 5;
  float in[7 * 5], out[7 * 5];
  random_image(in, h * w, 1);
  const double turns[] = {0.0, 360.0, -360.0, 720.0};
  for (size_t k = 0; k < sizeof(turns) / sizeof(turns[0]); k++) {
    memset(out, 0xff, sizeof(out));
    lt_rotate_bilinear(out, in, h, w, turns[k], 0.5f);
    assert_memory_equal(out, in, sizeof(in));
  }
}

/* 90 degrees of a square image is the transpose followed by an upside-down flip,
 * exactly (quarter turns use exact cos/sin, so no interpolation happens); 270
 * and -90 degrees are the transpose followed by a left-right flip. Odd and even
 * sizes (centre on a pixel and between pixels). */
static void test_quarter_turns(void **state) {
  (void)state;
  for (int n = 1; n <= 6; n++) {
    float *in = malloc(sizeof(float) * (size_t)(n * n)), *t = malloc(sizeof(float) * (size_t)(n * n));
    float *ccw = malloc(sizeof(float) * (size_t)(n * n)), *cw = malloc(sizeof(float) * (size_t)(n * n));
    float *out = malloc(sizeof(float) * (size_t)(n * n));
    random_image(in, n * n, 10 + (uint64_t)n);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) t[i * n + j] = in[j * n + i]; /* transpose */
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        ccw[i * n + j] = t[(n - 1 - i) * n + j]; /* flip rows */
        cw[i * n + j] = t[i * n + (n - 1 - j)];  /* flip columns */
      }
    lt_rotate_bilinear(out, in, n, n, 90.0, -3.0f);
    assert_memory_equal(out, ccw, sizeof(float) * (size_t)(n * n));
    lt_rotate_bilinear(out, in, n, n, 450.0, -3.0f);
    assert_memory_equal(out, ccw, sizeof(float) * (size_t)(n * n));
    lt_rotate_bilinear(out, in, n, n, 270.0, -3.0f);
    assert_memory_equal(out, cw, sizeof(float) * (size_t)(n * n));
    lt_rotate_bilinear(out, in, n, n, -90.0, -3.0f);
    assert_memory_equal(out, cw, sizeof(float) * (size_t)(n * n));
    /* the orientation in words: the pixel right of the centre row's middle goes to
     * the top (counter-clockwise) */
    if (n == 3) {
      lt_rotate_bilinear(out, in, n, n, 90.0, 0.0f);
      assert_true(out[0 * 3 + 1] == in[1 * 3 + 2]);
    }
    free(in), free(t), free(ccw), free(cw), free(out);
  }
}

/* 180 degrees twice gives the image back (exact here because half turns use exact
 * cos/sin; the stated tolerance 1e-6 would also cover an interpolating
 * implementation whose weights are off by ~1e-16). Non-square: 180 degrees is
 * in[h-1-i][w-1-j]. */
static void test_half_turn_twice(void **state) {
  (void)state;
  const int h = 6, w = 9;
  float in[6 * 9], once[6 * 9], twice[6 * 9];
  random_image(in, h * w, 3);
  lt_rotate_bilinear(once, in, h, w, 180.0, 0.0f);
  lt_rotate_bilinear(twice, once, h, w, 180.0, 0.0f);
  for (int i = 0; i < h; i++)
    for (int j = 0; j < w; j++) {
      assert_float_equal(once[i * w + j], in[(h - 1 - i) * w + (w - 1 - j)], 1e-6);
      assert_float_equal(twice[i * w + j], in[i * w + j], 1e-6);
    }
}

/* A 3 x 3 image with one lit pixel right of the centre, (row 1, col 2), rotated
 * by 45 degrees counter-clockwise. By hand, with r = sqrt(2)/2: output pixel
 * (i, j) samples the source point j_s = 1 + r(u + v), i_s = 1 + r(u - v) for
 * u = j - 1, v = 1 - i, and its value is tent(i_s - 1) tent(j_s - 2):
 *   (0,2): u=1, v=1 -> (i_s, j_s) = (1, 1 + 2r)   -> 1 * (1 - (2r - 1)) = 2 - sqrt(2)
 *   (1,2): u=1, v=0 -> (1 + r, 1 + r)            -> (1 - r) * r = (sqrt(2) - 1) / 2
 *   (0,1): u=0, v=1 -> (1 - r, 1 + r)            -> (1 - r) * r = (sqrt(2) - 1) / 2
 *   every other output pixel samples a point at distance >= 1 from (1, 2): 0.
 * Float output of double weights: 1e-7 absolute. The lit pixel's own corner
 * neighbours also confirm the direction (the pixel moves up and right, to the
 * top-right corner). */
static void test_single_pixel_45(void **state) {
  (void)state;
  float in[9] = {0}, out[9];
  in[1 * 3 + 2] = 1.0f;
  lt_rotate_bilinear(out, in, 3, 3, 45.0, 0.0f);
  const double r2 = sqrt(2.0);
  double want[9] = {0};
  want[0 * 3 + 2] = 2.0 - r2;
  want[1 * 3 + 2] = (r2 - 1.0) / 2.0;
  want[0 * 3 + 1] = (r2 - 1.0) / 2.0;
  for (int k = 0; k < 9; k++) assert_float_equal(out[k], want[k], 1e-7);
  /* the same with fill 1: the weight outside the image adds to each pixel. (0,2)
   * samples (1, 1 + 2r): columns 2 (the lit pixel, weight 2 - sqrt(2)) and 3
   * (outside, weight 2r - 1 = sqrt(2) - 1); (0,0) samples (1 - 2r, 1): rows -1
   * (outside, weight 2r - 1) and 0 (a dark pixel) of column 1 */
  lt_rotate_bilinear(out, in, 3, 3, 45.0, 1.0f);
  assert_float_equal(out[0 * 3 + 2], (2.0 - r2) + (r2 - 1.0), 1e-7);
  assert_float_equal(out[0 * 3 + 0], r2 - 1.0, 1e-7);
  assert_float_equal(out[1 * 3 + 1], 0.0, 1e-7); /* the centre samples itself */
}

/* Arbitrary angles, non-square images and a non-zero fill against the tent-sum
 * reference. Values in [0, 1), weights summing to 1: both sides agree to double
 * rounding before the final float conversion, so 1e-6 absolute is generous
 * (float's half-ulp near 1 is 6e-8). */
static void test_against_reference(void **state) {
  (void)state;
  const int shapes[][2] = {{5, 5}, {4, 7}, {8, 3}, {28, 28}};
  const double angles[] = {0.0, 10.0, -33.3, 45.0, 90.0, 123.4, 180.0, 271.0, 1000.0};
  const float fills[] = {0.0f, 0.75f};
  for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
    const int h = shapes[sh][0], w = shapes[sh][1];
    float *in = malloc(sizeof(float) * (size_t)(h * w)), *out = malloc(sizeof(float) * (size_t)(h * w));
    double *ref = malloc(sizeof(double) * (size_t)(h * w));
    random_image(in, h * w, 100 + sh);
    for (size_t a = 0; a < sizeof(angles) / sizeof(angles[0]); a++)
      for (size_t f = 0; f < 2; f++) {
        lt_rotate_bilinear(out, in, h, w, angles[a], fills[f]);
        reference(ref, in, h, w, angles[a], fills[f]);
        for (int k = 0; k < h * w; k++) assert_float_equal(out[k], ref[k], 1e-6);
      }
    free(in), free(out), free(ref);
  }
}

/* The permutation is a bijection of 0..d-1, depends on (seed, task) only, differs
 * between tasks and seeds, and is the identity when asked. */
static void test_permutation(void **state) {
  (void)state;
  enum { D = 784 };
  static uint32_t p[D], q[D], r[D];
  int seen[D];
  for (int t = 0; t < 4; t++) {
    lt_scenario_permutation(p, D, 42, t, 0);
    memset(seen, 0, sizeof(seen));
    for (int j = 0; j < D; j++) {
      assert_true(p[j] < D);
      seen[p[j]]++;
    }
    for (int j = 0; j < D; j++) assert_int_equal(seen[j], 1);
    lt_scenario_permutation(q, D, 42, t, 0);
    assert_memory_equal(p, q, sizeof(p)); /* deterministic */
    lt_scenario_permutation(r, D, 43, t, 0);
    assert_memory_not_equal(p, r, sizeof(p)); /* another seed */
    if (t > 0) {
      lt_scenario_permutation(r, D, 42, t - 1, 0);
      assert_memory_not_equal(p, r, sizeof(p)); /* another task */
    }
    /* not the identity (probability 1/784!) */
    int fixed = 0;
    for (int j = 0; j < D; j++) fixed += p[j] == (uint32_t)j;
    assert_true(fixed < D);
  }
  lt_scenario_permutation(p, D, 42, 0, 1);
  for (int j = 0; j < D; j++) assert_int_equal(p[j], j);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_zero_is_identity),   cmocka_unit_test(test_quarter_turns),
    cmocka_unit_test(test_half_turn_twice),    cmocka_unit_test(test_single_pixel_45),
    cmocka_unit_test(test_against_reference),  cmocka_unit_test(test_permutation),
};

LT_TEST_MPI_MAIN("rotate", tests)
