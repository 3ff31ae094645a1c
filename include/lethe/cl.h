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

typedef enum { LT_PEN_NONE = 0, LT_PEN_EWC, LT_PEN_ONLINE_EWC, LT_PEN_SI } lt_penalty_kind;
typedef enum { LT_REPLAY_NONE = 0, LT_REPLAY_ER, LT_REPLAY_DER, LT_REPLAY_DERPP } lt_replay_kind;
typedef enum { LT_REFRESH_OFF = 0, LT_REFRESH_CODE, LT_REFRESH_PAPER } lt_refresh_kind;

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
} lt_cl_cfg;

void lt_cl_cfg_default(lt_cl_cfg *cfg);

typedef struct lt_strategy lt_strategy;

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

/* Bytes of strategy state on this rank (per-parameter state + buffer). */
size_t lt_strategy_bytes(const lt_strategy *s);

const char *lt_penalty_name(lt_penalty_kind k);
const char *lt_replay_name(lt_replay_kind k);

#endif
