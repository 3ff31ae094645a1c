/* Snapshots (lt_ckpt_*) at 1-4 ranks: write, read back bit for bit, reshard onto
 * sub-communicators of other sizes, LATEST and pruning, refused files.
 *
 * The state is a closed form: element i of global vector v (theta: v = 0, the
 * optimizer's states: v = 1, 2) is val(v, i), a float made from a hash of (v, i)
 * that this file computes itself. Every rank can therefore check any slice it
 * reads against the global vectors, whatever rank count wrote the file; the
 * comparisons are exact (memcmp-equal floats), because a snapshot stores the
 * float32 bits and nothing may change them.
 *
 * The hashes printed by lethe are checked against an FNV-1a written here from
 * its definition (and lt_fnv1a64 against published test vectors).
 *
 * Checks record failures locally and all ranks agree before asserting, so a
 * failing rank never leaves the others in a collective. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lethe/checkpoint.h"
#include "testutil.h"

#define IN 7
#define OUT 3
#define NSTATE 2 /* Adam: exp_avg, exp_avg_sq */
#define NREP 5   /* a replicated float64 table */

/* ------------------------------------------------------------ closed forms */

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* element i of global vector v: a float in [-1, 1) with 24 random bits */
static float val(int v, size_t i) {
  return (float)((double)(mix(((uint64_t)v << 40) ^ i) >> 40) / (double)(1 << 23) - 1.0);
}

static double rep_val(int k) { return 1.0 / (k + 3.0); }

/* FNV-1a from its definition: offset basis 14695981039346656037, prime 2^40 + 2^8 + 0xb3. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}
#define FNV_BASIS 14695981039346656037ULL

/* ------------------------------------------------------------ checks */

static void status_ok(lt_test_checker *c, lt_ctx *ctx, lt_status st, const char *what) {
  if (st != LT_OK) lt_test_fail_at(c, "%s failed: %s", what, ctx->errmsg);
}

/* ------------------------------------------------------------ a run's state */

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_shard sh;
  lt_optim *opt;
  lt_ckpt *ck;
  double table[NREP];
  lt_rng rng;
} state;

/* Model IN-hidden-OUT at ctx's rank count, Adam state, registry. fill: 1 puts the
 * closed forms in, 0 leaves zeros (a fresh run to restore into). */
static lt_status build(lt_ctx *ctx, const int *hidden, int nhidden, int fill, state *s) {
  memset(s, 0, sizeof(*s));
  s->ctx = ctx;
  lt_model_cfg mc = {.in_dim = IN, .nhidden = nhidden, .out_dim = OUT, .act = LT_ACT_RELU,
                     .init = LT_INIT_KAIMING, .max_batch = 4, .pad_ranks = ctx->size};
  for (int i = 0; i < nhidden; i++) mc.hidden[i] = hidden[i];
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &s->m));
  LT_CHECK(ctx, lt_shard_init(ctx, s->m->n, s->m->n_pad, &s->sh));
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = LT_OPT_ADAM;
  LT_CHECK(ctx, lt_optim_create(ctx, &oc, s->sh.lo, s->sh.hi, &s->opt));
  const size_t n = s->m->n, lo = s->sh.lo, own = s->sh.hi - s->sh.lo;
  for (size_t i = 0; i < s->m->n_pad; i++) s->m->theta[i] = fill && i < n ? val(0, i) : 0.0f;
  for (int k = 0; k < NSTATE; k++) {
    float *st = lt_optim_state(s->opt, k);
    for (size_t j = 0; j < own; j++) st[j] = fill && lo + j < n ? val(1 + k, lo + j) : 0.0f;
  }
  for (int k = 0; k < NREP; k++) s->table[k] = fill ? rep_val(k) : 0.0;
  s->rng.key = fill ? 1000u + (uint64_t)ctx->rank : 777u;
  s->rng.ctr = fill ? 3u * (uint64_t)ctx->rank : 5u;
  lt_ckpt_info info = {.deck_text = "[run]\nseed = 1\n", .blis_kernels = "test", .blis_threads = 1};
  LT_CHECK(ctx, lt_ckpt_create(ctx, &s->sh, &info, &s->ck));
  lt_ckpt_layer layers[LT_MAX_LAYERS];
  int nl = lt_ckpt_model_layout(s->m, layers, LT_MAX_LAYERS);
  LT_CHECK(ctx, lt_ckpt_set_layout(s->ck, layers, nl));
  LT_CHECK(ctx, lt_ckpt_add_params(s->ck, s->m->theta));
  LT_CHECK(ctx, lt_ckpt_add_optim(s->ck, s->opt));
  LT_CHECK(ctx, lt_ckpt_add_replicated(s->ck, "/strategy/test/table", LT_CKPT_F64, s->table, NREP));
  LT_CHECK(ctx, lt_ckpt_add_rng(s->ck, "test", &s->rng));
  return LT_OK;
}

