/* lethe grow: MixtureGrowth (Pham et al., WACV 2024) on template models
 * ([model] kind = template, see lt_tmpl_layer in lethe/model.h).
 *
 * Schedule (one run, phases are the run's "tasks"):
 *   grow:   phase 0 trains member 0 (template set 0, coefficients c0) as a half-width
 *           network; phase 1 member 1 (set 1, c1) with a fresh optimizer and schedule;
 *           then growth to full width in the diagonal layout W = [[W0, W2], [W3, W1]]
 *           (first layer [W0; W1], classifier [W0, W1]) and phase 2 trains the grown
 *           network with its own schedule.
 *   member: member 0 alone (one phase).
 *   full:   the full-width template network from scratch (one phase).
 *
 * Growth sets the coefficients of the new blocks of every hidden layer, c2 (set 0)
 * and c3 (set 1), by
 *   orthogonal  c_new = ||c_s|| g' / ||g'||, g' = g - (g.c_s) c_s / ||c_s||^2, g ~ N(0, I)
 *               (c2 orthogonal to c0, c3 to c1: Gram-Schmidt, twice)
 *   copy        c2 = c0 + noise ||c0|| e, c3 = c1 + noise ||c1|| e, e ~ N(0, I)
 *   zero        c2 = c3 = 0 (the grown logits equal the sum of the members' logits)
 *   random      c_new = ||c_s|| g / ||g||
 * and folds the classifier's member biases (b0 += b1, b1 = 0) so that with zero
 * off-diagonal blocks the grown logits are W0 h0 + W1 h1 + b0 + b1, the sum of the
 * members' logits.
 *
 * FLOPs of one training step on R rows, counted from the active layer shapes
 * [out, in] (activations and the loss not counted):
 *   forward  2 R in out + R out;   backward  2 R in out (dW) + R out (db)
 *            + 2 R in out (dA, all layers but the first);
 *   template layers, per active block [tr, tc] with nt templates:
 *            6 nt tr tc (assembly, template and coefficient gradients).
 */
#ifndef LETHE_GROW_H
#define LETHE_GROW_H

#include "lethe/core.h"
#include "lethe/model.h"

typedef enum { LT_GROW_ORTHOGONAL = 0, LT_GROW_COPY, LT_GROW_ZERO, LT_GROW_RANDOM } lt_grow_init;
typedef enum { LT_GROW_SCHEDULE = 0, LT_GROW_MEMBER, LT_GROW_FULL } lt_grow_mode;

typedef struct {
  lt_grow_mode mode;
  int member_epochs; /* epochs of each member's phase */
  int grown_epochs;  /* epochs of the grown (or full-from-scratch) network */
} lt_grow_plan;

int lt_grow_nphases(const lt_grow_plan *p);
/* The member trained in phase k (0 or 1), or -1 for the full width. */
int lt_grow_phase_member(const lt_grow_plan *p, int k);
int lt_grow_phase_epochs(const lt_grow_plan *p, int k);
/* First epoch of phase k (k = nphases: the total). */
long lt_grow_phase_epoch0(const lt_grow_plan *p, int k);
/* Is the growth step at the start of phase k? */
int lt_grow_grows_before(const lt_grow_plan *p, int k);

const char *lt_grow_init_name(lt_grow_init i);

/* Grow a template model trained as two members, in place (see above); draws from r
 * (the same stream on every rank gives the same theta). Leaves the model at full
 * width. LT_ERR_ARG for a dense model or an unknown init. */
LT_WUR lt_status lt_grow_apply(lt_model *m, lt_grow_init init, double noise, lt_rng *r);

/* FLOPs of one training step of the active network on rows samples (see above). */
double lt_grow_step_flops(const lt_model *m, long rows);

/* Coupled L2 on the active network's templates only (never on coefficients or
 * biases): grad_owned[i - lo] += wd theta[i] for i in [lo, hi) inside an active
 * template set. Nothing for a dense model (its decay is the optimizer's). */
void lt_grow_decay(const lt_model *m, double wd, size_t lo, size_t hi, const float *theta,
                   float *grad_owned);

#endif
