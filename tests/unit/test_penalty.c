/* Parameter-space penalties of the cl module (EWC, online EWC, SI) through the
 * public strategy interface, on one rank.
 *
 * - Gradients against central finite differences of the penalty's value. The
 *   value is an exact quadratic of the float parameters evaluated in double, so
 *   a central difference between the float points theta_i +- h (denominator:
 *   their actual distance, computed exactly in double) has no truncation error
 *   and rounding ~1e-16 / h of the value; the gradient is stored in float
 *   (relative error 6e-8). Tolerance 1e-5 relative + 1e-9 absolute. A wrong
 *   factor (lambda vs lambda/2, c vs 2c), a missing or extra task pair, or a
 *   wrong anchor is off by O(1) relative.
 * - The stored state against direct computations: EWC's pairs and online EWC's
 *   F = gamma F_0 + F_1 against lt_fisher_diag called by the test at the same
 *   theta (the sampled mode reseeds its stream at every call: bit identical),
 *   anchors against theta at the task's end (exact).
 * - EWC with lambda = 0 equals naive bit for bit.
 * - SI's omega and Omega against a double-precision simulation of plain SGD on
 *   a linear model with a quadratic loss (see test_si_quadratic). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/cl.h"
#include "testutil.h"

enum { D = 4, H = 5, C = 3, NS = 24 };

typedef struct {
  float x[NS * D];
  int32_t y[NS];
  int64_t index[NS];
  lt_dataset ds;
} data;

/* Task k: features U(-1, 1) shifted by k, labels from a fixed rule. */
static void make_data(data *d, int task) {
  lt_rng r;
  lt_rng_seed(&r, 11, (uint64_t)task, LT_RNG_USER);
  for (int i = 0; i < NS * D; i++) d->x[i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0 + 0.3 * task);
  for (int i = 0; i < NS; i++) {
    d->y[i] = (int32_t)lt_rng_below(&r, C);
    d->index[i] = i;
  }
  d->ds = (lt_dataset){.n = NS, .n_global = NS, .d = D, .num_classes = C, .x = d->x, .y = d->y,
                       .index = d->index};
  snprintf(d->ds.name, sizeof(d->ds.name), "task%d", task);
}

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_trainer *t;
  lt_strategy *s;
} rig;

static void rig_create(rig *g, const lt_cl_cfg *cc, int nhidden) {
  g->ctx = lt_test_ctx();
  lt_model_cfg mc = {.in_dim = D, .nhidden = nhidden, .hidden = {H}, .out_dim = C,
                     .act = LT_ACT_TANH, .init = LT_INIT_XAVIER, .max_batch = 32, .pad_ranks = 1};
  assert_int_equal(lt_model_create(g->ctx, &mc, &g->m), LT_OK);
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  assert_int_equal(lt_trainer_create(g->ctx, g->m, &oc, LT_DIST_SHARDED, &g->t), LT_OK);
  assert_int_equal(lt_strategy_create(g->ctx, cc, g->t, C, &g->s), LT_OK);
}

static void rig_destroy(rig *g) {
  lt_strategy_destroy(&g->s);
  lt_trainer_destroy(&g->t);
  lt_model_destroy(&g->m);
  lt_ctx_destroy(&g->ctx);
}

/* `steps` steps on batches of 8 rows of task data d */
static void train(rig *g, const data *d, int steps) {
  for (int k = 0; k < steps; k++) {
    int first = (k * 8) % NS;
    assert_int_equal(lt_strategy_step(g->s, d->x + first * D, d->y + first, 8, 8, NULL, NULL),
                     LT_OK);
  }
}

/* Move theta away from the anchors so that every (theta - anchor) matters. */
static void jitter(lt_model *m) {
  lt_rng r;
  lt_rng_seed(&r, 3, 0, LT_RNG_USER);
  for (size_t i = 0; i < m->n; i++) m->theta[i] += (float)(0.2 * lt_rng_uniform(&r) - 0.1);
}

