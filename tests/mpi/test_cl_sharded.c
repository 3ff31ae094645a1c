/* Continual-learning strategies at P ranks (1-4) against one rank.
 *
 * Every rank builds the same two tasks (NT = 36 samples each; a task's data
 * set on rank r is its strided shard r, r+P, ..., as lt_dataset_load gives it)
 * and the same model (pad_ranks = P, so the flat layout is the same). Step k
 * of a task trains on the global rows [12 k mod 36, +12), rank r taking its
 * contiguous block of lt_local_batch rows. The reference runs the same on a
 * context over MPI_COMM_SELF with all rows. Fisher: empirical labels (the
 * sampled mode draws labels from per-rank streams, so its samples depend on P).
 *
 * Parameter-space strategies and refresh (ewc, online_ewc, si, naive+refresh
 * code, naive+refresh paper): the P-rank theta after two tasks, and each state
 * array's owned slice, against the reference's. Tolerance: the runs differ only
 * in the order of float sums (gradient reduce-scatter, Fisher sums, per-tensor
 * norms in double); each gradient entry differs by a few ulps (~1e-8) and SGD
 * with lr 0.1 over 8 steps plus the penalties' (contracting) pull keeps theta
 * within ~1e-7: measured max |a - b| <= 6e-8 at 2-4 ranks. Accepted:
 * |a - b| <= 1e-5 |b| + 1e-6 for theta, anchors, Omega (O(0.1..1) entries),
 * and 1e-5 of the array's largest entry for Fisher arrays and omega. Every
 * strategy's effect is made large in the test (lambda, c, refresh delta and
 * sigma): its theta differs from plain fine-tuning by > 1e-3 (checked), so a
 * penalty or refresh that is wrong on a shard (offsets, missing slice, rank-
 * dependent noise) fails by orders of magnitude.
 *
 * Replay strategies (er, der, derpp, derpp+online_ewc): the buffer is sharded
 * (rank r keeps its own reservoir, and a draw is split over the ranks), so the
 * rows replayed depend on P and no P-rank run equals the single-rank one.
 * Checked instead: two runs at P ranks are bit identical (deterministic: the
 * streams depend on (seed, rank) only); at P = 1 the run over the world
 * communicator is bit identical to the one over MPI_COMM_SELF; replay changes
 * theta (vs naive, > 1e-3). test_replay_terms checks the loss terms exactly at
 * every P: with a first batch of identical rows, any draw is that row, so
 * total - CE of the second step must be 2 alpha * 1/2 ||f(x*) - z*||^2 (DER,
 * z* the logits BEFORE the first update), CE(x*) (ER), or both parts (DER++).
 *
 * Restart (test_ckpt_restart, ewc and si+refresh code): the state registered
 * with a checkpoint registry, written in the middle of task 2 and read into a
 * fresh run, continues bit for bit (theta and every state array equal).
 *
 * Memory: every per-parameter state array at P ranks has 1/P of the
 * single-rank run's floats (from lt_strategy_bytes).
 *
 * Measured at 1-4 ranks: P-rank vs single-rank theta within 6e-8; effects vs
 * naive 0.05-0.34; replay terms within 2e-8 relative of the expected values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/checkpoint.h"
#include "lethe/cl.h"
#include "testutil.h"

enum { D = 6, H = 8, C = 4, NT = 36, GB = 12, STEPS = 4, TASKS = 2 };
#define SEED 77
#define RTOL 1e-5
#define ATOL 1e-6

typedef struct {
  float x[TASKS][NT * D];
  int32_t y[TASKS][NT];
} gdata;

static void make_gdata(gdata *g) {
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (int t = 0; t < TASKS; t++) {
    for (int i = 0; i < NT * D; i++) g->x[t][i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0 + 0.5 * t);
    for (int i = 0; i < NT; i++) g->y[t][i] = (int32_t)lt_rng_below(&r, C);
  }
}

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_trainer *t;
  lt_strategy *s;
  lt_dataset ds[TASKS]; /* this rank's strided shard of each task */
} run;

