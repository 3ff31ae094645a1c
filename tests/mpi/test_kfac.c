/* K-FAC factors against brute-force sums over single samples, which every rank
 * computes on its own over the whole data set: for each sample alone, a forward
 * pass (its input a of each layer, a 1 appended) and an ordinary backward pass
 * of its CE (scale 1), whose bias gradient is that sample's pre-activation
 * gradient g (db = g for one sample); A = mean a a^T, G = mean g g^T, summed in
 * double. Each rank holds the strided shard r, r+P, ... of the same 37 samples,
 * so the empirical reference does not depend on P; the sampled reference
 * rebuilds each rank's label stream from the documented rule. Also the damping
 * formulas (closed form) and the damped inverses and their Cholesky factors
 * from ScaLAPACK (products against the identity).
 *
 * Tolerance: the factors are sums of products of float32 activations and
 * gradients; the library computes them in chunks of rows, the reference one row
 * at a time, and BLIS's float GEMM rounds a row differently in a batch than
 * alone (~1e-6 relative). We allow 1e-5 * max|factor|: a missing bias column,
 * a wrong normaliser, a missed or doubled sample, the gradient of the mean
 * instead of each sample's, or the wrong label stream give errors of order
 * the factor itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/fisher.h"
#include "lethe/kfac.h"

enum { NG = 37, IN = 5, H1 = 6, H2 = 4, C = 3, MAXB = 4, L = 3 };

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_dataset ds;
  float *xall;
  int32_t *yall;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->ctx = lt_test_ctx();
  int P = f->ctx->size, me = f->ctx->rank;
  lt_model_cfg cfg = {.in_dim = IN, .nhidden = 2, .hidden = {H1, H2}, .out_dim = C,
                      .act = LT_ACT_TANH, .init = LT_INIT_KAIMING, .max_batch = MAXB,
                      .pad_ranks = P};
  if (lt_model_create(f->ctx, &cfg, &f->m) != LT_OK) return -1;
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (size_t i = 0; i < f->m->n; i++) f->m->theta[i] = (float)(lt_rng_uniform(&r) - 0.5);
  f->xall = calloc(NG * IN, sizeof(float));
  f->yall = calloc(NG, sizeof(int32_t));
  for (long g = 0; g < NG; g++) {
    lt_rng_seed(&r, 777, (uint64_t)g, LT_RNG_USER);
    for (int j = 0; j < IN; j++) f->xall[g * IN + j] = (float)lt_rng_normal(&r);
    f->yall[g] = (int32_t)lt_rng_below(&r, C);
  }
  if (lt_test_shard(&f->ds, f->xall, f->yall, NG, IN, C, me, P) != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  lt_test_shard_free(&f->ds);
  free(f->xall);
  free(f->yall);
  lt_model_destroy(&f->m);
  lt_ctx_destroy(&f->ctx);
  free(f);
  return 0;
}

/* Brute-force reference: A[l] [(in+1)^2], G[l] [out^2], row-major, means over the first M samples. */
static void reference(fixture *f, int sampled, long M, double **A, double **G) {
  lt_model *m = f->m;
  int P = f->ctx->size;
  float *grad = calloc(m->n_pad, sizeof(float)), a[16];
  for (int l = 0; l < L; l++) {
    int da = m->layer[l].in + 1, dg = m->layer[l].out;
    memset(A[l], 0, (size_t)da * da * sizeof(double));
    memset(G[l], 0, (size_t)dg * dg * sizeof(double));
  }
  for (int r = 0; r < P; r++) {
    lt_rng rng;
    lt_rng_seed(&rng, f->ctx->seed, (uint64_t)r, LT_RNG_FISHER);
    for (long gi = r; gi < M; gi += P) {
      const float *lg = lt_model_forward(m, f->xall + gi * IN, 1);
      int32_t y = f->yall[gi];
      if (sampled) lt_fisher_sample_labels(&y, &rng, lg, 1, C);
      /* inputs of each layer, before the backward overwrites anything */
      float acts[L][16];
      for (int l = 0; l < L; l++) memcpy(acts[l], m->act[l], (size_t)m->layer[l].in * sizeof(float));
      float dl[C];
      (void)lt_softmax_xent(dl, NULL, lg, &y, NULL, 1, C, 1.0f);
      lt_model_backward(m, dl, 1, grad, 0.0f);
      for (int l = 0; l < L; l++) {
        int in = m->layer[l].in, da = in + 1, dg = m->layer[l].out;
        memcpy(a, acts[l], (size_t)in * sizeof(float));
        a[in] = 1.0f;
        const float *g = grad + m->layer[l].b_off;
        for (int i = 0; i < da; i++)
          for (int j = 0; j < da; j++) A[l][i * da + j] += (double)a[i] * a[j] / (double)M;
        for (int i = 0; i < dg; i++)
          for (int j = 0; j < dg; j++) G[l][i * dg + j] += (double)g[i] * g[j] / (double)M;
      }
    }
  }
  free(grad);
}