static void destroy(state *s) {
  lt_ckpt_destroy(&s->ck);
  lt_optim_destroy(&s->opt);
  lt_model_destroy(&s->m);
}

static const int hidden_ab[2] = {5, 4};

static lt_ckpt_cursor sample_cursor(void) {
  return (lt_ckpt_cursor){.task = 2, .epoch = 3, .step = 4, .global_step = 57, .samples = 1234,
                          .optim_steps = 57, .epoch_loss_sum = 0.1 + 1.0 / 3.0,
                          .epoch_correct = 17, .epoch_rows = 40, .epoch_time = 2.5,
                          .train_time = 8.25, .test_acc = NAN, .test_loss = 0.75};
}

/* The restored state equals the closed forms on this rank's layout; rng_kept: the
 * per-rank stream must be the written one (same rank count) or untouched. */
static void check_state(lt_test_checker *c, const state *s, int written_ranks) {
  const size_t n = s->m->n, lo = s->sh.lo, own = s->sh.hi - s->sh.lo;
  for (size_t i = 0; i < s->m->n_pad && !c->bad; i++) {
    float want = i < n ? val(0, i) : 0.0f;
    if (memcmp(&s->m->theta[i], &want, sizeof(float)) != 0)
      lt_test_fail_at(c, "theta[%zu] = %.9g, expected %.9g (n = %zu)", i, (double)s->m->theta[i],
                      (double)want, n);
  }
  for (int k = 0; k < NSTATE && !c->bad; k++) {
    const float *st = lt_optim_state(s->opt, k);
    for (size_t j = 0; j < own && !c->bad; j++) {
      float want = lo + j < n ? val(1 + k, lo + j) : 0.0f;
      if (memcmp(&st[j], &want, sizeof(float)) != 0)
        lt_test_fail_at(c, "state %d element %zu (global %zu) = %.9g, expected %.9g", k, j, lo + j,
                        (double)st[j], (double)want);
    }
  }
  for (int k = 0; k < NREP && !c->bad; k++)
    if (s->table[k] != rep_val(k))
      lt_test_fail_at(c, "table[%d] = %g, expected %g", k, s->table[k], rep_val(k));
  int same = written_ranks == s->ctx->size;
  uint64_t key = same ? 1000u + (uint64_t)s->ctx->rank : 777u, ctr = same ? 3u * (uint64_t)s->ctx->rank : 5u;
  if (!c->bad && (s->rng.key != key || s->rng.ctr != ctr))
    lt_test_fail_at(c, "rng (%llu, %llu), expected (%llu, %llu) (written at %d ranks, read at %d)",
                    (unsigned long long)s->rng.key, (unsigned long long)s->rng.ctr,
                    (unsigned long long)key, (unsigned long long)ctr, written_ranks, s->ctx->size);
}

static void check_cursor(lt_test_checker *c, const lt_ckpt_cursor *a) {
  lt_ckpt_cursor b = sample_cursor();
  if (a->task != b.task || a->epoch != b.epoch || a->step != b.step ||
      a->global_step != b.global_step || a->samples != b.samples ||
      a->optim_steps != b.optim_steps || a->epoch_loss_sum != b.epoch_loss_sum ||
      a->epoch_correct != b.epoch_correct || a->epoch_rows != b.epoch_rows ||
      a->epoch_time != b.epoch_time || a->train_time != b.train_time || !isnan(a->test_acc) ||
      a->test_loss != b.test_loss)
    lt_test_fail_at(c, "cursor differs: epoch %ld step %ld global %ld loss sum %.17g", a->epoch,
                    a->step, a->global_step, a->epoch_loss_sum);
}