/* comm: MPI_COMM_WORLD (the P-rank run) or MPI_COMM_SELF (the reference); the
 * layout is padded for `pad` ranks either way. */
static void run_create(run *r, MPI_Comm comm, int pad, const lt_cl_cfg *cc, const gdata *g) {
  memset(r, 0, sizeof(*r));
  assert_int_equal(lt_ctx_create(comm, SEED, &r->ctx), LT_OK);
  lt_model_cfg mc = {.in_dim = D, .nhidden = 1, .hidden = {H}, .out_dim = C, .act = LT_ACT_TANH,
                     .init = LT_INIT_XAVIER, .max_batch = 32, .pad_ranks = pad};
  lt_test_agree_status(r->ctx, lt_model_create(r->ctx, &mc, &r->m));
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  oc.momentum = 0.5;
  lt_test_agree_status(r->ctx, lt_trainer_create(r->ctx, r->m, &oc, LT_DIST_SHARDED, &r->t));
  lt_test_agree_status(r->ctx, lt_strategy_create(r->ctx, cc, r->t, C, &r->s));
  for (int t = 0; t < TASKS; t++)
    assert_int_equal(
        lt_test_shard(&r->ds[t], g->x[t], g->y[t], NT, D, C, r->ctx->rank, r->ctx->size), 0);
}

static void run_destroy(run *r) {
  lt_strategy_destroy(&r->s);
  lt_trainer_destroy(&r->t);
  lt_model_destroy(&r->m);
  for (int t = 0; t < TASKS; t++) lt_test_shard_free(&r->ds[t]);
  lt_ctx_destroy(&r->ctx);
}

/* steps [k0, k1) of task t */
static void run_steps(run *r, const gdata *g, int t, int k0, int k1) {
  int first, cnt;
  lt_test_block(GB, r->ctx->rank, r->ctx->size, &first, &cnt);
  for (int k = k0; k < k1; k++) {
    int row = (k * GB) % NT + first;
    lt_test_agree_status(r->ctx, lt_strategy_step(r->s, g->x[t] + (size_t)row * D, g->y[t] + row,
                                                  cnt, GB, NULL, NULL));
  }
}

static void run_tasks(run *r, const gdata *g) {
  for (int t = 0; t < TASKS; t++) {
    lt_test_agree_status(r->ctx, lt_strategy_begin_task(r->s, t, &r->ds[t]));
    run_steps(r, g, t, 0, STEPS);
    lt_test_agree_status(r->ctx, lt_strategy_end_task(r->s, t, &r->ds[t]));
  }
}

typedef struct {
  const char *name;
  lt_penalty_kind pen;
  lt_replay_kind rep;
  lt_refresh_kind ref;
} variant;

static void make_cfg(lt_cl_cfg *cc, const variant *v) {
  lt_cl_cfg_default(cc);
  cc->penalty = v->pen;
  cc->replay = v->rep;
  cc->refresh = v->ref;
  cc->ewc_lambda = 20.0; /* lr lambda max F stays < 2 (logged) */
  cc->ewc_gamma = 0.7;
  cc->si_c = 1.0;
  cc->fisher_mode = LT_FISHER_EMPIRICAL;
  cc->fisher_batch = GB;
  cc->buffer_size = 20;
  cc->replay_batch = 8;
  cc->der_alpha = 0.5;
  cc->derpp_beta = 0.7;
  cc->refresh_delta = 1e-2;
  cc->refresh_kappa = 0.5;
  cc->refresh_sigma = 0.3;
  cc->refresh_gamma = 1e-4;
  cc->refresh_damping = 0.1;
  cc->refresh_every = 2;
  cc->refresh_steps = 2;
  cc->kfac_lambda = 20.0; /* K-FAC (issue 5) */
  cc->kfac_gamma = 0.7;
  cc->kfac_block = 3;     /* several blocks per factor (dims 7, 9, 4) on any grid */
}

