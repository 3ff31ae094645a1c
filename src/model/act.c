/* Activations, elementwise; backward next to forward. In-place calls (a == z,
 * dz == da) are allowed: every element is read before it is written. */
#include <math.h>
#include <string.h>

#include "lethe/model.h"

#define LT_INV_SQRT2 0.70710678118654752440f
#define LT_INV_SQRT2PI 0.39894228040143267794f

const char *lt_act_name(lt_act a) {
  switch (a) {
  case LT_ACT_RELU: return "relu";
  case LT_ACT_TANH: return "tanh";
  case LT_ACT_GELU: return "gelu";
  case LT_ACT_NONE: return "none";
  }
  return "unknown";
}

/* a[n] = act(z[n]) */
void lt_act_forward(lt_act act, float *a, const float *z, size_t n) {
  switch (act) {
  case LT_ACT_RELU:
    for (size_t i = 0; i < n; i++) a[i] = z[i] > 0.0f ? z[i] : 0.0f;
    break;
  case LT_ACT_TANH:
    for (size_t i = 0; i < n; i++) a[i] = tanhf(z[i]);
    break;
  case LT_ACT_GELU: /* exact: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */
    for (size_t i = 0; i < n; i++) a[i] = 0.5f * z[i] * (1.0f + erff(z[i] * LT_INV_SQRT2));
    break;
  case LT_ACT_NONE:
    if (a != z) memmove(a, z, n * sizeof(*a));
    break;
  }
}

/* dz[n] = da[n] .* act'(z[n]). relu and gelu read z; tanh reads a = tanh(z) */
void lt_act_backward(lt_act act, float *dz, const float *da, const float *z, const float *a,
                     size_t n) {
  switch (act) {
  case LT_ACT_RELU:
    for (size_t i = 0; i < n; i++) dz[i] = z[i] > 0.0f ? da[i] : 0.0f;
    break;
  case LT_ACT_TANH:
    for (size_t i = 0; i < n; i++) dz[i] = da[i] * (1.0f - a[i] * a[i]);
    break;
  case LT_ACT_GELU: /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    for (size_t i = 0; i < n; i++) {
      float x = z[i];
      float cdf = 0.5f * (1.0f + erff(x * LT_INV_SQRT2));
      float pdf = LT_INV_SQRT2PI * expf(-0.5f * x * x);
      dz[i] = da[i] * (cdf + x * pdf);
    }
    break;
  case LT_ACT_NONE:
    if (dz != da) memmove(dz, da, n * sizeof(*dz));
    break;
  }
}
