/* Optimizers, schedules, learning-rate multipliers and freezing against an
 * independent double-precision reference written here from the formulas
 * (PyTorch semantics), on random vectors with random gradients.
 *
 * Tolerance of the optimizer comparisons: the implementation works in float,
 * the reference in double on the same float inputs, so the only difference is
 * float rounding. theta carries the rounding of its own update each step (about
 * one ulp, 2^-24 |theta|), moments and the update a few ulps of quantities that
 * enter theta multiplied by lr = 0.05 (x mult <= 2), so after K = 5 steps the
 * error is ~ 5 x 6e-8 (1 + |theta|) = 3e-7 (1 + |theta|); measured: <= 4e-7.
 * We accept |x - ref| <= 2e-6 (1 + |ref|). The bugs this must catch move theta
 * by much more: an off-by-one in t or in the bias correction changes an update
 * of size lr = 0.05 by >= 10%, a missing or misplaced weight decay (wd = 0.1)
 * changes theta by ~ lr wd |theta| = 5e-3, Nesterov vs plain momentum by
 * ~ lr mu |v| ~ 2e-2; 1 - beta2 rounded in float (1e-5 relative) is caught by
 * the relative check of the second moment. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/optim.h"
#include "testutil.h"

#define PI 3.14159265358979323846
#define K_STEPS 5
#define TOL 2e-6

/* ---------------------------------------------------------------- reference */

typedef struct {
  size_t off, len;
  double mult;
} mult_call;

typedef struct {
  size_t n;                     /* global length */
  double *theta, *v, *m1, *m2;  /* [n] */
  double *mult;                 /* [n] */
} ref_state;

/* Learning rate written independently from the definition: linear warm-up to lr
 * over w steps, then constant / step / cosine in s = t - w. */
static double ref_lr(const lt_optim_cfg *c, long t) {
  double w = (double)c->warmup_steps;
  if (c->warmup_steps > 0 && t <= c->warmup_steps) return c->lr * (double)t / w;
  double s = (double)t - w;
  if (c->sched == LT_SCHED_STEP) {
    double lr = c->lr;
    for (long k = c->step_size; k <= (long)s; k += c->step_size) lr *= c->gamma;
    return lr;
  }
  if (c->sched == LT_SCHED_COSINE) {
    double span = (double)c->total_steps - w;
    if (s > span) s = span;
    return c->min_lr + (c->lr - c->min_lr) * (1.0 + cos(PI * s / span)) / 2.0;
  }
  return c->lr;
}

/* One step t (1-based) of the optimizer described by c, on all n elements. */
static void ref_step(const lt_optim_cfg *c, long t, ref_state *r, const float *g) {
  double lr = ref_lr(c, t), wd = c->weight_decay;
  for (size_t i = 0; i < r->n; i++) {
    double m = r->mult[i];
    if (m == 0.0) continue; /* frozen: nothing moves */
    double th = r->theta[i];
    if (c->kind == LT_OPT_SGD) {
      double gp = (double)g[i] + wd * th;
      double d = gp;
      if (c->momentum > 0.0) {
        r->v[i] = t == 1 ? gp : c->momentum * r->v[i] + gp;
        d = c->nesterov ? gp + c->momentum * r->v[i] : r->v[i];
      }
      r->theta[i] = th - lr * m * d;
    } else {
      int adamw = c->kind == LT_OPT_ADAMW;
      double gp = (double)g[i] + (adamw ? 0.0 : wd * th);
      r->m1[i] = c->beta1 * r->m1[i] + (1.0 - c->beta1) * gp;
      r->m2[i] = c->beta2 * r->m2[i] + (1.0 - c->beta2) * gp * gp;
      double mhat = r->m1[i] / (1.0 - pow(c->beta1, (double)t));
      double vhat = r->m2[i] / (1.0 - pow(c->beta2, (double)t));
      if (adamw) th -= lr * m * wd * th;
      r->theta[i] = th - lr * m * mhat / (sqrt(vhat) + c->eps);
    }
  }
}