/* max |a - b| over the real parameters, on every rank (theta is replicated) */
static double max_diff(const run *a, const run *b) {
  double d = 0.0;
  for (size_t i = 0; i < a->m->n; i++) d = fmax(d, fabs((double)a->m->theta[i] - b->m->theta[i]));
  return d;
}

static void test_variant(void **state) {
  const variant *v = *state;
  gdata g;
  make_gdata(&g);
  lt_cl_cfg cc;
  make_cfg(&cc, v);
  lt_ctx *world = NULL;
  assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, SEED, &world), LT_OK);
  int P = world->size;
  lt_test_checker ck = {0};

  run ref, naive;
  run_create(&ref, MPI_COMM_SELF, P, &cc, &g);
  run_tasks(&ref, &g);
  variant nv = {"naive", LT_PEN_NONE, LT_REPLAY_NONE, LT_REFRESH_OFF};
  lt_cl_cfg ncc;
  make_cfg(&ncc, &nv);
  run_create(&naive, MPI_COMM_SELF, P, &ncc, &g);
  run_tasks(&naive, &g);
  double effect = max_diff(&ref, &naive);
  if (effect <= 1e-3) {
    lt_test_fail_at(&ck, "%s: theta within %g of naive (effect too small)", v->name, effect);
  }

  run a;
  run_create(&a, MPI_COMM_WORLD, P, &cc, &g);
  run_tasks(&a, &g);
  const lt_shard *sh = &a.t->sh;
  size_t own = sh->hi < a.m->n ? sh->hi - sh->lo : (a.m->n > sh->lo ? a.m->n - sh->lo : 0);

  if (v->rep == LT_REPLAY_NONE) {
    lt_test_check_close(&ck, "theta", a.m->theta, ref.m->theta, a.m->n, RTOL, ATOL);
    static const char *names[] = {"ewc/fisher_0", "ewc/anchor_0", "ewc/fisher_1", "ewc/anchor_1",
                                  "online_ewc/fisher", "online_ewc/anchor", "si/omega",
                                  "si/Omega", "si/anchor", "si/theta_start", "refresh/fisher"};
    int found = 0;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
      const float *sa = lt_strategy_state(a.s, names[k]);
      const float *sr = lt_strategy_state(ref.s, names[k]);
      if (!sa != !sr) {
        lt_test_fail_at(&ck, "%s: state %s exists in one run only", v->name, names[k]);
      }
      if (!sa || !sr) continue;
      found++;
      int scaled = strstr(names[k], "fisher") || strstr(names[k], "omega");
      double mx = 0.0;
      for (size_t i = 0; i < a.m->n; i++) mx = fmax(mx, fabs((double)sr[i]));
      char what[96];
      snprintf(what, sizeof(what), "%s: %s", v->name, names[k]);
      lt_test_check_close(&ck, what, sa, sr + sh->lo, own, scaled ? 0.0 : RTOL,
                          scaled ? 1e-5 * mx : ATOL);
    }
    /* K-FAC state is replicated (factors, anchor) and not among these arrays */
    int kfac_only = v->pen == LT_PEN_KFAC || (v->pen == LT_PEN_NONE && v->ref == LT_REFRESH_KFAC);
    if (found == 0 && !kfac_only) {
      lt_test_fail_at(&ck, "%s: no state arrays found", v->name);
    }
    /* sharded state: the single-rank run holds the same arrays with n_pad floats
     * each instead of slice = n_pad / P (all else equal), so the difference in
     * bytes is (n_pad - slice) * 4 times the number of per-parameter arrays,
     * at least the state arrays found above */
    size_t b1 = lt_strategy_bytes(ref.s), bp = lt_strategy_bytes(a.s);
    size_t unit = (a.m->n_pad - sh->slice) * sizeof(float);
    if (P > 1 && !kfac_only && (b1 <= bp || (b1 - bp) % unit != 0 || (b1 - bp) / unit < (size_t)found)) {
      lt_test_fail_at(&ck, "%s: %zu bytes of state at %d ranks, %zu at 1: not %d+ arrays of 1/P",
                      v->name, bp, P, b1, found);
    }
  } else {
    run b;
    run_create(&b, MPI_COMM_WORLD, P, &cc, &g);
    run_tasks(&b, &g);
    if (memcmp(a.m->theta, b.m->theta, a.m->n_pad * sizeof(float)) != 0) {
      lt_test_fail_at(&ck, "%s: two runs at %d ranks differ", v->name, P);
    }
    if (P == 1 && memcmp(a.m->theta, ref.m->theta, a.m->n_pad * sizeof(float)) != 0) {
      lt_test_fail_at(&ck, "%s: world (1 rank) and self runs differ", v->name);
    }
    run_destroy(&b);
  }
  lt_test_agree(world->comm, &ck);
  run_destroy(&a);
  run_destroy(&naive);
  run_destroy(&ref);
  lt_ctx_destroy(&world);
}

