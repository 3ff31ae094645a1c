/* K-FAC Laplace penalty (cl.penalty = kfac) at 1-4 ranks.
 *
 * - Value: after task 1 (factors and anchor taken there), at a perturbed theta
 *   the penalty summed over ranks equals (lambda/2) sum_l sum_{r,s,j,k}
 *   dW[r][j] G[r][s] dW[s][k] A[j][k], a quadruple loop over factors computed
 *   separately (lt_kfac_compute on the same data at the anchor, which
 *   test_kfac checks against single-sample sums). The library forms G dW A
 *   with float GEMMs (factors rounded to float, ~6e-8 relative each, sums of
 *   <= 8 terms): ~1e-6 relative; we allow 1e-5. A wrong factor, row or
 *   column, or a missing bias column is off by O(1).
 * - Gradient: every entry against central finite differences of that value.
 *   The penalty is exactly quadratic in theta, so the central difference is
 *   exact but for rounding: the value's (float GEMMs: ~1e-6 P / h, h = 1e-2,
 *   i.e. ~1e-6 of the gradient's scale) and the float gradient's (~1e-6). We divide by the step actually taken in
 *   float and allow 1e-5 * max|grad|: a wrong row/column, a missing bias
 *   column, a transposed factor or an entry added on the wrong rank gives
 *   errors of order |grad|.
 * - lambda = 0 equals naive (no penalty) bit for bit after two tasks.
 * test_cl_sharded compares P-rank runs with a single-rank one (kfac, refresh
 * kfac, DER++ with kfac) and a restart in the middle of task 2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/cl.h"
#include "lethe/kfac.h"
#include "testutil.h"

enum { D = 5, H = 7, C = 3, NT = 30, GB = 10, STEPS = 3 };

typedef struct {
  lt_ctx *ctx;
  lt_model *m;
  lt_trainer *t;
  lt_strategy *s;
  lt_dataset ds;
  float x[NT * D];
  int32_t y[NT];
} run;

static void run_create_g(run *r, double lambda, lt_penalty_kind pen, double gamma) {
  memset(r, 0, sizeof(*r));
  assert_int_equal(lt_ctx_create(MPI_COMM_WORLD, 9, &r->ctx), LT_OK);
  lt_model_cfg mc = {.in_dim = D, .nhidden = 1, .hidden = {H}, .out_dim = C, .act = LT_ACT_TANH,
                     .init = LT_INIT_XAVIER, .max_batch = 16, .pad_ranks = r->ctx->size};
  lt_test_agree_status(r->ctx, lt_model_create(r->ctx, &mc, &r->m));
  for (int l = 0; l < r->m->nlayers; l++) /* nonzero biases */
    for (int j = 0; j < r->m->layer[l].out; j++) r->m->theta[r->m->layer[l].b_off + j] = 0.1f * j;
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  lt_test_agree_status(r->ctx, lt_trainer_create(r->ctx, r->m, &oc, LT_DIST_SHARDED, &r->t));
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = pen;
  cc.kfac_lambda = lambda;
  cc.kfac_gamma = gamma;
  cc.fisher_mode = LT_FISHER_EMPIRICAL;
  cc.fisher_batch = GB;
  lt_test_agree_status(r->ctx, lt_strategy_create(r->ctx, &cc, r->t, C, &r->s));
  lt_rng g;
  lt_rng_seed(&g, 3, 0, LT_RNG_USER);
  for (int i = 0; i < NT * D; i++) r->x[i] = (float)(2.0 * lt_rng_uniform(&g) - 1.0);
  for (int i = 0; i < NT; i++) r->y[i] = (int32_t)lt_rng_below(&g, C);
  assert_int_equal(lt_test_shard(&r->ds, r->x, r->y, NT, D, C, r->ctx->rank, r->ctx->size), 0);
}

static void run_create(run *r, double lambda, lt_penalty_kind pen) {
  run_create_g(r, lambda, pen, 1.0);
}

static void run_destroy(run *r) {
  lt_strategy_destroy(&r->s);
  lt_trainer_destroy(&r->t);
  lt_model_destroy(&r->m);
  lt_test_shard_free(&r->ds);
  lt_ctx_destroy(&r->ctx);
}

