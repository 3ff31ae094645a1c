/* Refresh learning's unlearn step at 1-4 ranks against a direct computation.
 *
 * The direct computation runs on every rank over all rows, independently of
 * the cl module: the mean-CE gradient Delta of the batch from a model over
 * MPI_COMM_SELF (lt_model_forward/backward, tested on their own), per-tensor
 * norms in double over each layer's W and b, the diagonal Fisher from
 * lt_fisher_diag over MPI_COMM_SELF on all samples (empirical labels, which do
 * not depend on the rank count), and eps_i from the stream the interface fixes
 * (lt_rng_seed(seed, counter, LT_RNG_NOISE) jumped to output 2 i) for the
 * global index i. Then
 *   code:  theta_i += delta / (1 + kappa F_i) (||theta_l|| / ||Delta_l|| Delta_i + sigma eps_i)
 *   paper: theta_i += gamma Delta_i / (F_i + damping) + sqrt(2 gamma / (F_i + damping)) eps_i
 * The P-rank run's theta is compared with it: any rank dependence of the noise,
 * norms summed over one rank's part of a tensor only, a Fisher entry of the
 * wrong slice or a missing term moves entries by >= 1e-4 (delta = 1e-2,
 * sigma = 1, kappa = 10 with F ~ 1e-2..1: each part changes the update by a
 * sizeable fraction of its ~1e-2 size).
 *
 * Tolerance: Delta differs from the P-rank gradient by the order of float sums
 * (a few ulps, ~1e-9 absolute here), the norms by double rounding; the update
 * is added to float theta (one rounding, 3e-8 for |theta| < 0.5). Measured:
 * max |a - b| = 3e-8. Accepted: |a - b| <= 1e-6 + 1e-5 |b|. The running Fisher
 * F = 1e-5 F_0 + F_1 against the direct one: 1e-5 of its largest entry (float
 * sums in another order). delta = 0 leaves theta bit for bit unchanged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/cl.h"
#include "testutil.h"

enum { D = 5, H = 7, C = 3, NT = 20, GB = 10 };
#define SEED 91

typedef struct {
  float x[2][NT * D];
  int32_t y[2][NT];
  int64_t idx[NT];
} gdata;

static void make_gdata(gdata *g) {
  lt_rng r;
  lt_rng_seed(&r, 8, 0, LT_RNG_USER);
  for (int t = 0; t < 2; t++) {
    for (int i = 0; i < NT * D; i++) g->x[t][i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0 + 0.4 * t);
    for (int i = 0; i < NT; i++) g->y[t][i] = (int32_t)lt_rng_below(&r, C);
  }
  for (int i = 0; i < NT; i++) g->idx[i] = i;
}

/* The P-rank run (world) and the direct computation's model (self). */
typedef struct {
  lt_ctx *world, *self;
  lt_model *m, *mref;
  lt_trainer *t;
  lt_strategy *s;
  lt_dataset ds[2], full[2]; /* this rank's strided shard, all rows */
  gdata g;
  int first, cnt; /* this rank's block of the batch */
} rig;

static void rig_create(rig *r, const lt_cl_cfg *cc) {
  memset(r, 0, sizeof(*r));
  make_gdata(&r->g);
  assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, SEED, &r->world), LT_OK);
  assert_int_equal(lt_ctx_create(MPI_COMM_SELF, SEED, &r->self), LT_OK);
  int P = r->world->size, rank = r->world->rank;
  lt_model_cfg mc = {.in_dim = D, .nhidden = 1, .hidden = {H}, .out_dim = C, .act = LT_ACT_TANH,
                     .init = LT_INIT_XAVIER, .max_batch = 32, .pad_ranks = P};
  lt_test_agree_status(r->world, lt_model_create(r->world, &mc, &r->m));
  lt_test_agree_status(r->world, lt_model_create(r->self, &mc, &r->mref));
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  lt_test_agree_status(r->world, lt_trainer_create(r->world, r->m, &oc, LT_DIST_SHARDED, &r->t));
  lt_test_agree_status(r->world, lt_strategy_create(r->world, cc, r->t, C, &r->s));
  for (int t = 0; t < 2; t++) {
    assert_int_equal(lt_test_shard(&r->ds[t], r->g.x[t], r->g.y[t], NT, D, C, rank, P), 0);
    r->full[t] = (lt_dataset){.n = NT, .n_global = NT, .d = D, .num_classes = C,
                              .x = r->g.x[t], .y = r->g.y[t], .index = r->g.idx};
  }
  lt_test_block(GB, rank, P, &r->first, &r->cnt);
}

