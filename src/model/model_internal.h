/* Shared between the dense model (model.c) and the template layers (template.c). */
#ifndef LETHE_MODEL_INTERNAL_H
#define LETHE_MODEL_INTERNAL_H

#include "lethe/model.h"

/* Template layout, work buffers and the full-width active network; after the dense
 * fields of every layer (names, activations, workspace widths) are set. */
LT_WUR lt_status lt_tmpl_build(lt_ctx *ctx, const lt_model_cfg *c, lt_model *m);
void lt_tmpl_init(lt_model *m, uint64_t seed, lt_init init);
void lt_tmpl_backward(lt_model *m, const float *dlogits, int B, float *grad, float beta);

/* dz[l-1] = (dz[l] W_l) .* act'(Z_{l-1}) for l >= 2, and dlogits into dz[L]. */
void lt_model_backprop_dz(lt_model *m, int l, int B);
void lt_model_load_dlogits(lt_model *m, const float *dlogits, int B);

#endif
