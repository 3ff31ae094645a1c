/* Continual-learning scenarios (split, permuted, rotated, joint) built from the
 * strided shards, their validation errors, and the batcher over task subsets
 * whose sizes differ between ranks, at 1-4 ranks.
 *
 * Rank 0 writes a small dataset file with serial HDF5 calls: train x uint8
 * [N, 1, H, W], test x float32 [N, H, W] (both image layouts), labels from a
 * per-sample hash (so every task's rows are spread unevenly over the ranks).
 * Features are loaded unscaled, so they are small integers (train) or exact
 * binary fractions (test) and every copy is checked for exact equality against
 * a closed form of the sample index. Global checks gather the tasks' sample
 * indices to rank 0. All collectives of a test run before its assertions, so a
 * failing check cannot leave a rank waiting. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lethe/scenario.h"
#include "testutil.h"

#define N_TR 103
#define N_TE 41
#define K 6
#define H 5
#define W 4
#define D (H * W)

static char dir[512], path[600];

/* closed forms of the file's contents */
static unsigned train_x(long i, int j) { return (unsigned)((i * 7 + j * 13) % 251); }
static float test_x(long i, int j) { return (float)i + 0.125f * (float)j; }
static int label(long i, int test) {
  lt_rng r;
  lt_rng_seed(&r, 99 + (uint64_t)test, (uint64_t)i, LT_RNG_USER);
  return (int)lt_rng_below(&r, K);
}
static double src_x(long i, int j, int test) { return test ? test_x(i, j) : train_x(i, j); }

