/* Template layers (MixtureGrowth): gradients of templates, coefficients and biases
 * against central finite differences of an independent double-precision forward
 * pass written here from the layout documented in lethe/model.h (not lt_model_forward),
 * for member 0, member 1 and the full width; inactive parameters get exactly zero
 * gradient; coefficients that select one template per block reproduce a plain dense
 * model with those weights bit for bit (logits and weight gradients); the FLOPs count
 * against the formula of lethe/grow.h evaluated here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/grow.h"
#include "lethe/model.h"

enum { IN = 5, H = 6, OUT = 3, B = 4, L = 3 }; /* 5 -> 6 -> 6 -> 3, members 5 -> 3 -> 3 -> 3 */
static const int dims[L + 1] = {IN, H, H, OUT};

/* ------------------------------------------------------------ documented layout */

typedef struct {
  int nb, tr, tc, brow[4], bcol[4], bset[4];
  size_t t_off, c_off, b_off;
} ref_layer;

static void ref_layout(int nt, ref_layer *rl, size_t *n) {
  size_t off = 0;
  for (int l = 0; l < L; l++) {
    ref_layer *r = &rl[l];
    int in = dims[l], out = dims[l + 1];
    if (l == 0) {
      *r = (ref_layer){.nb = 2, .tr = out / 2, .tc = in, .brow = {0, 1}, .bcol = {0, 0},
                       .bset = {0, 1}};
    } else if (l == L - 1) {
      *r = (ref_layer){.nb = 2, .tr = out, .tc = in / 2, .brow = {0, 0}, .bcol = {0, 1},
                       .bset = {0, 1}};
    } else {
      *r = (ref_layer){.nb = 4, .tr = out / 2, .tc = in / 2, .brow = {0, 1, 0, 1},
                       .bcol = {0, 1, 1, 0}, .bset = {0, 1, 0, 1}};
    }
    r->t_off = off;
    off += 2 * (size_t)nt * r->tr * r->tc;
    r->c_off = off;
    off += (size_t)r->nb * nt;
    r->b_off = off;
    off += (size_t)out * (l == L - 1 ? 2 : 1);
  }
  *n = off;
}

/* Sum over rows of the softmax cross-entropy of the network `member` (0, 1, -1 full)
 * with tanh hidden activations, in double. */
static double ref_loss(const double *th, int nt, int member, const float *x, const int32_t *y) {
  ref_layer rl[L];
  size_t n;
  ref_layout(nt, rl, &n);
  double total = 0.0;
  for (int row = 0; row < B; row++) {
    double a[16], z[16];
    int width = IN;
    for (int j = 0; j < IN; j++) a[j] = x[row * IN + j];
    for (int l = 0; l < L; l++) {
      const ref_layer *r = &rl[l];
      int in = member < 0 ? dims[l] : r->tc, out = member < 0 ? dims[l + 1] : r->tr;
      assert_int_equal(in, width);
      double W[64];
      for (int i = 0; i < out * in; i++) W[i] = 0.0;
      for (int b = 0; b < r->nb; b++) {
        if (member >= 0 && b != member) continue;
        int r0 = member < 0 ? r->brow[b] * r->tr : 0, c0 = member < 0 ? r->bcol[b] * r->tc : 0;
        for (int i = 0; i < r->tr; i++)
          for (int j = 0; j < r->tc; j++)
            for (int k = 0; k < nt; k++)
              W[(r0 + i) * in + c0 + j] +=
                  th[r->c_off + (size_t)b * nt + k] *
                  th[r->t_off + ((size_t)r->bset[b] * nt + k) * r->tr * r->tc + (size_t)i * r->tc + j];
      }
      const double *bias = th + r->b_off + (member > 0 ? (size_t)member * r->tr : 0);
      for (int o = 0; o < out; o++) {
        z[o] = bias[o];
        for (int i = 0; i < in; i++) z[o] += W[o * in + i] * a[i];
      }
      for (int o = 0; o < out; o++) a[o] = l < L - 1 ? tanh(z[o]) : z[o];
      width = out;
    }
    double mx = a[0], s = 0.0;
    for (int c = 1; c < OUT; c++) mx = a[c] > mx ? a[c] : mx;
    for (int c = 0; c < OUT; c++) s += exp(a[c] - mx);
    total += mx + log(s) - a[y[row]];
  }
  return total;
}

static lt_model *make_model(lt_ctx *ctx, lt_model_kind kind, int nt, uint64_t seed) {
  lt_model_cfg cfg = {.in_dim = IN, .nhidden = 2, .hidden = {H, H}, .out_dim = OUT,
                      .act = LT_ACT_TANH, .init = LT_INIT_KAIMING, .max_batch = B,
                      .pad_ranks = 1, .kind = kind, .ntemplates = nt};
  lt_model *m = NULL;
  assert_int_equal(lt_model_create(ctx, &cfg, &m), LT_OK);
  lt_model_init(m, seed, LT_INIT_KAIMING);
  return m;
}