/* Hashes from the definitions (checkpoint.h) over the closed forms at Q ranks. */
static void expected_hashes(size_t n, size_t n_pad, int Q, uint64_t *th, uint64_t *sh) {
  float *g = malloc(n * sizeof(float));
  uint64_t *per = malloc((size_t)Q * sizeof(uint64_t));
  for (size_t i = 0; i < n; i++) g[i] = val(0, i);
  *th = fnv(FNV_BASIS, g, n * sizeof(float));
  size_t slice = n_pad / (size_t)Q;
  for (int r = 0; r < Q; r++) {
    size_t lo = (size_t)r * slice, hi = lo + slice < n ? lo + slice : n;
    uint64_t h = FNV_BASIS;
    for (int v = 0; v < 1 + NSTATE; v++)
      for (size_t i = lo; i < hi; i++) {
        float x = val(v, i);
        h = fnv(h, &x, sizeof(x));
      }
    per[r] = h;
  }
  *sh = fnv(FNV_BASIS, per, (size_t)Q * sizeof(uint64_t));
  free(g);
  free(per);
}

static char dir[512];

/* ------------------------------------------------------------ tests */

static void test_fnv_vectors(void **unused) {
  (void)unused;
  /* published FNV-1a 64 test vectors (Fowler/Noll/Vo reference test suite) */
  assert_true(lt_fnv1a64(LT_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
  assert_true(lt_fnv1a64(LT_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
  assert_true(lt_fnv1a64(LT_FNV1A64_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
  /* continuing a hash is hashing the concatenation */
  assert_true(lt_fnv1a64(lt_fnv1a64(LT_FNV1A64_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

/* Write at P ranks, read back at P: every bit, the cursor, the RNG rows, the hashes. */
static void test_roundtrip(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-roundtrip");
  lt_test_checker c = {0};
  state w, r;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build (writer)");
  lt_test_agree(ctx->comm, &c);
  lt_ckpt_cursor cur = sample_cursor(), got;
  lt_ckpt_report wrep, rrep;
  status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 0, &cur, &wrep), "write");
  lt_test_agree(ctx->comm, &c);
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 0, &r), "build (reader)");
  lt_test_agree(ctx->comm, &c);
  memset(&got, 0, sizeof(got));
  status_ok(&c, ctx, lt_ckpt_read(r.ck, dir, &got, &rrep), "read via LATEST"); /* a directory */
  lt_test_agree(ctx->comm, &c);
  check_state(&c, &r, ctx->size);
  check_cursor(&c, &got);
  char want_path[700];
  snprintf(want_path, sizeof(want_path), "%s/step-00000057.h5", dir);
  if (strcmp(rrep.path, want_path) != 0 || strcmp(wrep.path, want_path) != 0)
    lt_test_fail_at(&c, "paths '%s' / '%s', expected '%s'", wrep.path, rrep.path, want_path);
  uint64_t th, sh;
  expected_hashes(w.m->n, w.m->n_pad, ctx->size, &th, &sh);
  if (wrep.theta_hash != th || rrep.theta_hash != th || wrep.state_hash != sh ||
      rrep.state_hash != sh)
    lt_test_fail_at(
        &c, "hashes written %016llx/%016llx, read %016llx/%016llx, expected %016llx/%016llx",
        (unsigned long long)wrep.theta_hash, (unsigned long long)wrep.state_hash,
        (unsigned long long)rrep.theta_hash, (unsigned long long)rrep.state_hash,
        (unsigned long long)th, (unsigned long long)sh);
  if (rrep.file_ranks != ctx->size) lt_test_fail_at(&c, "file_ranks %d", rrep.file_ranks);
  /* the file as h5py would see it: /model/theta has exactly n elements */
  if (ctx->rank == 0 && !c.bad) {
    hid_t f = H5Fopen(want_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/model/theta", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    float *all = malloc(w.m->n * sizeof(float));
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all);
    if (npts != (hssize_t)w.m->n)
      lt_test_fail_at(&c, "/model/theta has %lld elements, n = %zu", (long long)npts, w.m->n);
    for (size_t i = 0; i < w.m->n && !c.bad; i++)
      if (all[i] != val(0, i)) lt_test_fail_at(&c, "file theta[%zu] differs", i);
    free(all);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
  }
  lt_test_agree(ctx->comm, &c);
  destroy(&w);
  destroy(&r);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* Written at P, read on sub-communicators of size 1 and (P >= 3) P - 1. */
static void test_reshard(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-reshard");
  lt_test_checker c = {0};
  state w;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build (writer)");
  lt_ckpt_cursor cur = sample_cursor();
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 0, &cur, NULL), "write");
  lt_test_agree(ctx->comm, &c);
  const int P = ctx->size;
  int color = ctx->rank == 0 ? 0 : (P >= 3 ? 1 : MPI_UNDEFINED);
  MPI_Comm sub = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, color, ctx->rank, &sub);
  if (sub != MPI_COMM_NULL) {
    lt_ctx *sctx = NULL;
    assert_int_equal(lt_ctx_create(sub, 1234, &sctx), LT_OK);
    state r;
    lt_ckpt_cursor got;
    lt_ckpt_report rep;
    lt_status st = build(sctx, hidden_ab, 2, 0, &r);
    if (st == LT_OK) st = lt_ckpt_read(r.ck, dir, &got, &rep);
    status_ok(&c, sctx, st, "read on a sub-communicator");
    if (!c.bad) {
      check_state(&c, &r, P);
      check_cursor(&c, &got);
      uint64_t th, sh;
      expected_hashes(r.m->n, r.m->n_pad, sctx->size, &th, &sh);
      if (rep.theta_hash != th || rep.state_hash != sh || rep.file_ranks != P)
        lt_test_fail_at(
            &c, "at %d ranks: hashes %016llx/%016llx, expected %016llx/%016llx; file ranks %d",
            sctx->size, (unsigned long long)rep.theta_hash, (unsigned long long)rep.state_hash,
            (unsigned long long)th, (unsigned long long)sh, rep.file_ranks);
    }
    destroy(&r);
    lt_ctx_destroy(&sctx);
    MPI_Comm_free(&sub);
  }
  lt_test_agree(MPI_COMM_WORLD, &c);
  destroy(&w);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* Per-rank arrays of different lengths (a sharded replay buffer): restored at the
 * same rank count (and covered by the state hash the read verifies), left alone
 * at another. */
static void test_per_rank(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-per-rank");
  lt_test_checker c = {0};
  state w, r;
  int64_t mine[8], back[8];
  size_t cnt = (size_t)ctx->rank + 2; /* lengths differ between ranks */
  for (size_t i = 0; i < cnt; i++) mine[i] = 100 * ctx->rank + (int64_t)i;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build (writer)");
  if (!c.bad)
    status_ok(&c, ctx, lt_ckpt_add_per_rank(w.ck, "/strategy/test/buffer", LT_CKPT_I64, mine, cnt),
              "add_per_rank");
  lt_ckpt_cursor cur = sample_cursor(), got;
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 0, &cur, NULL), "write");
  lt_test_agree(ctx->comm, &c);
  memset(back, 0, sizeof(back));
  lt_ckpt_report rep;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 0, &r), "build (reader)");
  if (!c.bad)
    status_ok(&c, ctx, lt_ckpt_add_per_rank(r.ck, "/strategy/test/buffer", LT_CKPT_I64, back, cnt),
              "add_per_rank (reader)");
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_read(r.ck, dir, &got, &rep), "read");
  if (!c.bad && !rep.per_rank_restored)
    lt_test_fail_at(&c, "per-rank arrays not restored at the same P");
  for (size_t i = 0; i < cnt && !c.bad; i++)
    if (back[i] != mine[i])
      lt_test_fail_at(&c, "per-rank[%zu] = %lld, want %lld", i, (long long)back[i],
                      (long long)mine[i]);
  lt_test_agree(ctx->comm, &c);
  /* at another rank count (a sub-communicator of rank 0 alone, P >= 2) it is left alone */
  MPI_Comm sub = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, ctx->size >= 2 && ctx->rank == 0 ? 0 : MPI_UNDEFINED, 0, &sub);
  if (sub != MPI_COMM_NULL) {
    lt_ctx *sctx = NULL;
    assert_int_equal(lt_ctx_create(sub, 1234, &sctx), LT_OK);
    state q;
    int64_t untouched[2] = {-7, -7};
    lt_status st = build(sctx, hidden_ab, 2, 0, &q);
    if (st == LT_OK) st = lt_ckpt_add_per_rank(q.ck, "/strategy/test/buffer", LT_CKPT_I64, untouched, 2);
    if (st == LT_OK) st = lt_ckpt_read(q.ck, dir, &got, &rep);
    status_ok(&c, sctx, st, "read at another rank count");
    if (!c.bad && (rep.per_rank_restored || untouched[0] != -7 || untouched[1] != -7))
      lt_test_fail_at(&c, "per-rank array changed at another rank count");
    destroy(&q);
    lt_ctx_destroy(&sctx);
    MPI_Comm_free(&sub);
  }
  lt_test_agree(MPI_COMM_WORLD, &c);
  destroy(&w);
  destroy(&r);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

