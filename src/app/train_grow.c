/* lethe train with template models: phases, growth, template decay, FLOPs. */
#include "train_grow.h"

#include <math.h>

enum { ST_GROWN = 0, ST_MEMBER, ST_NT, ST_PHASES, ST_PHASE, ST_N };

static lt_status decay_hook(void *user, lt_trainer *t, double *penalty) {
  lt_train_grow *g = user;
  (void)penalty;
  lt_grow_decay(g->m, g->wd, t->sh.lo, t->sh.hi, g->m->theta, t->grad_owned);
  return LT_OK;
}

lt_status lt_train_grow_create(lt_ctx *ctx, const lt_deck *d, lt_train_grow **out) {
  *out = NULL;
  lt_train_grow *g = NULL;
  LT_CALLOC(ctx, g, 1);
  g->ctx = ctx;
  g->plan = (lt_grow_plan){.mode = (lt_grow_mode)d->grow_mode,
                           .member_epochs = d->grow_member_epochs,
                           .grown_epochs = d->epochs};
  g->init = (lt_grow_init)d->grow_init;
  g->noise = d->grow_noise;
  g->grown_lr = d->grow_lr > 0 ? d->grow_lr : d->lr;
  g->state[ST_MEMBER] = -1;
  g->state[ST_NT] = d->ntemplates;
  g->state[ST_PHASES] = lt_grow_nphases(&g->plan);
  for (int k = 0; k < 3; k++) {
    g->phase_epochs[k] = k < g->state[ST_PHASES] ? lt_grow_phase_epochs(&g->plan, k) : 0;
    g->phase_flops[k] = g->phase_acc[k] = NAN;
  }
  *out = g;
  return LT_OK;
}

void lt_train_grow_optim(lt_train_grow *g, long spe, lt_optim_cfg *oc) {
  g->wd = oc->weight_decay;
  oc->weight_decay = 0.0;
  g->base = *oc;
  g->spe = spe;
}

void lt_train_grow_destroy(lt_train_grow **pg) {
  if (!pg || !*pg) return;
  lt_free(*pg);
  *pg = NULL;
}

lt_status lt_train_grow_attach(lt_train_grow *g, lt_model *m, lt_trainer *t) {
  if (t->pre_update || t->post_update)
    LT_ERROR(g->ctx, LT_ERR_INTERNAL, "grow: the trainer already has update hooks");
  g->m = m;
  g->t = t;
  t->pre_update = decay_hook;
  t->hook_user = g;
  return LT_OK;
}

lt_status lt_train_grow_ckpt_add(lt_train_grow *g, lt_ckpt *ck) {
  LT_CHECK(g->ctx, lt_ckpt_add_replicated(ck, "/grow/state", LT_CKPT_I64, g->state, ST_N));
  LT_CHECK(g->ctx, lt_ckpt_add_replicated(ck, "/grow/flops", LT_CKPT_F64, &g->flops, 1));
  LT_CHECK(g->ctx, lt_ckpt_add_replicated(ck, "/grow/phase_flops", LT_CKPT_F64, g->phase_flops, 3));
  LT_CHECK(g->ctx, lt_ckpt_add_replicated(ck, "/grow/phase_test_acc", LT_CKPT_F64, g->phase_acc, 3));
  return LT_OK;
}

lt_status lt_train_grow_metrics_add(lt_train_grow *g, lt_metrics *mt) {
  int P = (int)g->state[ST_PHASES];
  LT_CHECK(g->ctx, lt_metrics_fixed(mt, "/grow/phase_epochs", g->phase_epochs, P));
  LT_CHECK(g->ctx, lt_metrics_fixed(mt, "/grow/phase_flops", g->phase_flops, P));
  LT_CHECK(g->ctx, lt_metrics_fixed(mt, "/grow/phase_test_acc", g->phase_acc, P));
  return LT_OK;
}

lt_status lt_train_grow_enter(lt_train_grow *g, int k, int fresh) {
  lt_ctx *ctx = g->ctx;
  int member = lt_grow_phase_member(&g->plan, k);
  if (member < 0 && g->plan.mode == LT_GROW_SCHEDULE && !g->state[ST_GROWN])
    LT_ERROR(ctx, LT_ERR_INTERNAL, "grow: phase %d is the grown network's, but no growth ran", k);
  LT_CHECK(ctx, lt_model_set_member(g->m, member));
  g->state[ST_MEMBER] = member;
  g->state[ST_PHASE] = k;
  lt_optim_cfg oc = g->base;
  oc.total_steps = g->spe * lt_grow_phase_epochs(&g->plan, k);
  if (member < 0 && g->plan.mode == LT_GROW_SCHEDULE) oc.lr = g->grown_lr;
  if (oc.min_lr > oc.lr) oc.min_lr = oc.lr;
  LT_CHECK(ctx, lt_optim_restart(g->t->opt, &oc, fresh));
  return LT_OK;
}

lt_status lt_train_grow_grow(lt_train_grow *g, int k, uint64_t seed, int *grew) {
  *grew = 0;
  if (!lt_grow_grows_before(&g->plan, k) || g->state[ST_GROWN]) return LT_OK;
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_GROW);
  LT_CHECK(g->ctx, lt_grow_apply(g->m, g->init, g->noise, &r));
  g->state[ST_GROWN] = 1;
  g->state[ST_MEMBER] = -1;
  *grew = 1;
  return LT_OK;
}

void lt_train_grow_step(lt_train_grow *g, long rows) { g->flops += lt_grow_step_flops(g->m, rows); }

void lt_train_grow_phase_end(lt_train_grow *g, int k, double acc) {
  if (k < 0 || k >= 3) return;
  g->phase_flops[k] = g->flops;
  g->phase_acc[k] = acc;
}