static double *dalloc(size_t n) {
  double *p = calloc(n, sizeof(double));
  assert_non_null(p);
  return p;
}

static float *falloc(size_t n) {
  float *p = calloc(n, sizeof(float));
  assert_non_null(p);
  return p;
}

/* Run K_STEPS of the optimizer on the owned range [lo, hi) of an n-vector and
 * of the reference on the whole vector (mult calls applied to both, in order),
 * and compare the owned slice; outside it theta must be untouched. Frozen
 * entries (final multiplier 0) must be bit-identical to the start, with zero
 * moments. Returns the largest difference seen (to check it is not trivially 0). */
static double run_case(lt_ctx *ctx, const lt_optim_cfg *cfg, size_t n, size_t lo, size_t hi,
                       const mult_call *calls, int ncalls, uint64_t seed) {
  lt_rng rng;
  lt_rng_seed(&rng, seed, 0, LT_RNG_USER);
  float *theta = falloc(n), *theta0 = falloc(n), *g = falloc(n);
  ref_state r = {n, dalloc(n), dalloc(n), dalloc(n), dalloc(n), dalloc(n)};
  for (size_t i = 0; i < n; i++) {
    theta[i] = theta0[i] = (float)lt_rng_normal(&rng);
    r.theta[i] = (double)theta[i];
    r.mult[i] = 1.0;
  }
  lt_optim *opt = NULL;
  assert_int_equal(lt_optim_create(ctx, cfg, lo, hi, &opt), LT_OK);
  size_t qlo = 0, qhi = 0;
  lt_optim_range(opt, &qlo, &qhi);
  assert_true(qlo == lo && qhi == hi);
  for (int c = 0; c < ncalls; c++) {
    assert_int_equal(lt_optim_set_lr_mult(opt, calls[c].off, calls[c].len, calls[c].mult), LT_OK);
    size_t end = calls[c].len > n - calls[c].off ? n : calls[c].off + calls[c].len;
    for (size_t i = calls[c].off; i < end; i++) r.mult[i] = calls[c].mult;
  }
  double maxdiff = 0.0;
  for (long t = 1; t <= K_STEPS; t++) {
    assert_true(fabs(lt_optim_current_lr(opt) - ref_lr(cfg, t)) <= 1e-15 * (1.0 + cfg->lr));
    for (size_t i = 0; i < n; i++) g[i] = (float)lt_rng_normal(&rng);
    lt_optim_step(opt, theta + lo, g + lo);
    ref_step(cfg, t, &r, g);
    assert_int_equal(lt_optim_steps(opt), t);
    for (size_t i = lo; i < hi; i++) {
      double d = fabs((double)theta[i] - r.theta[i]);
      if (!(d <= TOL * (1.0 + fabs(r.theta[i]))))
        fail_msg("kind %d step %ld element %zu: theta %.9g, reference %.9g", (int)cfg->kind, t,
                 i, (double)theta[i], r.theta[i]);
      if (d > maxdiff) maxdiff = d;
    }
  }
  /* outside the owned range nothing was written */
  for (size_t i = 0; i < n; i++)
    if (i < lo || i >= hi) assert_memory_equal(&theta[i], &theta0[i], sizeof(float));
  /* frozen entries: bit-identical theta, moments never left zero */
  int ns = lt_optim_nstate(opt);
  for (size_t i = lo; i < hi; i++) {
    if (r.mult[i] != 0.0) continue;
    assert_memory_equal(&theta[i], &theta0[i], sizeof(float));
    for (int s = 0; s < ns; s++) assert_true(lt_optim_state(opt, s)[i - lo] == 0.0f);
  }
  /* the moments match the reference too: a few ulps of O(1) values for v and m1
   * (signed sums, so scaled by 1 + |ref|); m2 is a sum of positive terms without
   * cancellation, so its error is a few ulps of itself: purely relative. */
  for (int s = 0; s < ns; s++) {
    const double *ref = cfg->kind == LT_OPT_SGD ? r.v : (s == 0 ? r.m1 : r.m2);
    const double floor = cfg->kind != LT_OPT_SGD && s == 1 ? 0.0 : 1.0;
    const float *st = lt_optim_state(opt, s);
    for (size_t i = lo; i < hi; i++)
      if (!(fabs((double)st[i - lo] - ref[i]) <= TOL * (floor + fabs(ref[i]))))
        fail_msg("state %s element %zu: %.9g, reference %.9g", lt_optim_state_name(opt, s), i,
                 (double)st[i - lo], ref[i]);
  }
  lt_optim_destroy(&opt);
  assert_null(opt);
  free(theta), free(theta0), free(g);
  free(r.theta), free(r.v), free(r.m1), free(r.m2), free(r.mult);
  return maxdiff;
}