static int exists(const char *d, const char *name) {
  char p[700];
  snprintf(p, sizeof(p), "%s/%s", d, name);
  return access(p, F_OK) == 0;
}

/* keep = 2 over steps 10, 20, 30: the two newest stay, LATEST names step 30; a
 * leftover .tmp goes; a later step (abandoned timeline) is left alone. */
static void test_keep_latest(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-keep");
  lt_test_checker c = {0};
  if (ctx->rank == 0) {
    char p[700];
    snprintf(p, sizeof(p), "%s/step-00000099.h5", dir);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    snprintf(p, sizeof(p), "%s/step-00000005.h5.tmp", dir);
    f = fopen(p, "w");
    if (f) fclose(f);
  }
  state w;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build");
  lt_test_agree(ctx->comm, &c);
  for (long s = 10; s <= 30 && !c.bad; s += 10) {
    lt_ckpt_cursor cur = sample_cursor();
    cur.global_step = s;
    status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 2, &cur, NULL), "write");
  }
  lt_test_agree(ctx->comm, &c);
  if (ctx->rank == 0) {
    if (exists(dir, "step-00000010.h5")) lt_test_fail_at(&c, "step 10 not pruned (keep = 2)");
    if (!exists(dir, "step-00000020.h5") || !exists(dir, "step-00000030.h5"))
      lt_test_fail_at(&c, "steps 20 and 30 must stay");
    if (!exists(dir, "step-00000099.h5")) lt_test_fail_at(&c, "a later step was removed");
    if (exists(dir, "step-00000005.h5.tmp")) lt_test_fail_at(&c, "leftover .tmp not removed");
    if (exists(dir, "LATEST.tmp") || exists(dir, "step-00000030.h5.tmp"))
      lt_test_fail_at(&c, "temporary files left behind");
    char p[700], line[64] = "";
    snprintf(p, sizeof(p), "%s/LATEST", dir);
    FILE *f = fopen(p, "r");
    if (!f || !fgets(line, sizeof(line), f) || strcmp(line, "step-00000030.h5\n") != 0)
      lt_test_fail_at(&c, "LATEST holds '%s', expected step-00000030.h5", line);
    if (f) fclose(f);
  }
  lt_test_agree(ctx->comm, &c);
  destroy(&w);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* A read that must fail: the same status on every rank, and every rank's message
 * contains each of the needles. */