/* The penalty's gradient against central differences of its value. */
static void check_fd(rig *g) {
  lt_model *m = g->m;
  size_t n = m->n;
  float *grad = NULL;
  assert_int_equal(lt_calloc_aligned((void **)&grad, m->n_pad, sizeof(float)), 0);
  double p0 = lt_strategy_penalty(g->s, grad);
  assert_true(p0 > 0.0);
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    float keep = m->theta[i];
    m->theta[i] = keep + 1e-2f;
    double pp = lt_strategy_penalty(g->s, NULL);
    double tp = m->theta[i];
    m->theta[i] = keep - 1e-2f;
    double pm = lt_strategy_penalty(g->s, NULL);
    double tm = m->theta[i];
    m->theta[i] = keep;
    double fd = (pp - pm) / (tp - tm);
    if (fabs(grad[i] - fd) > 1e-5 * fabs(fd) + 1e-9)
      fail_msg("param %zu: gradient %.9g, central difference %.9g", i, (double)grad[i], fd);
    nonzero += fabs(fd) > 1e-6;
  }
  assert_true(nonzero > (int)n / 2); /* the check is not vacuous */
  lt_free(grad);
}

static void fisher_of(rig *g, const data *d, lt_fisher_mode mode, float *F) {
  assert_int_equal(lt_fisher_diag(g->ctx, g->m, &g->t->sh, &d->ds, mode, 8, 0, F), LT_OK);
}

static void test_ewc_two_tasks(void **state) {
  (void)state;
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = LT_PEN_EWC;
  cc.ewc_lambda = 0.7;
  cc.fisher_batch = 8;
  rig g;
  rig_create(&g, &cc, 1);
  size_t n = g.m->n;
  data d[2];
  float *F[2], *theta_end[2];
  for (int k = 0; k < 2; k++) {
    make_data(&d[k], k);
    F[k] = calloc(g.m->n_pad, sizeof(float));
    theta_end[k] = calloc(g.m->n_pad, sizeof(float));
    assert_int_equal(lt_strategy_begin_task(g.s, k, &d[k].ds), LT_OK);
    train(&g, &d[k], 5);
    memcpy(theta_end[k], g.m->theta, n * sizeof(float));
    fisher_of(&g, &d[k], LT_FISHER_SAMPLED, F[k]); /* the default mode */
    assert_int_equal(lt_strategy_end_task(g.s, k, &d[k].ds), LT_OK);
  }
  /* one pair per task: the task's Fisher at its end and theta at its end */
  for (int k = 0; k < 2; k++) {
    char name[32];
    snprintf(name, sizeof(name), "ewc/fisher_%d", k);
    const float *sf = lt_strategy_state(g.s, name);
    snprintf(name, sizeof(name), "ewc/anchor_%d", k);
    const float *sa = lt_strategy_state(g.s, name);
    assert_non_null(sf);
    assert_non_null(sa);
    assert_memory_equal(sf, F[k], n * sizeof(float));
    assert_memory_equal(sa, theta_end[k], n * sizeof(float));
  }
  assert_null(lt_strategy_state(g.s, "ewc/fisher_2"));
  /* the value against a direct double sum */
  jitter(g.m);
  double direct = 0.0;
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < n; i++) {
      double dd = (double)g.m->theta[i] - theta_end[k][i];
      direct += 0.5 * 0.7 * F[k][i] * dd * dd;
    }
  double v = lt_strategy_penalty(g.s, NULL);
  assert_true(fabs(v - direct) <= 1e-12 * direct);
  check_fd(&g);
  for (int k = 0; k < 2; k++) {
    free(F[k]);
    free(theta_end[k]);
  }
  rig_destroy(&g);
}

