/* MixtureGrowth (lt_grow_apply, template models):
 *  (a) right after growth with zero init, the grown network's logits equal the sum
 *      of the two members' logits on a batch;
 *  (b) orthogonal init: each new coefficient vector is orthogonal to the trained one
 *      of its set, with the same norm (2 and 3 templates per set); copy init stays
 *      within its noise;
 *  (c) the growth schedule trained data-parallel at P ranks (sharded state) agrees
 *      with the same schedule on one rank: member 0 for K steps, member 1 for K steps
 *      with a fresh optimizer, growth (orthogonal), the grown network for K steps, with
 *      weight decay on the active templates only; parameters of the inactive member
 *      stay bit for bit unchanged during a member's phase.
 * (a) and (b) are serial (every rank checks the same thing); (c) runs at 1..4 ranks.
 *
 * Tolerance of (c), as in test_sharded_step: the runs differ only in the order of the
 * float sums of the gradient (one GEMM over GB rows vs per-rank GEMMs plus the
 * reduce-scatter of P partials), a few ulps of ~1e-2 terms; SGD (lr 0.1, momentum 0.9)
 * over 3 K = 9 steps amplifies that to < 1e-6; growth itself is computed identically on
 * every rank (same stream). Accepted: |a - b| <= 1e-5 |b| + 1e-6. A wrong row split,
 * shard offset, missed decay or member switch moves entries by ~lr |g| >= 1e-4. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/grow.h"
#include "lethe/trainer.h"
#include "testutil.h"

#define GB 24
#define IN 10
#define H 16
#define OUT 4
#define KSTEPS 3
#define RTOL 1e-5
#define ATOL 1e-6

static lt_status make(lt_ctx *ctx, int nt, int pad, int max_batch, lt_model **m) {
  lt_model_cfg mc = {.in_dim = IN, .nhidden = 2, .hidden = {H, H}, .out_dim = OUT,
                     .act = LT_ACT_TANH, .init = LT_INIT_KAIMING, .max_batch = max_batch,
                     .pad_ranks = pad, .kind = LT_MODEL_TEMPLATE, .ntemplates = nt};
  LT_CHECK(ctx, lt_model_create(ctx, &mc, m));
  lt_model_init(*m, 42, LT_INIT_KAIMING);
  return LT_OK;
}

static void data(float *x, int32_t *y, int rows, uint64_t seed) {
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_USER);
  for (int i = 0; i < rows * IN; i++) x[i] = (float)lt_rng_normal(&r);
  for (int i = 0; i < rows; i++) y[i] = (int32_t)lt_rng_below(&r, OUT);
}

/* random biases, the classifier's two member biases included */
static void random_biases(lt_model *m) {
  lt_rng r;
  lt_rng_seed(&r, 77, 0, LT_RNG_USER);
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    int nb = t->full_out * (l == m->nlayers - 1 ? 2 : 1);
    for (int o = 0; o < nb; o++) m->theta[t->bias_off + o] = (float)(0.5 * lt_rng_normal(&r));
  }
}

static void test_zero_init_sum(void **s) {
  (void)s;
  lt_ctx *ctx = lt_test_ctx();
  lt_model *m = NULL;
  assert_int_equal(make(ctx, 2, ctx->size, GB, &m), LT_OK);
  random_biases(m);
  float x[GB * IN];
  int32_t y[GB];
  data(x, y, GB, 3);
  float z0[GB * OUT], z1[GB * OUT];
  assert_int_equal(lt_model_set_member(m, 0), LT_OK);
  memcpy(z0, lt_model_forward(m, x, GB), sizeof(z0));
  assert_int_equal(lt_model_set_member(m, 1), LT_OK);
  memcpy(z1, lt_model_forward(m, x, GB), sizeof(z1));
  lt_rng r;
  lt_rng_seed(&r, 1, 0, LT_RNG_USER + 7);
  assert_int_equal(lt_grow_apply(m, LT_GROW_ZERO, 0.0, &r), LT_OK);
  assert_int_equal(m->member, -1);
  const float *z = lt_model_forward(m, x, GB);
  /* Tolerance: the grown hidden pre-activations are the members' float sums with zero
   * products interleaved (K = 10 or 16 terms of size ~1); BLIS may sum them in another
   * order, a few ulps (~1e-6) of O(1) values, and z0 + z1 adds one rounding. Accepted
   * |z - (z0 + z1)| <= 1e-5 (1 + |z0 + z1|). A bias not folded, a block misplaced or
   * a non-zero new coefficient changes logits by O(0.1..1). */
  double worst = 0.0;
  for (int i = 0; i < GB * OUT; i++) {
    double want = (double)z0[i] + (double)z1[i];
    double e = fabs(z[i] - want) / (1.0 + fabs(want));
    if (e > worst) worst = e;
  }
  if (!(worst <= 1e-5)) fail_msg("grown logits differ from the sum of the members': %g", worst);
  /* and the members' logits differ from each other (the check is not vacuous) */
  double diff = 0.0;
  for (int i = 0; i < GB * OUT; i++) diff = fmax(diff, fabs(z0[i] - z1[i]));
  assert_true(diff > 0.1);
  lt_model_destroy(&m);
  lt_ctx_destroy(&ctx);
}