static void batch(float *x, int32_t *y, uint64_t seed) {
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_USER);
  for (int i = 0; i < B * IN; i++) x[i] = (float)lt_rng_normal(&r);
  for (int i = 0; i < B; i++) y[i] = (int32_t)lt_rng_below(&r, OUT);
}

static void check_grad(int nt, int member) {
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = make_model(ctx, LT_MODEL_TEMPLATE, nt, 11 + (uint64_t)nt);
  ref_layer rl[L];
  size_t n;
  ref_layout(nt, rl, &n);
  assert_int_equal((int)m->n, (int)n); /* the documented parameter count */
  /* non-zero biases so that their gradients and the member bias offsets matter */
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (int l = 0; l < L; l++)
    for (int o = 0; o < dims[l + 1] * (l == L - 1 ? 2 : 1); o++)
      m->theta[rl[l].b_off + o] = (float)(0.3 * lt_rng_normal(&r));
  assert_int_equal(lt_model_set_member(m, member), LT_OK);
  float x[B * IN];
  int32_t y[B];
  batch(x, y, 3);
  const float *logits = lt_model_forward(m, x, B);
  double loss = lt_softmax_xent(m->dz[m->nlayers], NULL, logits, y, NULL, B, OUT, 1.0f);
  lt_model_backward(m, m->dz[m->nlayers], B, m->grad, 0.0f);

  double *th = malloc(n * sizeof(double));
  assert_non_null(th);
  for (size_t i = 0; i < n; i++) th[i] = m->theta[i];
  /* the float forward agrees with the double reference */
  assert_true(fabs(loss - ref_loss(th, nt, member, x, y)) < 1e-4 * (1 + fabs(loss)));
  /* Central differences in double with h = 1e-5: truncation error ~h^2 f''' ~ 1e-10 and
   * rounding ~1e-16 / h = 1e-11, far below the float gradient's own error, which is a few
   * float ulps of sums of O(1) terms over B = 4 rows and a few layers: |err| <~ 1e-5.
   * Tolerance 1e-4 (abs) + 1e-4 (rel). Parameters the active network does not use must
   * have exactly zero gradient and zero finite difference. */
  const double h = 1e-5;
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    double save = th[i];
    th[i] = save + h;
    double lp = ref_loss(th, nt, member, x, y);
    th[i] = save - h;
    double lm = ref_loss(th, nt, member, x, y);
    th[i] = save;
    double fd = (lp - lm) / (2 * h);
    double g = m->grad[i];
    if (fd == 0.0) {
      if (g != 0.0) fail_msg("member %d nt %d: param %zu unused but gradient %g", member, nt, i, g);
      continue;
    }
    nonzero++;
    if (fabs(g - fd) > 1e-4 + 1e-4 * fabs(fd))
      fail_msg("member %d nt %d: param %zu gradient %.8g, finite difference %.8g", member, nt, i,
               g, fd);
  }
  /* every active template, coefficient and bias takes part */
  size_t active = 0;
  for (int l = 0; l < L; l++) {
    int nb = member < 0 ? rl[l].nb : 1;
    active += (size_t)nb * nt; /* coefficients */
    active += (size_t)(member < 0 ? 2 : 1) * nt * rl[l].tr * rl[l].tc;
    active += member < 0 ? (size_t)dims[l + 1] : (size_t)rl[l].tr;
  }
  assert_int_equal(nonzero, (int)active);
  for (size_t i = n; i < m->n_pad; i++) assert_true(m->grad[i] == 0.0f);

  /* beta = 1 accumulates: a second backward doubles the gradient */
  float *g1 = malloc(m->n_pad * sizeof(float));
  assert_non_null(g1);
  memcpy(g1, m->grad, m->n_pad * sizeof(float));
  lt_model_forward(m, x, B);
  lt_softmax_xent(m->dz[m->nlayers], NULL, logits, y, NULL, B, OUT, 1.0f);
  lt_model_backward(m, m->dz[m->nlayers], B, m->grad, 1.0f);
  for (size_t i = 0; i < n; i++) assert_true(fabs(m->grad[i] - 2 * g1[i]) <= 1e-6 * (1 + fabs(g1[i])));
  free(g1);
  free(th);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static void test_grad_full(void **s) {
  (void)s;
  check_grad(2, -1);
  check_grad(3, -1);
}

static void test_grad_members(void **s) {
  (void)s;
  for (int nt = 2; nt <= 3; nt++) {
    check_grad(nt, 0);
    check_grad(nt, 1);
  }
}

/* Coefficients e_k select one template per block (blocks of one set select different
 * templates); the dense model gets those templates as its weight blocks and the same
 * biases. Logits and weight gradients must be identical bit for bit: 1 * t + 0 * u = t
 * exactly in float, and both models then run the same GEMMs on the same values. */