static void test_online_ewc(void **state) {
  (void)state;
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = LT_PEN_ONLINE_EWC;
  cc.ewc_lambda = 2.5;
  cc.ewc_gamma = 0.5;
  cc.fisher_mode = LT_FISHER_EMPIRICAL;
  cc.fisher_batch = 8;
  rig g;
  rig_create(&g, &cc, 1);
  size_t n = g.m->n;
  data d[2];
  float *F[2];
  for (int k = 0; k < 2; k++) {
    make_data(&d[k], k);
    F[k] = calloc(g.m->n_pad, sizeof(float));
    assert_int_equal(lt_strategy_begin_task(g.s, k, &d[k].ds), LT_OK);
    train(&g, &d[k], 4);
    fisher_of(&g, &d[k], LT_FISHER_EMPIRICAL, F[k]);
    assert_int_equal(lt_strategy_end_task(g.s, k, &d[k].ds), LT_OK);
  }
  const float *sf = lt_strategy_state(g.s, "online_ewc/fisher");
  const float *sa = lt_strategy_state(g.s, "online_ewc/anchor");
  assert_non_null(sf);
  assert_non_null(sa);
  for (size_t i = 0; i < n; i++) {
    float want = 0.5f * F[0][i] + F[1][i]; /* the same float operations: exact */
    if (sf[i] != want) fail_msg("F[%zu] = %.9g, gamma F_0 + F_1 = %.9g", i, (double)sf[i], (double)want);
  }
  assert_memory_equal(sa, g.m->theta, n * sizeof(float));
  jitter(g.m);
  check_fd(&g);
  free(F[0]);
  free(F[1]);
  rig_destroy(&g);
}

static void test_si_fd(void **state) {
  (void)state;
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = LT_PEN_SI;
  cc.si_c = 0.3;
  rig g;
  rig_create(&g, &cc, 1);
  data d;
  make_data(&d, 0);
  assert_int_equal(lt_strategy_begin_task(g.s, 0, NULL), LT_OK); /* SI needs no data */
  train(&g, &d, 6);
  assert_int_equal(lt_strategy_end_task(g.s, 0, NULL), LT_OK);
  jitter(g.m);
  check_fd(&g);
  rig_destroy(&g);
}

static void test_ewc_lambda0_is_naive(void **state) {
  (void)state;
  lt_cl_cfg c0, cn, c5;
  lt_cl_cfg_default(&c0);
  lt_cl_cfg_default(&cn);
  c0.penalty = LT_PEN_EWC;
  c0.ewc_lambda = 0.0;
  c0.fisher_batch = 8;
  c5 = c0;
  c5.ewc_lambda = 5.0; /* the control: a penalty that acts does change theta */
  rig g[3];
  rig_create(&g[0], &c0, 1);
  rig_create(&g[1], &cn, 1);
  rig_create(&g[2], &c5, 1);
  for (int k = 0; k < 3; k++) {
    data d;
    make_data(&d, k);
    for (int j = 0; j < 3; j++) assert_int_equal(lt_strategy_begin_task(g[j].s, k, &d.ds), LT_OK);
    for (int s = 0; s < 4; s++) {
      int first = s * 6;
      lt_step_stats st[3];
      for (int j = 0; j < 3; j++)
        assert_int_equal(
            lt_strategy_step(g[j].s, d.x + first * D, d.y + first, 6, 6, NULL, &st[j]), LT_OK);
      assert_true(st[0].loss == st[1].loss);
      assert_true(st[0].penalty == 0.0);
      assert_true(k == 0 || s == 0 || st[2].penalty > 0.0); /* at a task's start theta = anchor */
    }
    for (int j = 0; j < 3; j++) assert_int_equal(lt_strategy_end_task(g[j].s, k, &d.ds), LT_OK);
    assert_memory_equal(g[0].m->theta, g[1].m->theta, g[0].m->n_pad * sizeof(float));
    if (k > 0) assert_memory_not_equal(g[2].m->theta, g[1].m->theta, g[1].m->n * sizeof(float));
  }
  for (int j = 0; j < 3; j++) rig_destroy(&g[j]);
}

