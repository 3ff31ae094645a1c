/* Continual-learning strategies: life cycle, the step, task ends, state. */
#include <math.h>
#include <string.h>

#include "lethe/checkpoint.h"
#include "lethe/cl.h"
#include "kfac_laplace.h"
#include "penalty.h"
#include "refresh.h"
#include "replay.h"

enum { CUR_TASK = 0, CUR_DONE, CUR_STEPS, CUR_REFRESH, CUR_N };

struct lt_strategy {
  lt_ctx *ctx;
  lt_cl_cfg cfg;
  lt_trainer *t;
  lt_model *m;
  int num_classes;
  lt_penalty *pen; /* NULL: no parameter-space term */
  lt_replay *rb;   /* NULL: no replay */
  lt_refresh *rf;  /* NULL: no refresh */
  float *F_task;   /* [slice] Fisher of the task just ended (EWC kinds, refresh) */
  lt_kfl *kfl;     /* NULL: no K-FAC Laplace penalty */
  lt_kfac *kf_task; /* K-FAC factors of the task just ended (K-FAC penalty, refresh kfac) */
  int64_t cursor[CUR_N];
  uint64_t rb_state[6]; /* replay: count, seen, reservoir (key, ctr), sample (key, ctr) */
};

void lt_cl_cfg_default(lt_cl_cfg *c) {
  memset(c, 0, sizeof(*c));
  c->penalty = LT_PEN_NONE;
  c->ewc_lambda = 1.0;
  c->ewc_gamma = 1.0;
  c->si_c = 0.1;
  c->si_xi = 1e-3;
  c->fisher_mode = LT_FISHER_SAMPLED;
  c->fisher_samples = 0;
  c->fisher_batch = 128;
  c->replay = LT_REPLAY_NONE;
  c->buffer_size = 500;
  c->replay_batch = 32;
  c->der_alpha = 0.3;
  c->derpp_beta = 0.5;
  c->refresh = LT_REFRESH_OFF;
  c->refresh_delta = 1e-5;
  c->refresh_kappa = 1e-3;
  c->refresh_sigma = 1e-3;
  c->refresh_gamma = 1e-6;
  c->refresh_damping = 1.0;
  c->refresh_every = 1;
  c->refresh_steps = 1;
  c->kfac_lambda = 1.0;
  c->kfac_gamma = 1.0;
  c->kfac_damping = LT_KFAC_DAMP_PI;
  c->kfac_block = 64;
}

const char *lt_penalty_name(lt_penalty_kind k) {
  switch (k) {
  case LT_PEN_NONE: return "none";
  case LT_PEN_EWC: return "ewc";
  case LT_PEN_ONLINE_EWC: return "online_ewc";
  case LT_PEN_SI: return "si";
  case LT_PEN_KFAC: return "kfac";
  }
  return "unknown";
}

const char *lt_replay_name(lt_replay_kind k) {
  switch (k) {
  case LT_REPLAY_NONE: return "none";
  case LT_REPLAY_ER: return "er";
  case LT_REPLAY_DER: return "der";
  case LT_REPLAY_DERPP: return "derpp";
  }
  return "unknown";
}

const char *lt_refresh_name(lt_refresh_kind k) {
  switch (k) {
  case LT_REFRESH_OFF: return "off";
  case LT_REFRESH_CODE: return "code";
  case LT_REFRESH_PAPER: return "paper";
  case LT_REFRESH_KFAC: return "kfac";
  }
  return "unknown";
}

/* A real value v of key name must be finite and >= lo (strictly > lo when strict). */
static lt_status check_real(lt_ctx *ctx, const char *name, double v, double lo, int strict) {
  if (!isfinite(v) || v < lo || (strict && v == lo))
    LT_ERROR(ctx, LT_ERR_ARG, "cl.%s = %g: must be finite and %s %g", name, v,
             strict ? ">" : ">=", lo);
  return LT_OK;
}