static void train_task(run *r, int task) {
  int first, cnt;
  lt_test_block(GB, r->ctx->rank, r->ctx->size, &first, &cnt);
  lt_test_agree_status(r->ctx, lt_strategy_begin_task(r->s, task, &r->ds));
  for (int k = 0; k < STEPS; k++) {
    int row = (k * GB) % NT + first;
    /* task 2 sees shifted labels, so it pulls away from task 1's optimum */
    int32_t yy[GB];
    for (int i = 0; i < cnt; i++) yy[i] = (r->y[row + i] + task) % C;
    lt_test_agree_status(r->ctx, lt_strategy_step(r->s, r->x + (size_t)row * D, yy, cnt, GB,
                                                  NULL, NULL));
  }
  lt_test_agree_status(r->ctx, lt_strategy_end_task(r->s, task, &r->ds));
}

static double total_penalty(run *r) {
  double v = lt_strategy_penalty(r->s, NULL);
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, r->ctx->comm);
  return v;
}

/* (lambda/2) sum_l sum dW[a][j] G[a][b] dW[b][q] A[j][q], quadruple loop in double */
static double brute(const lt_model *m, const float *anchor, double *const *A, double *const *G,
                    double lambda) {
  double want = 0.0;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    int da = ly->in + 1, dg = ly->out;
    for (int a = 0; a < dg; a++)
      for (int b = 0; b < dg; b++)
        for (int j = 0; j < da; j++)
          for (int q = 0; q < da; q++) {
            size_t ia = lt_kfac_index(ly, a, j), ib = lt_kfac_index(ly, b, q);
            double dwa = (double)m->theta[ia] - anchor[ia], dwb = (double)m->theta[ib] - anchor[ib];
            want += dwa * G[l][a * dg + b] * dwb * A[l][j * da + q];
          }
  }
  return 0.5 * lambda * want;
}

/* Online factors over three tasks with gamma = 0.5: G = the decayed sum
 * sum_t gamma^(2-t) G_t, A = the decayed mean sum_t gamma^(2-t) A_t / sum_t gamma^(2-t),
 * anchor = theta at the last task end; each task's factors computed separately at
 * its end (lt_kfac_compute on its data). Three tasks: the weights of the first
 * two updates coincide for a sum and a mean, the third's do not. Tolerance as for
 * the value above (float GEMMs): 1e-5 relative. */
static void test_online_factors(void **state) {
  (void)state;
  run r;
  const double lambda = 0.7, gamma = 0.5;
  run_create_g(&r, lambda, LT_PEN_KFAC, gamma);
  lt_model *m = r.m;
  lt_kfac *kt = NULL, *want_k = NULL;
  lt_test_agree_status(r.ctx, lt_kfac_create(r.ctx, m, &kt));
  lt_test_agree_status(r.ctx, lt_kfac_create(r.ctx, m, &want_k)); /* zero */
  double wsum = 0.0;
  float xt[NT * D];
  for (int t = 0; t < 3; t++) {
    lt_dataset dt;
    for (int i = 0; i < NT * D; i++) xt[i] = 0.5f * t + (1.0f + t) * r.x[i];
    assert_int_equal(lt_test_shard(&dt, xt, r.y, NT, D, C, r.ctx->rank, r.ctx->size), 0);
    for (size_t i = 0; i < m->n; i++) m->theta[i] *= 1.1f; /* task t's end point */
    lt_test_agree_status(r.ctx, lt_strategy_begin_task(r.s, t, &dt));
    lt_test_agree_status(r.ctx, lt_strategy_end_task(r.s, t, &dt));
    lt_test_agree_status(r.ctx, lt_kfac_compute(r.ctx, m, &dt, 0, GB, 0, kt));
    lt_test_shard_free(&dt);
    for (int l = 0; l < m->nlayers; l++) { /* A: unnormalised decayed sum for now */
      for (size_t i = 0; i < (size_t)kt->da[l] * kt->da[l]; i++)
        want_k->A[l][i] = gamma * want_k->A[l][i] + kt->A[l][i];
      for (size_t i = 0; i < (size_t)kt->dg[l] * kt->dg[l]; i++)
        want_k->G[l][i] = gamma * want_k->G[l][i] + kt->G[l][i];
    }
    wsum = gamma * wsum + 1.0;
  }
  for (int l = 0; l < m->nlayers; l++)
    for (size_t i = 0; i < (size_t)kt->da[l] * kt->da[l]; i++) want_k->A[l][i] /= wsum;
  float *anchor = calloc(m->n_pad, sizeof(float));
  memcpy(anchor, m->theta, m->n_pad * sizeof(float));
  lt_rng g;
  lt_rng_seed(&g, 12, 0, LT_RNG_USER);
  for (size_t i = 0; i < m->n; i++) m->theta[i] += (float)(0.2 * (lt_rng_uniform(&g) - 0.5));
  double want = brute(m, anchor, want_k->A, want_k->G, lambda), got = total_penalty(&r);
  lt_test_checker c = {0};
  if (!(fabs(got - want) <= 1e-5 * fabs(want)) || !(want > 1e-4))
    lt_test_fail_at(&c, "three tasks, gamma 0.5: penalty %.17g, expected %.17g", got, want);
  lt_test_agree(r.ctx->comm, &c);
  free(anchor);
  lt_kfac_destroy(&kt);
  lt_kfac_destroy(&want_k);
  run_destroy(&r);
}