static void rig_destroy(rig *r) {
  lt_strategy_destroy(&r->s);
  lt_trainer_destroy(&r->t);
  lt_model_destroy(&r->m);
  lt_model_destroy(&r->mref);
  for (int t = 0; t < 2; t++) lt_test_shard_free(&r->ds[t]);
  lt_ctx_destroy(&r->self);
  lt_ctx_destroy(&r->world);
}

/* One unlearn step of the direct computation on theta[n_pad] (in place), batch
 * = rows [0, GB) of task t, running Fisher F[n_pad] (NULL: zero). */
static void direct_step(rig *r, const lt_cl_cfg *cc, int t, const float *F, uint64_t counter,
                        float *theta) {
  lt_model *m = r->mref;
  size_t n = m->n;
  memcpy(m->theta, theta, m->n_pad * sizeof(float));
  const float *lg = lt_model_forward(m, r->g.x[t], GB);
  float *dl = m->dz[m->nlayers];
  (void)lt_softmax_xent(dl, NULL, lg, r->g.y[t], NULL, GB, C, 1.0f / GB);
  lt_model_backward(m, dl, GB, m->grad, 0.0f);
  const float *g = m->grad;
  double *eps = calloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) {
    lt_rng rng;
    lt_rng_seed(&rng, SEED, counter, LT_RNG_NOISE);
    lt_rng_jump(&rng, 2 * (uint64_t)i);
    eps[i] = lt_rng_normal(&rng);
  }
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    size_t lo[2] = {ly->w_off, ly->b_off};
    size_t hi[2] = {ly->w_off + (size_t)ly->in * ly->out, ly->b_off + (size_t)ly->out};
    for (int k = 0; k < 2; k++) {
      double nt = 0.0, ng = 0.0;
      for (size_t i = lo[k]; i < hi[k]; i++) {
        nt += (double)theta[i] * theta[i];
        ng += (double)g[i] * g[i];
      }
      double scale = sqrt(nt) / (sqrt(ng) + 1e-20);
      for (size_t i = lo[k]; i < hi[k]; i++) {
        double f = F ? F[i] : 0.0, upd;
        if (cc->refresh == LT_REFRESH_CODE)
          upd = cc->refresh_delta / (1.0 + cc->refresh_kappa * f) *
                (scale * g[i] + cc->refresh_sigma * eps[i]);
        else
          upd = cc->refresh_gamma * g[i] / (f + cc->refresh_damping) +
                sqrt(2.0 * cc->refresh_gamma / (f + cc->refresh_damping)) * eps[i];
        theta[i] = (float)((double)theta[i] + upd);
      }
    }
  }
  free(eps);
}

static void base_cfg(lt_cl_cfg *cc, lt_refresh_kind kind) {
  lt_cl_cfg_default(cc);
  cc->refresh = kind;
  cc->refresh_delta = 1e-2;
  cc->refresh_kappa = 10.0;
  cc->refresh_sigma = 1.0;
  cc->refresh_gamma = 1e-4;
  cc->refresh_damping = 0.05;
  cc->fisher_mode = LT_FISHER_EMPIRICAL;
  cc->fisher_batch = 8;
}

/* End tasks 0 and 1 (no training in between, the Fisher of each at the current
 * theta); returns the direct running Fisher 1e-5 F_0 + F_1 in F[n_pad] and
 * checks the strategy's owned slice of it. */