static void write_file(const char *p) {
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  static uint8_t tx[N_TR * D];
  static int32_t ty[N_TR], ey[N_TE];
  static float ex[N_TE * D];
  for (long i = 0; i < N_TR; i++) {
    for (int j = 0; j < D; j++) tx[i * D + j] = (uint8_t)train_x(i, j);
    ty[i] = label(i, 0);
  }
  for (long i = 0; i < N_TE; i++) {
    for (int j = 0; j < D; j++) ex[i * D + j] = test_x(i, j);
    ey[i] = label(i, 1);
  }
  hsize_t txd[4] = {N_TR, 1, H, W}, tyd[1] = {N_TR}, exd[3] = {N_TE, H, W}, eyd[1] = {N_TE};
  lt_test_h5_write(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, txd, tx);
  lt_test_h5_write(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, tyd, ty);
  lt_test_h5_write(f, "/test/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, exd, ex);
  lt_test_h5_write(f, "/test/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, eyd, ey);
  lt_test_h5_attr_int(f, "num_classes", K);
  H5Fclose(f);
}

static int setup(void **state) {
  (void)state;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  (void)lt_test_mkdir(dir, sizeof(dir), "scenario");
  snprintf(path, sizeof(path), "%s/scen.h5", dir);
  if (rank == 0) write_file(path);
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  (void)lt_test_rmtree(dir); /* a leftover scratch directory fails no test */
  return 0;
}

typedef struct {
  lt_ctx *ctx;
  lt_dataset *tr, *te;
} fixture;

static void load(fixture *f) {
  f->ctx = lt_test_ctx();
  lt_data_opts o = {.scale = 0};
  lt_status s1 = lt_dataset_load(f->ctx, path, "train", &o, &f->tr);
  lt_status s2 = lt_dataset_load(f->ctx, path, "test", &o, &f->te);
  if (s1 || s2) lt_error_print(f->ctx, 1);
  assert_int_equal(s1, LT_OK);
  assert_int_equal(s2, LT_OK);
}

static void unload(fixture *f) {
  lt_dataset_destroy(&f->tr);
  lt_dataset_destroy(&f->te);
  lt_ctx_destroy(&f->ctx);
}

/* Collective: how often each global index of [0, n) occurs in the union over
 * the tasks and ranks of the given split's rows (counts on rank 0 only). */
static void union_counts(const lt_scenario *sc, int test, long n, int *counts) {
  int P = 0, me = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  for (long i = 0; i < n; i++) counts[i] = 0;
  int *ns = calloc((size_t)P, sizeof(int)), *off = calloc((size_t)P, sizeof(int));
  for (int t = 0; t < sc->num_tasks; t++) {
    const lt_dataset *ds = test ? sc->tasks[t].test : sc->tasks[t].train;
    MPI_Gather(&ds->n, 1, MPI_INT, ns, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < P; r++) off[r] = total, total += ns[r];
    int64_t *all = calloc((size_t)total + 1, sizeof(int64_t));
    MPI_Gatherv(ds->index, ds->n, MPI_INT64_T, all, ns, off, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (me == 0)
      for (int k = 0; k < total; k++)
        if (all[k] >= 0 && all[k] < n) counts[all[k]]++;
    free(all);
  }
  free(ns);
  free(off);
}

/* 1 when every rank holds the same bytes as rank 0. Collective. */
static int same_on_all_ranks(const void *buf, size_t bytes) {
  unsigned char *r0 = malloc(bytes ? bytes : 1);
  memcpy(r0, buf, bytes);
  MPI_Bcast(r0, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
  int same = memcmp(r0, buf, bytes) == 0, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  free(r0);
  return all;
}

static long sum_all(long v) {
  long s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  return s;
}

/* ---------------------------------------------------------------- loader shape */

static void test_image_shape(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  assert_int_equal(f.tr->d, D);
  assert_int_equal(f.tr->c, 1); /* [N, 1, H, W] */
  assert_int_equal(f.tr->h, H);
  assert_int_equal(f.tr->w, W);
  assert_int_equal(f.te->c, 1); /* [N, H, W] */
  assert_int_equal(f.te->h, H);
  assert_int_equal(f.te->w, W);
  unload(&f);
}

/* ---------------------------------------------------------------- split */

/* Checks of one split scenario against brute force; returns 1 when all hold.
 * Collective (union_counts, sum_all). */
static int check_split(const fixture *f, const lt_scenario *sc, const int *want_order, int T) {
  int ok = 1, me = f->ctx->rank;
  if (sc->num_tasks != T || sc->num_classes != K) return 0;
  const int per = K / T;
  for (int k = 0; k < K; k++) ok &= sc->class_order[k] == want_order[k];
  for (int test = 0; test < 2; test++) {
    const lt_dataset *src = test ? f->te : f->tr;
    const long N = test ? N_TE : N_TR;
    static int counts[N_TR];
    union_counts(sc, test, N, counts);
    if (me == 0) /* every sample of the split in exactly one task on one rank */
      for (long i = 0; i < N; i++) ok &= counts[i] == 1;
    for (int t = 0; t < T; t++) {
      const lt_task *tk = &sc->tasks[t];
      const lt_dataset *ds = test ? tk->test : tk->train;
      ok &= tk->num_task_classes == per;
      uint8_t in_task[K] = {0};
      for (int k = 0; k < per; k++) in_task[want_order[t * per + k]] = 1;
      for (int k = 0; k < per; k++) ok &= tk->classes[k] == want_order[t * per + k];
      for (int c = 0; c < K; c++) ok &= tk->mask[c] == in_task[c];
      /* this rank's rows of the task: its shard's rows with a label of the task, in
       * shard order, copied exactly */
      int k = 0;
      for (int r = 0; r < src->n; r++) {
        long i = src->index[r];
        if (!in_task[label(i, test)]) continue;
        if (k >= ds->n || ds->index[k] != i || ds->y[k] != label(i, test)) {
          ok = 0;
          break;
        }
        for (int j = 0; j < D; j++) ok &= ds->x[(size_t)k * D + j] == (float)src_x(i, j, test);
        k++;
      }
      ok &= k == ds->n;
      for (int r = 0; r < ds->n; r++) ok &= in_task[ds->y[r]];
      /* n_global: the task's samples over the whole file */
      long want = 0;
      for (long i = 0; i < N; i++) want += in_task[label(i, test)];
      ok &= ds->n_global == want && sum_all(ds->n) == want;
      ok &= ds->d == D && ds->num_classes == K && ds->h == H && ds->w == W;
    }
  }
  return ok;
}

static void test_split(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  lt_scenario_cfg cfg;
  lt_scenario *nat = NULL, *given = NULL, *shuf = NULL, *shuf2 = NULL;

  /* natural order, class-IL, 3 tasks of 2 classes */
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_SPLIT;
  cfg.num_tasks = 3;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &nat), LT_OK);
  const int natural[K] = {0, 1, 2, 3, 4, 5};
  int ok_nat = check_split(&f, nat, natural, 3);

  /* a given order, task-IL, 2 tasks of 3 classes */
  const int order[K] = {4, 0, 5, 2, 1, 3};
  cfg.num_tasks = 2;
  cfg.task_il = 1;
  cfg.class_order = order;
  cfg.class_order_len = K;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &given), LT_OK);
  int ok_given = check_split(&f, given, order, 2);

  /* seeded shuffle, 6 tasks of 1 class; and another seed */
  cfg.task_il = 0;
  cfg.class_order = NULL;
  cfg.class_order_len = 0;
  cfg.shuffle_classes = 1;
  cfg.num_tasks = 6;
  cfg.seed = 2024;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &shuf), LT_OK);
  int ok_shuf = check_split(&f, shuf, shuf->class_order, 6);
  int same_order = same_on_all_ranks(shuf->class_order, K * sizeof(int));
  cfg.seed = 2025;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &shuf2), LT_OK);
  int same_order2 = same_on_all_ranks(shuf2->class_order, K * sizeof(int));

  assert_true(ok_nat);
  assert_true(ok_given);
  assert_true(ok_shuf);
  assert_true(same_order); /* rank-independent */
  assert_true(same_order2);
  int seen[K] = {0}; /* the shuffled order is a permutation of 0..K-1 */
  for (int k = 0; k < K; k++) {
    assert_in_range(shuf->class_order[k], 0, K - 1);
    seen[shuf->class_order[k]]++;
  }
  for (int c = 0; c < K; c++) assert_int_equal(seen[c], 1);
  /* it is a shuffle: not the natural order, and another seed gives another one
   * (fixed seeds: each holds or fails deterministically, 1/720 chance of a tie) */
  assert_memory_not_equal(shuf->class_order, natural, sizeof(natural));
  assert_memory_not_equal(shuf->class_order, shuf2->class_order, sizeof(natural));
  /* the shuffle is the scenario stream's block 0, Fisher-Yates (independent loop) */
  {
    lt_rng r;
    lt_rng_seed(&r, 2024, 0, LT_RNG_DATA);
    int o[K];
    for (int k = 0; k < K; k++) o[k] = k;
    for (int i = K; i > 1; i--) {
      int j = (int)lt_rng_below(&r, (uint64_t)i), tmp = o[i - 1];
      o[i - 1] = o[j], o[j] = tmp;
    }
    assert_memory_equal(o, shuf->class_order, sizeof(o));
  }
  /* settings and the training mask */
  assert_int_equal(nat->setting, LT_CL_CLASS_IL);
  assert_null(lt_scenario_train_mask(nat, 0));
  assert_int_equal(given->setting, LT_CL_TASK_IL);
  assert_ptr_equal(lt_scenario_train_mask(given, 1), given->tasks[1].mask);
  assert_null(given->joint_train);
  assert_non_null(strstr(given->tasks[1].train->name, "task 1"));

  lt_scenario_destroy(&nat);
  lt_scenario_destroy(&given);
  lt_scenario_destroy(&shuf);
  lt_scenario_destroy(&shuf2);
  assert_null(nat);
  lt_scenario_destroy(&nat); /* NULL is fine */
  unload(&f);
}