/* Same values on every rank, so every rank fails alike: no communication. */
static lt_status check_cfg(lt_ctx *ctx, const lt_cl_cfg *c, const lt_trainer *t,
                           int num_classes) {
  const lt_model *m = t->m;
  if ((unsigned)c->penalty > (unsigned)LT_PEN_KFAC)
    LT_ERROR(ctx, LT_ERR_ARG, "cl.penalty = %d unknown (none, ewc, online_ewc, si, kfac)",
             (int)c->penalty);
  if ((unsigned)c->replay > (unsigned)LT_REPLAY_DERPP)
    LT_ERROR(ctx, LT_ERR_ARG, "cl.replay = %d unknown (none, er, der, derpp)", (int)c->replay);
  if ((unsigned)c->refresh > (unsigned)LT_REFRESH_KFAC)
    LT_ERROR(ctx, LT_ERR_ARG, "cl.refresh = %d unknown (off, code, paper, kfac)", (int)c->refresh);
  if (num_classes != m->out_dim)
    LT_ERROR(ctx, LT_ERR_ARG, "cl: %d classes, but the model has %d outputs", num_classes,
             m->out_dim);
  if (t->pre_update || t->post_update)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "cl: the trainer already has update hooks");
  if (c->penalty == LT_PEN_EWC || c->penalty == LT_PEN_ONLINE_EWC) {
    LT_CHECK(ctx, check_real(ctx, "ewc_lambda", c->ewc_lambda, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "ewc_gamma", c->ewc_gamma, 0.0, 0));
  }
  if (c->penalty == LT_PEN_SI) {
    LT_CHECK(ctx, check_real(ctx, "si_c", c->si_c, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "si_xi", c->si_xi, 0.0, 1));
  }
  if (c->penalty == LT_PEN_EWC || c->penalty == LT_PEN_ONLINE_EWC || c->refresh != LT_REFRESH_OFF) {
    if ((unsigned)c->fisher_mode > (unsigned)LT_FISHER_BATCH_MEAN)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.fisher_mode = %d unknown (empirical, sampled, batch_mean)",
               (int)c->fisher_mode);
    if (c->fisher_samples < 0)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.fisher_samples = %ld: must be >= 0 (0: the whole task)",
               c->fisher_samples);
    if (c->fisher_batch < 1)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.fisher_batch = %d: must be >= 1", c->fisher_batch);
  }
  if (c->replay != LT_REPLAY_NONE) {
    if (c->buffer_size < 1)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.buffer_size = %ld: must be >= 1", c->buffer_size);
    /* one rank may be given every row of a buffer minibatch */
    if (c->replay_batch < 1 || c->replay_batch > m->max_batch)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.replay_batch = %d: must be in 1..%d (the model's max batch)",
               c->replay_batch, m->max_batch);
    if (c->replay != LT_REPLAY_ER) LT_CHECK(ctx, check_real(ctx, "der_alpha", c->der_alpha, 0.0, 0));
    if (c->replay == LT_REPLAY_DERPP)
      LT_CHECK(ctx, check_real(ctx, "derpp_beta", c->derpp_beta, 0.0, 0));
  }
  if (c->refresh == LT_REFRESH_CODE) {
    LT_CHECK(ctx, check_real(ctx, "refresh_delta", c->refresh_delta, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "refresh_kappa", c->refresh_kappa, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "refresh_sigma", c->refresh_sigma, 0.0, 0));
  }
  if (c->penalty == LT_PEN_KFAC || c->refresh == LT_REFRESH_KFAC) {
    LT_CHECK(ctx, check_real(ctx, "kfac_lambda", c->kfac_lambda, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "kfac_gamma", c->kfac_gamma, 0.0, 0));
    if (c->fisher_mode == LT_FISHER_BATCH_MEAN)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.fisher = batch_mean has no K-FAC factors: use empirical or "
                                "sampled with cl.penalty = kfac or refresh.kind = kfac");
    if (c->kfac_block < 1)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.kfac_block = %d: must be >= 1", c->kfac_block);
    if ((unsigned)c->kfac_damping > (unsigned)LT_KFAC_DAMP_PLAIN)
      LT_ERROR(ctx, LT_ERR_ARG, "cl.kfac_damping = %d unknown (pi, plain)", c->kfac_damping);
  }
  if (c->refresh == LT_REFRESH_PAPER || c->refresh == LT_REFRESH_KFAC) {
    LT_CHECK(ctx, check_real(ctx, "refresh_gamma", c->refresh_gamma, 0.0, 0));
    LT_CHECK(ctx, check_real(ctx, "refresh_damping", c->refresh_damping, 0.0, 1));
  }
  if (c->refresh != LT_REFRESH_OFF && (c->refresh_every < 1 || c->refresh_steps < 1))
    LT_ERROR(ctx, LT_ERR_ARG, "cl.refresh_every = %d, cl.refresh_steps = %d: both must be >= 1",
             c->refresh_every, c->refresh_steps);
  return LT_OK;
}