static void test_value_and_gradient(void **state) {
  (void)state;
  run r;
  const double lambda = 0.7;
  run_create(&r, lambda, LT_PEN_KFAC);
  lt_model *m = r.m;
  lt_test_agree_status(r.ctx, lt_strategy_begin_task(r.s, 0, &r.ds));
  lt_test_agree_status(r.ctx, lt_strategy_end_task(r.s, 0, &r.ds)); /* anchor = theta now */
  float *anchor = calloc(m->n_pad, sizeof(float));
  memcpy(anchor, m->theta, m->n_pad * sizeof(float));
  lt_kfac *k = NULL;
  lt_test_agree_status(r.ctx, lt_kfac_create(r.ctx, m, &k));
  lt_test_agree_status(r.ctx, lt_kfac_compute(r.ctx, m, &r.ds, 0, GB, 0, k));
  lt_rng g;
  lt_rng_seed(&g, 11, 0, LT_RNG_USER);
  for (size_t i = 0; i < m->n; i++) m->theta[i] += (float)(0.2 * (lt_rng_uniform(&g) - 0.5));

  double want = brute(m, anchor, k->A, k->G, lambda);
  double got = total_penalty(&r);
  lt_test_checker c = {0};
  if (!(fabs(got - want) <= 1e-5 * fabs(want)) || !(want > 1e-4))
    lt_test_fail_at(&c, "penalty %.17g, brute force %.17g", got, want);

  /* gradient: owned slices gathered, vs central differences */
  const lt_shard *sh = &r.t->sh;
  float *grad = calloc(m->n_pad, sizeof(float));
  (void)lt_strategy_penalty(r.s, grad + sh->lo);
  lt_test_agree_status(r.ctx, lt_dist_allgather(r.ctx, sh, grad));
  double gmax = 0.0;
  for (size_t i = 0; i < m->n; i++) gmax = fmax(gmax, fabs((double)grad[i]));
  for (size_t i = 0; i < m->n; i++) {
    float t0 = m->theta[i];
    m->theta[i] = t0 + 1e-2f;
    double hp = m->theta[i], pp = total_penalty(&r);
    m->theta[i] = t0 - 1e-2f;
    double hm = m->theta[i], pm = total_penalty(&r);
    m->theta[i] = t0;
    double fd = (pp - pm) / (hp - hm);
    if (!(fabs(fd - grad[i]) <= 1e-5 * gmax) && !c.bad)
      lt_test_fail_at(&c, "gradient entry %zu: %.9g, finite differences %.9g (max %.3g)", i,
                      (double)grad[i], fd, gmax);
  }
  lt_test_agree(r.ctx->comm, &c);
  free(grad);
  free(anchor);
  lt_kfac_destroy(&k);
  run_destroy(&r);
}

static void test_lambda0_is_naive(void **state) {
  (void)state;
  run a, b;
  run_create(&a, 0.0, LT_PEN_KFAC);
  run_create(&b, 0.0, LT_PEN_NONE);
  for (int t = 0; t < 2; t++) {
    train_task(&a, t);
    train_task(&b, t);
  }
  lt_test_checker c = {0};
  if (memcmp(a.m->theta, b.m->theta, a.m->n_pad * sizeof(float)) != 0)
    lt_test_fail_at(&c, "kfac with lambda 0 differs from naive");
  /* and the penalty does act with lambda > 0 (same data and steps) */
  run p;
  run_create(&p, 5.0, LT_PEN_KFAC);
  for (int t = 0; t < 2; t++) train_task(&p, t);
  double d = 0.0;
  for (size_t i = 0; i < p.m->n; i++) d = fmax(d, fabs((double)p.m->theta[i] - b.m->theta[i]));
  if (!(d > 1e-3)) lt_test_fail_at(&c, "kfac with lambda 5 within %g of naive", d);
  lt_test_agree(a.ctx->comm, &c);
  run_destroy(&p);
  run_destroy(&a);
  run_destroy(&b);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_value_and_gradient),
      cmocka_unit_test(test_lambda0_is_naive),
      cmocka_unit_test(test_online_factors),
  };
  return lt_test_mpi_main(argc, argv, "kfac_laplace", tests, sizeof(tests) / sizeof(tests[0]));
}