/* The replay terms' values at the second step, at P ranks (see the top). */
static void test_replay_terms(void **state) {
  (void)state;
  gdata g;
  make_gdata(&g);
  static const lt_replay_kind kinds[] = {LT_REPLAY_ER, LT_REPLAY_DER, LT_REPLAY_DERPP};
  for (int kk = 0; kk < 3; kk++) {
    variant v = {"replay", LT_PEN_NONE, kinds[kk], LT_REFRESH_OFF};
    lt_cl_cfg cc;
    make_cfg(&cc, &v);
    run a;
    lt_ctx *world = NULL;
    assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, SEED, &world), LT_OK);
    run_create(&a, MPI_COMM_WORLD, world->size, &cc, &g);
    int first, cnt;
    lt_test_block(GB, world->rank, world->size, &first, &cnt);
    /* batch 1: GB copies of sample 0 of task 0 */
    float x1[GB * D];
    int32_t y1[GB];
    for (int i = 0; i < GB; i++) {
      memcpy(x1 + i * D, g.x[0], D * sizeof(float));
      y1[i] = g.y[0][0];
    }
    lt_model *m = a.m;
    const float *lg = lt_model_forward(m, x1, 1);
    float z0[C];
    memcpy(z0, lg, sizeof(z0)); /* the logits before the first update */
    lt_test_agree_status(a.ctx, lt_strategy_begin_task(a.s, 0, &a.ds[0]));
    lt_step_stats st;
    lt_test_agree_status(a.ctx,
                         lt_strategy_step(a.s, x1 + first * D, y1 + first, cnt, GB, NULL, &st));
    /* expected replay terms at theta_1 */
    lg = lt_model_forward(m, x1, 1);
    double mse = 0.0, mx = lg[0], se = 0.0;
    for (int c = 0; c < C; c++) {
      mse += 0.5 * ((double)lg[c] - z0[c]) * ((double)lg[c] - z0[c]);
      mx = fmax(mx, lg[c]);
    }
    for (int c = 0; c < C; c++) se += exp((double)lg[c] - mx);
    double ce = mx + log(se) - lg[y1[0]];
    double want = kinds[kk] == LT_REPLAY_ER    ? ce
                  : kinds[kk] == LT_REPLAY_DER ? 2.0 * cc.der_alpha * mse
                                               : 2.0 * cc.der_alpha * mse + cc.derpp_beta * ce;
    int row = GB + first; /* batch 2: other rows */
    lt_test_agree_status(a.ctx,
                         lt_strategy_step(a.s, g.x[0] + row * D, g.y[0] + row, cnt, GB, NULL, &st));
    double got = st.total - st.loss;
    /* float forward passes and float sums of GB identical rows: ~1e-6 relative */
    lt_test_checker ck = {0};
    if (!(fabs(got - want) <= 1e-5 * fabs(want) + 1e-7) || !(mse > 1e-4)) {
      lt_test_fail_at(&ck, "%s: replay terms %.9g, expected %.9g (mse %.3g)",
                      lt_replay_name(kinds[kk]), got, want, mse);
    }
    lt_test_agree(world->comm, &ck);
    run_destroy(&a);
    lt_ctx_destroy(&world);
  }
}