static void expect_refused(lt_test_checker *c, lt_ctx *ctx, state *r, const char *from,
                           const char *n1, const char *n2, const char *n3) {
  lt_error_clear(ctx);
  lt_ckpt_cursor got;
  lt_status st = lt_ckpt_read(r->ck, from, &got, NULL);
  int mine = (int)st, lo = 0, hi = 0;
  MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, ctx->comm);
  MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, ctx->comm);
  if (st == LT_OK)
    lt_test_fail_at(c, "reading '%s' succeeded; expected a refusal", from);
  else if (lo != hi)
    lt_test_fail_at(c, "ranks disagree on reading '%s' (%d vs %d)", from, lo, hi);
  const char *need[3] = {n1, n2, n3};
  for (int i = 0; i < 3 && !c->bad; i++)
    if (need[i] && !strstr(ctx->errmsg, need[i]))
      lt_test_fail_at(c, "message for '%s' lacks '%s': %s", from, need[i], ctx->errmsg);
  lt_error_clear(ctx);
}

static void test_layout_mismatch(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-layout");
  lt_test_checker c = {0};
  state w;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build");
  lt_ckpt_cursor cur = sample_cursor();
  lt_ckpt_report rep;
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 0, &cur, &rep), "write");
  lt_test_agree(ctx->comm, &c);
  const char *file = rep.path;

  state r; /* another width of the second hidden layer: fc2 is 6x5 instead of 4x5 */
  const int other[2] = {5, 6};
  status_ok(&c, ctx, build(ctx, other, 2, 0, &r), "build 5,6");
  lt_test_agree(ctx->comm, &c);
  expect_refused(&c, ctx, &r, file, file, "'fc2'", "shape 4x5 in the snapshot, 6x5");
  destroy(&r);
  lt_test_agree(ctx->comm, &c);

  /* one hidden layer fewer */
  const int one[1] = {5};
  status_ok(&c, ctx, build(ctx, one, 1, 0, &r), "build 5");
  lt_test_agree(ctx->comm, &c);
  expect_refused(&c, ctx, &r, file, file, "'fc2'", "shape");
  destroy(&r);

  /* same shapes, another kind or offset in the registered table */
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 0, &r), "build 5,4");
  lt_test_agree(ctx->comm, &c);
  lt_ckpt_layer L[LT_MAX_LAYERS];
  int nl = lt_ckpt_model_layout(r.m, L, LT_MAX_LAYERS);
  snprintf(L[1].kind, sizeof(L[1].kind), "template");
  status_ok(&c, ctx, lt_ckpt_set_layout(r.ck, L, nl), "set_layout");
  expect_refused(&c, ctx, &r, file, "'fc2'", "kind 'dense' in the snapshot, 'template'", NULL);
  nl = lt_ckpt_model_layout(r.m, L, LT_MAX_LAYERS);
  L[2].offset += 16;
  status_ok(&c, ctx, lt_ckpt_set_layout(r.ck, L, nl), "set_layout");
  expect_refused(&c, ctx, &r, file, "'fc3'", "offset", NULL);
  /* and the true table reads (the refusals changed nothing) */
  nl = lt_ckpt_model_layout(r.m, L, LT_MAX_LAYERS);
  status_ok(&c, ctx, lt_ckpt_set_layout(r.ck, L, nl), "set_layout");
  lt_ckpt_cursor got;
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_read(r.ck, file, &got, NULL), "read with the true table");
  lt_test_agree(ctx->comm, &c);
  check_state(&c, &r, ctx->size);
  lt_test_agree(ctx->comm, &c);
  destroy(&r);
  destroy(&w);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* Rank 0 copies the first `len` bytes of src to dst, or (flip >= 0) all of it
 * with byte `flip` inverted. */