/* SI on a linear model (no hidden layer) with the quadratic loss
 *   L_k(theta) = (1/R) sum_r 1/2 ||W x_r + b - z_k,r||^2      (task k's targets z_k)
 * trained by plain SGD (lr 0.05) for K steps per task through the trainer's
 * multi-term step (the MSE term) with the strategy's hooks. The reference
 * simulates the same in double: g = dL/dtheta (closed form), theta' = theta -
 * lr (g + 2 c Omega (theta - anchor)), omega += -g (theta' - theta), and at the
 * task end Omega += omega / ((theta_end - theta_start)^2 + xi).
 * c = 2 gives the penalty's gradient a visible share in task 2: omega
 * accumulated with the penalised gradient is off by ~2e-2 relative.
 * Tolerance: the float run and the double reference differ by float rounding
 * in the forward/backward (~1e-7 relative per step), amplified over 2 K = 20
 * steps of a contracting map and by 1/((dtheta)^2 + xi) <= 1/xi = 100 in Omega.
 * Measured: max |diff| / max |ref| = 2-4e-7 for omega and Omega. Accepted: 1e-5 of
 * the largest entry of the reference (absolute, per entry): 2000x below the
 * penalised-gradient mistake above (checked by hand, as are |dtheta| instead of
 * dtheta^2 in Omega: 50% off). */
enum { R = 6, QIN = 3, QOUT = 2, QK = 10 };