static void two_task_ends(rig *r, float *F) {
  lt_model *m = r->m;
  float *Ft = calloc(m->n_pad, sizeof(float));
  memset(F, 0, m->n_pad * sizeof(float));
  lt_shard self_sh;
  lt_test_agree_status(r->world, lt_shard_init(r->self, m->n, m->n_pad, &self_sh));
  for (int t = 0; t < 2; t++) {
    lt_test_agree_status(r->world, lt_strategy_begin_task(r->s, t, &r->ds[t]));
    /* move theta a little between the tasks so that F_0 != F_1 */
    if (t == 1)
      lt_test_agree_status(r->world,
                           lt_strategy_step(r->s, r->g.x[1] + r->first * D, r->g.y[1] + r->first,
                                            r->cnt, GB, NULL, NULL));
    memcpy(r->mref->theta, m->theta, m->n_pad * sizeof(float));
    lt_test_agree_status(r->world, lt_fisher_diag(r->self, r->mref, &self_sh, &r->full[t],
                                                  LT_FISHER_EMPIRICAL, 8, 0, Ft));
    for (size_t i = 0; i < m->n_pad; i++) F[i] = 1e-5f * F[i] + Ft[i];
    lt_test_agree_status(r->world, lt_strategy_end_task(r->s, t, &r->ds[t]));
  }
  const float *sf = lt_strategy_state(r->s, "refresh/fisher");
  assert_non_null(sf);
  double mx = 0.0;
  for (size_t i = 0; i < m->n; i++) mx = fmax(mx, F[i]);
  assert_true(mx > 1e-2);
  lt_test_checker ck = {0};
  size_t lo = r->t->sh.lo, own = r->t->sh.hi < m->n ? r->t->sh.hi - lo : (m->n > lo ? m->n - lo : 0);
  lt_test_check_close(&ck, "refresh Fisher", sf, F + lo, own, 0.0, 1e-5 * mx);
  lt_test_agree(r->world->comm, &ck);
  free(Ft);
}

/* Refresh on rows [0, GB) of task t at P ranks vs the direct computation with F. */
static void refresh_and_compare(rig *r, const lt_cl_cfg *cc, int t, const float *F,
                                const char *what) {
  lt_model *m = r->m;
  float *want = calloc(m->n_pad, sizeof(float)), *before = calloc(m->n_pad, sizeof(float));
  memcpy(want, m->theta, m->n_pad * sizeof(float));
  memcpy(before, m->theta, m->n_pad * sizeof(float));
  uint64_t c0 = (uint64_t)lt_strategy_cursor(r->s)[3];
  for (int j = 0; j < cc->refresh_steps; j++) direct_step(r, cc, t, F, c0 + (uint64_t)j, want);
  lt_test_agree_status(r->world, lt_strategy_refresh(r->s, r->g.x[t] + r->first * D,
                                                     r->g.y[t] + r->first, r->cnt, GB, NULL));
  lt_test_checker ck = {0};
  lt_test_check_close(&ck, what, m->theta, want, m->n_pad, 1e-5, 1e-6);
  double moved = 0.0;
  for (size_t i = 0; i < m->n; i++) moved = fmax(moved, fabs((double)m->theta[i] - before[i]));
  if (!ck.bad && !(moved > 1e-3)) {
    lt_test_fail_at(&ck, "%s: theta moved by %g only", what, moved);
  }
  if (!ck.bad && (int64_t)c0 + cc->refresh_steps != lt_strategy_cursor(r->s)[3]) {
    lt_test_fail_at(&ck, "%s: noise counter %ld after %d steps from %ld", what,
                    (long)lt_strategy_cursor(r->s)[3], cc->refresh_steps, (long)c0);
  }
  lt_test_agree(r->world->comm, &ck);
  free(want);
  free(before);
}