static void compare(lt_test_checker *c, const char *what, int l, const double *got,
                    const double *want, int n) {
  double mx = 0.0;
  for (int i = 0; i < n * n; i++) mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
  if (!(mx > 0.0)) lt_test_fail_at(c, "%s layer %d: reference is zero", what, l);
  for (int i = 0; i < n * n && !c->bad; i++)
    if (!(fabs(got[i] - want[i]) <= 1e-5 * mx))
      lt_test_fail_at(c, "%s layer %d: entry (%d, %d) = %.9g, brute force %.9g", what, l, i / n,
                      i % n, got[i], want[i]);
}

static void check_mode(fixture *f, int sampled, long max_samples, int GB) {
  lt_ctx *ctx = f->ctx;
  lt_kfac *k = NULL;
  lt_test_agree_status(ctx, lt_kfac_create(ctx, f->m, &k));
  lt_test_agree_status(ctx, lt_kfac_compute(ctx, f->m, &f->ds, sampled, GB, max_samples, k));
  double *A[L], *G[L];
  for (int l = 0; l < L; l++) {
    A[l] = calloc((size_t)k->da[l] * k->da[l], sizeof(double));
    G[l] = calloc((size_t)k->dg[l] * k->dg[l], sizeof(double));
  }
  long M = max_samples > 0 && max_samples < NG ? max_samples : NG;
  reference(f, sampled, M, A, G);
  lt_test_checker c = {0};
  char what[64];
  snprintf(what, sizeof(what), "%s M %ld GB %d: A", sampled ? "sampled" : "empirical", M, GB);
  for (int l = 0; l < L; l++) compare(&c, what, l, k->A[l], A[l], k->da[l]);
  what[strlen(what) - 1] = 'G';
  for (int l = 0; l < L; l++) compare(&c, what, l, k->G[l], G[l], k->dg[l]);
  /* bias entry of A is the mean of 1 * 1 = 1 exactly */
  for (int l = 0; l < L && !c.bad; l++) {
    int da = k->da[l];
    if (fabs(k->A[l][(size_t)da * da - 1] - 1.0) > 1e-12)
      lt_test_fail_at(&c, "A[%d] bias-bias entry %.17g, want 1", l, k->A[l][(size_t)da * da - 1]);
  }
  lt_test_agree(ctx->comm, &c);
  for (int l = 0; l < L; l++) free(A[l]), free(G[l]);
  lt_kfac_destroy(&k);
}

static void test_empirical(void **state) {
  fixture *f = *state;
  check_mode(f, 0, 0, 8);
  check_mode(f, 0, 13, 3); /* first 13 samples, global batch smaller than 4 ranks */
}

static void test_sampled(void **state) {
  fixture *f = *state;
  check_mode(f, 1, 0, 8);
}