static float *owned_theta(const lt_strategy *s) { return s->m->theta + s->t->sh.lo; }

static lt_status pre_update(void *user, lt_trainer *t, double *penalty) {
  lt_strategy *s = user;
  const float *theta = owned_theta(s);
  if (s->kfl) {
    lt_timer_start(s->ctx, "kfac_penalty");
    *penalty = lt_kfl_eval(s->kfl, (long)s->cursor[CUR_DONE], t->grad_owned);
    lt_timer_stop(s->ctx, "kfac_penalty");
    return LT_OK;
  }
  lt_penalty_pre_step(s->pen, theta, t->grad_owned); /* SI: g before the penalty's */
  *penalty = lt_penalty_eval(s->pen, (long)s->cursor[CUR_DONE], theta, t->grad_owned);
  return LT_OK;
}

static lt_status post_update(void *user, lt_trainer *t, double *penalty) {
  (void)t;
  (void)penalty;
  lt_strategy *s = user;
  if (s->pen) lt_penalty_post_step(s->pen, owned_theta(s));
  return LT_OK;
}

static lt_status strategy_build(lt_strategy *s) {
  lt_ctx *ctx = s->ctx;
  const lt_cl_cfg *c = &s->cfg;
  const lt_shard *sh = &s->t->sh;
  size_t len = sh->hi < s->m->n ? sh->hi - sh->lo : (s->m->n > sh->lo ? s->m->n - sh->lo : 0);
  if (c->penalty == LT_PEN_KFAC) LT_CHECK(ctx, lt_kfl_create(ctx, c, s->t, &s->kfl));
  else if (c->penalty != LT_PEN_NONE)
    LT_CHECK(ctx, lt_penalty_create(ctx, c, sh->slice, len, &s->pen));
  if (c->penalty == LT_PEN_KFAC || c->refresh == LT_REFRESH_KFAC)
    LT_CHECK(ctx, lt_kfac_create(ctx, s->m, &s->kf_task));
  if (c->replay != LT_REPLAY_NONE)
    LT_CHECK(ctx, lt_replay_create(ctx, c->buffer_size, s->m->in_dim, s->num_classes,
                                   c->replay != LT_REPLAY_ER, &s->rb));
  if (c->refresh != LT_REFRESH_OFF) LT_CHECK(ctx, lt_refresh_create(ctx, c, s->t, &s->rf));
  if (c->penalty == LT_PEN_EWC || c->penalty == LT_PEN_ONLINE_EWC ||
      (s->rf && c->refresh != LT_REFRESH_KFAC))
    LT_CALLOC(ctx, s->F_task, sh->slice);
  return LT_OK;
}

