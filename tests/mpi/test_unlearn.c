/* Unlearning at several rank counts (run at 1, 2, 3 and 4 ranks):
 *
 * - SSD importances (batch_mean by_class and shuffled, empirical) on every
 *   rank's owned slice against a brute-force reference that every rank computes
 *   alone over the whole data set: one sample at a time, an ordinary backward
 *   pass, per-batch means and squares accumulated in double. The batches are
 *   rebuilt from the documented rules (by_class: the samples sorted by (label,
 *   global index); shuffled: ascending global indices permuted by Fisher-Yates
 *   with lt_rng_below from the stream (seed, 0, LT_RNG_USER + 7)), cut into runs
 *   of B. Tolerance 2e-4 relative + 1e-9 absolute: float gradients of a small
 *   tanh network summed over <= 5 rows and P ranks, squared (relative rounding
 *   ~1e-6); a wrong batch composition or normalisation is off by O(1).
 * - The sharded importances equal the single-rank ones: each rank computes them
 *   again with a one-rank context (MPI_COMM_SELF) over the whole data set and
 *   compares its owned slice (same tolerance).
 * - Forget sets: a class selects exactly that class's samples; a random count
 *   selects exactly that many samples, the same global set as the one-rank
 *   selection; a class that does not exist and an empty sub-class set are
 *   errors on every rank naming the value.
 * - The stored I_D: written by P ranks, read back exactly; refused (every rank,
 *   the message naming the file) for another model's hash and for other settings.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "lethe/unlearn.h"

enum { NG = 41, IN = 5, H1 = 6, C = 3, B = 4 };

typedef struct {
  lt_ctx *ctx, *self;
  lt_model *m, *m1;   /* the model on ctx (P ranks) and a copy on self */
  lt_shard sh, sh1;
  lt_dataset ds, all; /* this rank's shard; the whole set */
  float *xall;
  int32_t *yall;
} fixture;

