/* Pretrained parameters by layer name; freezing, layer-wise lr decay, top re-init. */
#include <math.h>
#include <string.h>

#include "lethe/checkpoint.h"
#include "lethe/finetune.h"

double lt_ft_layer_mult(int l, int L, int freeze_bottom, double llrd) {
  if (l <= freeze_bottom) return 0.0;
  return pow(llrd, (double)(L - l));
}

static lt_status validate(lt_ctx *ctx, const lt_ft_cfg *c, const lt_model *m) {
  const int L = m->nlayers;
  if (c->freeze_bottom < 0 || c->freeze_bottom >= L)
    LT_ERROR(ctx, LT_ERR_ARG,
             "[finetune] freeze_bottom = %d: allowed 0..%d (the model has %d layers; the head "
             "stays trainable)", c->freeze_bottom, L - 1, L);
  if (c->reinit_top < 0 || c->reinit_top > L)
    LT_ERROR(ctx, LT_ERR_ARG, "[finetune] reinit_top = %d: allowed 0..%d (the model has %d layers)",
             c->reinit_top, L, L);
  if (!(c->llrd > 0.0 && c->llrd <= 1.0))
    LT_ERROR(ctx, LT_ERR_ARG, "[finetune] llrd = %g: allowed (0, 1]", c->llrd);
  if (c->reinit_top > 0 && !(c->from && *c->from))
    LT_ERROR(ctx, LT_ERR_ARG,
             "[finetune] reinit_top = %d needs [finetune] from (a pretrained snapshot)",
             c->reinit_top);
  return LT_OK;
}

static const lt_ckpt_layer *find(const lt_ckpt_params *p, const char *name) {
  for (int i = 0; i < p->nlayers; i++)
    if (strncmp(p->layers[i].name, name, LT_LAYER_NAME) == 0) return &p->layers[i];
  return NULL;
}

/* Every rank holds the same p and m's layout: the same decisions, the same errors. */
static lt_status match(lt_ctx *ctx, const lt_ft_cfg *c, const lt_ckpt_params *p, lt_model *m,
                       lt_ft_report *rep) {
  const int L = m->nlayers;
  const char *file = p->path;
  for (int i = 0; i < p->nlayers; i++) {
    const lt_ckpt_layer *s = &p->layers[i];
    int found = 0;
    for (int l = 0; l < L; l++) found |= strncmp(m->layer[l].name, s->name, LT_LAYER_NAME) == 0;
    if (!found)
      LT_ERROR(ctx, LT_ERR_DATA,
               "[finetune] from '%s': the snapshot's layer '%.32s' (%lldx%lld) is not in the "
               "deck's model, whose last layer is '%s' (another [model] hidden?)",
               file, s->name, (long long)s->rows, (long long)s->cols, m->layer[L - 1].name);
  }
  for (int l = 0; l < L; l++) {
    const lt_layer *ml = &m->layer[l];
    const lt_ckpt_layer *s = find(p, ml->name);
    if (!s)
      LT_ERROR(ctx, LT_ERR_DATA,
               "[finetune] from '%s': the model's layer '%s' (%dx%d) is not in the snapshot",
               file, ml->name, ml->out, ml->in);
    if (strncmp(s->kind, "dense", LT_CKPT_KIND) != 0)
      LT_ERROR(ctx, LT_ERR_DATA, "[finetune] from '%s': layer '%s' is of kind '%.16s', not dense",
               file, ml->name, s->kind);
    int same = s->rows == ml->out && s->cols == ml->in;
    if (!same && l < L - 1)
      LT_ERROR(ctx, LT_ERR_DATA,
               "[finetune] from '%s': layer '%s' has shape %lldx%lld in the snapshot but %dx%d in "
               "the deck's model; only the head ('%s') may differ (it is then re-initialised)",
               file, ml->name, (long long)s->rows, (long long)s->cols, ml->out, ml->in,
               m->layer[L - 1].name);
    if (!same) {
      rep->head_reinit = 1;
      rep->reinit++;
      continue;
    }
    if (l >= L - c->reinit_top) {
      rep->reinit++;
      continue;
    }
    size_t nw = (size_t)ml->out * (size_t)ml->in;
    memcpy(m->theta + ml->w_off, p->theta + s->offset, nw * sizeof(float));
    memcpy(m->theta + ml->b_off, p->theta + s->offset + (int64_t)nw, (size_t)ml->out * sizeof(float));
    rep->loaded++;
  }
  return LT_OK;
}

lt_status lt_ft_load(lt_ctx *ctx, const lt_ft_cfg *c, lt_model *m, lt_ft_report *rep) {
  lt_ft_report local;
  if (!rep) rep = &local;
  memset(rep, 0, sizeof(*rep));
  LT_CHECK(ctx, validate(ctx, c, m));
  if (!(c->from && *c->from)) return LT_OK;
  lt_ckpt_params p;
  LT_CHECK(ctx, lt_ckpt_read_params(ctx, c->from, "[finetune] from", &p));
  snprintf(rep->path, sizeof(rep->path), "%s", p.path);
  lt_status st = match(ctx, c, &p, m, rep);
  lt_ckpt_params_free(&p);
  LT_CHECK(ctx, st);
  return LT_OK;
}

lt_status lt_ft_apply_lr(lt_ctx *ctx, const lt_ft_cfg *c, const lt_model *m, lt_optim *opt) {
  LT_CHECK(ctx, validate(ctx, c, m));
  const int L = m->nlayers;
  for (int l = 0; l < L; l++) {
    const lt_layer *ml = &m->layer[l];
    double mult = lt_ft_layer_mult(l + 1, L, c->freeze_bottom, c->llrd);
    LT_CHECK(ctx, lt_optim_set_lr_mult(opt, ml->w_off, (size_t)ml->out * (size_t)ml->in, mult));
    LT_CHECK(ctx, lt_optim_set_lr_mult(opt, ml->b_off, (size_t)ml->out, mult));
  }
  return LT_OK;
}
