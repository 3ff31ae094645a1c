/* Diagonal Fisher (empirical, sampled, batch_mean) against a brute-force
 * reference that every rank computes on its own over the whole data set: one
 * sample at a time, an ordinary backward pass for that sample alone, squared and
 * summed in double. Each rank holds the strided shard r, r+P, ... of the same 37
 * samples, so the empirical reference does not depend on P; the sampled and
 * batch_mean references rebuild each rank's label stream and batches from the
 * documented rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/fisher.h"

enum { NG = 37, IN = 5, H1 = 6, H2 = 4, C = 3, MAXB = 4 };

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_shard sh;
  lt_dataset ds;
  float *xall;    /* [NG, IN] the whole data set, on every rank */
  int32_t *yall;  /* [NG] */
} fixture;

static void sample(float *x, int32_t *y, long g) {
  lt_rng r;
  lt_rng_seed(&r, 777, (uint64_t)g, LT_RNG_USER);
  for (int j = 0; j < IN; j++) x[j] = (float)lt_rng_normal(&r);
  *y = (int32_t)lt_rng_below(&r, C);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->ctx = lt_test_ctx();
  int P = f->ctx->size, me = f->ctx->rank;
  lt_model_cfg cfg = {.in_dim = IN, .nhidden = 2, .hidden = {H1, H2}, .out_dim = C,
                      .act = LT_ACT_TANH, .init = LT_INIT_KAIMING, .max_batch = MAXB,
                      .pad_ranks = P};
  if (lt_model_create(f->ctx, &cfg, &f->m) != LT_OK) return -1;
  /* non-zero biases too: every parameter gets a generic Fisher value */
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (size_t i = 0; i < f->m->n; i++) f->m->theta[i] = (float)(lt_rng_uniform(&r) - 0.5);
  if (lt_shard_init(f->ctx, f->m->n, f->m->n_pad, &f->sh) != LT_OK) return -1;
  f->xall = calloc(NG * IN, sizeof(float));
  f->yall = calloc(NG, sizeof(int32_t));
  for (long g = 0; g < NG; g++) sample(f->xall + g * IN, f->yall + g, g);
  lt_dataset *ds = &f->ds;
  ds->n = (NG - me + P - 1) / P;
  ds->n_global = NG;
  ds->d = IN;
  ds->num_classes = C;
  ds->x = calloc((size_t)ds->n * IN + 1, sizeof(float));
  ds->y = calloc((size_t)ds->n + 1, sizeof(int32_t));
  ds->index = calloc((size_t)ds->n + 1, sizeof(int64_t));
  snprintf(ds->name, sizeof(ds->name), "synthetic");
  for (int j = 0; j < ds->n; j++) {
    long g = me + (long)j * P;
    memcpy(ds->x + (size_t)j * IN, f->xall + g * IN, IN * sizeof(float));
    ds->y[j] = f->yall[g];
    ds->index[j] = g;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  free(f->ds.x);
  free(f->ds.y);
  free(f->ds.index);
  free(f->xall);
  free(f->yall);
  lt_model_destroy(&f->m);
  lt_ctx_destroy(&f->ctx);
  free(f);
  return 0;
}

/* g[n] = gradient of the CE of global sample gi alone at label y (float, model's backward) */
static void one_grad(fixture *f, float *g, long gi, int32_t y) {
  float dl[C];
  const float *lg = lt_model_forward(f->m, f->xall + gi * IN, 1);
  (void)lt_softmax_xent(dl, NULL, lg, &y, NULL, 1, C, 1.0f);
  lt_model_backward(f->m, dl, 1, g, 0.0f);
}

/* Rows of rank r's shard taken when the global count is limited to M (strided: first M). */
static long shard_rows(long M, int r, int P) { return M > r ? (M - r + P - 1) / P : 0; }

/* Reference F[n] in double. */
static void reference(fixture *f, lt_fisher_mode mode, int GB, long max_samples, double *F) {
  int P = f->ctx->size;
  size_t n = f->m->n;
  long M = max_samples > 0 && max_samples < NG ? max_samples : NG;
  float *g = calloc(f->m->n_pad, sizeof(float));
  memset(F, 0, n * sizeof(double));
  if (mode == LT_FISHER_EMPIRICAL) {
    for (long gi = 0; gi < M; gi++) {
      one_grad(f, g, gi, f->yall[gi]);
      for (size_t p = 0; p < n; p++) F[p] += (double)g[p] * g[p] / (double)M;
    }
  } else if (mode == LT_FISHER_SAMPLED) {
    /* rank r draws its labels from (ctx->seed, r, LT_RNG_FISHER), one per row in order */
    for (int r = 0; r < P; r++) {
      lt_rng rng;
      lt_rng_seed(&rng, f->ctx->seed, (uint64_t)r, LT_RNG_FISHER);
      for (long j = 0; j < shard_rows(M, r, P); j++) {
        long gi = r + j * P;
        int32_t y;
        const float *lg = lt_model_forward(f->m, f->xall + gi * IN, 1);
        lt_fisher_sample_labels(&y, &rng, lg, 1, C);
        one_grad(f, g, gi, y);
        for (size_t p = 0; p < n; p++) F[p] += (double)g[p] * g[p] / (double)M;
      }
    }
  } else {
    /* batch k = rows [k B_r, (k+1) B_r) of every shard, B_r = GB/P + (r < GB%P) */
    double *gbar = calloc(n, sizeof(double));
    long K = 0;
    for (int r = 0; r < P; r++) {
      long Br = GB / P + (r < GB % P), kr = (shard_rows(M, r, P) + Br - 1) / Br;
      K = kr > K ? kr : K;
    }
    for (long k = 0; k < K; k++) {
      memset(gbar, 0, n * sizeof(double));
      long G = 0;
      for (int r = 0; r < P; r++) {
        long Br = GB / P + (r < GB % P), nr = shard_rows(M, r, P);
        for (long j = k * Br; j < (k + 1) * Br && j < nr; j++, G++) {
          one_grad(f, g, r + j * P, f->yall[r + j * P]);
          for (size_t p = 0; p < n; p++) gbar[p] += g[p];
        }
      }
      for (size_t p = 0; p < n; p++) F[p] += gbar[p] / G * (gbar[p] / G) / (double)K;
    }
    free(gbar);
  }
  free(g);
}

/* Tolerance: both sides sum float32 per-sample gradients of <= 37 samples of a
 * tiny net (~1e-6 relative error each); batch_mean also squares a mean with
 * cancellation, where an entry's absolute error is ~1e-6 * max|F|. We allow
 * 1e-4 relative + 1e-5 * max|F|: a wrong normaliser (N, G or K), a missed or
 * doubled sample, the wrong label stream or an unsquared gradient gives errors
 * of order |F|. */
static void check(fixture *f, lt_fisher_mode mode, int GB, long max_samples) {
  size_t n = f->m->n;
  double *ref = calloc(n, sizeof(double));
  float *F = calloc(f->sh.slice, sizeof(float));
  for (size_t i = 0; i < f->sh.slice; i++) F[i] = NAN; /* every entry must be written */
  reference(f, mode, GB, max_samples, ref);
  assert_int_equal(lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, mode, GB, max_samples, F), LT_OK);
  double top = 0;
  for (size_t p = 0; p < n; p++) top = fmax(top, ref[p]);
  assert_true(top > 1e-3);
  int bad = 0;
  for (size_t i = 0; i < f->sh.slice; i++) {
    size_t p = f->sh.lo + i;
    double want = p < n ? ref[p] : 0.0;
    if (!(fabs(F[i] - want) <= 1e-4 * want + 1e-5 * top)) {
      if (bad++ < 5)
        fprintf(stderr, "[rank %d] %s GB=%d max=%ld: F[%zu] = %.8g, brute force %.8g\n",
                f->ctx->rank, lt_fisher_mode_name(mode), GB, max_samples, p, (double)F[i], want);
    }
  }
  /* agree first, so that all ranks fail together rather than one leaving the collectives */
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  assert_int_equal(bad, 0);
  free(ref);
  free(F);
}