static void copy_file(const char *src, const char *dst, long len, long flip) {
  FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
  if (!a || !b) abort();
  long i = 0;
  for (int ch; (ch = fgetc(a)) != EOF && (len < 0 || i < len); i++)
    fputc(i == flip ? ch ^ 0xff : ch, b);
  fclose(a);
  fclose(b);
}

static void test_bad_files(void **unused) {
  (void)unused;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  (void)lt_test_mkdir(dir, sizeof(dir), "ckpt-bad");
  lt_test_checker c = {0};
  state w, r;
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 1, &w), "build");
  status_ok(&c, ctx, build(ctx, hidden_ab, 2, 0, &r), "build");
  lt_ckpt_cursor cur = sample_cursor();
  lt_ckpt_report rep;
  if (!c.bad) status_ok(&c, ctx, lt_ckpt_write(w.ck, dir, 0, &cur, &rep), "write");
  lt_test_agree(ctx->comm, &c);
  char trunc[700], foreign[700], text[700], flipped[700], missing[700];
  snprintf(trunc, sizeof(trunc), "%s/truncated.h5", dir);
  snprintf(foreign, sizeof(foreign), "%s/foreign.h5", dir);
  snprintf(text, sizeof(text), "%s/text.h5", dir);
  snprintf(flipped, sizeof(flipped), "%s/flipped.h5", dir);
  snprintf(missing, sizeof(missing), "%s/missing.h5", dir);
  if (ctx->rank == 0) {
    struct stat sb;
    stat(rep.path, &sb);
    copy_file(rep.path, trunc, (long)sb.st_size / 2, -1);
    hid_t f = H5Fcreate(foreign, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 3;
    int v[3] = {1, 2, 3};
    lt_test_h5_write(f, "/foo", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &n, v);
    H5Fclose(f);
    FILE *t = fopen(text, "w");
    if (t) {
      fputs("[run]\nseed = 1\n", t);
      fclose(t);
    }
    /* a damaged byte in theta's data: found from the dataset's file offset */
    f = H5Fopen(rep.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/model/theta", H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    copy_file(rep.path, flipped, -1, (long)off + 5);
  }
  MPI_Barrier(ctx->comm);
  expect_refused(&c, ctx, &r, trunc, trunc, "truncated", NULL);
  expect_refused(&c, ctx, &r, foreign, foreign, "not a lethe snapshot", NULL);
  expect_refused(&c, ctx, &r, text, text, "not an HDF5 file", NULL);
  expect_refused(&c, ctx, &r, flipped, flipped, "theta hashes to", "damaged");
  expect_refused(&c, ctx, &r, missing, missing, "No such file", NULL);
  lt_test_agree(ctx->comm, &c);
  destroy(&w);
  destroy(&r);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fnv_vectors),     cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_reshard),         cmocka_unit_test(test_keep_latest),
    cmocka_unit_test(test_layout_mismatch), cmocka_unit_test(test_bad_files),
    cmocka_unit_test(test_per_rank),
};

LT_TEST_MPI_MAIN("checkpoint", tests)