/* ---------------------------------------------------------------- permuted */

static void test_permuted(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  lt_scenario_cfg cfg;
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_PERMUTED;
  cfg.num_tasks = 3;
  cfg.first_identity = 1;
  cfg.seed = 77;
  lt_scenario *sc = NULL, *noid = NULL;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &sc), LT_OK);
  cfg.first_identity = 0;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &noid), LT_OK);
  int same[3], ok = 1;
  long ng[3][2];
  for (int t = 0; t < 3; t++) {
    same[t] = same_on_all_ranks(sc->tasks[t].perm, D * sizeof(uint32_t));
    ng[t][0] = sum_all(sc->tasks[t].train->n);
    ng[t][1] = sum_all(sc->tasks[t].test->n);
  }
  /* features moved: row k, feature j of task t is the source row's feature perm[j] */
  for (int t = 0; t < 3; t++)
    for (int test = 0; test < 2; test++) {
      const lt_dataset *src = test ? f.te : f.tr, *ds = test ? sc->tasks[t].test : sc->tasks[t].train;
      if (ds->n != src->n) {
        ok = 0;
        continue;
      }
      for (int k = 0; k < ds->n; k++) {
        long i = src->index[k];
        ok &= ds->index[k] == i && ds->y[k] == label(i, test);
        for (int j = 0; j < D; j++)
          ok &= ds->x[(size_t)k * D + j] == (float)src_x(i, (int)sc->tasks[t].perm[j], test);
      }
    }
  assert_true(ok);
  for (int t = 0; t < 3; t++) {
    const lt_task *tk = &sc->tasks[t];
    assert_true(same[t]); /* identical on every rank */
    int seen[D] = {0}, fixed = 0; /* a bijection of 0..D-1 */
    for (int j = 0; j < D; j++) {
      assert_in_range(tk->perm[j], 0, D - 1);
      seen[tk->perm[j]]++;
      fixed += tk->perm[j] == (uint32_t)j;
    }
    for (int j = 0; j < D; j++) assert_int_equal(seen[j], 1);
    if (t == 0)
      assert_int_equal(fixed, D); /* task 0: the identity when asked */
    else
      assert_true(fixed < D);
    /* task t >= 1 does not depend on first_identity; task 0 without it is not the identity */
    if (t > 0) assert_memory_equal(tk->perm, noid->tasks[t].perm, D * sizeof(uint32_t));
    /* domain-IL: all classes, mask all ones */
    assert_int_equal(tk->num_task_classes, K);
    for (int c = 0; c < K; c++) assert_int_equal(tk->mask[c], 1);
    assert_int_equal(ng[t][0], N_TR);
    assert_int_equal(tk->train->n_global, N_TR);
    assert_int_equal(ng[t][1], N_TE);
    assert_int_equal(tk->test->n_global, N_TE);
  }
  assert_memory_not_equal(sc->tasks[1].perm, sc->tasks[2].perm, D * sizeof(uint32_t));
  int fixed0 = 0;
  for (int j = 0; j < D; j++) fixed0 += noid->tasks[0].perm[j] == (uint32_t)j;
  assert_true(fixed0 < D);
  assert_int_equal(sc->setting, LT_CL_DOMAIN_IL);
  assert_null(lt_scenario_train_mask(sc, 1));
  lt_scenario_destroy(&sc);
  lt_scenario_destroy(&noid);
  unload(&f);
}