static void test_empirical(void **state) {
  fixture *f = *state;
  check(f, LT_FISHER_EMPIRICAL, 10, 0); /* chunks min(B_r, max_batch) */
  check(f, LT_FISHER_EMPIRICAL, 3, 0);  /* fewer batch rows than ranks: chunk 1 */
  check(f, LT_FISHER_EMPIRICAL, 64, 30); /* limited to the first 30 samples */
}

static void test_sampled(void **state) {
  fixture *f = *state;
  check(f, LT_FISHER_SAMPLED, 8, 0);
  check(f, LT_FISHER_SAMPLED, 5, 23);
  /* sampled differs from empirical: the labels do come from the model */
  float *a = calloc(f->sh.slice, sizeof(float)), *b = calloc(f->sh.slice, sizeof(float));
  assert_int_equal(lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, LT_FISHER_SAMPLED, 8, 0, a), LT_OK);
  assert_int_equal(lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, LT_FISHER_EMPIRICAL, 8, 0, b), LT_OK);
  double diff = 0;
  for (size_t i = 0; i < f->sh.slice; i++) diff += fabs(a[i] - b[i]);
  MPI_Allreduce(MPI_IN_PLACE, &diff, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  assert_true(diff > 0);
  free(a);
  free(b);
}

static void test_batch_mean(void **state) {
  fixture *f = *state;
  check(f, LT_FISHER_BATCH_MEAN, 8, 0);
  check(f, LT_FISHER_BATCH_MEAN, 6, 0);   /* uneven B_r at 4 ranks: some ranks run out first */
  check(f, LT_FISHER_BATCH_MEAN, 9, 25);  /* limit + uneven */
  check(f, LT_FISHER_BATCH_MEAN, 20, 0);  /* B_r > max_batch: sub-chunks accumulate */
  check(f, LT_FISHER_BATCH_MEAN, 100, 0); /* one batch with everything */
}