/* Damping closed form; damped inverses and the Cholesky factors of the inverses. */
static void test_damping_inverses(void **state) {
  fixture *f = *state;
  lt_ctx *ctx = f->ctx;
  lt_kfac *k = NULL;
  lt_test_agree_status(ctx, lt_kfac_create(ctx, f->m, &k));
  lt_test_agree_status(ctx, lt_kfac_compute(ctx, f->m, &f->ds, 0, 8, 0, k));
  double eps = 1e-2;
  lt_test_checker c = {0};
  for (int l = 0; l < L; l++) {
    int da = k->da[l], dg = k->dg[l];
    double ta = 0, tg = 0, addA, addG;
    for (int i = 0; i < da; i++) ta += k->A[l][i * da + i];
    for (int i = 0; i < dg; i++) tg += k->G[l][i * dg + i];
    double pi = sqrt((ta / da) / (tg / dg));
    lt_kfac_damping(k, l, eps, LT_KFAC_DAMP_PI, &addA, &addG);
    if (fabs(addA - pi * 0.1) > 1e-12 * addA || fabs(addG - 0.1 / pi) > 1e-12 * addG ||
        fabs(addA * addG - eps) > 1e-14)
      lt_test_fail_at(&c, "layer %d: pi damping %g, %g; want %g, %g", l, addA, addG, pi * 0.1,
                      0.1 / pi);
    lt_kfac_damping(k, l, eps, LT_KFAC_DAMP_PLAIN, &addA, &addG);
    if (addA != sqrt(eps) || addG != sqrt(eps))
      lt_test_fail_at(&c, "layer %d: plain damping %g, %g", l, addA, addG);
  }
  double *Ai[L], *Gi[L], *CA[L], *CG[L];
  for (int l = 0; l < L; l++) {
    Ai[l] = calloc((size_t)k->da[l] * k->da[l], sizeof(double));
    CA[l] = calloc((size_t)k->da[l] * k->da[l], sizeof(double));
    Gi[l] = calloc((size_t)k->dg[l] * k->dg[l], sizeof(double));
    CG[l] = calloc((size_t)k->dg[l] * k->dg[l], sizeof(double));
  }
  lt_pgrid *g = NULL;
  lt_test_agree_status(ctx, lt_pgrid_create(ctx, 0, 0, &g));
  lt_test_agree_status(ctx, lt_kfac_inverses(ctx, k, g, 2, eps, LT_KFAC_DAMP_PI, Ai, Gi, CA, CG));
  /* (X + add I) X^-1 = I and C C^T = X^-1, C lower; tolerance: cond <= ~1e3 here, 1e-9 */
  for (int l = 0; l < L && !c.bad; l++) {
    double addv[2];
    lt_kfac_damping(k, l, eps, LT_KFAC_DAMP_PI, &addv[0], &addv[1]);
    const double *X[2] = {k->A[l], k->G[l]}, *Xi[2] = {Ai[l], Gi[l]}, *Cx[2] = {CA[l], CG[l]};
    int dims[2] = {k->da[l], k->dg[l]};
    for (int t = 0; t < 2; t++) {
      int n = dims[t];
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
          double s = 0.0, cc = 0.0;
          for (int q = 0; q < n; q++) {
            s += (X[t][i * n + q] + (i == q ? addv[t] : 0.0)) * Xi[t][q * n + j];
            cc += Cx[t][i * n + q] * Cx[t][j * n + q];
          }
          if (fabs(s - (i == j)) > 1e-9)
            lt_test_fail_at(&c, "layer %d factor %d: (X + d I) X^-1 [%d][%d] = %g", l, t, i, j, s);
          if (fabs(cc - Xi[t][i * n + j]) > 1e-9 * (1 + fabs(Xi[t][i * n + j])))
            lt_test_fail_at(&c, "layer %d factor %d: C C^T [%d][%d] = %g, inverse %g", l, t, i, j,
                            cc, Xi[t][i * n + j]);
          if (j > i && Cx[t][i * n + j] != 0.0)
            lt_test_fail_at(&c, "layer %d factor %d: C not lower at [%d][%d]", l, t, i, j);
        }
    }
  }
  lt_test_agree(ctx->comm, &c);
  lt_pgrid_destroy(&g);
  for (int l = 0; l < L; l++) free(Ai[l]), free(Gi[l]), free(CA[l]), free(CG[l]);
  lt_kfac_destroy(&k);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_empirical, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sampled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damping_inverses, setup, teardown),
  };
  return lt_test_mpi_main(argc, argv, "kfac", tests, sizeof(tests) / sizeof(tests[0]));
}