/* ---------------------------------------------------------------- tests */

static lt_optim_cfg base_cfg(lt_opt_kind kind) {
  lt_optim_cfg c;
  lt_optim_cfg_default(&c);
  c.kind = kind;
  c.lr = 0.05;
  return c;
}

static void test_defaults(void **state) {
  (void)state;
  lt_optim_cfg c;
  memset(&c, 0xff, sizeof(c));
  lt_optim_cfg_default(&c);
  assert_int_equal(c.kind, LT_OPT_SGD);
  assert_true(c.lr == 0.01 && c.momentum == 0.0 && c.nesterov == 0 && c.weight_decay == 0.0);
  assert_true(c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
  assert_int_equal(c.sched, LT_SCHED_CONSTANT);
  assert_true(c.warmup_steps == 0 && c.step_size == 0 && c.gamma == 0.1 &&
              c.total_steps == 0 && c.min_lr == 0.0);
}

static void test_sgd(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_SGD);
  run_case(ctx, &c, 64, 0, 64, NULL, 0, 1); /* plain */
  c.weight_decay = 0.1;
  run_case(ctx, &c, 64, 16, 48, NULL, 0, 2); /* coupled decay, sub-range */
}

static void test_sgd_momentum(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_SGD);
  c.momentum = 0.9;
  c.weight_decay = 0.1;
  run_case(ctx, &c, 100, 7, 93, NULL, 0, 3);
}

static void test_sgd_nesterov(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_SGD);
  c.momentum = 0.8;
  c.nesterov = 1;
  c.weight_decay = 0.1;
  run_case(ctx, &c, 100, 0, 100, NULL, 0, 4);
  /* Nesterov really differs from plain momentum on the same data */
  lt_optim_cfg p = c;
  p.nesterov = 0;
  lt_optim *a = NULL, *b = NULL;
  assert_int_equal(lt_optim_create(ctx, &c, 0, 1, &a), LT_OK);
  assert_int_equal(lt_optim_create(ctx, &p, 0, 1, &b), LT_OK);
  float ta = 1.0f, tb = 1.0f, g = 0.5f;
  for (int t = 0; t < 2; t++) lt_optim_step(a, &ta, &g), lt_optim_step(b, &tb, &g);
  /* closed forms (wd 0.1, mu 0.8, lr 0.05): derived by hand from the header's equations */
  double th = 1.0, v = 0.0, thn = 1.0, vn = 0.0;
  for (int t = 1; t <= 2; t++) {
    double gp = 0.5 + 0.1 * th, gpn = 0.5 + 0.1 * thn;
    v = 0.8 * v + gp;
    th -= 0.05 * v;
    vn = 0.8 * vn + gpn;
    thn -= 0.05 * (gpn + 0.8 * vn);
  }
  assert_true(fabs(tb - th) < 1e-6 && fabs(ta - thn) < 1e-6 && fabs(ta - tb) > 1e-2);
  lt_optim_destroy(&a);
  lt_optim_destroy(&b);
}