lt_status lt_strategy_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, int num_classes,
                             lt_strategy **out) {
  *out = NULL;
  LT_CHECK(ctx, check_cfg(ctx, cfg, t, num_classes));
  lt_strategy *s = NULL;
  LT_CALLOC(ctx, s, 1);
  s->ctx = ctx;
  s->cfg = *cfg;
  s->t = t;
  s->m = t->m;
  s->num_classes = num_classes;
  s->cursor[CUR_TASK] = -1;
  lt_status st = lt_agree(ctx, strategy_build(s)); /* allocation failures on any rank */
  if (st != LT_OK) {
    lt_strategy_destroy(&s);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  if (s->pen || s->kfl) {
    t->pre_update = pre_update;
    t->post_update = post_update;
    t->hook_user = s;
  }
  lt_log(ctx, LT_LOG_DEBUG, "cl: penalty %s, replay %s, refresh %s, %zu bytes of state per rank\n",
         lt_penalty_name(cfg->penalty), lt_replay_name(cfg->replay), lt_refresh_name(cfg->refresh),
         lt_strategy_bytes(s));
  *out = s;
  return LT_OK;
}

void lt_strategy_destroy(lt_strategy **ps) {
  if (!ps || !*ps) return;
  lt_strategy *s = *ps;
  if (s->t && s->t->hook_user == s) {
    s->t->pre_update = NULL;
    s->t->post_update = NULL;
    s->t->hook_user = NULL;
  }
  lt_penalty_destroy(&s->pen);
  lt_kfl_destroy(&s->kfl);
  lt_kfac_destroy(&s->kf_task);
  lt_replay_destroy(&s->rb);
  lt_refresh_destroy(&s->rf);
  lt_free(s->F_task);
  lt_free(s);
  *ps = NULL;
}

lt_status lt_strategy_begin_task(lt_strategy *s, int task, const lt_dataset *train) {
  (void)train;
  if (task < 0) LT_ERROR(s->ctx, LT_ERR_ARG, "cl: task %d, must be >= 0", task);
  s->cursor[CUR_TASK] = task;
  if (s->pen) lt_penalty_begin_task(s->pen, owned_theta(s));
  return LT_OK;
}

static lt_loss_term ce_term(const float *x, const int32_t *y, int rows, long global_rows,
                            const uint8_t *mask) {
  return (lt_loss_term){.kind = LT_TERM_CE, .x = x, .rows = rows, .global_rows = global_rows,
                        .y = y, .mask = mask, .weight = 1.0};
}

lt_status lt_strategy_refresh(lt_strategy *s, const float *x, const int32_t *y, int rows,
                              long global_rows, const uint8_t *mask) {
  if (!s->rf) return LT_OK;
  lt_loss_term ce = ce_term(x, y, rows, global_rows, mask);
  for (int j = 0; j < s->cfg.refresh_steps; j++) {
    LT_CHECK(s->ctx, lt_refresh_unlearn(s->rf, &ce, (uint64_t)s->cursor[CUR_REFRESH]));
    s->cursor[CUR_REFRESH]++;
  }
  return LT_OK;
}

typedef struct {
  lt_term_kind kind;
  double w;
} buffer_draw;

lt_status lt_strategy_step(lt_strategy *s, const float *x, const int32_t *y, int rows,
                           long global_rows, const uint8_t *mask, lt_step_stats *stats) {
  lt_ctx *ctx = s->ctx;
  const lt_cl_cfg *c = &s->cfg;
  if (s->rf && s->cursor[CUR_STEPS] % c->refresh_every == 0)
    LT_CHECK(ctx, lt_strategy_refresh(s, x, y, rows, global_rows, mask));

  /* Buffer terms first, the current batch last: its forward pass is then the
   * trainer's last, and its logits (before the update, as DER stores them) are
   * still in the model's output workspace m->z[L] after the step (the backward
   * and the update do not write it). This saves the extra forward pass of the
   * current batch that reading them otherwise takes. */
  lt_loss_term terms[4];
  int n = 0;
  if (s->rb) {
    buffer_draw draw[2];
    int nd = 0;
    if (c->replay == LT_REPLAY_ER) {
      draw[nd++] = (buffer_draw){LT_TERM_CE, 1.0};
    } else {
      draw[nd++] = (buffer_draw){LT_TERM_MSE_LOGITS, 2.0 * c->der_alpha}; /* 1/2 ||.||^2 */
      if (c->replay == LT_REPLAY_DERPP) draw[nd++] = (buffer_draw){LT_TERM_CE, c->derpp_beta};
    }
    for (int k = 0; k < nd; k++) {
      lt_loss_term bt;
      LT_CHECK(ctx, lt_replay_sample(s->rb, k, c->replay_batch, draw[k].kind, draw[k].w, &bt));
      if (bt.global_rows > 0) terms[n++] = bt; /* an empty buffer contributes nothing */
    }
  }
  terms[n++] = ce_term(x, y, rows, global_rows, mask);
  LT_CHECK(ctx, lt_trainer_step_terms_report(s->t, terms, n, n - 1, stats));
  if (s->rb)
    lt_replay_add(s->rb, x, y, c->replay == LT_REPLAY_ER ? NULL : s->m->z[s->m->nlayers], rows);
  s->cursor[CUR_STEPS]++;
  return LT_OK;
}

/* Rank 0 logs the largest importance and lr * coef * max (the plain-SGD
 * stiffness of the penalty's diagonal curvature; SGD diverges beyond 2). */
static lt_status log_stiffness(lt_strategy *s, int task) {
  lt_ctx *ctx = s->ctx;
  double v[2], coef;
  lt_penalty_stiffness(s->pen, (long)s->cursor[CUR_DONE], &v[0], &coef);
  double lr = lt_optim_current_lr(s->t->opt);
  v[1] = lr * coef * v[0];
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, ctx->comm));
  int si = s->cfg.penalty == LT_PEN_SI;
  lt_log(ctx, LT_LOG_INFO, "cl: after task %d: %s max %s = %.4g, lr * %s * max = %.4g\n", task,
         lt_penalty_name(s->cfg.penalty), si ? "Omega" : "F", v[0], si ? "2c" : "lambda", v[1]);
  if (v[1] > 2.0)
    lt_log(ctx, LT_LOG_QUIET,
           "warning: cl: %s is stiff after task %d: lr * %s * max %s = %.4g > 2, where plain "
           "SGD diverges; lower the learning rate or the penalty's weight\n",
           lt_penalty_name(s->cfg.penalty), task, si ? "2c" : "lambda", si ? "Omega" : "F", v[1]);
  return LT_OK;
}