/* ---------------------------------------------------------------- rotated */

/* The kernel itself is checked against an independent computation in
 * tests/unit/test_rotate.c; here: each task's rows are the source rows rotated
 * by the task's angle (0 degrees: unchanged; 180 degrees: reversed pixel order,
 * exact), with every rank's rows, labels and indices kept. */
static void test_rotated(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  const double angles[3] = {0.0, 180.0, 30.0};
  lt_scenario_cfg cfg;
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_ROTATED;
  cfg.num_tasks = 3;
  cfg.angles = angles;
  cfg.num_angles = 3;
  lt_scenario *sc = NULL;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &sc), LT_OK);
  int ok = 1;
  float want[D];
  for (int t = 0; t < 3; t++)
    for (int test = 0; test < 2; test++) {
      const lt_dataset *src = test ? f.te : f.tr, *ds = test ? sc->tasks[t].test : sc->tasks[t].train;
      ok &= sc->tasks[t].angle == angles[t];
      ok &= ds->n == src->n && ds->n_global == (test ? N_TE : N_TR);
      for (int k = 0; k < ds->n && k < src->n; k++) {
        long i = src->index[k];
        ok &= ds->index[k] == i && ds->y[k] == label(i, test);
        const float *x = ds->x + (size_t)k * D;
        for (int j = 0; j < D; j++) {
          if (t == 0) ok &= x[j] == (float)src_x(i, j, test);
          if (t == 1) ok &= x[j] == (float)src_x(i, D - 1 - j, test); /* (H-1-r, W-1-c) */
        }
        if (t == 2) {
          lt_rotate_bilinear(want, src->x + (size_t)k * D, H, W, 30.0, 0.0f);
          ok &= memcmp(want, x, sizeof(want)) == 0;
        }
      }
    }
  assert_true(ok);
  assert_int_equal(sc->setting, LT_CL_DOMAIN_IL);
  lt_scenario_destroy(&sc);
  unload(&f);
}