/* A registry of the run's theta, optimizer and strategy state. */
static lt_ckpt *registry(run *r) {
  lt_ckpt_info info = {.deck_text = "[test]\n", .blis_kernels = "test", .blis_threads = 1};
  lt_ckpt *ck = NULL;
  lt_test_agree_status(r->ctx, lt_ckpt_create(r->ctx, &r->t->sh, &info, &ck));
  lt_ckpt_layer L[LT_MAX_LAYERS];
  int nl = lt_ckpt_model_layout(r->m, L, LT_MAX_LAYERS);
  lt_test_agree_status(r->ctx, lt_ckpt_set_layout(ck, L, nl));
  lt_test_agree_status(r->ctx, lt_ckpt_add_params(ck, r->m->theta));
  lt_test_agree_status(r->ctx, lt_ckpt_add_optim(ck, r->t->opt));
  lt_test_agree_status(r->ctx, lt_strategy_ckpt_add(r->s, ck, TASKS));
  return ck;
}

static void test_ckpt_restart(void **state) {
  (void)state;
  static const variant rv[] = {{"ewc", LT_PEN_EWC, LT_REPLAY_NONE, LT_REFRESH_OFF},
                               {"si+refresh", LT_PEN_SI, LT_REPLAY_NONE, LT_REFRESH_CODE},
                               {"derpp+oewc", LT_PEN_ONLINE_EWC, LT_REPLAY_DERPP, LT_REFRESH_OFF},
                               {"kfac+refresh_kfac", LT_PEN_KFAC, LT_REPLAY_NONE, LT_REFRESH_KFAC}};
  gdata g;
  make_gdata(&g);
  for (int vi = 0; vi < (int)(sizeof(rv) / sizeof(rv[0])); vi++) {
    lt_cl_cfg cc;
    make_cfg(&cc, &rv[vi]);
    lt_ctx *world = NULL;
    assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, SEED, &world), LT_OK);
    char dir[512];
    lt_test_tmpdir(dir, sizeof(dir), rv[vi].name);
    run a, b;
    run_create(&a, MPI_COMM_WORLD, world->size, &cc, &g);
    lt_ckpt *cka = registry(&a);
    lt_test_agree_status(a.ctx, lt_strategy_begin_task(a.s, 0, &a.ds[0]));
    run_steps(&a, &g, 0, 0, STEPS);
    lt_test_agree_status(a.ctx, lt_strategy_end_task(a.s, 0, &a.ds[0]));
    lt_test_agree_status(a.ctx, lt_strategy_begin_task(a.s, 1, &a.ds[1]));
    run_steps(&a, &g, 1, 0, 2);
    lt_ckpt_cursor cur = {.task = 1, .step = 2, .global_step = STEPS + 2,
                          .optim_steps = lt_optim_steps(a.t->opt)};
    lt_strategy_ckpt_prepare(a.s);
    lt_test_agree_status(a.ctx, lt_ckpt_write(cka, dir, 0, &cur, NULL));
    run_steps(&a, &g, 1, 2, STEPS);
    lt_test_agree_status(a.ctx, lt_strategy_end_task(a.s, 1, &a.ds[1]));

    run_create(&b, MPI_COMM_WORLD, world->size, &cc, &g);
    lt_ckpt *ckb = registry(&b);
    lt_ckpt_cursor back;
    lt_ckpt_report rep;
    lt_test_agree_status(b.ctx, lt_ckpt_read(ckb, dir, &back, &rep));
    lt_test_agree_status(b.ctx, lt_strategy_ckpt_restore(b.s, rep.per_rank_restored));
    lt_optim_set_steps(b.t->opt, back.optim_steps);
    lt_test_checker ck = {0};
    if (lt_strategy_cursor(b.s)[0] != 1 || lt_strategy_cursor(b.s)[1] != 1 ||
        lt_strategy_cursor(b.s)[2] != STEPS + 2) {
      lt_test_fail_at(&ck, "%s: cursor {%ld, %ld, %ld} after the read", rv[vi].name,
                      (long)lt_strategy_cursor(b.s)[0], (long)lt_strategy_cursor(b.s)[1],
                      (long)lt_strategy_cursor(b.s)[2]);
    }
    run_steps(&b, &g, 1, 2, STEPS); /* no begin_task: the interrupted task goes on */
    lt_test_agree_status(b.ctx, lt_strategy_end_task(b.s, 1, &b.ds[1]));
    if (memcmp(a.m->theta, b.m->theta, a.m->n_pad * sizeof(float)) != 0) {
      lt_test_fail_at(&ck, "%s: theta after the restart differs", rv[vi].name);
    }
    static const char *names[] = {"ewc/fisher_0", "ewc/anchor_0", "ewc/fisher_1", "ewc/anchor_1",
                                  "si/omega", "si/Omega", "si/anchor", "si/theta_start",
                                  "refresh/fisher"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
      const float *sa = lt_strategy_state(a.s, names[k]), *sb = lt_strategy_state(b.s, names[k]);
      if (!sa != !sb || (sa && memcmp(sa, sb, a.t->sh.slice * sizeof(float)) != 0)) {
        lt_test_fail_at(&ck, "%s: state %s after the restart differs", rv[vi].name, names[k]);
      }
    }
    lt_test_agree(world->comm, &ck);
    lt_ckpt_destroy(&cka);
    lt_ckpt_destroy(&ckb);
    run_destroy(&a);
    run_destroy(&b);
    lt_test_rmtree(dir);
    lt_ctx_destroy(&world);
  }
}