/* K-FAC Laplace: the penalty's largest curvature is lambda lambda_max(G) lambda_max(A). */
static lt_status log_kfac_stiffness(lt_strategy *s, int task) {
  lt_ctx *ctx = s->ctx;
  double mx = 0.0;
  LT_CHECK(ctx, lt_kfl_max_curvature(s->kfl, &mx));
  double v = lt_optim_current_lr(s->t->opt) * s->cfg.kfac_lambda * mx;
  lt_log(ctx, LT_LOG_INFO,
         "cl: after task %d: kfac max lambda_max(G) lambda_max(A) = %.4g, lr * lambda * max = "
         "%.4g\n",
         task, mx, v);
  if (v > 2.0)
    lt_log(ctx, LT_LOG_QUIET,
           "warning: cl: kfac is stiff after task %d: lr * kfac_lambda * max lambda_max(G) "
           "lambda_max(A) = %.4g > 2, where plain SGD diverges; lower the learning rate or "
           "cl.kfac_lambda\n",
           task, v);
  return LT_OK;
}

lt_status lt_strategy_end_task(lt_strategy *s, int task, const lt_dataset *train) {
  lt_ctx *ctx = s->ctx;
  const lt_cl_cfg *c = &s->cfg;
  if (task != s->cursor[CUR_TASK])
    LT_ERROR(ctx, LT_ERR_ARG, "cl: end of task %d, but task %ld began", task,
             (long)s->cursor[CUR_TASK]);
  if (s->F_task) {
    if (!train) LT_ERROR(ctx, LT_ERR_ARG, "cl: end of task %d needs its training data", task);
    LT_CHECK(ctx, lt_fisher_diag(ctx, s->m, &s->t->sh, train, c->fisher_mode, c->fisher_batch,
                                 c->fisher_samples, s->F_task));
  }
  if (s->kf_task) {
    if (!train) LT_ERROR(ctx, LT_ERR_ARG, "cl: end of task %d needs its training data", task);
    LT_CHECK(ctx, lt_kfac_compute(ctx, s->m, train, c->fisher_mode == LT_FISHER_SAMPLED,
                                  c->fisher_batch, c->fisher_samples, s->kf_task));
    if (s->kfl) lt_kfl_end_task(s->kfl, (long)s->cursor[CUR_DONE], s->kf_task);
    if (s->rf && c->refresh == LT_REFRESH_KFAC) lt_refresh_end_task_kfac(s->rf, s->kf_task);
  }
  if (s->pen) {
    lt_status st = lt_penalty_end_task(s->pen, (long)s->cursor[CUR_DONE], owned_theta(s), s->F_task);
    LT_CHECK(ctx, lt_agree(ctx, st)); /* EWC may allocate */
  }
  if (s->rf && s->F_task) lt_refresh_end_task(s->rf, s->F_task);
  s->cursor[CUR_DONE]++;
  if (s->pen) LT_CHECK(ctx, log_stiffness(s, task));
  if (s->kfl) LT_CHECK(ctx, log_kfac_stiffness(s, task));
  return LT_OK;
}