static void test_adam(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_ADAM);
  run_case(ctx, &c, 80, 0, 80, NULL, 0, 5);
  c.weight_decay = 0.1; /* coupled L2 */
  c.beta1 = 0.8;
  c.beta2 = 0.99;
  run_case(ctx, &c, 80, 5, 75, NULL, 0, 6);
}

static void test_adamw(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_ADAMW);
  c.weight_decay = 0.1; /* decoupled */
  run_case(ctx, &c, 80, 3, 80, NULL, 0, 7);
  /* coupled and decoupled decay give different results (each matched its reference) */
  lt_optim_cfg a = base_cfg(LT_OPT_ADAM);
  a.weight_decay = 0.1;
  lt_optim *oa = NULL, *ow = NULL;
  assert_int_equal(lt_optim_create(ctx, &a, 0, 1, &oa), LT_OK);
  assert_int_equal(lt_optim_create(ctx, &c, 0, 1, &ow), LT_OK);
  float ta = 2.0f, tw = 2.0f, g = 0.1f;
  for (int t = 0; t < 3; t++) lt_optim_step(oa, &ta, &g), lt_optim_step(ow, &tw, &g);
  assert_true(fabs(ta - tw) > 1e-3);
  lt_optim_destroy(&oa);
  lt_optim_destroy(&ow);
}

/* Multipliers: ranges straddling lo and hi, overrides, a range wholly outside,
 * a length that would overflow off + len, frozen ranges. */
static void test_lr_mult_and_freeze(void **state) {
  lt_ctx *ctx = *state;
  const size_t n = 200, lo = 37, hi = 163;
  const mult_call calls[] = {
      {20, 40, 0.5},        /* [20, 60): straddles lo */
      {150, 40, 0.0},       /* [150, 190): straddles hi, frozen */
      {100, 20, 2.0},       /* [100, 120) */
      {110, 20, 0.0},       /* [110, 130): overrides part of the previous, frozen */
      {0, 10, 3.0},         /* wholly outside the owned range */
      {45, 5, 0.0},         /* frozen */
      {47, 2, 0.25},        /* un-freezes [47, 49) again: later call wins */
      {158, SIZE_MAX, 0.5}, /* off + len overflows: clipped at hi; un-freezes [158, 163) */
  };
  const int nc = (int)(sizeof(calls) / sizeof(calls[0]));
  lt_optim_cfg k[4] = {base_cfg(LT_OPT_SGD), base_cfg(LT_OPT_SGD), base_cfg(LT_OPT_ADAM),
                       base_cfg(LT_OPT_ADAMW)};
  k[1].momentum = 0.9, k[1].nesterov = 1;
  for (int i = 0; i < 4; i++) {
    k[i].weight_decay = 0.1; /* frozen entries must not decay either */
    double d = run_case(ctx, &k[i], n, lo, hi, calls, nc, 10 + (uint64_t)i);
    printf("    max |theta - reference| (kind %d): %.3g\n", (int)k[i].kind, d);
    assert_true(d > 0.0); /* float and double really differ: the comparison is not vacuous */
  }
}

static void test_lr_mult_invalid(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_SGD);
  lt_optim *o = NULL;
  assert_int_equal(lt_optim_create(ctx, &c, 0, 10, &o), LT_OK);
  const double bad[] = {-1.0, NAN, INFINITY, 1e300 /* inf as float */};
  for (int i = 0; i < 4; i++) {
    lt_error_clear(ctx);
    assert_int_equal(lt_optim_set_lr_mult(o, 0, 5, bad[i]), LT_ERR_ARG);
    assert_non_null(strstr(ctx->errmsg, "multiplier"));
  }
  lt_error_clear(ctx);
  lt_optim_destroy(&o);
}

