/* The data-parallel training step (lt_trainer_step) at P ranks against the
 * single-rank step on the whole global batch.
 *
 * Every rank builds the same model (pad_ranks = P, same init seed) and the same
 * global batch of GB = 29 rows (uneven splits at 2, 3, 4 ranks), and takes its
 * contiguous block of rows. As the reference, every rank also runs the trainer
 * on a context over MPI_COMM_SELF with the full batch. Three runs in lockstep:
 * sharded (Reduce_scatter + Allgather), allreduce mode, and the reference; after
 * each of K = 3 steps the full theta of each is compared.
 *
 * Tolerance. The runs differ only in the order of the float sums that form the
 * gradient (one GEMM over 29 rows vs per-rank GEMMs plus MPI's sum of P
 * partials): each gradient entry, a sum of 29 terms of size ~1e-2, differs by a
 * few ulps of the terms, |dg| ~ 1e-8. SGD moves theta by lr (1 + mu + ...) dg
 * <~ 1e-8; Adam divides by ~|g|, so dtheta ~ lr dg / |g| per step: 1e-7 for
 * |g| = 1e-4 with lr = 1e-3 (and at step 1 the update is lr sign(g), which does
 * not depend on dg at all). Measured at 2..4 ranks: max |a - b| = 6e-8 (one
 * ulp of the largest entries). We accept |a - b| <= 1e-5 |b| + 1e-6 on theta
 * (O(0.1..1) entries). A bug in the row split, the 1/B scaling, the owned
 * offsets or the gather moves entries by ~ lr |g| >= 1e-4 (SGD lr 0.1) or
 * ~ lr = 1e-3 (Adam), far above that. Moments: 1e-5 relative plus the same
 * absolute floor scaled to their size (m: 1e-6, v = m^2-sized: 1e-9). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/trainer.h"
#include "testutil.h"

#define GB 29     /* global batch */
#define IN 13
#define OUT 5
#define KSTEPS 3
#define RTOL 1e-5
#define ATOL 1e-6

typedef struct {
  lt_model *m;
  lt_trainer *t;
} run;

/* |a - b| <= RTOL |b| + atol after step `step` (failures are agreed on with lt_test_agree) */
static void check_close(lt_test_checker *c, const char *what, int step, const float *a,
                        const float *b, size_t n, double atol) {
  char w[128];
  snprintf(w, sizeof(w), "%s, step %d", what, step);
  lt_test_check_close(c, w, a, b, n, RTOL, atol);
}

/* fc1 frozen, fc2 at half the learning rate (layer ranges straddle the slice
 * boundaries at 2..4 ranks). */
static lt_status set_mults(lt_ctx *ctx, run *r) {
  const lt_layer *l1 = &r->m->layer[0], *l2 = &r->m->layer[1];
  LT_CHECK(ctx, lt_optim_set_lr_mult(r->t->opt, l1->w_off, (size_t)l1->in * (size_t)l1->out, 0.0));
  LT_CHECK(ctx, lt_optim_set_lr_mult(r->t->opt, l1->b_off, (size_t)l1->out, 0.0));
  LT_CHECK(ctx, lt_optim_set_lr_mult(r->t->opt, l2->w_off, (size_t)l2->in * (size_t)l2->out, 0.5));
  LT_CHECK(ctx, lt_optim_set_lr_mult(r->t->opt, l2->b_off, (size_t)l2->out, 0.5));
  return LT_OK;
}

static lt_status build(lt_ctx *ctx, int pad, const lt_optim_cfg *oc, lt_dist_mode mode, int mults,
                       run *r) {
  lt_model_cfg mc = {.in_dim = IN, .nhidden = 2, .hidden = {24, 17}, .out_dim = OUT,
                     .act = LT_ACT_TANH, /* smooth: no ReLU kinks to flip between runs */
                     .init = LT_INIT_KAIMING, .max_batch = GB, .pad_ranks = pad};
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &r->m));
  lt_model_init(r->m, 42, LT_INIT_KAIMING);
  LT_CHECK(ctx, lt_trainer_create(ctx, r->m, oc, mode, &r->t));
  if (mults) LT_CHECK(ctx, set_mults(ctx, r));
  return LT_OK;
}

static void teardown_run(run *r) {
  lt_trainer_destroy(&r->t);
  lt_model_destroy(&r->m);
}