size_t lt_strategy_bytes(const lt_strategy *s) {
  size_t b = sizeof(*s);
  if (s->pen) b += lt_penalty_bytes(s->pen);
  if (s->kfl) b += lt_kfl_bytes(s->kfl);
  if (s->kf_task) b += lt_kfac_bytes(s->kf_task);
  if (s->rf) b += lt_refresh_bytes(s->rf);
  if (s->F_task) b += s->t->sh.slice * sizeof(float);
  if (s->rb) b += lt_replay_bytes(s->rb);
  return b;
}

double lt_strategy_penalty(const lt_strategy *s, float *grad_owned) {
  if (s->kfl) return lt_kfl_eval(s->kfl, (long)s->cursor[CUR_DONE], grad_owned);
  if (!s->pen) return 0.0;
  return lt_penalty_eval(s->pen, (long)s->cursor[CUR_DONE], owned_theta(s), grad_owned);
}

/* All per-parameter state arrays: the penalty's, then the refresh Fisher. */
#define MAX_ARRAYS 256
static int state_arrays(const lt_strategy *s, lt_cl_array *a, int max) {
  int k = s->pen ? lt_penalty_arrays(s->pen, a, max) : 0;
  if (s->rf && s->F_task) {
    if (k < max) {
      snprintf(a[k].name, sizeof(a[k].name), "refresh/fisher");
      a[k].data = lt_refresh_fisher(s->rf);
    }
    k++;
  }
  return k;
}

float *lt_strategy_state(lt_strategy *s, const char *name) {
  lt_cl_array a[MAX_ARRAYS];
  int k = state_arrays(s, a, MAX_ARRAYS);
  for (int i = 0; i < k && i < MAX_ARRAYS; i++)
    if (strcmp(a[i].name, name) == 0) return a[i].data;
  return NULL;
}

int64_t *lt_strategy_cursor(lt_strategy *s) { return s->cursor; }

