/* Refresh learning (Wang et al., ICLR 2024), internal to src/cl: the "unlearn"
 * step on the current batch before the normal step.
 *
 * Delta = the gradient of the mean CE of the current batch (one lt_trainer_gradient);
 * F = the running diagonal Fisher (F <- 1e-5 F + F_t at each task end; zero, i.e. the
 * identity preconditioner, during the first task); eps_i ~ N(0, 1) for the GLOBAL
 * parameter index i from the stream lt_rng_seed(seed, counter, LT_RNG_NOISE) jumped
 * to output 2 i (lt_rng_normal takes two outputs), so the noise does not depend on
 * the rank count.
 *
 *   code form (the authors' released code), per tensor l (each layer's W and b):
 *     u_l = ||theta_l|| / (||Delta_l|| + 1e-20) Delta_l          (norms over the whole tensor)
 *     theta_l += delta / (1 + kappa F_l) .* (u_l + sigma eps_l)
 *   paper form (J = refresh_steps steps of a Langevin-type ascent):
 *     theta += gamma Delta ./ (F + damping) + sqrt(2 gamma ./ (F + damping)) .* eps
 *
 *   kfac form (paper form with the Fisher in Kronecker form, per dense layer l,
 *   Wbar = [W | b] as in kfac.h):
 *     Wbar += gamma Gd^-1 Delta Ad^-1 + sqrt(2 gamma) CG E CA^T,   E_rj = eps of entry (r, j)
 *   with Ad, Gd the running K-FAC factors (A <- 1e-5 A + A_t, as the diagonal one)
 *   damped with eps = refresh_damping (cfg->kfac_damping: pi-balanced or plain),
 *   their inverses from ScaLAPACK (pdpotrf + pdpotri) and CA CA^T = Ad^-1,
 *   CG CG^T = Gd^-1 (so the noise has covariance Gd^-1 (x) Ad^-1). Before the first
 *   task end the factors are 0, so Ad = Gd = sqrt(damping) I: the paper form with
 *   F = 0. Inverses are recomputed (collectively) at the first unlearn step after a
 *   task end or a restart.
 *
 * Only real parameters change (padding stays zero); the owned slice is updated,
 * then theta is allgathered. */
#ifndef LETHE_CL_REFRESH_H
#define LETHE_CL_REFRESH_H

#include "lethe/cl.h"
#include "lethe/kfac.h"

typedef struct lt_refresh lt_refresh;

/* cfg->refresh must be LT_REFRESH_CODE or LT_REFRESH_PAPER. */
LT_WUR lt_status lt_refresh_create(lt_ctx *ctx, const lt_cl_cfg *cfg, lt_trainer *t,
                                   lt_refresh **r);
void lt_refresh_destroy(lt_refresh **r);

/* One unlearn step on the CE term ce (this rank's rows of the current batch),
 * with the noise of step `counter`. Overwrites t->grad_owned. Collective. */
LT_WUR lt_status lt_refresh_unlearn(lt_refresh *r, const lt_loss_term *ce, uint64_t counter);

/* F <- 1e-5 F + F_t on the owned slice. */
void lt_refresh_end_task(lt_refresh *r, const float *F_t);

float *lt_refresh_fisher(lt_refresh *r); /* [slice] */

struct lt_ckpt;
/* kfac form: A <- 1e-5 A + A_t, G <- 1e-5 G + G_t; the inverses go stale. */
void lt_refresh_end_task_kfac(lt_refresh *r, const lt_kfac *Ft);
/* kfac form: the running factors as "/strategy/refresh/kfac_A_<l>", "..._G_<l>"
 * (replicated float64). No-op for the other forms. */
LT_WUR lt_status lt_refresh_ckpt_add(lt_refresh *r, struct lt_ckpt *ck);
size_t lt_refresh_bytes(const lt_refresh *r);

#endif