static void run_case(const lt_optim_cfg *oc, int mults) {
  lt_ctx *ctx = lt_test_ctx();
  assert_non_null(ctx);
  lt_ctx *self = NULL;
  assert_int_equal(lt_ctx_create(MPI_COMM_SELF, 1234, &self), LT_OK);
  const int P = ctx->size, me = ctx->rank;
  lt_test_checker ck = {0};

  /* the same global batch on every rank */
  float *x = calloc((size_t)GB * IN, sizeof(float));
  int32_t *y = calloc(GB, sizeof(int32_t));
  assert_true(x && y);
  lt_rng rng;
  lt_rng_seed(&rng, 7, 0, LT_RNG_USER);
  for (int i = 0; i < GB * IN; i++) x[i] = (float)lt_rng_normal(&rng);
  for (int i = 0; i < GB; i++) y[i] = (int32_t)lt_rng_below(&rng, OUT);
  int lr0, nr, last0, lastn;
  lt_test_block(GB, me, P, &lr0, &nr); /* rank me's contiguous block of rows */
  lt_test_block(GB, P - 1, P, &last0, &lastn);
  assert_true(last0 + lastn == GB);              /* the blocks cover the batch */
  assert_true(nr >= GB / P && nr <= GB / P + 1); /* and split it evenly */

  run sh = {0}, ar = {0}, ref = {0};
  lt_test_agree_status(ctx, build(ctx, P, oc, LT_DIST_SHARDED, mults, &sh));
  lt_test_agree_status(ctx, build(ctx, P, oc, LT_DIST_ALLREDUCE, mults, &ar));
  lt_test_agree_status(ctx, build(self, P, oc, LT_DIST_SHARDED, mults, &ref));
  const size_t np = ref.m->n_pad, n = ref.m->n;
  assert_true(sh.m->n_pad == np && ar.m->n_pad == np && np % (size_t)P == 0);
  float *theta0 = malloc(np * sizeof(float)), *root = malloc(np * sizeof(float));
  assert_true(theta0 && root);
  memcpy(theta0, ref.m->theta, np * sizeof(float));
  if (memcmp(sh.m->theta, theta0, np * sizeof(float)) != 0) {
    lt_test_fail_at(&ck, "initial theta differs between contexts");
  }
  lt_test_agree(ctx->comm, &ck);

  for (int k = 1; k <= KSTEPS; k++) {
    lt_step_stats s_sh, s_ar, s_ref;
    lt_test_agree_status(ctx,
                         lt_trainer_step(sh.t, x + (size_t)lr0 * IN, y + lr0, nr, GB, NULL, &s_sh));
    lt_test_agree_status(ctx,
                         lt_trainer_step(ar.t, x + (size_t)lr0 * IN, y + lr0, nr, GB, NULL, &s_ar));
    lt_test_agree_status(ctx, lt_trainer_step(ref.t, x, y, GB, GB, NULL, &s_ref));
    /* the loss (of theta before the step) agrees; float sums, same tolerance */
    if (!(fabs(s_sh.loss - s_ref.loss) <= RTOL * s_ref.loss && s_sh.rows == GB &&
          fabs(s_ar.loss - s_ref.loss) <= RTOL * s_ref.loss)) {
      lt_test_fail_at(&ck, "step %d: loss %.9g (sharded) %.9g (allreduce) vs %.9g", k, s_sh.loss,
                      s_ar.loss, s_ref.loss);
    }
    check_close(&ck, "sharded vs single-rank theta", k, sh.m->theta, ref.m->theta, np, ATOL);
    check_close(&ck, "allreduce vs single-rank theta", k, ar.m->theta, ref.m->theta, np, ATOL);
    check_close(&ck, "allreduce vs sharded theta", k, ar.m->theta, sh.m->theta, np, ATOL);
    /* replicated: every rank holds rank 0's theta bit for bit */
    memcpy(root, sh.m->theta, np * sizeof(float));
    MPI_Bcast(root, (int)np, MPI_FLOAT, 0, ctx->comm);
    if (!ck.bad && memcmp(root, sh.m->theta, np * sizeof(float)) != 0) {
      lt_test_fail_at(&ck, "step %d: theta not replicated after the allgather", k);
    }
    /* padding stays zero; frozen fc1 stays bit-identical */
    for (size_t i = n; i < np && !ck.bad; i++)
      if (sh.m->theta[i] != 0.0f) {
        lt_test_fail_at(&ck, "step %d: padding theta[%zu] = %g", k, i, (double)sh.m->theta[i]);
      }
    if (mults) {
      const lt_layer *l1 = &sh.m->layer[0];
      size_t end = l1->b_off + (size_t)l1->out; /* fc1's W then b: [0, end) */
      if (!ck.bad && memcmp(sh.m->theta, theta0, end * sizeof(float)) != 0) {
        lt_test_fail_at(&ck, "step %d: frozen fc1 changed", k);
      }
    }
    /* and the step really moved theta (the comparison is not vacuous) */
    double moved = 0.0;
    for (size_t i = 0; i < np; i++) moved = fmax(moved, fabs(ref.m->theta[i] - theta0[i]));
    if (!ck.bad && !(moved > 1e-4)) {
      lt_test_fail_at(&ck, "step %d: theta moved by only %g", k, moved);
    }
    lt_test_agree(ctx->comm, &ck);
  }

  /* ownership: each optimizer holds exactly its slice, and the slices partition
   * [0, n_pad) in rank order */
  size_t lohi[2];
  lt_optim_range(sh.t->opt, &lohi[0], &lohi[1]);
  if (lohi[0] != sh.t->sh.lo || lohi[1] != sh.t->sh.hi || lohi[1] - lohi[0] != np / (size_t)P) {
    lt_test_fail_at(&ck, "optimizer range [%zu, %zu) vs shard [%zu, %zu), n_pad %zu", lohi[0],
                    lohi[1], sh.t->sh.lo, sh.t->sh.hi, np);
  }
  unsigned long long mine[2] = {lohi[0], lohi[1]}, *all = calloc(2 * (size_t)P, sizeof(*all));
  assert_non_null(all);
  MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, ctx->comm);
  for (int r = 0; r < P && !ck.bad; r++) {
    unsigned long long want_lo = r == 0 ? 0 : all[2 * (r - 1) + 1];
    if (all[2 * r] != want_lo || all[2 * r + 1] <= all[2 * r] ||
        (r == P - 1 && all[2 * r + 1] != np)) {
      lt_test_fail_at(&ck, "slices do not partition [0, %zu): rank %d has [%llu, %llu)", np, r,
                      all[2 * r], all[2 * r + 1]);
    }
  }
  free(all);
  /* the sharded state, gathered, is the single-rank optimizer's full state */
  int ns = lt_optim_nstate(sh.t->opt);
  if (ns != lt_optim_nstate(ref.t->opt) || lt_optim_steps(sh.t->opt) != KSTEPS) {
    lt_test_fail_at(&ck, "state count %d vs %d, steps %ld", ns, lt_optim_nstate(ref.t->opt),
                    lt_optim_steps(sh.t->opt));
  }
  float *gathered = malloc(np * sizeof(float));
  assert_non_null(gathered);
  for (int s = 0; s < ns && !ck.bad; s++) {
    MPI_Allgather(lt_optim_state(sh.t->opt, s), (int)(np / (size_t)P), MPI_FLOAT, gathered,
                  (int)(np / (size_t)P), MPI_FLOAT, ctx->comm);
    double atol = oc->kind != LT_OPT_SGD && s == 1 ? 1e-9 : ATOL;
    check_close(&ck, lt_optim_state_name(sh.t->opt, s), KSTEPS, gathered,
                lt_optim_state(ref.t->opt, s), np, atol);
  }
  lt_test_agree(ctx->comm, &ck);

  free(gathered);
  free(theta0), free(root), free(x), free(y);
  teardown_run(&sh);
  teardown_run(&ar);
  teardown_run(&ref);
  lt_ctx_destroy(&self);
  lt_ctx_destroy(&ctx);
}

static void test_sgd_nesterov(void **state) {
  (void)state;
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = LT_OPT_SGD;
  oc.lr = 0.1;
  oc.momentum = 0.9;
  oc.nesterov = 1;
  oc.weight_decay = 1e-3;
  oc.warmup_steps = 2; /* the schedule runs per rank and must agree */
  run_case(&oc, 0);
}

/* AdamW; mults: fc1 frozen and fc2 at half the learning rate */
static void adamw_case(int mults) {
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = LT_OPT_ADAMW;
  oc.lr = 1e-3;
  oc.weight_decay = 1e-2;
  run_case(&oc, mults);
}

static void test_adamw(void **state) {
  (void)state;
  adamw_case(0);
}

static void test_adamw_frozen_and_mult(void **state) {
  (void)state;
  adamw_case(1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sgd_nesterov),
    cmocka_unit_test(test_adamw),
    cmocka_unit_test(test_adamw_frozen_and_mult),
};

LT_TEST_MPI_MAIN("sharded_step", tests)