/* ---------------------------------------------------------------- joint */

static void test_joint(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  lt_scenario_cfg cfg;
  lt_scenario_cfg_default(&cfg); /* joint, one task */
  lt_scenario *j = NULL, *sj = NULL;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &j), LT_OK);
  cfg.kind = LT_SCEN_SPLIT;
  cfg.num_tasks = 3;
  cfg.joint = 1;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &sj), LT_OK);
  long ng = sum_all(sj->joint_train->n);
  int ok = 1;
  const lt_task *tk = &j->tasks[0];
  ok &= j->num_tasks == 1 && tk->train->n == f.tr->n && tk->test->n == f.te->n;
  ok &= tk->train->n_global == N_TR && tk->test->n_global == N_TE;
  ok &= memcmp(tk->train->x, f.tr->x, (size_t)f.tr->n * D * sizeof(float)) == 0;
  ok &= memcmp(tk->test->y, f.te->y, (size_t)f.te->n * sizeof(int32_t)) == 0;
  for (int c = 0; c < K; c++) ok &= tk->mask[c] == 1;
  /* split + joint: the union of the tasks' train rows = this rank's shard, each row once */
  const lt_dataset *u = sj->joint_train;
  ok &= u->n == f.tr->n && u->n_global == N_TR && ng == N_TR;
  int hits[N_TR] = {0};
  for (int k = 0; k < u->n; k++) {
    long i = u->index[k];
    if (i < 0 || i >= N_TR) {
      ok = 0;
      continue;
    }
    hits[i]++;
    ok &= u->y[k] == label(i, 0);
    for (int jj = 0; jj < D; jj++) ok &= u->x[(size_t)k * D + jj] == (float)train_x(i, jj);
  }
  for (int r = 0; r < f.tr->n; r++) ok &= hits[f.tr->index[r]] == 1;
  assert_true(ok);
  assert_int_equal(j->setting, LT_CL_CLASS_IL);
  assert_null(j->joint_train);
  lt_scenario_destroy(&j);
  lt_scenario_destroy(&sj);
  unload(&f);
}

/* ---------------------------------------------------------------- errors */

typedef struct {
  lt_status st;
  char msg[LT_ERRMSG];
} outcome;

static outcome try_create(lt_ctx *ctx, const lt_scenario_cfg *cfg, const lt_dataset *tr,
                          const lt_dataset *te) {
  outcome o;
  lt_scenario *sc = (lt_scenario *)1; /* must come back NULL */
  o.st = lt_scenario_create(ctx, cfg, tr, te, &sc);
  if (sc != NULL) o.st = LT_ERR_INTERNAL;
  snprintf(o.msg, sizeof(o.msg), "%s", ctx->errmsg);
  lt_error_clear(ctx);
  return o;
}

