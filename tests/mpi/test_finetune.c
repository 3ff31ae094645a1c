/* Fine-tuning (lt_ft_*) at 1-4 ranks: frozen layers bit for bit unchanged with no
 * optimizer state, the effective per-layer SGD step of LLRD against lr * xi^(L-l)
 * computed here, reinit_top and loading by layer name against the two models'
 * own parameters, a mismatching hidden layer refused by name, and the seeded
 * class-balanced subset: balanced, relabelled, rows equal to the source samples,
 * and the same set of samples at this rank count as on one rank.
 *
 * Checks record failures locally and all ranks agree before asserting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/checkpoint.h"
#include "lethe/finetune.h"
#include "lethe/trainer.h"
#include "testutil.h"

#define IN 6
#define K 4
#define ROWS 24

static const int hidden3[3] = {8, 7, 5}; /* L = 4 layers: fc1..fc4 */

static lt_status make_model(lt_ctx *ctx, const int *hidden, int nh, int out, uint64_t seed,
                            lt_model **m) {
  lt_model_cfg mc = {.in_dim = IN, .nhidden = nh, .out_dim = out, .act = LT_ACT_TANH,
                     .init = LT_INIT_KAIMING, .max_batch = ROWS, .pad_ranks = ctx->size};
  for (int i = 0; i < nh; i++) mc.hidden[i] = hidden[i];
  LT_CHECK(ctx, lt_model_create(ctx, &mc, m));
  lt_model_init(*m, seed, LT_INIT_KAIMING);
  return LT_OK;
}

/* This rank's rows of a fixed global batch: x[i][j] = sin(1 + i + 0.7 j), y = i mod K. */
static void batch(const lt_ctx *ctx, float *x, int32_t *y, int *rows) {
  int first, cnt;
  lt_test_block(ROWS, ctx->rank, ctx->size, &first, &cnt);
  for (int r = 0; r < cnt; r++) {
    int i = first + r;
    for (int j = 0; j < IN; j++) x[r * IN + j] = (float)sin(1.0 + i + 0.7 * j);
    y[r] = i % K;
  }
  *rows = cnt;
}

static void status_ok(lt_test_checker *c, lt_ctx *ctx, lt_status st, const char *what) {
  if (st != LT_OK) lt_test_fail_at(c, "%s failed: %s", what, ctx->errmsg);
}

/* Model (seed) and trainer (oc) with the remedies fc, theta saved in *before, then
 * `steps` training steps on the fixed batch. Failures are recorded in c. */
static void train_with(lt_test_checker *c, lt_ctx *ctx, uint64_t seed, const lt_optim_cfg *oc,
                       const lt_ft_cfg *fc, int steps, lt_model **m, lt_trainer **t,
                       float **before) {
  status_ok(c, ctx, make_model(ctx, hidden3, 3, K, seed, m), "model");
  lt_test_agree(ctx->comm, c);
  status_ok(c, ctx, lt_trainer_create(ctx, *m, oc, LT_DIST_SHARDED, t), "trainer");
  lt_test_agree(ctx->comm, c);
  status_ok(c, ctx, lt_ft_apply_lr(ctx, fc, *m, (*t)->opt), "apply_lr");
  lt_test_agree(ctx->comm, c);
  assert_int_equal(lt_calloc_aligned((void **)before, (*m)->n_pad, sizeof(float)), 0);
  memcpy(*before, (*m)->theta, (*m)->n_pad * sizeof(float));
  float x[ROWS * IN];
  int32_t y[ROWS];
  int rows;
  batch(ctx, x, y, &rows);
  for (int s = 0; s < steps && !c->bad; s++)
    status_ok(c, ctx, lt_trainer_step(*t, x, y, rows, ROWS, NULL, NULL), "step");
  lt_test_agree(ctx->comm, c);
}

/* ------------------------------------------------------------ freezing */

