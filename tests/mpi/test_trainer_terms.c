/* Multi-term steps (CE + squared error to stored logits), the reduced gradient at
 * 1-4 ranks against a single-rank computation, the MSE term's gradient against
 * central finite differences, and the strategy hooks. */
#include <math.h>
#include <string.h>

#include "lethe/data.h"
#include "lethe/trainer.h"
#include "testutil.h"

enum { D = 5, C = 4, NA = 13, NB = 7 };

static void make_model(lt_ctx *ctx, int pad, lt_model **m) {
  lt_model_cfg mc = {.in_dim = D, .nhidden = 1, .hidden = {6}, .out_dim = C,
                     .act = LT_ACT_TANH, .init = LT_INIT_XAVIER, .max_batch = 16,
                     .pad_ranks = pad};
  assert_int_equal(lt_model_create(ctx, &mc, m), LT_OK);
  lt_model_init(*m, 99, LT_INIT_XAVIER);
  /* nonzero biases so that every parameter matters */
  for (int l = 0; l < (*m)->nlayers; l++)
    for (int o = 0; o < (*m)->layer[l].out; o++)
      (*m)->theta[(*m)->layer[l].b_off + (size_t)o] = 0.05f * (float)(o + 1) * (l ? -1.0f : 1.0f);
}

typedef struct {
  float xa[NA * D], xb[NB * D], zb[NB * C];
  int32_t ya[NA];
} batch;

static void make_batch(batch *b) {
  lt_rng r;
  lt_rng_seed(&r, 5, 0, LT_RNG_USER);
  for (int i = 0; i < NA * D; i++) b->xa[i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0);
  for (int i = 0; i < NB * D; i++) b->xb[i] = (float)(2.0 * lt_rng_uniform(&r) - 1.0);
  for (int i = 0; i < NB * C; i++) b->zb[i] = (float)(3.0 * lt_rng_uniform(&r) - 1.5);
  for (int i = 0; i < NA; i++) b->ya[i] = (int32_t)lt_rng_below(&r, C);
}

static void terms_for(const batch *b, int rank, int size, lt_loss_term t[2]) {
  int fa, ca, fb, cb;
  lt_test_block(NA, rank, size, &fa, &ca);
  lt_test_block(NB, rank, size, &fb, &cb);
  t[0] = (lt_loss_term){.kind = LT_TERM_CE, .x = b->xa + fa * D, .rows = ca, .global_rows = NA,
                        .y = b->ya + fa, .weight = 1.0};
  t[1] = (lt_loss_term){.kind = LT_TERM_MSE_LOGITS, .x = b->xb + fb * D, .rows = cb,
                        .global_rows = NB, .z = b->zb + fb * C, .weight = 0.3};
}

/* 0.3 * mean over B rows of 1/2 ||f(x) - z||^2 + mean CE over A, by forward passes only */
static double full_loss(lt_model *m, const batch *b) {
  double l = 0.0;
  const float *lg = lt_model_forward(m, b->xa, NA);
  l += lt_softmax_xent(NULL, NULL, lg, b->ya, NULL, NA, C, 1.0f) / NA;
  lg = lt_model_forward(m, b->xb, NB);
  double s = 0.0;
  for (int i = 0; i < NB * C; i++) s += 0.5 * ((double)lg[i] - b->zb[i]) * ((double)lg[i] - b->zb[i]);
  return l + 0.3 * s / NB;
}