static void test_errors(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  lt_scenario_cfg cfg;
  outcome o[10];
  int n = 0;
  /* split: 4 does not divide 6 classes */
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_SPLIT;
  cfg.num_tasks = 4;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  /* split: class order with a repeat, of the wrong length, and with shuffle */
  const int dup[K] = {0, 1, 2, 3, 4, 4}, big[K] = {0, 1, 2, 3, 4, 6};
  cfg.num_tasks = 2;
  cfg.class_order = dup;
  cfg.class_order_len = K;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  cfg.class_order = big;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  cfg.class_order_len = K - 1;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  /* permuted: T = 0; and a split-only option */
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_PERMUTED;
  cfg.num_tasks = 0;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  cfg.num_tasks = 2;
  cfg.task_il = 1;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  /* rotated: 2 angles for 3 tasks; and on data without an image shape */
  const double ang[2] = {0.0, 45.0};
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_ROTATED;
  cfg.num_tasks = 3;
  cfg.angles = ang;
  cfg.num_angles = 2;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  lt_dataset flat_tr = *f.tr, flat_te = *f.te; /* same rows, shape forgotten: [N, D] */
  flat_tr.c = flat_tr.h = flat_tr.w = 0;
  flat_te.c = flat_te.h = flat_te.w = 0;
  cfg.num_tasks = 2;
  o[n++] = try_create(f.ctx, &cfg, &flat_tr, &flat_te);
  /* joint with 2 tasks */
  lt_scenario_cfg_default(&cfg);
  cfg.num_tasks = 2;
  o[n++] = try_create(f.ctx, &cfg, f.tr, f.te);
  unload(&f);

  const char *want[][2] = {
      {"num_classes = 6", "num_tasks = 4"},
      {"class_order[5] = 4", "permutation of 0..5"},
      {"class_order[5] = 6", "out of range"},
      {"class_order has 5 entries", "num_classes = 6"},
      {"num_tasks = 0", "at least 1"},
      {"task_il", "only to split"},
      {"2 angle(s)", "num_tasks = 3"},
      {"rotated needs images", "[N, H, W]"},
      {"joint", "num_tasks = 2"},
  };
  assert_int_equal(n, (int)(sizeof(want) / sizeof(want[0])));
  for (int k = 0; k < n; k++) {
    if (o[k].st != LT_ERR_ARG || !strstr(o[k].msg, want[k][0]) || !strstr(o[k].msg, want[k][1]))
      fprintf(stderr, "case %d: status %d, message: %s\n", k, (int)o[k].st, o[k].msg);
    assert_int_equal(o[k].st, LT_ERR_ARG);
    assert_non_null(strstr(o[k].msg, want[k][0]));
    assert_non_null(strstr(o[k].msg, want[k][1]));
  }
}

/* ---------------------------------------------------------------- batcher */

/* Drains one epoch: per step the global rows (allreduce) must equal B, every row
 * must belong to the dataset (label and features of its index), and the rows of
 * the epoch must be distinct. Returns the steps; *ok cleared on a violation.
 * Collective (every rank takes the same number of steps, or the test fails). */