static void run_freeze(lt_opt_kind kind) {
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_test_checker c = {0};
  lt_model *m = NULL;
  lt_trainer *t = NULL;
  float *before = NULL;
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = kind;
  oc.lr = 0.1;
  oc.momentum = 0.9;
  oc.weight_decay = 0.01; /* a frozen layer must not decay either */
  lt_ft_cfg fc = {.freeze_bottom = 2, .llrd = 1.0};
  train_with(&c, ctx, 3, &oc, &fc, 5, &m, &t, &before);
  /* frozen: fc1 and fc2 (W and b are contiguous: [w_off(fc1), w_off(fc3))) */
  size_t fz = m->layer[2].w_off;
  if (memcmp(before, m->theta, fz * sizeof(float)) != 0)
    lt_test_fail_at(&c, "a frozen parameter changed (first %zu of theta)", fz);
  /* the trained layers did change */
  size_t changed = 0;
  for (size_t i = fz; i < m->n; i++) changed += before[i] != m->theta[i];
  if (changed < (m->n - fz) / 2)
    lt_test_fail_at(&c, "only %zu of the %zu trainable parameters changed", changed, m->n - fz);
  /* optimizer state over the owned part of the frozen range: exactly zero; elsewhere not all */
  size_t lo, hi;
  lt_optim_range(t->opt, &lo, &hi);
  int ns = lt_optim_nstate(t->opt);
  if (ns != (kind == LT_OPT_SGD ? 1 : 2)) lt_test_fail_at(&c, "%d state vectors", ns);
  for (int k = 0; k < ns && !c.bad; k++) {
    const float *v = lt_optim_state(t->opt, k);
    size_t nz_frozen = 0, nz_free = 0;
    for (size_t i = lo; i < hi; i++) {
      if (i < fz) nz_frozen += v[i - lo] != 0.0f;
      else if (i < m->n) nz_free += v[i - lo] != 0.0f;
    }
    if (nz_frozen) lt_test_fail_at(&c, "state %d: %zu non-zero values in frozen layers", k,
                                   nz_frozen);
    size_t own_free = hi > fz ? (hi < m->n ? hi : m->n) - (lo > fz ? lo : fz) : 0;
    if (own_free > 8 && nz_free == 0)
      lt_test_fail_at(&c, "state %d: all zero in the %zu owned trainable values", k, own_free);
  }
  lt_test_agree(ctx->comm, &c);
  lt_free(before);
  lt_trainer_destroy(&t);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static void test_freeze_sgd(void **u) {
  (void)u;
  run_freeze(LT_OPT_SGD);
}
static void test_freeze_adam(void **u) {
  (void)u;
  run_freeze(LT_OPT_ADAM);
}

/* ------------------------------------------------------------ LLRD */

/* Plain SGD (no momentum, no decay): theta' = theta - lr m_l g. For every layer l
 * the step ratio sum((theta - theta') g) / sum(lr g^2) over the owned elements
 * equals m_l = xi^(L - l) (0 for a frozen one). Tolerance 1e-4 relative: the
 * subtraction theta - theta' loses about eps |theta| / |lr g| (float) per element,
 * under 1e-5 here with lr = 0.5 and gradients of order 1e-2..1. */
static void test_llrd_step(void **u) {
  (void)u;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_test_checker c = {0};
  lt_model *m = NULL;
  lt_trainer *t = NULL;
  float *before = NULL;
  const double lr = 0.5, xi = 0.6;
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = lr;
  lt_ft_cfg fc = {.freeze_bottom = 1, .llrd = xi};
  train_with(&c, ctx, 5, &oc, &fc, 1, &m, &t, &before);
  const int L = m->nlayers;
  /* per layer: numerator and denominator summed over the owned elements, then over ranks */
  double num[LT_MAX_LAYERS] = {0}, den[LT_MAX_LAYERS] = {0};
  const size_t lo = t->sh.lo, hi = t->sh.hi;
  for (int l = 0; l < L; l++) {
    const lt_layer *ly = &m->layer[l];
    size_t a = ly->w_off, b = ly->b_off + (size_t)ly->out; /* W then b */
    for (size_t i = a > lo ? a : lo; i < (b < hi ? b : hi); i++) {
      double g = t->grad_owned[i - lo];
      num[l] += ((double)before[i] - (double)m->theta[i]) * g;
      den[l] += lr * g * g;
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, num, L, MPI_DOUBLE, MPI_SUM, ctx->comm);
  MPI_Allreduce(MPI_IN_PLACE, den, L, MPI_DOUBLE, MPI_SUM, ctx->comm);
  for (int l = 0; l < L; l++) {
    double want = l == 0 ? 0.0 : pow(xi, L - (l + 1)); /* layer l+1 of L; fc1 frozen */
    double got = num[l] / den[l];
    if (!(den[l] > 0) || !(fabs(got - want) <= 1e-4 * (want > 0 ? want : 1.0)))
      lt_test_fail_at(&c, "layer %s: effective step %.8g x lr g, expected %.8g", m->layer[l].name,
                      got, want);
  }
  /* the head's multiplier is exactly 1 and lt_ft_layer_mult agrees with the closed form */
  for (int l = 1; l <= L; l++) {
    double want = l <= 1 ? 0.0 : pow(xi, L - l);
    if (lt_ft_layer_mult(l, L, 1, xi) != want)
      lt_test_fail_at(&c, "lt_ft_layer_mult(%d) = %g, expected %g", l,
                      lt_ft_layer_mult(l, L, 1, xi), want);
  }
  lt_test_agree(ctx->comm, &c);
  lt_free(before);
  lt_trainer_destroy(&t);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

/* ------------------------------------------------------------ loading */

/* A snapshot of a model with hidden widths h (seed 11) in dir; *src keeps the model. */
static lt_status write_snapshot(lt_ctx *ctx, const int *h, int nh, int out, const char *dir,
                                lt_model **src) {
  LT_CHECK(ctx, make_model(ctx, h, nh, out, 11, src));
  lt_shard sh;
  LT_CHECK(ctx, lt_shard_init(ctx, (*src)->n, (*src)->n_pad, &sh));
  lt_ckpt_info info = {.deck_text = "", .blis_kernels = "test", .blis_threads = 1};
  lt_ckpt *ck = NULL;
  LT_CHECK(ctx, lt_ckpt_create(ctx, &sh, &info, &ck));
  lt_ckpt_layer layers[LT_MAX_LAYERS];
  int nl = lt_ckpt_model_layout(*src, layers, LT_MAX_LAYERS);
  lt_status st = lt_ckpt_set_layout(ck, layers, nl);
  if (st == LT_OK) st = lt_ckpt_add_params(ck, (*src)->theta);
  lt_ckpt_cursor cur = {.global_step = 1, .test_acc = NAN, .test_loss = NAN};
  if (st == LT_OK) st = lt_ckpt_write(ck, dir, 0, &cur, NULL);
  lt_ckpt_destroy(&ck);
  return st;
}

/* Layer l's W and b of a and b: bit for bit equal? */
static int same_layer(const lt_model *a, const lt_model *b, int l) {
  const lt_layer *la = &a->layer[l], *lb = &b->layer[l];
  size_t nw = (size_t)la->out * (size_t)la->in;
  return la->out == lb->out && la->in == lb->in &&
         memcmp(a->theta + la->w_off, b->theta + lb->w_off, nw * sizeof(float)) == 0 &&
         memcmp(a->theta + la->b_off, b->theta + lb->b_off, (size_t)la->out * sizeof(float)) == 0;
}

static void test_reinit_top(void **u) {
  (void)u;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  char dir[512];
  (void)lt_test_mkdir(dir, sizeof(dir), "ft-reinit");
  lt_test_checker c = {0};
  lt_model *src = NULL;
  status_ok(&c, ctx, write_snapshot(ctx, hidden3, 3, K, dir, &src), "snapshot");
  lt_test_agree(ctx->comm, &c);
  for (int k = 0; k <= 4 && !c.bad; k++) {
    lt_model *m = NULL, *fresh = NULL;
    status_ok(&c, ctx, make_model(ctx, hidden3, 3, K, 22, &m), "model");
    status_ok(&c, ctx, make_model(ctx, hidden3, 3, K, 22, &fresh), "model");
    lt_ft_cfg fc = {.from = dir, .reinit_top = k, .llrd = 1.0};
    lt_ft_report rep;
    if (!c.bad) status_ok(&c, ctx, lt_ft_load(ctx, &fc, m, &rep), "load");
    const int L = m ? m->nlayers : 0;
    for (int l = 0; l < L && !c.bad; l++) {
      int top = l >= L - k;
      /* kept layers: the snapshot's; re-initialised: the model's own seeded init, which
       * differs from the snapshot's (another seed) */
      if (!top && !same_layer(m, src, l))
        lt_test_fail_at(&c, "reinit_top %d: layer %s is not the snapshot's", k, m->layer[l].name);
      if (top && (!same_layer(m, fresh, l) || same_layer(m, src, l)))
        lt_test_fail_at(&c, "reinit_top %d: layer %s is not its fresh initialisation", k,
                        m->layer[l].name);
    }
    if (!c.bad && (rep.loaded != L - k || rep.reinit != k || rep.head_reinit))
      lt_test_fail_at(&c, "reinit_top %d: report loaded %d reinit %d head %d", k, rep.loaded,
                      rep.reinit, rep.head_reinit);
    lt_model_destroy(&m);
    lt_model_destroy(&fresh);
  }
  lt_test_agree(ctx->comm, &c);
  /* a head with another number of classes keeps its init; the rest is loaded */
  lt_model *m = NULL, *fresh = NULL;
  status_ok(&c, ctx, make_model(ctx, hidden3, 3, K + 3, 22, &m), "model");
  status_ok(&c, ctx, make_model(ctx, hidden3, 3, K + 3, 22, &fresh), "model");
  lt_ft_cfg fc = {.from = dir, .llrd = 1.0};
  lt_ft_report rep;
  if (!c.bad) status_ok(&c, ctx, lt_ft_load(ctx, &fc, m, &rep), "load (other head)");
  for (int l = 0; l < 3 && !c.bad; l++)
    if (!same_layer(m, src, l)) lt_test_fail_at(&c, "other head: layer %d not loaded", l + 1);
  if (!c.bad && (!same_layer(m, fresh, 3) || !rep.head_reinit || rep.loaded != 3))
    lt_test_fail_at(&c, "other head: the head is not its fresh initialisation");
  lt_test_agree(ctx->comm, &c);
  lt_model_destroy(&m);
  lt_model_destroy(&fresh);
  lt_model_destroy(&src);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* A hidden layer of another shape: refused on every rank with a message naming it. */
static void test_mismatch(void **u) {
  (void)u;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  char dir[512];
  (void)lt_test_mkdir(dir, sizeof(dir), "ft-mismatch");
  lt_test_checker c = {0};
  lt_model *src = NULL, *m = NULL;
  status_ok(&c, ctx, write_snapshot(ctx, hidden3, 3, K, dir, &src), "snapshot");
  const int other[3] = {8, 9, 5}; /* fc2 is 9x8 here, 7x8 in the snapshot */
  status_ok(&c, ctx, make_model(ctx, other, 3, K, 22, &m), "model");
  lt_test_agree(ctx->comm, &c);
  lt_ft_cfg fc = {.from = dir, .llrd = 1.0};
  lt_status st = lt_ft_load(ctx, &fc, m, NULL);
  if (st != LT_ERR_DATA)
    lt_test_fail_at(&c, "load returned %s, expected a data error", lt_status_str(st));
  else if (!strstr(ctx->errmsg, "layer 'fc2'") || !strstr(ctx->errmsg, "7x8 in the snapshot") ||
           !strstr(ctx->errmsg, "9x8 in the deck's model"))
    lt_test_fail_at(&c, "message does not name fc2 and both shapes: %s", ctx->errmsg);
  lt_error_clear(ctx);
  /* a deeper model: its extra layer is named */
  lt_model *deep = NULL;
  const int four[4] = {8, 7, 5, 5};
  status_ok(&c, ctx, make_model(ctx, four, 4, K, 22, &deep), "deep model");
  if (!c.bad) {
    st = lt_ft_load(ctx, &fc, deep, NULL);
    if (st != LT_ERR_DATA || !strstr(ctx->errmsg, "fc5"))
      lt_test_fail_at(&c, "deeper model: %s (%s)", lt_status_str(st), ctx->errmsg);
    lt_error_clear(ctx);
  }
  lt_test_agree(ctx->comm, &c);
  lt_model_destroy(&deep);
  lt_model_destroy(&m);
  lt_model_destroy(&src);
  lt_test_rmtree(dir);
  lt_ctx_destroy(&ctx);
}

/* ------------------------------------------------------------ subsets */

#define NS 200
#define KS 5
#define DS 3
static float feat(long g, int j) { return (float)(g * 10 + j); }
static int32_t label(long g) { return (int32_t)((g * 7 + g / 3) % KS); }

/* The subset (classes 4, 1, 3 relabelled 0, 1, 2; n per class) on ctx; the sorted
 * global indices of all ranks' rows go to sel[*nsel]. */
static void subset_on(lt_test_checker *c, lt_ctx *ctx, long n, uint64_t seed, long *sel,
                      int *nsel) {
  float *x = malloc(sizeof(float) * NS * DS);
  int32_t *y = malloc(sizeof(int32_t) * NS);
  for (long g = 0; g < NS; g++) {
    for (int j = 0; j < DS; j++) x[g * DS + j] = feat(g, j);
    y[g] = label(g);
  }
  lt_dataset *tr = calloc(1, sizeof(*tr)), *te = calloc(1, sizeof(*te));
  if (lt_test_shard(tr, x, y, NS, DS, KS, ctx->rank, ctx->size) ||
      lt_test_shard(te, x, y, NS, DS, KS, ctx->rank, ctx->size))
    lt_test_fail_at(c, "out of memory");
  /* lt_dataset_destroy frees x, y, index with lt_free: lt_test_shard allocates them alike */
  static const int classes[3] = {4, 1, 3};
  lt_ft_data_cfg cfg = {.classes = classes, .nclasses = 3, .samples_per_class = n, .seed = seed};
  if (!c->bad) status_ok(c, ctx, lt_ft_select(ctx, &cfg, &tr, &te), "select");
  *nsel = 0;
  if (!c->bad) {
    int counts[3] = {0};
    for (int i = 0; i < tr->n; i++) {
      long g = tr->index[i];
      int want = label(g) == 4 ? 0 : (label(g) == 1 ? 1 : (label(g) == 3 ? 2 : -1));
      if (tr->y[i] != want) lt_test_fail_at(c, "sample %ld: label %d, expected %d", g, tr->y[i], want);
      for (int j = 0; j < DS; j++)
        if (tr->x[(size_t)i * DS + (size_t)j] != feat(g, j))
          lt_test_fail_at(c, "sample %ld: feature %d differs from the source", g, j);
      if (tr->y[i] >= 0 && tr->y[i] < 3) counts[tr->y[i]]++;
    }
    MPI_Allreduce(MPI_IN_PLACE, counts, 3, MPI_INT, MPI_SUM, ctx->comm);
    for (int k = 0; k < 3; k++)
      if (counts[k] != n) lt_test_fail_at(c, "class %d: %d samples, expected %ld", k, counts[k], n);
    if (tr->num_classes != 3 || te->num_classes != 3 || tr->n_global != 3 * n)
      lt_test_fail_at(c, "num_classes %d/%d, n_global %ld", tr->num_classes, te->num_classes,
                      tr->n_global);
    /* dealt round robin: rank sizes differ by at most one */
    int mn = tr->n, mx = tr->n;
    MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_INT, MPI_MIN, ctx->comm);
    MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_INT, MPI_MAX, ctx->comm);
    if (mx - mn > 1) lt_test_fail_at(c, "rank sizes %d..%d", mn, mx);
    /* test split: every sample of the three classes, relabelled */
    long te_n = 0;
    for (long g = 0; g < NS; g++) te_n += label(g) == 4 || label(g) == 1 || label(g) == 3;
    if (te->n_global != te_n) lt_test_fail_at(c, "test split: %ld samples, expected %ld",
                                              te->n_global, te_n);
    int *cnt = calloc((size_t)ctx->size, sizeof(int)), *dsp = calloc((size_t)ctx->size, sizeof(int));
    long mine[NS];
    for (int i = 0; i < tr->n; i++) mine[i] = tr->index[i];
    MPI_Allgather(&tr->n, 1, MPI_INT, cnt, 1, MPI_INT, ctx->comm);
    for (int r = 1; r < ctx->size; r++) dsp[r] = dsp[r - 1] + cnt[r - 1];
    MPI_Allgatherv(mine, tr->n, MPI_LONG, sel, cnt, dsp, MPI_LONG, ctx->comm);
    *nsel = dsp[ctx->size - 1] + cnt[ctx->size - 1];
    free(cnt);
    free(dsp);
    for (int i = 1; i < *nsel; i++) /* insertion sort */
      for (int j = i; j > 0 && sel[j - 1] > sel[j]; j--) {
        long tmp = sel[j];
        sel[j] = sel[j - 1];
        sel[j - 1] = tmp;
      }
    for (int i = 1; i < *nsel; i++)
      if (sel[i] == sel[i - 1]) lt_test_fail_at(c, "sample %ld taken twice", sel[i]);
  }
  lt_dataset_destroy(&tr);
  lt_dataset_destroy(&te);
  free(x);
  free(y);
}

static void test_subset(void **u) {
  (void)u;
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_test_checker c = {0};
  long here[NS], alone[NS], other[NS];
  int nh = 0, na = 0, no = 0;
  subset_on(&c, ctx, 6, 9, here, &nh);
  lt_test_agree(ctx->comm, &c);
  lt_ctx *self = NULL; /* the same subset computed on one rank */
  assert_int_equal(lt_ctx_create(MPI_COMM_SELF, 0, &self), LT_OK);
  subset_on(&c, self, 6, 9, alone, &na);
  lt_ctx_destroy(&self);
  lt_test_agree(ctx->comm, &c);
  if (na != nh || memcmp(here, alone, sizeof(long) * (size_t)nh) != 0)
    lt_test_fail_at(&c, "the subset at %d ranks differs from the one on 1 rank", ctx->size);
  /* another seed picks another subset (of about 40 samples per class, 6 are chosen) */
  subset_on(&c, ctx, 6, 10, other, &no);
  if (no == nh && memcmp(here, other, sizeof(long) * (size_t)nh) == 0)
    lt_test_fail_at(&c, "seeds 9 and 10 chose the same subset");
  lt_test_agree(ctx->comm, &c);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_freeze_sgd), cmocka_unit_test(test_freeze_adam),
    cmocka_unit_test(test_llrd_step),  cmocka_unit_test(test_reinit_top),
    cmocka_unit_test(test_mismatch),   cmocka_unit_test(test_subset),
};

LT_TEST_MPI_MAIN("finetune", tests)