static const variant V[] = {
    {"ewc", LT_PEN_EWC, LT_REPLAY_NONE, LT_REFRESH_OFF},
    {"online_ewc", LT_PEN_ONLINE_EWC, LT_REPLAY_NONE, LT_REFRESH_OFF},
    {"si", LT_PEN_SI, LT_REPLAY_NONE, LT_REFRESH_OFF},
    {"naive+refresh_code", LT_PEN_NONE, LT_REPLAY_NONE, LT_REFRESH_CODE},
    {"naive+refresh_paper", LT_PEN_NONE, LT_REPLAY_NONE, LT_REFRESH_PAPER},
    {"er", LT_PEN_NONE, LT_REPLAY_ER, LT_REFRESH_OFF},
    {"der", LT_PEN_NONE, LT_REPLAY_DER, LT_REFRESH_OFF},
    {"derpp", LT_PEN_NONE, LT_REPLAY_DERPP, LT_REFRESH_OFF},
    {"derpp+online_ewc", LT_PEN_ONLINE_EWC, LT_REPLAY_DERPP, LT_REFRESH_OFF},
    {"kfac", LT_PEN_KFAC, LT_REPLAY_NONE, LT_REFRESH_OFF},           /* K-FAC (issue 5) */
    {"naive+refresh_kfac", LT_PEN_NONE, LT_REPLAY_NONE, LT_REFRESH_KFAC},
    {"derpp+kfac", LT_PEN_KFAC, LT_REPLAY_DERPP, LT_REFRESH_OFF},
};

#define VARIANT(i) cmocka_unit_test_prestate(test_variant, (void *)&V[i])
static const struct CMUnitTest tests[] = {
    VARIANT(0), VARIANT(1), VARIANT(2), VARIANT(3), VARIANT(4), VARIANT(5), VARIANT(6), VARIANT(7),
    VARIANT(8), VARIANT(9), VARIANT(10), VARIANT(11), cmocka_unit_test(test_replay_terms), cmocka_unit_test(test_ckpt_restart),
};
LT_TEST_MPI_MAIN("cl_sharded", tests)