/* Schedules against closed forms worked out by hand. */
static void test_schedules(void **state) {
  (void)state;
  lt_optim_cfg c;
  lt_optim_cfg_default(&c);
  c.lr = 1.0;
  const double e = 1e-14;
  /* constant with warm-up 4: t/4 up to t = 4, then 1 */
  c.warmup_steps = 4;
  assert_true(fabs(lt_sched_lr(&c, 1) - 0.25) < e);
  assert_true(fabs(lt_sched_lr(&c, 3) - 0.75) < e);
  assert_true(fabs(lt_sched_lr(&c, 4) - 1.0) < e);
  assert_true(fabs(lt_sched_lr(&c, 100) - 1.0) < e);
  /* step: gamma 0.5 every 3 steps after a warm-up of 2 */
  c.sched = LT_SCHED_STEP;
  c.warmup_steps = 2, c.step_size = 3, c.gamma = 0.5;
  assert_true(fabs(lt_sched_lr(&c, 1) - 0.5) < e);
  assert_true(fabs(lt_sched_lr(&c, 2) - 1.0) < e);
  assert_true(fabs(lt_sched_lr(&c, 4) - 1.0) < e);   /* s = 2 */
  assert_true(fabs(lt_sched_lr(&c, 5) - 0.5) < e);   /* s = 3 */
  assert_true(fabs(lt_sched_lr(&c, 7) - 0.5) < e);   /* s = 5 */
  assert_true(fabs(lt_sched_lr(&c, 8) - 0.25) < e);  /* s = 6 */
  assert_true(fabs(lt_sched_lr(&c, 14) - 0.0625) < e); /* s = 12 */
  /* cosine from 1 to 0.1 over 4 steps, no warm-up */
  c.sched = LT_SCHED_COSINE;
  c.warmup_steps = 0, c.total_steps = 4, c.min_lr = 0.1;
  assert_true(fabs(lt_sched_lr(&c, 1) - (0.1 + 0.45 * (1.0 + sqrt(0.5)))) < e); /* cos(pi/4) */
  assert_true(fabs(lt_sched_lr(&c, 2) - 0.55) < e);                            /* cos(pi/2) */
  assert_true(fabs(lt_sched_lr(&c, 3) - (0.1 + 0.45 * (1.0 - sqrt(0.5)))) < e);
  assert_true(fabs(lt_sched_lr(&c, 4) - 0.1) < e);
  assert_true(fabs(lt_sched_lr(&c, 50) - 0.1) < e); /* clamped at total_steps */
  /* cosine with warm-up 2, total 6: warm-up, then lr at s = 0, half-way at s = 2 */
  c.warmup_steps = 2, c.total_steps = 6, c.min_lr = 0.0;
  assert_true(fabs(lt_sched_lr(&c, 1) - 0.5) < e);
  assert_true(fabs(lt_sched_lr(&c, 2) - 1.0) < e);
  assert_true(fabs(lt_sched_lr(&c, 4) - 0.5) < e);
  assert_true(fabs(lt_sched_lr(&c, 6) - 0.0) < e);
}

/* The optimizer applies the schedule at the 1-based step (checked against the
 * reference inside run_case, which also checks lt_optim_current_lr). */
static void test_optimizer_follows_schedule(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c = base_cfg(LT_OPT_ADAMW);
  c.weight_decay = 0.1;
  c.sched = LT_SCHED_STEP, c.warmup_steps = 2, c.step_size = 2, c.gamma = 0.3;
  run_case(ctx, &c, 40, 0, 40, NULL, 0, 20);
  c = base_cfg(LT_OPT_SGD);
  c.momentum = 0.5;
  c.sched = LT_SCHED_COSINE, c.warmup_steps = 1, c.total_steps = 4, c.min_lr = 0.01;
  run_case(ctx, &c, 40, 8, 24, NULL, 0, 21);
}

/* Each invalid value is rejected with LT_ERR_ARG and a message naming the key
 * and the value. */