static void test_si_quadratic(void **state) {
  (void)state;
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = LT_PEN_SI;
  cc.si_c = 2.0;
  cc.si_xi = 1e-2;
  lt_ctx *ctx = lt_test_ctx();
  lt_model_cfg mc = {.in_dim = QIN, .nhidden = 0, .out_dim = QOUT, .act = LT_ACT_NONE,
                     .init = LT_INIT_XAVIER, .max_batch = 8, .pad_ranks = 1};
  lt_model *m = NULL;
  assert_int_equal(lt_model_create(ctx, &mc, &m), LT_OK);
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc); /* plain SGD */
  oc.lr = 0.05;
  lt_trainer *t = NULL;
  assert_int_equal(lt_trainer_create(ctx, m, &oc, LT_DIST_SHARDED, &t), LT_OK);
  lt_strategy *s = NULL;
  assert_int_equal(lt_strategy_create(ctx, &cc, t, QOUT, &s), LT_OK);

  enum { NP = QOUT * QIN + QOUT };
  assert_int_equal((int)m->n, NP);
  float x[R * QIN], z[2][R * QOUT];
  lt_rng r;
  lt_rng_seed(&r, 21, 0, LT_RNG_USER);
  for (int i = 0; i < R * QIN; i++) x[i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < R * QOUT; i++) z[k][i] = (float)(4.0 * lt_rng_uniform(&r) - 2.0);

  /* reference state in double: theta = [W (QOUT x QIN) row-major, b (QOUT)] */
  double th[NP], omega[NP] = {0}, Omega[NP] = {0}, anchor[NP] = {0}, start[NP];
  for (int i = 0; i < NP; i++) th[i] = m->theta[i];
  double lr = oc.lr, c = cc.si_c, xi = cc.si_xi;
  for (int k = 0; k < 2; k++) {
    assert_int_equal(lt_strategy_begin_task(s, k, NULL), LT_OK);
    memcpy(start, th, sizeof(th));
    lt_loss_term term = {.kind = LT_TERM_MSE_LOGITS, .x = x, .rows = R, .global_rows = R,
                         .z = z[k], .weight = 1.0};
    for (int step = 0; step < QK; step++) {
      assert_int_equal(lt_trainer_step_terms(t, &term, 1, NULL), LT_OK);
      double g[NP] = {0};
      for (int row = 0; row < R; row++)
        for (int o = 0; o < QOUT; o++) {
          double f = th[QOUT * QIN + o];
          for (int j = 0; j < QIN; j++) f += th[o * QIN + j] * x[row * QIN + j];
          double e = (f - z[k][row * QOUT + o]) / R;
          for (int j = 0; j < QIN; j++) g[o * QIN + j] += e * x[row * QIN + j];
          g[QOUT * QIN + o] += e;
        }
      for (int i = 0; i < NP; i++) {
        double pen = k > 0 ? 2.0 * c * Omega[i] * (th[i] - anchor[i]) : 0.0;
        double next = th[i] - lr * (g[i] + pen);
        omega[i] += -g[i] * (next - th[i]);
        th[i] = next;
      }
    }
    /* omega before the task end */
    const float *so = lt_strategy_state(s, "si/omega");
    double mx = 0.0;
    for (int i = 0; i < NP; i++) mx = fmax(mx, fabs(omega[i]));
    assert_true(mx > 1e-3);
    for (int i = 0; i < NP; i++)
      if (fabs(so[i] - omega[i]) > 1e-5 * mx)
        fail_msg("task %d: omega[%d] = %.9g, reference %.9g", k, i, (double)so[i], omega[i]);
    assert_int_equal(lt_strategy_end_task(s, k, NULL), LT_OK);
    for (int i = 0; i < NP; i++) {
      Omega[i] += omega[i] / ((th[i] - start[i]) * (th[i] - start[i]) + xi);
      omega[i] = 0.0;
      anchor[i] = th[i];
    }
    const float *sO = lt_strategy_state(s, "si/Omega");
    const float *sa = lt_strategy_state(s, "si/anchor");
    so = lt_strategy_state(s, "si/omega");
    mx = 0.0;
    for (int i = 0; i < NP; i++) mx = fmax(mx, fabs(Omega[i]));
    for (int i = 0; i < NP; i++) {
      if (fabs(sO[i] - Omega[i]) > 1e-5 * mx)
        fail_msg("task %d: Omega[%d] = %.9g, reference %.9g", k, i, (double)sO[i], Omega[i]);
      if (fabs(sa[i] - anchor[i]) > 1e-5 * (1.0 + fabs(anchor[i])))
        fail_msg("task %d: anchor[%d] = %.9g, reference %.9g", k, i, (double)sa[i], anchor[i]);
      assert_true(so[i] == 0.0f);
    }
  }
  lt_strategy_destroy(&s);
  assert_null(t->pre_update); /* destroy removes its hooks */
  lt_trainer_destroy(&t);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static void test_config_errors(void **state) {
  (void)state;
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  rig g;
  rig_create(&g, &cc, 1); /* naive */
  lt_strategy *s = NULL;
  cc.penalty = LT_PEN_SI;
  cc.si_xi = 0.0;
  assert_int_equal(lt_strategy_create(g.ctx, &cc, g.t, C, &s), LT_ERR_ARG);
  assert_non_null(strstr(g.ctx->errmsg, "si_xi"));
  lt_error_clear(g.ctx);
  lt_cl_cfg_default(&cc);
  cc.replay = LT_REPLAY_ER;
  cc.replay_batch = 33; /* > max_batch 32 */
  assert_int_equal(lt_strategy_create(g.ctx, &cc, g.t, C, &s), LT_ERR_ARG);
  assert_non_null(strstr(g.ctx->errmsg, "replay_batch"));
  lt_error_clear(g.ctx);
  lt_cl_cfg_default(&cc);
  assert_int_equal(lt_strategy_create(g.ctx, &cc, g.t, C + 1, &s), LT_ERR_ARG);
  assert_null(s);
  rig_destroy(&g);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ewc_two_tasks),       cmocka_unit_test(test_online_ewc),
    cmocka_unit_test(test_si_fd),               cmocka_unit_test(test_ewc_lambda0_is_naive),
    cmocka_unit_test(test_si_quadratic),        cmocka_unit_test(test_config_errors),
};
LT_TEST_MPI_MAIN("penalty", tests)
