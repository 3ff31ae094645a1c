/* lethe cl: continual-learning strategies of the unified objective (Wang et al.,
 * ICLR 2024) and the refresh-learning plug-in.
 *
 *   L = CE(x, y) + alpha * D_Phi(h(x_buffer), z) + beta * D_Psi(theta, theta_old)
 *
 * One output-space term (replay: ER, DER, DER++) and one parameter-space term
 * (EWC, online EWC, SI) can be combined, e.g. DER++ with online EWC. Every
 * per-parameter state (Fisher, anchors, omega, Omega) lives only on the owning
 * rank's slice [lo, hi) of the flat parameter buffer; the replay buffer is
 * sharded across ranks (total size M). Parameter-space penalties run as the
 * trainer's pre_update hook, SI's path integral as its post_update hook.
 *
 * Module layout: src/cl/strategy.c (life cycle, the step), src/cl/penalty.c
 * (EWC, online EWC, SI), src/cl/replay.c (reservoir buffer, ER/DER/DER++ terms),
 * src/cl/refresh.c (refresh learning).
 */
#ifndef LETHE_CL_H
#define LETHE_CL_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/fisher.h"
#include "lethe/trainer.h"

typedef enum { LT_PEN_NONE = 0, LT_PEN_EWC, LT_PEN_ONLINE_EWC, LT_PEN_SI, LT_PEN_KFAC } lt_penalty_kind;
typedef enum { LT_REPLAY_NONE = 0, LT_REPLAY_ER, LT_REPLAY_DER, LT_REPLAY_DERPP } lt_replay_kind;
typedef enum { LT_REFRESH_OFF = 0, LT_REFRESH_CODE, LT_REFRESH_PAPER, LT_REFRESH_KFAC } lt_refresh_kind;

typedef struct {
  /* parameter space */
  lt_penalty_kind penalty;
  double ewc_lambda;          /* EWC / online EWC: (lambda/2) sum F (theta - theta*)^2 */
  double ewc_gamma;           /* online EWC: F <- gamma F + F_t */
  double si_c, si_xi;         /* SI: c sum Omega (theta - anchor)^2, damping xi */
  lt_fisher_mode fisher_mode; /* default: sampled (true Fisher) */
  long fisher_samples;        /* 0: the whole task */
  int fisher_batch;
  /* output space */
  lt_replay_kind replay;
  long buffer_size;           /* M, over all ranks */
  int replay_batch;           /* global rows of each buffer minibatch */
  double der_alpha;           /* DER/DER++: alpha * ||f(x') - z'||^2 */
  double derpp_beta;          /* DER++: beta * CE on a second buffer minibatch; ER uses 1 */
  /* refresh learning */
  lt_refresh_kind refresh;
  double refresh_delta, refresh_kappa, refresh_sigma; /* code form */
  double refresh_gamma, refresh_damping;              /* paper form */
  int refresh_every, refresh_steps;
  /* K-FAC (Laplace penalty and the refresh kfac form; src/cl/kfac_laplace.c) */
  double kfac_lambda;         /* (lambda/2) sum_l tr(dW_l^T G_l dW_l A_l) */
  double kfac_gamma;          /* online factors: G <- gamma G + G_t, A the decayed mean */
  int kfac_damping;           /* lt_kfac_damp of the inverted factors (refresh kfac form) */
  int kfac_block;             /* ScaLAPACK block size */
} lt_cl_cfg;

/* Defaults: no penalty, no replay, no refresh; ewc_lambda 1, ewc_gamma 1;
 * si_c 0.1, si_xi 1e-3 (Zenke et al. 2017 use xi = 1e-3 on split MNIST; 0.1 on
 * CIFAR); fisher sampled over the whole task in batches of 128; buffer_size 500,
 * replay_batch 32, der_alpha 0.3, derpp_beta 0.5; refresh code form's delta 1e-5,
 * kappa 1e-3, sigma 1e-3; paper form's gamma 1e-6, damping 1; refresh_every 1,
 * refresh_steps 1.
 *
 * Conventions. DER's term is der_alpha * mean over buffer rows of ||f(x') - z'||^2
 * summed over classes (the trainer's LT_TERM_MSE_LOGITS is 1/2 ||.||^2, so it
 * runs with weight 2 der_alpha). The DER authors' code (mammoth) uses
 * F.mse_loss, a mean over classes too: its alpha is der_alpha * C here. ER's
 * buffer term is a separate mean CE with weight 1 (mammoth concatenates the
 * buffer rows to the batch instead). The refresh paper form uses the same
 * running Fisher as the code form, damped: (F + refresh_damping). */
