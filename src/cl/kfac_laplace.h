/* K-FAC Laplace penalty (Ritter, Botev & Barber 2018, "Online Structured Laplace
 * Approximations for Overcoming Catastrophic Forgetting"), internal to src/cl.
 *
 * After each task t the K-FAC factors (A_l, G_l) of the task's data (kfac.h) are
 * folded into running factors: G <- gamma G + G_t (the decayed sum) and A the
 * decayed mean, A <- (gamma w A + A_t) / (gamma w + 1) with w = the task weight
 * so far (w <- gamma w + 1; 0 before the first task). One Kronecker product then
 * stands for the sum of the tasks' products sum_t G_t (x) A_t (Ritter et al.'s
 * online approximation keeps one pair of factors too) and grows like it,
 * linearly in the tasks: the product of two sums, (sum A_t) (x) (sum G_t), would
 * grow quadratically (measured: its largest curvature tripled from task 1 to 2
 * on Split Fashion-MNIST and SGD diverged in task 3). The anchor theta* <- theta. With
 * dW_l = Wbar_l - Wbar*_l (Wbar = [W | b], kfac.h):
 *
 *     P = (lambda/2) sum_l tr(dW_l^T G_l dW_l A_l),   dP/dWbar_l = lambda G_l dW_l A_l
 *
 * The factors and the anchor are replicated (every rank needs all of dW_l and
 * the factors to form its rows of G dW A); each rank computes only the rows of
 * Wbar_l that hold its owned entries, G[rows, :] dW A (two dgemms), and adds
 * the gradient to those entries, so the work per step is split over the ranks.
 * The value returned is this rank's part (owned entries of dW .* (G dW A)). */
#ifndef LETHE_CL_KFAC_LAPLACE_H
#define LETHE_CL_KFAC_LAPLACE_H

#include "lethe/cl.h"
#include "lethe/kfac.h"

typedef struct lt_kfl lt_kfl;
struct lt_ckpt;

LT_WUR lt_status lt_kfl_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t, lt_kfl **p);
void lt_kfl_destroy(lt_kfl **p);

/* This rank's part of P at the model's (replicated) theta after `done` finished
 * tasks; adds the gradient to grad_owned[t->sh.slice] unless NULL. Not collective. */
double lt_kfl_eval(lt_kfl *p, long done, float *grad_owned);

/* Task number `done` (0-based) ended with factors Ft at the model's theta. */
void lt_kfl_end_task(lt_kfl *p, long done, const lt_kfac *Ft);

/* Running factors "/strategy/kfac/A_<l>", "/strategy/kfac/G_<l>" (replicated
 * float64) and the anchor "/strategy/kfac/anchor" (replicated float32 [n]). */
LT_WUR lt_status lt_kfl_ckpt_add(lt_kfl *p, struct lt_ckpt *ck);

/* Largest curvature of the penalty per unit lambda: max over layers of
 * lambda_max(G_l) lambda_max(A_l) (the largest eigenvalue of G_l (x) A_l), from
 * ScaLAPACK's pdsyevd on a grid over ctx->comm with block size cfg->kfac_block.
 * Collective. */
LT_WUR lt_status lt_kfl_max_curvature(lt_kfl *p, double *mx);

lt_kfac *lt_kfl_factors(lt_kfl *p);
float *lt_kfl_anchor(lt_kfl *p); /* [n_pad] */
size_t lt_kfl_bytes(const lt_kfl *p);

#endif