static lt_model *make_model(lt_ctx *ctx, int P) {
  lt_model_cfg cfg = {.in_dim = IN, .nhidden = 1, .hidden = {H1}, .out_dim = C,
                      .act = LT_ACT_TANH, .init = LT_INIT_KAIMING, .max_batch = 3,
                      .pad_ranks = P};
  lt_model *m = NULL;
  if (lt_model_create(ctx, &cfg, &m) != LT_OK) return NULL;
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (size_t i = 0; i < m->n; i++) m->theta[i] = (float)(lt_rng_uniform(&r) - 0.5);
  return m;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->ctx = lt_test_ctx();
  int P = f->ctx->size;
  if (lt_ctx_create(MPI_COMM_SELF, 0, &f->self) != LT_OK) return -1;
  f->m = make_model(f->ctx, P);
  f->m1 = make_model(f->self, P); /* same padding: slices are sub-ranges of the same n_pad */
  if (!f->m || !f->m1) return -1;
  if (lt_shard_init(f->ctx, f->m->n, f->m->n_pad, &f->sh) != LT_OK) return -1;
  if (lt_shard_init(f->self, f->m1->n, f->m1->n_pad, &f->sh1) != LT_OK) return -1;
  f->xall = calloc(NG * IN, sizeof(float));
  f->yall = calloc(NG, sizeof(int32_t));
  lt_rng r;
  lt_rng_seed(&r, 777, 0, LT_RNG_USER);
  for (int i = 0; i < NG * IN; i++) f->xall[i] = (float)lt_rng_normal(&r);
  for (int i = 0; i < NG; i++) f->yall[i] = (int32_t)lt_rng_below(&r, C);
  if (lt_test_shard(&f->ds, f->xall, f->yall, NG, IN, C, f->ctx->rank, P) != 0) return -1;
  if (lt_test_shard(&f->all, f->xall, f->yall, NG, IN, C, 0, 1) != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  lt_test_shard_free(&f->ds);
  lt_test_shard_free(&f->all);
  free(f->xall);
  free(f->yall);
  lt_model_destroy(&f->m);
  lt_model_destroy(&f->m1);
  lt_ctx_destroy(&f->self);
  lt_ctx_destroy(&f->ctx);
  free(f);
  return 0;
}

/* Gradient of sample g's CE alone into gd[n] (double). */
static void sample_grad(fixture *f, long g, double *gd) {
  lt_model *m = f->m1;
  float *gf = calloc(m->n_pad, sizeof(float));
  float *dl = m->dz[m->nlayers];
  const float *logits = lt_model_forward(m, f->xall + g * IN, 1);
  (void)lt_softmax_xent(dl, NULL, logits, f->yall + g, NULL, 1, C, 1.0f);
  lt_model_backward(m, dl, 1, gf, 0.0f);
  for (size_t j = 0; j < m->n; j++) gd[j] = gf[j];
  free(gf);
}

static int cmp_class(const void *a, const void *b, void *ctx) {
  const int32_t *y = ctx;
  long x = *(const long *)a, z = *(const long *)b;
  if (y[x] != y[z]) return y[x] < y[z] ? -1 : 1;
  return (x > z) - (x < z);
}

/* The reference batch order of the documented rules. */
static void reference_order(fixture *f, lt_imp_batching batching, uint64_t seed, long *order) {
  for (long i = 0; i < NG; i++) order[i] = i;
  if (batching == LT_IMP_BY_CLASS) {
    /* insertion sort by (label, index): small n */
    for (long i = 1; i < NG; i++)
      for (long j = i; j > 0 && cmp_class(&order[j - 1], &order[j], f->yall) > 0; j--) {
        long t = order[j];
        order[j] = order[j - 1];
        order[j - 1] = t;
      }
  } else {
    lt_rng r;
    lt_rng_seed(&r, seed, 0, LT_RNG_USER + 7);
    for (long i = NG - 1; i > 0; i--) {
      long j = (long)lt_rng_below(&r, (uint64_t)i + 1);
      long t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }
}

static void reference(fixture *f, lt_importance_kind kind, lt_imp_batching batching,
                      uint64_t seed, double *ref) {
  size_t n = f->m1->n;
  double *g = calloc(n, sizeof(double)), *gb = calloc(n, sizeof(double));
  memset(ref, 0, n * sizeof(double));
  if (kind == LT_IMP_EMPIRICAL) {
    for (long s = 0; s < NG; s++) {
      sample_grad(f, s, g);
      for (size_t j = 0; j < n; j++) ref[j] += g[j] * g[j] / NG;
    }
  } else {
    long order[NG];
    reference_order(f, batching, seed, order);
    long K = (NG + B - 1) / B;
    for (long k = 0; k < K; k++) {
      long lo = k * B, hi = lo + B < NG ? lo + B : NG;
      memset(gb, 0, n * sizeof(double));
      for (long p = lo; p < hi; p++) {
        sample_grad(f, order[p], g);
        for (size_t j = 0; j < n; j++) gb[j] += g[j] / (double)(hi - lo);
      }
      for (size_t j = 0; j < n; j++) ref[j] += gb[j] * gb[j] / (double)K;
    }
  }
  free(g);
  free(gb);
}

static void check_importance(fixture *f, lt_importance_kind kind, lt_imp_batching batching) {
  lt_test_checker ck = {0};
  const uint64_t seed = 9;
  float *I = calloc(f->sh.slice, sizeof(float)), *I1 = calloc(f->sh1.slice, sizeof(float));
  lt_status st = lt_ssd_importance(f->ctx, f->m, &f->sh, &f->ds, kind, batching, B, seed, I);
  lt_test_agree_status(f->ctx, st);
  assert_int_equal(lt_ssd_importance(f->self, f->m1, &f->sh1, &f->all, kind, batching, B, seed, I1),
                   LT_OK);
  size_t n = f->m->n;
  double *ref = calloc(n, sizeof(double));
  reference(f, kind, batching, seed, ref);
  float *reff = calloc(f->sh.slice, sizeof(float));
  size_t cnt = f->sh.lo >= n ? 0 : (f->sh.hi < n ? f->sh.hi : n) - f->sh.lo;
  for (size_t j = 0; j < cnt; j++) reff[j] = (float)ref[f->sh.lo + j];
  char what[96];
  snprintf(what, sizeof(what), "%s/%s vs brute force", lt_importance_name(kind),
           lt_imp_batching_name(batching));
  lt_test_check_close(&ck, what, I, reff, f->sh.slice, 2e-4, 1e-9);
  snprintf(what, sizeof(what), "%s/%s sharded vs one rank", lt_importance_name(kind),
           lt_imp_batching_name(batching));
  lt_test_check_close(&ck, what, I, I1 + f->sh.lo, f->sh.slice, 2e-4, 1e-9);
  double mx = 0;
  for (size_t j = 0; j < n; j++) mx = ref[j] > mx ? ref[j] : mx;
  if (!(mx > 1e-6)) lt_test_fail_at(&ck, "%s: reference is zero (test too weak)", what);
  lt_test_agree(f->ctx->comm, &ck);
  free(I);
  free(I1);
  free(ref);
  free(reff);
}

static void test_importance_by_class(void **state) {
  check_importance(*state, LT_IMP_BATCH_MEAN, LT_IMP_BY_CLASS);
}
static void test_importance_shuffled(void **state) {
  check_importance(*state, LT_IMP_BATCH_MEAN, LT_IMP_SHUFFLED);
}
static void test_importance_empirical(void **state) {
  check_importance(*state, LT_IMP_EMPIRICAL, LT_IMP_BY_CLASS);
}

/* Global indices selected on all ranks, as a 0/1 vector [NG]. */
static void selected_set(lt_ctx *ctx, const lt_dataset *ds, const uint8_t *sel, int *out) {
  int loc[NG] = {0};
  for (int i = 0; i < ds->n; i++) loc[ds->index[i]] = sel[i];
  MPI_Allreduce(loc, out, NG, MPI_INT, MPI_SUM, ctx->comm);
}

static void test_forget_sets(void **state) {
  fixture *f = *state;
  lt_test_checker ck = {0};
  uint8_t *sel = calloc((size_t)f->ds.n + 1, 1), *sel1 = calloc(NG, 1);
  int cls[1] = {1};
  lt_forget_cfg fc = {.kind = LT_FORGET_CLASS, .classes = cls, .nclasses = 1};
  long nf = 0;
  lt_test_agree_status(f->ctx, lt_forget_select(f->ctx, &fc, &f->ds, NULL, sel, &nf));
  int got[NG];
  selected_set(f->ctx, &f->ds, sel, got);
  long want = 0;
  for (int g = 0; g < NG; g++) {
    want += f->yall[g] == 1;
    if (got[g] != (f->yall[g] == 1)) lt_test_fail_at(&ck, "class: sample %d selected %d", g, got[g]);
  }
  if (nf != want) lt_test_fail_at(&ck, "class: n_forget %ld, want %ld", nf, want);
  /* random count: exact, and the same set as one rank's */
  fc = (lt_forget_cfg){.kind = LT_FORGET_RANDOM, .count = 7, .seed = 3};
  lt_test_agree_status(f->ctx, lt_forget_select(f->ctx, &fc, &f->ds, NULL, sel, &nf));
  assert_int_equal(lt_forget_select(f->self, &fc, &f->all, NULL, sel1, &want), LT_OK);
  selected_set(f->ctx, &f->ds, sel, got);
  long tot = 0;
  for (int g = 0; g < NG; g++) {
    tot += got[g];
    if (got[g] != sel1[g]) lt_test_fail_at(&ck, "random: sample %d: %d at P ranks, %d at one", g,
                                           got[g], sel1[g]);
  }
  if (nf != 7 || tot != 7 || want != 7) lt_test_fail_at(&ck, "random: %ld/%ld/%ld, want 7", nf, tot, want);
  lt_test_agree(f->ctx->comm, &ck);
  /* errors on every rank */
  int bad[1] = {7};
  fc = (lt_forget_cfg){.kind = LT_FORGET_CLASS, .classes = bad, .nclasses = 1};
  assert_int_equal(lt_forget_select(f->ctx, &fc, &f->ds, NULL, sel, &nf), LT_ERR_DECK);
  assert_non_null(strstr(f->ctx->errmsg, "class 7 does not exist"));
  lt_error_clear(f->ctx);
  int32_t *grp = calloc((size_t)f->ds.n + 1, sizeof(int32_t));
  int groups[1] = {42};
  fc = (lt_forget_cfg){.kind = LT_FORGET_SUBCLASS, .classes = cls, .nclasses = 1, .groups = groups,
                       .ngroups = 1};
  assert_int_equal(lt_forget_select(f->ctx, &fc, &f->ds, grp, sel, &nf), LT_ERR_DECK);
  assert_non_null(strstr(f->ctx->errmsg, "forget set is empty"));
  lt_error_clear(f->ctx);
  free(grp);
  free(sel);
  free(sel1);
}

static void test_importance_file(void **state) {
  fixture *f = *state;
  char dir[512], path[600];
  assert_int_equal(lt_test_mkdir(dir, sizeof(dir), "unlearn_imp"), 0);
  snprintf(path, sizeof(path), "%s/I_D.h5", dir);
  float *I = calloc(f->sh.slice, sizeof(float)), *J = calloc(f->sh.slice, sizeof(float));
  for (size_t j = 0; j < f->sh.slice; j++)
    I[j] = f->sh.lo + j < f->sh.n ? (float)(f->sh.lo + j) * 0.25f + 1.0f : 0.0f;
  lt_importance_meta meta = {.theta_hash = 0x1234abcdULL, .kind = LT_IMP_BATCH_MEAN,
                             .batching = LT_IMP_BY_CLASS, .batch = 64, .seconds = 1.5};
  snprintf(meta.layout, sizeof(meta.layout), "5-6-3");
  lt_test_agree_status(f->ctx, lt_importance_write(f->ctx, &f->sh, path, &meta, I));
  lt_importance_meta want = meta;
  want.seconds = 0;
  int exists = 0;
  lt_test_agree_status(f->ctx, lt_importance_read(f->ctx, &f->sh, path, &want, J, &exists));
  assert_int_equal(exists, 1);
  assert_float_equal(want.seconds, 1.5, 0);
  lt_test_checker ck = {0};
  lt_test_check_close(&ck, "I_D read back", J, I, f->sh.slice, 0, 0);
  lt_test_agree(f->ctx->comm, &ck);
  want.theta_hash = 0x99;
  assert_int_equal(lt_importance_read(f->ctx, &f->sh, path, &want, J, &exists), LT_ERR_DATA);
  assert_non_null(strstr(f->ctx->errmsg, "belongs to another model"));
  assert_non_null(strstr(f->ctx->errmsg, "I_D.h5"));
  lt_error_clear(f->ctx);
  want = meta;
  want.batching = LT_IMP_SHUFFLED;
  assert_int_equal(lt_importance_read(f->ctx, &f->sh, path, &want, J, &exists), LT_ERR_DATA);
  assert_non_null(strstr(f->ctx->errmsg, "batching = by_class"));
  lt_error_clear(f->ctx);
  snprintf(path, sizeof(path), "%s/none.h5", dir);
  assert_int_equal(lt_importance_read(f->ctx, &f->sh, path, &want, J, &exists), LT_OK);
  assert_int_equal(exists, 0);
  free(I);
  free(J);
  assert_int_equal(lt_test_rmtree(dir), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_importance_by_class, setup, teardown),
    cmocka_unit_test_setup_teardown(test_importance_shuffled, setup, teardown),
    cmocka_unit_test_setup_teardown(test_importance_empirical, setup, teardown),
    cmocka_unit_test_setup_teardown(test_forget_sets, setup, teardown),
    cmocka_unit_test_setup_teardown(test_importance_file, setup, teardown),
};
LT_TEST_MPI_MAIN("unlearn", tests)