static long drain(lt_batcher *b, const lt_dataset *ds, int test, int64_t *seq, int *ok) {
  long steps = 0, k = 0;
  for (;;) {
    int rows = lt_batcher_next(b), any = 0, glob = 0;
    MPI_Allreduce(&rows, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&rows, &glob, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (any == 0) break;
    steps++;
    *ok &= rows == b->local_batch && glob == b->global_batch;
    for (int r = 0; r < rows; r++) {
      /* find the local row holding these features: features are unique per index */
      int found = -1;
      for (int q = 0; q < ds->n && found < 0; q++)
        if (memcmp(ds->x + (size_t)q * ds->d, b->xb + (size_t)r * ds->d,
                   (size_t)ds->d * sizeof(float)) == 0)
          found = q;
      if (found < 0 || b->yb[r] != label(ds->index[found], test)) {
        *ok = 0;
        continue;
      }
      for (long l = 0; l < k; l++) *ok &= seq[l] != ds->index[found];
      seq[k++] = ds->index[found];
    }
  }
  return steps;
}

static void test_batcher_tasks(void **state) {
  (void)state;
  fixture f = {0};
  load(&f);
  const int P = f.ctx->size, me = f.ctx->rank;
  lt_scenario_cfg cfg;
  lt_scenario_cfg_default(&cfg);
  cfg.kind = LT_SCEN_SPLIT;
  cfg.num_tasks = 3;
  lt_scenario *sc = NULL;
  assert_int_equal(lt_scenario_create(f.ctx, &cfg, f.tr, f.te, &sc), LT_OK);
  const int B = P + 2; /* uneven local batches for P >= 3 */
  int ok = 1, uneven = 0;
  long steps[3], smin[3], smax[3], want[3];
  static int64_t seq[N_TR], seq2[N_TR];
  for (int t = 0; t < 3; t++) {
    const lt_dataset *ds = sc->tasks[t].train;
    /* brute force: every rank's count of task rows from the closed-form labels */
    want[t] = N_TR;
    long n_min = N_TR, n_max = 0;
    for (int r = 0; r < P; r++) {
      long n_r = 0;
      for (long i = r; i < N_TR; i += P) n_r += label(i, 0) / 2 == t; /* natural order */
      int lb = 0;
      for (int j = 0; j < B; j++) lb += j % P == r;
      if (n_r / lb < want[t]) want[t] = n_r / lb;
      if (n_r < n_min) n_min = n_r;
      if (n_r > n_max) n_max = n_r;
    }
    uneven |= n_min != n_max;
    lt_batcher *b = NULL;
    lt_status st = lt_batcher_create(f.ctx, ds, B, &b);
    if (st != LT_OK) lt_error_print(f.ctx, 1);
    ok &= st == LT_OK;
    if (st != LT_OK) continue;
    steps[t] = b->steps_per_epoch;
    MPI_Allreduce(&steps[t], &smin[t], 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&steps[t], &smax[t], 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    int e0 = 1;
    ok &= drain(b, ds, 0, seq, &e0) == want[t];
    ok &= e0;
    /* seek into the middle of the epoch: the rest of the same batches */
    lt_batcher_seek(b, 0, 2);
    int e1 = 1;
    ok &= drain(b, ds, 0, seq2, &e1) == want[t] - 2;
    ok &= e1 && memcmp(seq + 2 * b->local_batch, seq2,
                       (size_t)(want[t] - 2) * (size_t)b->local_batch * sizeof(int64_t)) == 0;
    lt_batcher_destroy(&b);
  }
  /* the scenario-wide check accepts B */
  lt_status chk = lt_scenario_check_batch(f.ctx, sc, B);
  /* a global batch larger than a task: every rank fails, naming task and batch */
  const int huge = 2 * N_TR;
  lt_batcher *bad = NULL;
  lt_status st_bad = lt_batcher_create(f.ctx, sc->tasks[1].train, huge, &bad);
  char msg_bad[LT_ERRMSG];
  snprintf(msg_bad, sizeof(msg_bad), "%s", f.ctx->errmsg);
  lt_error_clear(f.ctx);
  lt_status chk_bad = lt_scenario_check_batch(f.ctx, sc, huge);
  char msg_chk[LT_ERRMSG];
  snprintf(msg_chk, sizeof(msg_chk), "%s", f.ctx->errmsg);
  lt_error_clear(f.ctx);

  assert_true(ok);
  assert_int_equal(chk, LT_OK);
  for (int t = 0; t < 3; t++) {
    assert_int_equal(smin[t], smax[t]); /* equal on every rank */
    assert_int_equal(steps[t], want[t]);
  }
  if (P >= 2) assert_true(uneven); /* the case the batcher had to learn */
  assert_int_equal(st_bad, LT_ERR_ARG);
  assert_null(bad);
  char needle[64];
  snprintf(needle, sizeof(needle), "global batch size %d", huge);
  assert_non_null(strstr(msg_bad, needle));
  assert_non_null(strstr(msg_bad, "task 1"));
  snprintf(needle, sizeof(needle), "%ld samples", sc->tasks[1].train->n_global);
  assert_non_null(strstr(msg_bad, needle));
  assert_int_equal(chk_bad, LT_ERR_ARG);
  assert_non_null(strstr(msg_chk, "task 0")); /* the first task that cannot fit */
  snprintf(needle, sizeof(needle), "batch size %d", huge);
  assert_non_null(strstr(msg_chk, needle));
  (void)me;
  lt_scenario_destroy(&sc);
  unload(&f);
}

/* In-memory datasets of very different sizes per rank (n_r = 9 + 13 r), and one
 * where the last rank holds nothing. */
static void make_rows(lt_dataset *ds, int n) {
  memset(ds, 0, sizeof(*ds));
  ds->n = n;
  ds->d = 2;
  ds->num_classes = K;
  ds->x = calloc((size_t)(2 * n + 1), sizeof(float));
  ds->y = calloc((size_t)n + 1, sizeof(int32_t));
  ds->index = calloc((size_t)n + 1, sizeof(int64_t));
  snprintf(ds->name, sizeof(ds->name), "rows");
}

static void test_batcher_uneven_counts(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  const int P = ctx->size, me = ctx->rank;
  lt_dataset ds, empty;
  make_rows(&ds, 9 + 13 * me);
  make_rows(&empty, me == P - 1 ? 0 : 50);
  ds.n_global = sum_all(ds.n);
  empty.n_global = sum_all(empty.n);
  const int B = 2 * P + 1;
  long want = 1L << 30;
  for (int r = 0; r < P; r++) { /* brute force over the closed-form sizes */
    int lb = 0;
    for (int j = 0; j < B; j++) lb += j % P == r;
    long s = (9 + 13 * r) / lb;
    if (s < want) want = s;
  }
  lt_batcher *b = NULL, *bad = NULL;
  lt_status st = lt_batcher_create(ctx, &ds, B, &b);
  long steps = st == LT_OK ? b->steps_per_epoch : -1, smin = 0, smax = 0;
  int lb = st == LT_OK ? b->local_batch : 0, lbsum = 0;
  MPI_Allreduce(&steps, &smin, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&steps, &smax, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(&lb, &lbsum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  long taken = 0;
  if (st == LT_OK)
    while (lt_batcher_next(b) > 0) taken++;
  lt_status st_empty = lt_batcher_create(ctx, &empty, P, &bad);
  char msg[LT_ERRMSG];
  snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
  lt_error_clear(ctx);
  lt_ctx_destroy(&ctx);

  assert_int_equal(st, LT_OK);
  assert_int_equal(smin, smax);
  assert_int_equal(steps, want);
  assert_int_equal(taken, want);
  assert_int_equal(lbsum, B);
  assert_int_equal(st_empty, LT_ERR_ARG); /* every rank, not only the empty one */
  assert_null(bad);
  char needle[64];
  snprintf(needle, sizeof(needle), "rank %d holds 0 samples", P - 1);
  assert_non_null(strstr(msg, needle));
  lt_batcher_destroy(&b);
  free(ds.x), free(ds.y), free(ds.index);
  free(empty.x), free(empty.y), free(empty.index);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_image_shape, setup, teardown),
    cmocka_unit_test_setup_teardown(test_split, setup, teardown),
    cmocka_unit_test_setup_teardown(test_permuted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rotated, setup, teardown),
    cmocka_unit_test_setup_teardown(test_joint, setup, teardown),
    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batcher_tasks, setup, teardown),
    cmocka_unit_test(test_batcher_uneven_counts),
};

LT_TEST_MPI_MAIN("scenario", tests)