lt_status lt_strategy_ckpt_add(lt_strategy *s, struct lt_ckpt *ck, int ntasks) {
  lt_ctx *ctx = s->ctx;
  if (ntasks < 1) LT_ERROR(ctx, LT_ERR_ARG, "cl: checkpoints for %d tasks (must be >= 1)", ntasks);
  if (s->pen) LT_CHECK(ctx, lt_agree(ctx, lt_penalty_reserve(s->pen, ntasks)));
  lt_cl_array a[MAX_ARRAYS];
  int k = state_arrays(s, a, MAX_ARRAYS);
  if (k > MAX_ARRAYS)
    LT_ERROR(ctx, LT_ERR_ARG, "cl: %d state arrays for checkpoints, at most %d", k, MAX_ARRAYS);
  for (int i = 0; i < k; i++) {
    char path[96];
    snprintf(path, sizeof(path), "/strategy/%.60s", a[i].name);
    LT_CHECK(ctx, lt_ckpt_add_sharded(ck, path, a[i].data));
  }
  LT_CHECK(ctx, lt_ckpt_add_replicated(ck, "/strategy/cursor", LT_CKPT_I64, s->cursor, CUR_N));
  if (s->kfl) LT_CHECK(ctx, lt_kfl_ckpt_add(s->kfl, ck));
  if (s->rf) LT_CHECK(ctx, lt_refresh_ckpt_add(s->rf, ck));
  if (s->rb) {
    lt_replay_state st;
    lt_replay_get_state(s->rb, &st);
    size_t cap = (size_t)st.capacity;
    LT_CHECK(ctx, lt_ckpt_add_per_rank(ck, "/strategy/replay/x", LT_CKPT_F32, st.x, cap * (size_t)st.d));
    LT_CHECK(ctx, lt_ckpt_add_per_rank(ck, "/strategy/replay/y", LT_CKPT_I32, st.y, cap));
    LT_CHECK(ctx, lt_ckpt_add_per_rank(ck, "/strategy/replay/index", LT_CKPT_I64, st.index, cap));
    if (st.store_logits)
      LT_CHECK(ctx, lt_ckpt_add_per_rank(ck, "/strategy/replay/logits", LT_CKPT_F32, st.logits,
                                         cap * (size_t)st.C));
    LT_CHECK(ctx, lt_ckpt_add_per_rank(ck, "/strategy/replay/state", LT_CKPT_U64, s->rb_state, 6));
    lt_strategy_ckpt_prepare(s);
  }
  return LT_OK;
}

void lt_strategy_ckpt_prepare(lt_strategy *s) {
  if (!s->rb) return;
  lt_replay_state st;
  lt_replay_get_state(s->rb, &st);
  uint64_t v[6] = {(uint64_t)st.count, (uint64_t)st.seen, st.reservoir.key, st.reservoir.ctr,
                   st.sample.key, st.sample.ctr};
  memcpy(s->rb_state, v, sizeof(v));
}

lt_status lt_strategy_ckpt_restore(lt_strategy *s, int per_rank_restored) {
  lt_ctx *ctx = s->ctx;
  if (!s->rb) return LT_OK;
  lt_replay_state st;
  lt_replay_get_state(s->rb, &st); /* pointers to the buffer's own arrays */
  lt_status rc = LT_OK;
  if (per_rank_restored) {
    st.count = (long)s->rb_state[0];
    st.seen = (long)s->rb_state[1];
    st.reservoir = (lt_rng){s->rb_state[2], s->rb_state[3]};
    st.sample = (lt_rng){s->rb_state[4], s->rb_state[5]};
    rc = lt_replay_set_state(s->rb, &st);
  } else {
    st.count = st.seen = 0;
    rc = lt_replay_set_state(s->rb, &st);
    lt_log(ctx, LT_LOG_INFO, "note   the replay buffer cannot be resharded to %d rank(s): it "
                             "restarts empty\n", ctx->size);
  }
  LT_CHECK(ctx, lt_agree(ctx, rc));
  lt_strategy_ckpt_prepare(s);
  return LT_OK;
}