void lt_cl_cfg_default(lt_cl_cfg *cfg);

typedef struct lt_strategy lt_strategy;
struct lt_ckpt; /* lethe/checkpoint.h */

/* Installs its hooks on the trainer (which must outlive it). Collective. */
LT_WUR lt_status lt_strategy_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t,
                                    int num_classes, lt_strategy **s);
void lt_strategy_destroy(lt_strategy **s);

/* Before training task `task` (0-based) on its data. Collective. */
LT_WUR lt_status lt_strategy_begin_task(lt_strategy *s, int task, const lt_dataset *train);

/* One training step on this rank's rows of the current task's global batch:
 * refresh (when on and due), then the trainer step with the current batch and
 * the replay terms, then the buffer update. mask: NULL or [classes] (task-IL
 * training). Collective. */
LT_WUR lt_status lt_strategy_step(lt_strategy *s, const float *x, const int32_t *y, int rows,
                                  long global_rows, const uint8_t *mask, lt_step_stats *stats);

/* After task `task`: Fisher and anchors (EWC), Omega (SI), the refresh Fisher.
 * Collective. */
LT_WUR lt_status lt_strategy_end_task(lt_strategy *s, int task, const lt_dataset *train);

/* Bytes of strategy state on this rank: every per-parameter array of the
 * owned slice (state and SI's two per-step scratch arrays, the task-end Fisher)
 * plus the replay buffer (lt_replay_bytes). O(N/P) + O(M/P). */
size_t lt_strategy_bytes(const lt_strategy *s);

/* Only the refresh part of a step: cfg->refresh_steps unlearn steps on this
 * rank's rows of the current batch (whether or not due by refresh_every; no-op
 * when refresh is off). Advances the noise counter. Collective. */
LT_WUR lt_status lt_strategy_refresh(lt_strategy *s, const float *x, const int32_t *y, int rows,
                                     long global_rows, const uint8_t *mask);

/* The parameter-space penalty at the model's current theta: this rank's part
 * of its value (sum over ranks for the total), and its gradient added to
 * grad_owned[t->sh.slice] unless that is NULL. 0 without a penalty or before
 * the first task ended. Not collective. */
double lt_strategy_penalty(const lt_strategy *s, float *grad_owned);

/* State. Per-parameter arrays are the owned slices [t->sh.slice] of vectors in
 * the parameter layout, named "ewc/fisher_<t>", "ewc/anchor_<t>" (one pair per
 * finished task), "online_ewc/fisher", "online_ewc/anchor", "si/omega",
 * "si/Omega", "si/anchor", "si/theta_start", "refresh/fisher". Scalars:
 * the cursor {task (current, -1 before the first), tasks_done, steps,
 * refresh_count (unlearn steps taken: the noise counter)}. */
float *lt_strategy_state(lt_strategy *s, const char *name); /* NULL: no such array */
int64_t *lt_strategy_cursor(lt_strategy *s);                /* [4], see above */

/* Register the state with a checkpoint registry for a run of `ntasks` tasks:
 * each array above as a sharded vector "/strategy/<name>", the cursor as the
 * replicated int64 "/strategy/cursor" [4]. EWC makes room for ntasks pairs now
 * (one per task end, the last one's included; their addresses must stay fixed
 * while registered, so a further task end is an error). lt_ckpt_read then
 * restores everything in place; a resumed run continues with lt_strategy_step
 * in the interrupted task (no begin_task for it, which would reset SI's
 * theta_start). The replay buffer's rows, labels, logits and stream indices are
 * per-rank arrays ("/strategy/replay/x" ...; lt_ckpt_add_per_rank) with its
 * scalars and RNG streams in "/strategy/replay/state" [6]: call
 * lt_strategy_ckpt_prepare before each lt_ckpt_write and lt_strategy_ckpt_restore
 * after lt_ckpt_read. */
LT_WUR lt_status lt_strategy_ckpt_add(lt_strategy *s, struct lt_ckpt *ck, int ntasks);
/* Copy the replay buffer's scalars into the registered array (before a write). */
void lt_strategy_ckpt_prepare(lt_strategy *s);
/* After a read: restore the replay buffer's scalars (per_rank_restored: the
 * per-rank arrays were read, i.e. the same rank count); at another rank count
 * the buffer restarts empty (a note is logged). Collective. */
LT_WUR lt_status lt_strategy_ckpt_restore(lt_strategy *s, int per_rank_restored);

const char *lt_penalty_name(lt_penalty_kind k);
const char *lt_replay_name(lt_replay_kind k);
const char *lt_refresh_name(lt_refresh_kind k);

#endif