static void test_select_equals_dense(void **s) {
  (void)s;
  lt_ctx *ctx = lt_test_ctx();
  const int nt = 2;
  lt_model *tm = make_model(ctx, LT_MODEL_TEMPLATE, nt, 21);
  lt_model *dm = make_model(ctx, LT_MODEL_DENSE, 0, 22);
  ref_layer rl[L];
  size_t n;
  ref_layout(nt, rl, &n);
  lt_rng r;
  lt_rng_seed(&r, 9, 0, LT_RNG_USER);
  size_t woff = 0; /* dense layout: W [out, in] then b [out], layer after layer */
  size_t dense_w[L];
  for (int l = 0; l < L; l++) {
    const ref_layer *q = &rl[l];
    int in = dims[l], out = dims[l + 1];
    dense_w[l] = woff;
    for (int b = 0; b < q->nb; b++) {
      int k = b / 2; /* blocks 0, 1 select template 0 of their set, blocks 2, 3 template 1 */
      float *c = tm->theta + q->c_off + (size_t)b * nt;
      for (int j = 0; j < nt; j++) c[j] = j == k ? 1.0f : 0.0f;
      const float *T = tm->theta + q->t_off + ((size_t)q->bset[b] * nt + k) * q->tr * q->tc;
      for (int i = 0; i < q->tr; i++)
        for (int j = 0; j < q->tc; j++)
          dm->theta[woff + (size_t)(q->brow[b] * q->tr + i) * in + q->bcol[b] * q->tc + j] =
              T[i * q->tc + j];
    }
    for (int o = 0; o < out; o++) {
      float v = (float)lt_rng_normal(&r);
      tm->theta[q->b_off + o] = v;
      dm->theta[woff + (size_t)in * out + o] = v;
    }
    woff += (size_t)in * out + out;
  }
  float x[B * IN];
  int32_t y[B];
  batch(x, y, 4);
  const float *zt = lt_model_forward(tm, x, B);
  const float *zd = lt_model_forward(dm, x, B);
  assert_memory_equal(zt, zd, sizeof(float) * B * OUT);
  lt_softmax_xent(tm->dz[L], NULL, zt, y, NULL, B, OUT, 1.0f);
  lt_softmax_xent(dm->dz[L], NULL, zd, y, NULL, B, OUT, 1.0f);
  lt_model_backward(tm, tm->dz[L], B, tm->grad, 0.0f);
  lt_model_backward(dm, dm->dz[L], B, dm->grad, 0.0f);
  for (int l = 0; l < L; l++) {
    const ref_layer *q = &rl[l];
    int in = dims[l], out = dims[l + 1];
    for (int b = 0; b < q->nb; b++) {
      int k = b / 2;
      const float *dT = tm->grad + q->t_off + ((size_t)q->bset[b] * nt + k) * q->tr * q->tc;
      for (int i = 0; i < q->tr; i++)
        for (int j = 0; j < q->tc; j++)
          assert_true(dT[i * q->tc + j] ==
                      dm->grad[dense_w[l] + (size_t)(q->brow[b] * q->tr + i) * in +
                               q->bcol[b] * q->tc + j]);
    }
    assert_memory_equal(tm->grad + q->b_off, dm->grad + dense_w[l] + (size_t)in * out,
                        sizeof(float) * out);
  }
  lt_model_destroy(&tm);
  lt_model_destroy(&dm);
  lt_ctx_destroy(&ctx);
}

/* FLOPs of one step from the formula in lethe/grow.h, evaluated here by hand for the
 * 5-6-6-3 model with nt = 2: full width and member 0. */
static void test_flops(void **s) {
  (void)s;
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = make_model(ctx, LT_MODEL_TEMPLATE, 2, 1);
  const double R = 7;
  /* full: layers [6,5], [6,6], [3,6]; assembly blocks: 2 of [3,5], 4 of [3,3], 2 of [3,3] */
  double gemm = 4 * R * (30 + 36 + 18) + 2 * R * (36 + 18) + 2 * R * (6 + 6 + 3);
  double tmpl = 6 * 2 * (2 * 15 + 4 * 9 + 2 * 9);
  assert_true(fabs(lt_grow_step_flops(m, (long)R) - (gemm + tmpl)) < 1e-9);
  assert_int_equal(lt_model_set_member(m, 0), LT_OK); /* [3,5], [3,3], [3,3] */
  gemm = 4 * R * (15 + 9 + 9) + 2 * R * (9 + 9) + 2 * R * (3 + 3 + 3);
  tmpl = 6 * 2 * (15 + 9 + 9);
  assert_true(fabs(lt_grow_step_flops(m, (long)R) - (gemm + tmpl)) < 1e-9);
  lt_model_destroy(&m);
  lt_model *d = make_model(ctx, LT_MODEL_DENSE, 0, 1);
  gemm = 4 * R * (30 + 36 + 18) + 2 * R * (36 + 18) + 2 * R * (6 + 6 + 3);
  assert_true(fabs(lt_grow_step_flops(d, (long)R) - gemm) < 1e-9);
  lt_model_destroy(&d);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_grad_full),
    cmocka_unit_test(test_grad_members),
    cmocka_unit_test(test_select_equals_dense),
    cmocka_unit_test(test_flops),
};

LT_TEST_MPI_MAIN("template", tests)
