/* Parameter-space penalties of the cl module (internal to src/cl): EWC, online
 * EWC and SI on this rank's owned slice of the flat buffer.
 *
 * Every array has `slice` floats (the owned range [lo, hi), padding included);
 * the loops run over the first `len` of them, the real parameters of the slice
 * (min(hi, n) - lo, clipped at 0), so padding state stays zero.
 *
 *   EWC:        P = (lambda/2) sum_t sum_i F_t,i (theta_i - theta*_t,i)^2   one pair per past task
 *   online EWC: P = (lambda/2) sum_i F_i (theta_i - theta*_i)^2,  F <- gamma F + F_t,  theta* <- theta
 *   SI:         P = c sum_i Omega_i (theta_i - anchor_i)^2
 *               per step  omega_i += -g_i (theta_i' - theta_i)   (g without the penalty)
 *               task end  Omega_i += omega_i / ((theta_end,i - theta_start,i)^2 + xi), omega = 0,
 *                         anchor = theta_end
 * `done` is the number of finished tasks (owned by the strategy, so that one
 * checkpointed counter restores everything). */
#ifndef LETHE_CL_PENALTY_H
#define LETHE_CL_PENALTY_H

#include "lethe/cl.h"

typedef struct lt_penalty lt_penalty;

/* cfg->penalty must not be LT_PEN_NONE. */
LT_WUR lt_status lt_penalty_create(lt_ctx *ctx, const lt_cl_cfg *cfg, size_t slice, size_t len,
                                   lt_penalty **p);
void lt_penalty_destroy(lt_penalty **p);

/* This rank's part of the penalty at theta[slice] after `done` finished tasks,
 * accumulated in double; adds its gradient to grad[slice] unless grad is NULL. */
double lt_penalty_eval(const lt_penalty *p, long done, const float *theta, float *grad);

/* SI (no-op otherwise): before the optimizer, keep the task gradient g (the
 * reduced gradient before the penalty's is added) and theta; after it,
 * omega += -g (theta_new - theta_kept). */
void lt_penalty_pre_step(lt_penalty *p, const float *theta, const float *grad);
void lt_penalty_post_step(lt_penalty *p, const float *theta);

/* SI: theta_start = theta. */
void lt_penalty_begin_task(lt_penalty *p, const float *theta);
/* Consolidate task number `done` (0-based) at theta, with its Fisher F_t
 * (EWC kinds; may be NULL for SI). EWC may allocate one pair (error when the
 * pairs were fixed by lt_penalty_reserve and are used up). */
LT_WUR lt_status lt_penalty_end_task(lt_penalty *p, long done, const float *theta,
                                     const float *F_t);

/* Room for `pairs` EWC pairs now (zeroed) and never more: their addresses stay
 * fixed, so a checkpoint registry may hold them. No-op for other kinds. */
LT_WUR lt_status lt_penalty_reserve(lt_penalty *p, long pairs);

/* Local maximum of the importance (EWC: sum_t F_t over the first `done` pairs;
 * online EWC: F; SI: Omega) and the factor that turns it into the penalty's
 * curvature (lambda, lambda, 2c): lr * coef * max is the plain-SGD stiffness. */
void lt_penalty_stiffness(const lt_penalty *p, long done, double *max_importance,
                          double *coef);

/* State arrays in a fixed order: name (e.g. "ewc/fisher_0") and data[slice].
 * Returns the number of arrays; fills at most max entries. */
typedef struct {
  char name[48];
  float *data;
} lt_cl_array;
int lt_penalty_arrays(const lt_penalty *p, lt_cl_array *out, int max);

size_t lt_penalty_bytes(const lt_penalty *p);

#endif