static double dot(const float *a, const float *b, int n) {
  double s = 0.0;
  for (int k = 0; k < n; k++) s += (double)a[k] * (double)b[k];
  return s;
}

static void test_orthogonal_and_copy(void **s) {
  (void)s;
  lt_ctx *ctx = lt_test_ctx();
  for (int nt = 2; nt <= 3; nt++)
    for (int init = LT_GROW_ORTHOGONAL; init <= LT_GROW_COPY; init++) {
      lt_model *m = NULL;
      assert_int_equal(make(ctx, nt, ctx->size, GB, &m), LT_OK);
      /* trained member coefficients: arbitrary, not unit norm */
      const lt_tmpl_layer *t = &m->tmpl[1];
      float *c = m->theta + t->c_off;
      for (int k = 0; k < nt; k++) {
        c[k] = 0.7f + 0.3f * (float)k;       /* c0 */
        c[nt + k] = -1.3f + 0.9f * (float)k; /* c1 */
      }
      float before[2 * 3];
      memcpy(before, c, sizeof(float) * 2 * (size_t)nt);
      lt_rng r;
      lt_rng_seed(&r, 5, 0, LT_RNG_USER + 7);
      assert_int_equal(lt_grow_apply(m, (lt_grow_init)init, 0.01, &r), LT_OK);
      assert_memory_equal(c, before, sizeof(float) * 2 * (size_t)nt); /* c0, c1 kept */
      for (int set = 0; set < 2; set++) {
        const float *old = c + (size_t)set * nt, *nw = c + (size_t)(2 + set) * nt;
        double n2 = dot(old, old, nt), m2 = dot(nw, nw, nt);
        if (init == LT_GROW_ORTHOGONAL) {
          /* float storage of double-precision Gram-Schmidt: |cos| ~ 1e-7 */
          if (!(fabs(dot(old, nw, nt)) <= 1e-6 * n2))
            fail_msg("nt %d set %d: new . old = %g (|old|^2 %g)", nt, set, dot(old, nw, nt), n2);
          if (!(fabs(sqrt(m2) - sqrt(n2)) <= 1e-6 * sqrt(n2)))
            fail_msg("nt %d set %d: |new| %g vs |old| %g", nt, set, sqrt(m2), sqrt(n2));
        } else { /* copy: old + 0.01 |old| e, e ~ N(0, I): within 6 sigma per entry */
          for (int k = 0; k < nt; k++)
            if (!(fabs(nw[k] - old[k]) <= 0.06 * sqrt(n2)) || nw[k] == old[k])
              fail_msg("copy nt %d set %d: %g vs %g", nt, set, nw[k], old[k]);
        }
      }
      lt_model_destroy(&m);
    }
  lt_ctx_destroy(&ctx);
}

/* ------------------------------------------------------------ (c) sharded schedule */

static lt_status decay(void *user, lt_trainer *t, double *penalty) {
  (void)user;
  (void)penalty;
  lt_grow_decay(t->m, 1e-3, t->sh.lo, t->sh.hi, t->m->theta, t->grad_owned);
  return LT_OK;
}

typedef struct {
  lt_model *m;
  lt_trainer *t;
} run;

static lt_status build(lt_ctx *ctx, int pad, const lt_optim_cfg *oc, run *r) {
  LT_CHECK(ctx, make(ctx, 2, pad, GB, &r->m));
  LT_CHECK(ctx, lt_trainer_create(ctx, r->m, oc, LT_DIST_SHARDED, &r->t));
  r->t->pre_update = decay;
  return LT_OK;
}

/* The parameters of the member not trained in phase k (set 1-k templates, its
 * coefficients, biases) must not move; returns 1 when they did. */
