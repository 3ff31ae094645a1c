/* The deck's training settings as module configurations (train_setup.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/data.h"
#include "train_setup.h"

void lt_app_model_cfg(const lt_ctx *ctx, const lt_deck *d, int in_dim, int out_dim,
                      lt_model_cfg *mc) {
  *mc = (lt_model_cfg){0};
  mc->in_dim = in_dim;
  mc->out_dim = out_dim;
  mc->nhidden = d->nhidden;
  for (int i = 0; i < d->nhidden; i++) mc->hidden[i] = d->hidden[i];
  mc->act = (lt_act)d->activation;
  mc->init = (lt_init)d->init;
  int local = lt_local_batch(d->batch_size, ctx->rank, ctx->size);
  mc->max_batch = local > 256 ? local : 256; /* 256-row chunks for evaluation */
  if (d->cl_replay && d->replay_batch > mc->max_batch) mc->max_batch = d->replay_batch;
  mc->pad_ranks = ctx->size;
  mc->kind = (lt_model_kind)d->model_kind;
  mc->ntemplates = d->ntemplates;
}

void lt_app_optim_cfg(const lt_deck *d, lt_optim_cfg *oc) {
  lt_optim_cfg_default(oc);
  oc->kind = (lt_opt_kind)d->optim_kind;
  oc->lr = d->lr;
  oc->momentum = d->momentum;
  oc->nesterov = d->nesterov;
  oc->weight_decay = d->weight_decay;
  oc->beta1 = d->beta1;
  oc->beta2 = d->beta2;
  oc->eps = d->eps;
  oc->sched = (lt_sched_kind)d->schedule;
  oc->warmup_steps = d->warmup_steps;
  oc->step_size = d->step_size;
  oc->gamma = d->gamma;
  oc->min_lr = d->min_lr;
}

/* per-layer learning rates */

static const lt_layer *layer_named(const lt_model *m, const char *name) {
  for (int l = 0; l < m->nlayers; l++)
    if (strcmp(m->layer[l].name, name) == 0) return &m->layer[l];
  return NULL;
}

static lt_status unknown_layer(lt_ctx *ctx, const lt_model *m, const char *key, const char *name) {
  char names[256] = "";
  size_t o = 0;
  for (int l = 0; l < m->nlayers && o < sizeof(names); l++)
    o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", l ? ", " : "", m->layer[l].name);
  LT_ERROR(ctx, LT_ERR_DECK, "[optim] %s: unknown layer '%s'; this model's layers are %s", key,
           name, names);
}

static lt_status set_layer_mult(lt_ctx *ctx, lt_optim *opt, const lt_layer *L, double mult) {
  LT_CHECK(ctx, lt_optim_set_lr_mult(opt, L->w_off, (size_t)L->in * (size_t)L->out, mult));
  LT_CHECK(ctx, lt_optim_set_lr_mult(opt, L->b_off, (size_t)L->out, mult));
  return LT_OK;
}

lt_status lt_app_apply_layer_lr(lt_ctx *ctx, const lt_deck *d, const lt_model *m, lt_optim *opt) {
  char buf[LT_DECK_STR];
  snprintf(buf, sizeof(buf), "%s", d->lr_mult);
  for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    char *colon = strchr(tok, ':');
    char *end = NULL;
    double v = colon ? strtod(colon + 1, &end) : NAN;
    if (!colon || end == colon + 1 || *end != '\0' || !(v >= 0) || v > 1e3)
      LT_ERROR(ctx, LT_ERR_DECK,
               "[optim] lr_mult: '%s' is not name:multiplier with a multiplier in [0, 1000]", tok);
    *colon = '\0';
    const lt_layer *L = layer_named(m, tok);
    if (!L) return unknown_layer(ctx, m, "lr_mult", tok);
    LT_CHECK(ctx, set_layer_mult(ctx, opt, L, v));
  }
  snprintf(buf, sizeof(buf), "%s", d->freeze);
  for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    const lt_layer *L = layer_named(m, tok);
    if (!L) return unknown_layer(ctx, m, "freeze", tok);
    LT_CHECK(ctx, set_layer_mult(ctx, opt, L, 0.0));
  }
  return LT_OK;
}

lt_status lt_app_ckpt_create(lt_ctx *ctx, const lt_model *m, lt_trainer *tr,
                             const char *deck_text, const lt_blas_info *blas, lt_ckpt **ck) {
  lt_ckpt_info info = {.deck_text = deck_text, .blis_kernels = blas->arch,
                       .blis_threads = blas->threads};
  LT_CHECK(ctx, lt_ckpt_create(ctx, &tr->sh, &info, ck));
  lt_ckpt_layer layers[LT_MAX_LAYERS];
  int nl = lt_ckpt_model_layout(m, layers, LT_MAX_LAYERS);
  LT_CHECK(ctx, lt_ckpt_set_layout(*ck, layers, nl));
  LT_CHECK(ctx, lt_ckpt_add_params(*ck, m->theta));
  LT_CHECK(ctx, lt_ckpt_add_optim(*ck, tr->opt));
  LT_CHECK(ctx, lt_ckpt_add_rng(*ck, "ctx", &ctx->rng));
  return LT_OK;
}
