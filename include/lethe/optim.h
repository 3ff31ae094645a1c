/* lethe optim: optimizers on the owned slice, learning-rate schedules,
 * per-layer learning-rate multipliers and frozen layers.
 *
 * The optimizer sees only the owned range [lo, hi) of the flat buffer: its
 * moments are allocated for that range alone. Per-parameter learning-rate
 * multipliers are given as ranges of the flat buffer (one per layer view);
 * a multiplier of 0 freezes the range: no update, no weight decay, no moment
 * change.
 *
 *   SGD:   g' = g + wd theta;  v = mu v + g' (v = g' at step 1, as PyTorch);
 *          d = nesterov ? g' + mu v : (mu > 0 ? v : g');  theta -= lr m d
 *   Adam:  g' = g + wd theta (coupled L2);  AdamW: theta -= lr m wd theta (decoupled)
 *          m1 = b1 m1 + (1-b1) g';  m2 = b2 m2 + (1-b2) g'^2
 *          theta -= lr m (m1 / (1-b1^t)) / (sqrt(m2 / (1-b2^t)) + eps)
 */
#ifndef LETHE_OPTIM_H
#define LETHE_OPTIM_H

#include "lethe/core.h"

typedef enum { LT_OPT_SGD = 0, LT_OPT_ADAM, LT_OPT_ADAMW } lt_opt_kind;
typedef enum { LT_SCHED_CONSTANT = 0, LT_SCHED_STEP, LT_SCHED_COSINE } lt_sched_kind;

typedef struct {
  lt_opt_kind kind;
  double lr;
  double momentum;     /* SGD */
  int nesterov;        /* SGD */
  double weight_decay;
  double beta1, beta2, eps; /* Adam/AdamW */
  /* schedule, in optimizer steps */
  lt_sched_kind sched;
  long warmup_steps;   /* linear warm-up from 0 (all schedules) */
  long step_size;      /* step: multiply by gamma every step_size steps */
  double gamma;
  long total_steps;    /* cosine: decay to min_lr at total_steps */
  double min_lr;
} lt_optim_cfg;

void lt_optim_cfg_default(lt_optim_cfg *cfg);

/* Learning rate at 1-based step t (t < 1 is taken as 1). With w = warmup_steps
 * and s = t - w:
 *   t <= w (warm-up):  lr * t / w
 *   constant:          lr
 *   step:              lr * gamma^floor(s / step_size)
 *   cosine:            min_lr + (lr - min_lr) (1 + cos(pi min(s, T - w) / (T - w))) / 2,
 *                      T = total_steps (min_lr from t = T on)
 * All three reach lr at s = 0, so the warm-up joins them continuously. */
double lt_sched_lr(const lt_optim_cfg *cfg, long t);

typedef struct lt_optim lt_optim;

/* Optimizer for the owned range [lo, hi) of a flat buffer. Validates cfg: each
 * bad value is an LT_ERR_ARG naming the key (optim.lr, optim.momentum, ...), the
 * value and the allowed range (momentum and nesterov are SGD's: nesterov = 1
 * needs momentum > 0 with SGD and is ignored by Adam). Moments start at zero,
 * multipliers at 1. */
LT_WUR lt_status lt_optim_create(lt_ctx *ctx, const lt_optim_cfg *cfg, size_t lo, size_t hi,
                                 lt_optim **opt);
void lt_optim_destroy(lt_optim **opt);

/* Learning-rate multiplier for the global range [off, off + len) (clipped to the
 * owned range; later calls override earlier ones). mult = 0 freezes the range.
 * mult must be finite and >= 0 (else LT_ERR_ARG). */
LT_WUR lt_status lt_optim_set_lr_mult(lt_optim *opt, size_t off, size_t len, double mult);

/* One step: theta_owned[hi-lo] and grad_owned[hi-lo] are the owned slices
 * (grad already averaged over the global batch). Advances the step counter t
 * first, then uses lt_sched_lr(cfg, t) and Adam's bias corrections at t (one
 * counter for all ranges: a range unfrozen later is corrected with the global t).
 * Never allocates. */
void lt_optim_step(lt_optim *opt, float *theta_owned, const float *grad_owned);

long lt_optim_steps(const lt_optim *opt);
double lt_optim_current_lr(const lt_optim *opt); /* lr of the next step */

/* The owned range [lo, hi) given at creation: every state vector has hi - lo floats. */
void lt_optim_range(const lt_optim *opt, size_t *lo, size_t *hi);

/* Sharded state for checkpoints: number of state vectors (0 SGD without momentum,
 * 1 SGD with momentum, 2 Adam), their names ("momentum_buffer"; "exp_avg",
 * "exp_avg_sq", as PyTorch) and owned slices [hi - lo] (NULL / NULL for i out of
 * range). set_steps restores the step counter (schedule and bias correction). */
int lt_optim_nstate(const lt_optim *opt);
const char *lt_optim_state_name(const lt_optim *opt, int i);
float *lt_optim_state(lt_optim *opt, int i);
void lt_optim_set_steps(lt_optim *opt, long t);

/* A new configuration (schedule, lr, ...) of the same kind and state vectors (else
 * LT_ERR_ARG); validated as at creation. fresh = 1 also zeroes every state vector
 * and the step counter (a fresh optimizer and schedule, as for a new training
 * phase); fresh = 0 keeps them (the same phase restored from a snapshot). The
 * learning-rate multipliers stay. */
LT_WUR lt_status lt_optim_restart(lt_optim *opt, const lt_optim_cfg *cfg, int fresh);

#endif