static int other_member_moved(const lt_model *m, const float *theta0, int k) {
  int o = 1 - k, nt = m->ntemplates;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    size_t set = (size_t)nt * (size_t)t->tr * (size_t)t->tc;
    size_t a = t->t_off + (size_t)o * set;
    if (memcmp(m->theta + a, theta0 + a, set * sizeof(float))) return 1;
    a = t->c_off + (size_t)o * (size_t)nt;
    if (memcmp(m->theta + a, theta0 + a, (size_t)nt * sizeof(float))) return 1;
    size_t bl = l == m->nlayers - 1 ? (size_t)t->full_out : (size_t)t->tr;
    a = t->bias_off + (size_t)o * bl;
    if (memcmp(m->theta + a, theta0 + a, bl * sizeof(float))) return 1;
  }
  return 0;
}

static void test_sharded_schedule(void **s) {
  (void)s;
  lt_ctx *ctx = lt_test_ctx();
  lt_ctx *self = NULL;
  assert_int_equal(lt_ctx_create(MPI_COMM_SELF, 1234, &self), LT_OK);
  const int P = ctx->size, me = ctx->rank;
  lt_test_checker ck = {0};
  float x[GB * IN];
  int32_t y[GB];
  data(x, y, GB, 8);
  int r0, nr;
  lt_test_block(GB, me, P, &r0, &nr);
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  oc.momentum = 0.9;
  run sh = {0}, ref = {0};
  lt_test_agree_status(ctx, build(ctx, P, &oc, &sh));
  lt_test_agree_status(ctx, build(self, P, &oc, &ref));
  const size_t np = ref.m->n_pad;
  float *theta0 = malloc(np * sizeof(float)), *sh0 = malloc(np * sizeof(float));
  assert_true(theta0 && sh0);
  for (int k = 0; k < 3; k++) {
    if (k == 2) { /* growth, the same stream on every rank and in the reference */
      lt_rng a, b;
      lt_rng_seed(&a, 9, 0, LT_RNG_USER + 7);
      lt_rng_seed(&b, 9, 0, LT_RNG_USER + 7);
      lt_test_agree_status(ctx, lt_grow_apply(sh.m, LT_GROW_ORTHOGONAL, 0.0, &a));
      lt_test_agree_status(ctx, lt_grow_apply(ref.m, LT_GROW_ORTHOGONAL, 0.0, &b));
    } else {
      lt_test_agree_status(ctx, lt_model_set_member(sh.m, k));
      lt_test_agree_status(ctx, lt_model_set_member(ref.m, k));
    }
    lt_test_agree_status(ctx, lt_optim_restart(sh.t->opt, &oc, 1)); /* fresh each phase */
    lt_test_agree_status(ctx, lt_optim_restart(ref.t->opt, &oc, 1));
    memcpy(theta0, ref.m->theta, np * sizeof(float));
    memcpy(sh0, sh.m->theta, np * sizeof(float));
    for (int step = 1; step <= KSTEPS; step++) {
      lt_test_agree_status(ctx, lt_trainer_step(sh.t, x + (size_t)r0 * IN, y + r0, nr, GB, NULL, NULL));
      lt_test_agree_status(ctx, lt_trainer_step(ref.t, x, y, GB, GB, NULL, NULL));
      char w[64];
      snprintf(w, sizeof(w), "phase %d step %d: sharded vs one rank", k, step);
      lt_test_check_close(&ck, w, sh.m->theta, ref.m->theta, np, RTOL, ATOL);
    }
    double moved = 0.0;
    for (size_t i = 0; i < np; i++) moved = fmax(moved, fabs(ref.m->theta[i] - theta0[i]));
    if (!ck.bad && !(moved > 1e-3)) lt_test_fail_at(&ck, "phase %d: theta moved by only %g", k, moved);
    if (!ck.bad && k < 2 && (other_member_moved(ref.m, theta0, k) || other_member_moved(sh.m, sh0, k)))
      lt_test_fail_at(&ck, "phase %d: the other member's parameters changed", k);
    lt_test_agree(ctx->comm, &ck);
  }
  free(theta0);
  free(sh0);
  lt_trainer_destroy(&sh.t);
  lt_trainer_destroy(&ref.t);
  lt_model_destroy(&sh.m);
  lt_model_destroy(&ref.m);
  lt_ctx_destroy(&self);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_zero_init_sum),
    cmocka_unit_test(test_orthogonal_and_copy),
    cmocka_unit_test(test_sharded_schedule),
};

LT_TEST_MPI_MAIN("grow", tests)