static void test_gradient_matches_fd_and_ranks(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx(), *self = NULL;
  assert_int_equal(lt_ctx_create(MPI_COMM_SELF, 1, &self), LT_OK);
  batch b;
  make_batch(&b);
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);

  /* single-rank reference and finite differences */
  lt_model *m1 = NULL;
  make_model(self, ctx->size, &m1);
  lt_trainer *t1 = NULL;
  assert_int_equal(lt_trainer_create(self, m1, &oc, LT_DIST_SHARDED, &t1), LT_OK);
  lt_loss_term tt[2];
  terms_for(&b, 0, 1, tt);
  assert_int_equal(lt_trainer_gradient(t1, tt, 2, NULL, NULL), LT_OK);
  /* central differences in float with h = 1e-2 on a smooth (tanh) model: truncation
   * error O(h^2) ~ 1e-4 and rounding ~ 1e-7 / h ~ 1e-5 relative to losses of O(1) */
  for (size_t i = 0; i < m1->n; i++) {
    float keep = m1->theta[i];
    m1->theta[i] = keep + 1e-2f;
    double lp = full_loss(m1, &b);
    m1->theta[i] = keep - 1e-2f;
    double lm = full_loss(m1, &b);
    m1->theta[i] = keep;
    double fd = (lp - lm) / 2e-2;
    if (fabs(fd - t1->grad_owned[i]) > 1e-3 + 1e-2 * fabs(fd))
      fail_msg("param %zu: gradient %g, finite difference %g", i, (double)t1->grad_owned[i], fd);
  }

  /* the same terms split over the ranks reduce to the same gradient */
  lt_model *m = NULL;
  make_model(ctx, ctx->size, &m);
  lt_trainer *t = NULL;
  assert_int_equal(lt_trainer_create(ctx, m, &oc, LT_DIST_SHARDED, &t), LT_OK);
  terms_for(&b, ctx->rank, ctx->size, tt);
  assert_int_equal(lt_trainer_gradient(t, tt, 2, NULL, NULL), LT_OK);
  int bad = 0;
  for (size_t j = 0; j < t->sh.slice; j++) {
    float ref = t1->grad_owned[t->sh.lo + j];
    /* float sums in another order: a few ulps of the largest partial sums */
    if (fabsf(t->grad_owned[j] - ref) > 1e-6f + 1e-5f * fabsf(ref)) bad++;
  }
  int any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  assert_int_equal(any, 0);
  lt_trainer_destroy(&t);
  lt_model_destroy(&m);
  lt_trainer_destroy(&t1);
  lt_model_destroy(&m1);
  lt_ctx_destroy(&self);
  lt_ctx_destroy(&ctx);
}

/* pre_update adds the gradient of (k/2)||theta_owned||^2; post_update counts calls */
typedef struct {
  double k;
  int pre, post;
} hook_state;

static lt_status pre(void *user, lt_trainer *t, double *penalty) {
  hook_state *h = user;
  const float *th = t->m->theta + t->sh.lo;
  double p = 0.0;
  for (size_t j = 0; j < t->sh.slice; j++) {
    t->grad_owned[j] += (float)(h->k * th[j]);
    p += 0.5 * h->k * (double)th[j] * (double)th[j];
  }
  *penalty = p;
  h->pre++;
  return LT_OK;
}

static lt_status post(void *user, lt_trainer *t, double *penalty) {
  (void)t;
  (void)penalty;
  ((hook_state *)user)->post++;
  return LT_OK;
}

static void test_hooks_equal_weight_decay(void **state) {
  (void)state;
  /* SGD with a hook adding k theta to the gradient equals SGD with weight decay k */
  lt_ctx *ctx = lt_test_ctx();
  batch b;
  make_batch(&b);
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.lr = 0.1;
  lt_model *ma = NULL, *mb = NULL;
  make_model(ctx, ctx->size, &ma);
  make_model(ctx, ctx->size, &mb);
  lt_trainer *ta = NULL, *tb = NULL;
  assert_int_equal(lt_trainer_create(ctx, ma, &oc, LT_DIST_SHARDED, &ta), LT_OK);
  oc.weight_decay = 0.25;
  assert_int_equal(lt_trainer_create(ctx, mb, &oc, LT_DIST_SHARDED, &tb), LT_OK);
  hook_state h = {.k = 0.25};
  ta->pre_update = pre;
  ta->post_update = post;
  ta->hook_user = &h;
  lt_loss_term tt[2];
  terms_for(&b, ctx->rank, ctx->size, tt);
  lt_step_stats sa, sb;
  for (int s = 0; s < 3; s++) {
    assert_int_equal(lt_trainer_step_terms(ta, tt, 2, &sa), LT_OK);
    assert_int_equal(lt_trainer_step_terms(tb, tt, 2, &sb), LT_OK);
  }
  assert_int_equal(h.pre, 3);
  assert_int_equal(h.post, 3);
  for (size_t i = 0; i < ma->n; i++)
    if (fabsf(ma->theta[i] - mb->theta[i]) > 1e-6f * (1.0f + fabsf(mb->theta[i])))
      fail_msg("theta[%zu]: hook %g, weight decay %g", i, (double)ma->theta[i], (double)mb->theta[i]);
  /* the penalty is reported summed over ranks, and total = CE + 0.3 MSE + penalty */
  assert_true(sa.penalty > 0.0);
  assert_true(fabs(sa.total - sb.total - sa.penalty) < 1e-3 * (1.0 + sa.total));
  lt_trainer_destroy(&ta);
  lt_trainer_destroy(&tb);
  lt_model_destroy(&ma);
  lt_model_destroy(&mb);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_gradient_matches_fd_and_ranks),
    cmocka_unit_test(test_hooks_equal_weight_decay),
};
LT_TEST_MPI_MAIN("trainer_terms", tests)
