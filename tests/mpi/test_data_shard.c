/* Strided shards of the dataset file, conversion, standardisation, error
 * agreement and the batcher, at 1-4 ranks.
 *
 * Rank 0 writes the test file with plain serial HDF5 calls (independent of the
 * import code). Feature values encode the sample index, so each rank can check
 * every value it got against a closed form. All collectives of a test run
 * before its assertions, so a failing check cannot leave a rank waiting. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lethe/data.h"
#include "testutil.h"

#define N_TRAIN 101
#define D_TRAIN 12 /* x: uint8 [N, 2, 3, 2] */
#define N_TEST 37
#define D_TEST 5 /* x: float32 [N, 5] */
#define NCLASS 10

static char dir[512], good[600], badlab[600];

/* closed forms of the file's contents */
static unsigned train_x(long i, int j) { return (unsigned)((i + 3 * j) % 256); }
static int train_y(long i) { return (int)(i % NCLASS); }
static float test_x(long i, int j) { return (float)i + 0.25f * (float)j; }
static int test_y(long i) { return (int)((i * 3) % NCLASS); }

static void write_str_attr(hid_t file, const char *name, const char *v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  hid_t a = H5Acreate2(file, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &v);
  H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
}

static void write_good(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  static uint8_t x[N_TRAIN * D_TRAIN];
  static int64_t y[N_TRAIN];
  for (long i = 0; i < N_TRAIN; i++) {
    for (int j = 0; j < D_TRAIN; j++) x[i * D_TRAIN + j] = (uint8_t)train_x(i, j);
    y[i] = train_y(i);
  }
  hsize_t xd[4] = {N_TRAIN, 2, 3, 2}, yd[1] = {N_TRAIN};
  lt_test_h5_write(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, xd, x);
  lt_test_h5_write(f, "/train/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, yd, y); /* int64 labels */
  static float tx[N_TEST * D_TEST];
  static uint8_t ty[N_TEST];
  for (long i = 0; i < N_TEST; i++) {
    for (int j = 0; j < D_TEST; j++) tx[i * D_TEST + j] = test_x(i, j);
    ty[i] = (uint8_t)test_y(i);
  }
  hsize_t txd[2] = {N_TEST, D_TEST}, tyd[1] = {N_TEST};
  lt_test_h5_write(f, "/test/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, txd, tx);
  lt_test_h5_write(f, "/test/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, tyd, ty); /* uint8 labels */
  /* a 2-sample split: ranks 2 and 3 get no samples */
  float sx[2 * 3] = {0, 1, 2, 3, 4, 5};
  int32_t sy[2] = {1, 0};
  hsize_t sxd[2] = {2, 3}, syd[1] = {2};
  lt_test_h5_write(f, "/tiny/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, sxd, sx);
  lt_test_h5_write(f, "/tiny/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, syd, sy);
  lt_test_h5_attr_int(f, "num_classes", NCLASS);
  write_str_attr(f, "name", "shardtest");
  H5Fclose(f);
}

/* num_classes = 3, labels i % 3 except y[1] = 4, y[2] = 9 and y[5] = -1: the
 * first bad label is in rank 1's shard when P >= 2, and a larger bad value sits
 * on another rank, so only the owner of the first may report its value */
static void write_badlabels(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  float x[20 * 2];
  int16_t y[20];
  for (int i = 0; i < 20; i++) {
    x[2 * i] = (float)i;
    x[2 * i + 1] = 1.0f;
    y[i] = (int16_t)(i % 3);
  }
  y[1] = 4;
  y[2] = 9;
  y[5] = -1;
  hsize_t xd[2] = {20, 2}, yd[1] = {20};
  lt_test_h5_write(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
  lt_test_h5_write(f, "/train/y", H5T_STD_I16LE, H5T_NATIVE_INT16, 1, yd, y);
  lt_test_h5_attr_int(f, "num_classes", 3);
  H5Fclose(f);
}

static int setup(void **state) {
  (void)state;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  (void)lt_test_mkdir(dir, sizeof(dir), "data_shard");
  snprintf(good, sizeof(good), "%s/good.h5", dir);
  snprintf(badlab, sizeof(badlab), "%s/badlabels.h5", dir);
  if (rank == 0) {
    write_good(good);
    write_badlabels(badlab);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  (void)lt_test_rmtree(dir); /* a leftover scratch directory fails no test */
  return 0;
}

/* Samples of rank r by brute force: i in [0, n) with i % P == r. */
static long brute_count(long n, int r, int P) {
  long c = 0;
  for (long i = 0; i < n; i++) c += (i % P == r);
  return c;
}

/* Gather every rank's index[] to rank 0 and count how often each sample was read. */
static void gather_coverage(const lt_dataset *ds, long n_global, int *counts) {
  int P = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int n = ds->n, *ns = calloc((size_t)P, sizeof(int)), *off = calloc((size_t)P, sizeof(int));
  MPI_Gather(&n, 1, MPI_INT, ns, 1, MPI_INT, 0, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < P; r++) {
    off[r] = total;
    total += ns[r];
  }
  int64_t *all = calloc((size_t)total + 1, sizeof(int64_t));
  MPI_Gatherv(ds->index, n, MPI_INT64_T, all, ns, off, MPI_INT64_T, 0, MPI_COMM_WORLD);
  for (long i = 0; i < n_global; i++) counts[i] = 0;
  if (rank == 0)
    for (int k = 0; k < total; k++)
      if (all[k] >= 0 && all[k] < n_global) counts[all[k]]++;
  free(all);
  free(ns);
  free(off);
}

static void test_shard_uint8(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_dataset *ds = NULL, *raw = NULL;
  lt_data_opts o = {.scale = 1};
  lt_status st = lt_dataset_load(ctx, good, "train", &o, &ds);
  lt_data_opts o0 = {.scale = 0};
  lt_status st0 = lt_dataset_load(ctx, good, "train", &o0, &raw);
  if (st != LT_OK || st0 != LT_OK) lt_error_print(ctx, 1);
  assert_int_equal(st, LT_OK);
  assert_int_equal(st0, LT_OK);
  int counts[N_TRAIN];
  gather_coverage(ds, N_TRAIN, counts);
  if (ctx->rank == 0)
    for (int i = 0; i < N_TRAIN; i++) assert_int_equal(counts[i], 1); /* each sample exactly once */

  assert_int_equal(ds->n, brute_count(N_TRAIN, ctx->rank, ctx->size));
  assert_int_equal(ds->n_global, N_TRAIN);
  assert_int_equal(ds->d, D_TRAIN);
  assert_int_equal(ds->num_classes, NCLASS);
  assert_string_equal(ds->name, "shardtest");
  for (int k = 0; k < ds->n; k++) {
    int64_t i = ds->index[k];
    assert_int_equal(i % ctx->size, ctx->rank); /* strided shard */
    assert_int_equal(ds->y[k], train_y(i));
    for (int j = 0; j < D_TRAIN; j++) {
      /* v / 255 in float: the only rounding is the division's (< 6e-8 relative) */
      assert_float_equal(ds->x[(size_t)k * D_TRAIN + j], train_x(i, j) / 255.0, 1e-7);
      /* unscaled: small integers are exact in float */
      assert_true(raw->x[(size_t)k * D_TRAIN + j] == (float)train_x(i, j));
    }
  }
  lt_dataset_destroy(&ds);
  lt_dataset_destroy(&raw);
  assert_null(ds);
  lt_ctx_destroy(&ctx);
}

static void test_float_split_and_standardise(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *tr = NULL, *te = NULL, *plain = NULL;
  lt_data_opts o = {.scale = 1, .standardize = 1, .mean = 0, .std = 0};
  lt_status s1 = lt_dataset_load(ctx, good, "train", &o, &tr);
  lt_status s2 = lt_dataset_load(ctx, good, "test", &o, &te); /* reuses train's mean/std */
  lt_status s3 = lt_dataset_load(ctx, good, "test", NULL, &plain);
  if (s1 || s2 || s3) lt_error_print(ctx, 1);
  assert_int_equal(s1, LT_OK);
  assert_int_equal(s2, LT_OK);
  assert_int_equal(s3, LT_OK);
  int counts[N_TEST];
  gather_coverage(te, N_TEST, counts);
  if (ctx->rank == 0)
    for (int i = 0; i < N_TEST; i++) assert_int_equal(counts[i], 1);

  /* reference statistics over the whole train split, two-pass in double */
  double mean = 0.0, var = 0.0;
  for (long i = 0; i < N_TRAIN; i++)
    for (int j = 0; j < D_TRAIN; j++) mean += train_x(i, j) / 255.0;
  mean /= (double)N_TRAIN * D_TRAIN;
  for (long i = 0; i < N_TRAIN; i++)
    for (int j = 0; j < D_TRAIN; j++) var += pow(train_x(i, j) / 255.0 - mean, 2);
  var /= (double)N_TRAIN * D_TRAIN;
  /* opts hold float copies: relative rounding <= 6e-8; the one-pass variance in
   * double loses nothing at this scale, so 1e-6 relative is generous */
  assert_float_equal(o.mean, mean, 1e-6 * fabs(mean));
  assert_float_equal(o.std, sqrt(var), 1e-6 * sqrt(var));
  for (int k = 0; k < tr->n; k++)
    for (int j = 0; j < D_TRAIN; j++) {
      double want = (train_x(tr->index[k], j) / 255.0 - o.mean) / o.std;
      /* |want| < 3; float (x - mean) * (1/std) rounds a few times: 1e-5 absolute */
      assert_float_equal(tr->x[(size_t)k * D_TRAIN + j], want, 1e-5);
    }
  for (int k = 0; k < te->n; k++) {
    int64_t i = te->index[k];
    assert_int_equal(te->y[k], test_y(i));
    assert_int_equal(plain->y[k], test_y(i));
    for (int j = 0; j < D_TEST; j++) {
      /* float32 input: no scaling, exact copy */
      assert_true(plain->x[(size_t)k * D_TEST + j] == test_x(i, j));
      double want = ((double)test_x(i, j) - o.mean) / o.std;
      /* |want| up to ~170: a few float roundings, 2e-6 relative */
      assert_float_equal(te->x[(size_t)k * D_TEST + j], want, 2e-6 * fmax(1.0, fabs(want)));
    }
  }
  lt_dataset_destroy(&tr);
  lt_dataset_destroy(&te);
  lt_dataset_destroy(&plain);
  lt_ctx_destroy(&ctx);
}

static void test_rank_without_samples(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_status st = lt_dataset_load(ctx, good, "tiny", NULL, &ds);
  assert_int_equal(st, LT_OK);
  int counts[2];
  gather_coverage(ds, 2, counts);
  if (ctx->rank == 0) {
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 1);
  }
  assert_int_equal(ds->n, brute_count(2, ctx->rank, ctx->size)); /* 0 on ranks 2 and 3 */
  for (int k = 0; k < ds->n; k++) {
    int64_t i = ds->index[k];
    for (int j = 0; j < 3; j++) /* row i of [[0,1,2],[3,4,5]] */
      assert_true(ds->x[3 * k + j] == (float)(3 * i + j));
    assert_int_equal(ds->y[k], i == 0 ? 1 : 0);
  }
  lt_dataset_destroy(&ds);
  lt_ctx_destroy(&ctx);
}

/* Errors: every rank returns an error with a message naming the file; the bad
 * label lies in rank 1's shard, yet every rank (rank 0 too) reports it. */
static void test_errors_agree(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_status st = lt_dataset_load(ctx, badlab, "train", NULL, &ds);
  char msg[LT_ERRMSG];
  snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
  lt_error_clear(ctx);

  char missing[700];
  snprintf(missing, sizeof(missing), "%s/no-such-file.h5", dir);
  lt_status st2 = lt_dataset_load(ctx, missing, "train", NULL, &ds);
  char msg2[LT_ERRMSG];
  snprintf(msg2, sizeof(msg2), "%s", ctx->errmsg);
  lt_error_clear(ctx);

  lt_data_opts o = {.scale = 1, .standardize = 1};
  lt_status st3 = lt_dataset_load(ctx, good, "test", &o, &ds); /* no train statistics */
  lt_error_clear(ctx);
  lt_status st4 = lt_dataset_load(ctx, good, "valid", NULL, &ds); /* no such split */
  char msg4[LT_ERRMSG];
  snprintf(msg4, sizeof(msg4), "%s", ctx->errmsg);
  lt_error_clear(ctx);

  assert_int_equal(st, LT_ERR_DATA);
  assert_null(ds);
  assert_non_null(strstr(msg, badlab));
  assert_non_null(strstr(msg, "y[1] = 4"));
  assert_non_null(strstr(msg, "3 label(s)"));
  assert_int_equal(st2, LT_ERR_IO);
  assert_non_null(strstr(msg2, "does not exist"));
  assert_non_null(strstr(msg2, missing));
  assert_int_equal(st3, LT_ERR_ARG);
  assert_int_equal(st4, LT_ERR_DATA);
  assert_non_null(strstr(msg4, "/valid/x"));
  lt_ctx_destroy(&ctx);
}

#define BATCH 8
#define MAXSTEPS 128

/* The global indices of one epoch's batches (x[.,0] encodes the index when unscaled). */
static long run_epoch(lt_batcher *b, int64_t *seq, int *ok) {
  long k = 0, steps = 0;
  int rows;
  while ((rows = lt_batcher_next(b)) > 0) {
    steps++;
    for (int r = 0; r < rows; r++) {
      int64_t i = (int64_t)b->xb[(size_t)r * D_TRAIN];
      for (int j = 0; j < D_TRAIN; j++)
        if (b->xb[(size_t)r * D_TRAIN + j] != (float)train_x(i, j)) *ok = 0;
      if (b->yb[r] != train_y(i)) *ok = 0;
      seq[k++] = i;
    }
  }
  return steps;
}

static void test_batcher(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx(), *other = NULL;
  assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, 999, &other), LT_OK);
  lt_dataset *ds = NULL;
  lt_data_opts o = {.scale = 0};
  assert_int_equal(lt_dataset_load(ctx, good, "train", &o, &ds), LT_OK);
  const int P = ctx->size, me = ctx->rank;
  lt_batcher *b = NULL, *b2 = NULL, *b3 = NULL;
  assert_int_equal(lt_batcher_create(ctx, ds, BATCH, &b), LT_OK);
  assert_int_equal(lt_batcher_create(ctx, ds, BATCH, &b2), LT_OK);
  assert_int_equal(lt_batcher_create(other, ds, BATCH, &b3), LT_OK);

  /* local batch by dealing the B rows round-robin; steps by brute force */
  long want_steps = MAXSTEPS;
  int want_lb = 0;
  for (int r = 0; r < P; r++) {
    int lb = 0;
    for (int j = 0; j < BATCH; j++) lb += (j % P == r);
    if (r == me) want_lb = lb;
    long s = brute_count(N_TRAIN, r, P) / lb;
    if (s < want_steps) want_steps = s;
  }
  long smin = 0, smax = 0;
  int lbsum = 0;
  MPI_Allreduce(&b->steps_per_epoch, &smin, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&b->steps_per_epoch, &smax, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(&b->local_batch, &lbsum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  /* batch sizes that cannot work fail with LT_ERR_ARG on every rank */
  lt_batcher *bad = NULL;
  lt_status too_big = lt_batcher_create(ctx, ds, 1000, &bad);
  lt_error_clear(ctx);
  lt_status too_small = lt_batcher_create(ctx, ds, P - 1, &bad);
  lt_error_clear(ctx);
  lt_ctx_destroy(&other); /* last collective of the test */

  assert_int_equal(smin, smax);
  assert_int_equal(b->steps_per_epoch, want_steps);
  assert_int_equal(b->local_batch, want_lb);
  assert_int_equal(lbsum, BATCH);
  assert_int_equal(too_big, LT_ERR_ARG);
  assert_int_equal(too_small, LT_ERR_ARG); /* at 1 rank: a batch of 0 */
  assert_null(bad);

  static int64_t e0[N_TRAIN], e1[N_TRAIN], again0[N_TRAIN], again1[N_TRAIN], seed2[N_TRAIN];
  int ok = 1;
  long n_seen = want_steps * want_lb;
  assert_int_equal(run_epoch(b, e0, &ok), want_steps);
  assert_int_equal(lt_batcher_next(b), 0); /* epoch used up */
  lt_batcher_epoch(b, 1);
  assert_int_equal(run_epoch(b, e1, &ok), want_steps);
  assert_true(ok); /* every gathered row equals the dataset row of its index */

  /* each epoch visits distinct samples of this rank's shard */
  for (int e = 0; e < 2; e++) {
    const int64_t *s = e ? e1 : e0;
    for (long k = 0; k < n_seen; k++) {
      assert_int_equal(s[k] % P, me);
      for (long l = 0; l < k; l++) assert_true(s[l] != s[k]);
    }
  }
  /* different epochs, different order (identical with probability < 1/24!) */
  assert_memory_not_equal(e0, e1, (size_t)n_seen * sizeof(int64_t));
  /* same seed, same order; epoch 1 reached directly (a restart) gives epoch 1's order */
  lt_batcher_epoch(b2, 1);
  assert_int_equal(run_epoch(b2, again1, &ok), want_steps);
  assert_memory_equal(e1, again1, (size_t)n_seen * sizeof(int64_t));
  lt_batcher_epoch(b2, 0);
  assert_int_equal(run_epoch(b2, again0, &ok), want_steps);
  assert_memory_equal(e0, again0, (size_t)n_seen * sizeof(int64_t));
  /* seek into the middle of epoch 1 */
  lt_batcher_seek(b2, 1, 3);
  assert_int_equal(run_epoch(b2, again1, &ok), want_steps - 3);
  assert_memory_equal(e1 + 3 * want_lb, again1, (size_t)(n_seen - 3 * want_lb) * sizeof(int64_t));
  /* another seed, another order */
  assert_int_equal(run_epoch(b3, seed2, &ok), want_steps);
  assert_memory_not_equal(e0, seed2, (size_t)n_seen * sizeof(int64_t));
  assert_true(ok);

  lt_batcher_destroy(&b);
  lt_batcher_destroy(&b2);
  lt_batcher_destroy(&b3);
  assert_null(b);
  lt_dataset_destroy(&ds);
  lt_ctx_destroy(&ctx);
}

/* The hold-out: the last n_valid samples by global index, the rest left for training,
 * each sample in exactly one of them with its own values; bad sizes fail on every rank. */
static void test_holdout(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *tr = NULL, *va = NULL;
  lt_data_opts o = {.scale = 0};
  assert_int_equal(lt_dataset_load(ctx, good, "train", &o, &tr), LT_OK);
  const long nv = 23, first = N_TRAIN - nv;
  lt_status st = lt_dataset_holdout(ctx, &tr, nv, &va);
  if (st != LT_OK) lt_error_print(ctx, 1);
  assert_int_equal(st, LT_OK);
  int ct[N_TRAIN], cv[N_TRAIN];
  gather_coverage(tr, N_TRAIN, ct);
  gather_coverage(va, N_TRAIN, cv);
  if (ctx->rank == 0)
    for (int i = 0; i < N_TRAIN; i++) {
      assert_int_equal(ct[i], i < first ? 1 : 0);
      assert_int_equal(cv[i], i < first ? 0 : 1);
    }
  assert_int_equal(tr->n_global, first);
  assert_int_equal(va->n_global, nv);
  assert_int_equal(tr->n + va->n, brute_count(N_TRAIN, ctx->rank, ctx->size));
  assert_int_equal(va->d, D_TRAIN);
  assert_int_equal(va->num_classes, NCLASS);
  assert_int_equal(va->c * va->h * va->w, D_TRAIN);
  const lt_dataset *both[2] = {tr, va};
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < both[s]->n; k++) {
      int64_t i = both[s]->index[k];
      assert_int_equal(i % ctx->size, ctx->rank);
      if (k) assert_true(i > both[s]->index[k - 1]); /* index order kept */
      assert_int_equal(both[s]->y[k], train_y(i));
      for (int j = 0; j < D_TRAIN; j++)
        assert_true(both[s]->x[(size_t)k * D_TRAIN + j] == (float)train_x(i, j));
    }
  /* sizes outside [1, n_global - 1] fail on every rank and leave the dataset whole */
  const long bad[3] = {0, first, -1};
  for (int b = 0; b < 3; b++) {
    lt_dataset *v2 = NULL;
    long keep = tr->n_global;
    assert_int_equal(lt_dataset_holdout(ctx, &tr, bad[b], &v2), LT_ERR_ARG);
    assert_null(v2);
    assert_non_null(tr);
    assert_int_equal(tr->n_global, keep);
    assert_non_null(strstr(ctx->errmsg, "hold-out"));
    lt_error_clear(ctx);
  }
  lt_dataset_destroy(&tr);
  lt_dataset_destroy(&va);
  lt_ctx_destroy(&ctx);
}

static void test_counts(void **state) {
  (void)state;
  for (int P = 1; P <= 7; P++) {
    for (long n = 0; n < 30; n++) {
      long sum = 0;
      for (int r = 0; r < P; r++) {
        assert_int_equal(lt_shard_count(n, r, P), brute_count(n, r, P));
        sum += lt_shard_count(n, r, P);
      }
      assert_int_equal(sum, n);
    }
    for (int B = 1; B < 30; B++) {
      int sum = 0;
      for (int r = 0; r < P; r++) {
        int lb = 0;
        for (int j = 0; j < B; j++) lb += (j % P == r);
        assert_int_equal(lt_local_batch(B, r, P), lb);
        sum += lt_local_batch(B, r, P);
      }
      assert_int_equal(sum, B);
    }
  }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_counts),
    cmocka_unit_test_setup_teardown(test_shard_uint8, setup, teardown),
    cmocka_unit_test_setup_teardown(test_float_split_and_standardise, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rank_without_samples, setup, teardown),
    cmocka_unit_test_setup_teardown(test_errors_agree, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batcher, setup, teardown),
    cmocka_unit_test_setup_teardown(test_holdout, setup, teardown),
};

LT_TEST_MPI_MAIN("data_shard", tests)