static void test_code_identity_first_task(void **state) {
  (void)state;
  lt_cl_cfg cc;
  base_cfg(&cc, LT_REFRESH_CODE);
  rig r;
  rig_create(&r, &cc);
  lt_test_agree_status(r.world, lt_strategy_begin_task(r.s, 0, &r.ds[0]));
  const float *sf = lt_strategy_state(r.s, "refresh/fisher");
  for (size_t i = 0; i < r.t->sh.slice; i++) assert_true(sf[i] == 0.0f);
  refresh_and_compare(&r, &cc, 0, NULL, "code form, task 1 (F = 0)");
  refresh_and_compare(&r, &cc, 0, NULL, "code form, task 1, second call"); /* next counter */
  rig_destroy(&r);
}

static void test_code_fisher(void **state) {
  (void)state;
  lt_cl_cfg cc;
  base_cfg(&cc, LT_REFRESH_CODE);
  cc.refresh_steps = 2;
  rig r;
  rig_create(&r, &cc);
  float *F = calloc(r.m->n_pad, sizeof(float));
  two_task_ends(&r, F);
  refresh_and_compare(&r, &cc, 1, F, "code form, running Fisher, 2 steps");
  free(F);
  rig_destroy(&r);
}

static void test_paper_form(void **state) {
  (void)state;
  lt_cl_cfg cc;
  base_cfg(&cc, LT_REFRESH_PAPER);
  rig r;
  rig_create(&r, &cc);
  float *F = calloc(r.m->n_pad, sizeof(float));
  two_task_ends(&r, F);
  refresh_and_compare(&r, &cc, 1, F, "paper form");
  free(F);
  rig_destroy(&r);
}

static void test_delta_zero(void **state) {
  (void)state;
  lt_cl_cfg cc;
  base_cfg(&cc, LT_REFRESH_CODE);
  cc.refresh_delta = 0.0;
  cc.refresh_steps = 3;
  rig r;
  rig_create(&r, &cc);
  lt_test_agree_status(r.world, lt_strategy_begin_task(r.s, 0, &r.ds[0]));
  float *before = calloc(r.m->n_pad, sizeof(float));
  memcpy(before, r.m->theta, r.m->n_pad * sizeof(float));
  lt_test_agree_status(r.world, lt_strategy_refresh(r.s, r.g.x[0] + r.first * D, r.g.y[0] + r.first,
                                                    r.cnt, GB, NULL));
  lt_test_checker ck = {0};
  if (memcmp(before, r.m->theta, r.m->n_pad * sizeof(float)) != 0) {
    lt_test_fail_at(&ck, "delta = 0 changed theta");
  }
  lt_test_agree(r.world->comm, &ck);
  free(before);
  rig_destroy(&r);
}

/* lt_strategy_step refreshes at steps 0, every, 2 every, ... (refresh_steps each) */
static void test_schedule(void **state) {
  (void)state;
  lt_cl_cfg cc;
  base_cfg(&cc, LT_REFRESH_CODE);
  cc.refresh_every = 3;
  cc.refresh_steps = 2;
  rig r;
  rig_create(&r, &cc);
  lt_test_agree_status(r.world, lt_strategy_begin_task(r.s, 0, &r.ds[0]));
  for (int k = 0; k < 7; k++) /* refreshes before steps 0, 3, 6 */
    lt_test_agree_status(r.world, lt_strategy_step(r.s, r.g.x[0] + r.first * D, r.g.y[0] + r.first,
                                                   r.cnt, GB, NULL, NULL));
  assert_int_equal(lt_strategy_cursor(r.s)[2], 7);
  assert_int_equal(lt_strategy_cursor(r.s)[3], 6);
  rig_destroy(&r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_code_identity_first_task), cmocka_unit_test(test_code_fisher),
    cmocka_unit_test(test_paper_form), cmocka_unit_test(test_delta_zero),
    cmocka_unit_test(test_schedule),
};
LT_TEST_MPI_MAIN("refresh", tests)