static void test_invalid_configs(void **state) {
  lt_ctx *ctx = *state;
  enum { NCASE = 17 };
  for (int k = 0; k < NCASE; k++) {
    lt_optim_cfg c;
    lt_optim_cfg_default(&c);
    const char *key = NULL, *val = NULL;
    switch (k) {
    case 0: c.lr = -0.1, key = "optim.lr", val = "-0.1"; break;
    case 1: c.lr = NAN, key = "optim.lr", val = "nan"; break;
    case 2: c.momentum = 1.0, key = "optim.momentum", val = "1"; break;
    case 3: c.momentum = -0.5, key = "optim.momentum", val = "-0.5"; break;
    case 4: c.nesterov = 1, key = "optim.nesterov", val = "momentum = 0"; break;
    case 5: c.kind = LT_OPT_ADAM, c.beta1 = 1.0, key = "optim.beta1", val = "1"; break;
    case 6: c.kind = LT_OPT_ADAM, c.beta2 = -0.1, key = "optim.beta2", val = "-0.1"; break;
    case 7: c.kind = LT_OPT_ADAMW, c.eps = 0.0, key = "optim.eps", val = "0"; break;
    case 8:
      c.sched = LT_SCHED_COSINE, c.warmup_steps = 10, c.total_steps = 10;
      key = "optim.total_steps", val = "10";
      break;
    case 9: c.sched = LT_SCHED_COSINE, key = "optim.total_steps", val = "0"; break;
    case 10: c.sched = LT_SCHED_STEP, key = "optim.step_size", val = "0"; break;
    case 11: c.sched = LT_SCHED_STEP, c.step_size = -3, key = "optim.step_size", val = "-3"; break;
    case 12: c.weight_decay = -1e-4, key = "optim.weight_decay", val = "-0.0001"; break;
    case 13: c.warmup_steps = -1, key = "optim.warmup_steps", val = "-1"; break;
    case 14: c.kind = (lt_opt_kind)7, key = "optim.kind", val = "7"; break;
    case 15:
      c.sched = LT_SCHED_STEP, c.step_size = 2, c.gamma = 0.0;
      key = "optim.gamma", val = "0";
      break;
    case 16:
      c.sched = LT_SCHED_COSINE, c.total_steps = 5, c.min_lr = 0.5;
      key = "optim.min_lr", val = "0.5";
      break;
    }
    lt_error_clear(ctx);
    lt_optim *o = (lt_optim *)&c; /* must be reset to NULL on failure */
    assert_int_equal(lt_optim_create(ctx, &c, 0, 8, &o), LT_ERR_ARG);
    assert_null(o);
    if (!strstr(ctx->errmsg, key) || !strstr(ctx->errmsg, val))
      fail_msg("case %d: message \"%s\" does not name %s = %s", k, ctx->errmsg, key, val);
  }
  lt_error_clear(ctx);
  /* the boundary values themselves are accepted */
  lt_optim_cfg c;
  lt_optim_cfg_default(&c);
  c.lr = 0.0, c.momentum = 0.0, c.weight_decay = 0.0, c.beta1 = 0.0, c.beta2 = 0.0;
  c.sched = LT_SCHED_COSINE, c.warmup_steps = 3, c.total_steps = 4, c.min_lr = 0.0;
  lt_optim *o = NULL;
  assert_int_equal(lt_optim_create(ctx, &c, 0, 8, &o), LT_OK);
  lt_optim_destroy(&o);
}

/* State accessors: counts and names; restoring the state and step counter into
 * a fresh optimizer continues bit for bit (as a checkpoint restart does). */