/* The sampler against softmax probabilities: 200000 draws from logits
 * (0.5, -1, 2, 0); each frequency within 5 standard errors sqrt(p(1-p)/n) <= 0.0012
 * of its probability. An off-by-one in the inverse CDF or a missing max
 * subtraction/normalisation shifts frequencies by >= 0.05. */
static void test_sampler(void **state) {
  (void)state;
  enum { ND = 200000, K = 4 };
  const float lg[K] = {0.5f, -1.0f, 2.0f, 0.0f};
  double p[K], s = 0;
  for (int c = 0; c < K; c++) s += exp(lg[c]);
  for (int c = 0; c < K; c++) p[c] = exp(lg[c]) / s;
  long cnt[K] = {0};
  lt_rng r;
  lt_rng_seed(&r, 1, 2, LT_RNG_FISHER);
  int32_t y[8];
  float rows[8 * K];
  for (int i = 0; i < 8; i++) memcpy(rows + i * K, lg, sizeof(lg));
  for (int i = 0; i < ND / 8; i++) {
    lt_fisher_sample_labels(y, &r, rows, 8, K);
    for (int j = 0; j < 8; j++) {
      assert_true(y[j] >= 0 && y[j] < K);
      cnt[y[j]]++;
    }
  }
  for (int c = 0; c < K; c++) {
    double fr = (double)cnt[c] / ND, se = sqrt(p[c] * (1 - p[c]) / ND);
    assert_true(fabs(fr - p[c]) <= 5 * se);
  }
  /* huge logits: a certain class is always drawn */
  const float big[3] = {-1e4f, 1e4f, 0.0f};
  for (int i = 0; i < 100; i++) {
    lt_fisher_sample_labels(y, &r, big, 1, 3);
    assert_int_equal(y[0], 1);
  }
}

/* Errors reach every rank without a hang: a bad label on the last rank only,
 * and (at P > 1) a batch_mean global batch smaller than the rank count. */
static void test_errors(void **state) {
  fixture *f = *state;
  float *F = calloc(f->sh.slice, sizeof(float));
  int last = f->ctx->rank == f->ctx->size - 1;
  int32_t keep = f->ds.y[0];
  if (last) f->ds.y[0] = C;
  lt_status st = lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, LT_FISHER_EMPIRICAL, 8, 0, F);
  assert_int_equal(st, LT_ERR_DATA);
  if (last) assert_non_null(strstr(f->ctx->errmsg, "label"));
  f->ds.y[0] = keep;
  lt_error_clear(f->ctx);
  if (f->ctx->size > 1) {
    st = lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, LT_FISHER_BATCH_MEAN, 1, 0, F);
    assert_int_equal(st, LT_ERR_ARG);
    lt_error_clear(f->ctx);
  }
  assert_int_equal(lt_fisher_diag(f->ctx, f->m, &f->sh, &f->ds, LT_FISHER_EMPIRICAL, 0, 0, F),
                   LT_ERR_ARG);
  lt_error_clear(f->ctx);
  assert_string_equal(lt_fisher_mode_name(LT_FISHER_BATCH_MEAN), "batch_mean");
  free(F);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_empirical, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sampled, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batch_mean, setup, teardown),
    cmocka_unit_test(test_sampler),
    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
};

LT_TEST_MPI_MAIN("fisher", tests)