static void test_state_restore(void **state) {
  lt_ctx *ctx = *state;
  lt_optim_cfg c[3] = {base_cfg(LT_OPT_SGD), base_cfg(LT_OPT_SGD), base_cfg(LT_OPT_ADAMW)};
  c[1].momentum = 0.9;
  c[2].weight_decay = 0.01;
  const int want_ns[3] = {0, 1, 2};
  const char *want_names[3][2] = {{NULL, NULL}, {"momentum_buffer", NULL},
                                  {"exp_avg", "exp_avg_sq"}};
  const size_t lo = 5, hi = 45, n = hi - lo;
  for (int k = 0; k < 3; k++) {
    lt_optim *a = NULL, *b = NULL;
    assert_int_equal(lt_optim_create(ctx, &c[k], lo, hi, &a), LT_OK);
    assert_int_equal(lt_optim_create(ctx, &c[k], lo, hi, &b), LT_OK);
    assert_int_equal(lt_optim_nstate(a), want_ns[k]);
    for (int s = 0; s < 2; s++) {
      const char *nm = lt_optim_state_name(a, s);
      if (want_names[k][s]) assert_string_equal(nm, want_names[k][s]);
      else assert_null(nm);
      assert_true((lt_optim_state(a, s) != NULL) == (s < want_ns[k]));
    }
    assert_null(lt_optim_state(a, -1));
    lt_rng rng;
    lt_rng_seed(&rng, 99, 0, LT_RNG_USER);
    float *ta = falloc(n), *tb = falloc(n), *g = falloc(n);
    for (size_t i = 0; i < n; i++) ta[i] = (float)lt_rng_normal(&rng);
    for (int t = 0; t < 3; t++) {
      for (size_t i = 0; i < n; i++) g[i] = (float)lt_rng_normal(&rng);
      lt_optim_step(a, ta, g);
    }
    /* "restart": copy theta, state and step counter into b */
    memcpy(tb, ta, n * sizeof(float));
    for (int s = 0; s < want_ns[k]; s++)
      memcpy(lt_optim_state(b, s), lt_optim_state(a, s), n * sizeof(float));
    lt_optim_set_steps(b, lt_optim_steps(a));
    assert_int_equal(lt_optim_steps(b), 3);
    assert_true(lt_optim_current_lr(b) == lt_optim_current_lr(a));
    for (int t = 0; t < 2; t++) {
      for (size_t i = 0; i < n; i++) g[i] = (float)lt_rng_normal(&rng);
      lt_optim_step(a, ta, g);
      lt_optim_step(b, tb, g);
    }
    assert_memory_equal(ta, tb, n * sizeof(float));
    for (int s = 0; s < want_ns[k]; s++)
      assert_memory_equal(lt_optim_state(a, s), lt_optim_state(b, s), n * sizeof(float));
    free(ta), free(tb), free(g);
    lt_optim_destroy(&a);
    lt_optim_destroy(&b);
  }
  /* an empty owned range is valid and a step is a no-op */
  lt_optim *e = NULL;
  assert_int_equal(lt_optim_create(ctx, &c[2], 7, 7, &e), LT_OK);
  float x = 1.0f, gx = 1.0f;
  lt_optim_step(e, &x, &gx);
  assert_true(x == 1.0f && lt_optim_steps(e) == 1);
  lt_optim_destroy(&e);
  lt_optim_destroy(&e); /* destroy of NULL is fine */
}

static int setup(void **state) {
  *state = lt_test_ctx();
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  lt_ctx *ctx = *state;
  lt_ctx_destroy(&ctx);
  return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test_setup_teardown(test_sgd, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sgd_momentum, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sgd_nesterov, setup, teardown),
    cmocka_unit_test_setup_teardown(test_adam, setup, teardown),
    cmocka_unit_test_setup_teardown(test_adamw, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lr_mult_and_freeze, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lr_mult_invalid, setup, teardown),
    cmocka_unit_test(test_schedules),
    cmocka_unit_test_setup_teardown(test_optimizer_follows_schedule, setup, teardown),
    cmocka_unit_test_setup_teardown(test_invalid_configs, setup, teardown),
    cmocka_unit_test_setup_teardown(test_state_restore, setup, teardown),
};

LT_TEST_MPI_MAIN("optim", tests)
