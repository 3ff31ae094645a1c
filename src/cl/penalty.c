/* EWC, online EWC and SI on the owned slice (see penalty.h). */
#include "penalty.h"

#include <stdio.h>
#include <string.h>

struct lt_penalty {
  lt_ctx *ctx;
  lt_penalty_kind kind;
  double lambda, gamma, c, xi;
  size_t slice, len;
  /* EWC: one (F, anchor) pair per finished task; cap pairs allocated */
  float **ewc_F, **ewc_anchor;
  long cap;
  int fixed; /* lt_penalty_reserve was called: no more pairs */
  /* online EWC and SI share the anchor; F is online EWC's running Fisher */
  float *F, *anchor;
  /* SI */
  float *omega, *Omega, *start; /* state */
  float *g, *prev;              /* per-step scratch */
};

static float *alloc_slice(lt_penalty *p) {
  float *a = NULL;
  return lt_calloc_aligned((void **)&a, p->slice, sizeof(float)) == 0 ? a : NULL;
}

lt_status lt_penalty_create(lt_ctx *ctx, const lt_cl_cfg *cfg, size_t slice, size_t len,
                            lt_penalty **out) {
  *out = NULL;
  if (cfg->penalty != LT_PEN_EWC && cfg->penalty != LT_PEN_ONLINE_EWC &&
      cfg->penalty != LT_PEN_SI)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "penalty kind %d has no state", (int)cfg->penalty);
  lt_penalty *p = NULL;
  LT_CALLOC(ctx, p, 1);
  p->ctx = ctx;
  p->kind = cfg->penalty;
  p->lambda = cfg->ewc_lambda;
  p->gamma = cfg->ewc_gamma;
  p->c = cfg->si_c;
  p->xi = cfg->si_xi;
  p->slice = slice;
  p->len = len;
  int ok = 1;
  if (p->kind == LT_PEN_ONLINE_EWC) {
    ok = (p->F = alloc_slice(p)) && (p->anchor = alloc_slice(p));
  } else if (p->kind == LT_PEN_SI) {
    ok = (p->anchor = alloc_slice(p)) && (p->omega = alloc_slice(p)) &&
         (p->Omega = alloc_slice(p)) && (p->start = alloc_slice(p)) && (p->g = alloc_slice(p)) &&
         (p->prev = alloc_slice(p));
  }
  if (!ok) {
    lt_penalty_destroy(&p);
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory for the %s state (%zu floats per array)",
             lt_penalty_name(cfg->penalty), slice);
  }
  *out = p;
  return LT_OK;
}

void lt_penalty_destroy(lt_penalty **pp) {
  if (!pp || !*pp) return;
  lt_penalty *p = *pp;
  for (long k = 0; k < p->cap; k++) {
    lt_free(p->ewc_F[k]);
    lt_free(p->ewc_anchor[k]);
  }
  lt_free(p->ewc_F);
  lt_free(p->ewc_anchor);
  lt_free(p->F);
  lt_free(p->anchor);
  lt_free(p->omega);
  lt_free(p->Omega);
  lt_free(p->start);
  lt_free(p->g);
  lt_free(p->prev);
  lt_free(p);
  *pp = NULL;
}

/* sum_i w_i (theta_i - a_i)^2 over n entries, and grad_i += k w_i (theta_i - a_i);
 * in double, so that the value is the quadratic of the float inputs to ~1e-16 */
static double quad(float *grad, const float *w, const float *a, const float *theta, double k,
                   size_t n) {
  double s = 0.0;
  if (grad) {
    for (size_t i = 0; i < n; i++) {
      double d = (double)theta[i] - (double)a[i], wd = (double)w[i] * d;
      grad[i] += (float)(k * wd);
      s += wd * d;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      double d = (double)theta[i] - (double)a[i];
      s += (double)w[i] * d * d;
    }
  }
  return s;
}

double lt_penalty_eval(const lt_penalty *p, long done, const float *theta, float *grad) {
  if (done <= 0) return 0.0;
  switch (p->kind) {
  case LT_PEN_EWC: {
    double s = 0.0;
    long pairs = done < p->cap ? done : p->cap;
    for (long t = 0; t < pairs; t++)
      s += quad(grad, p->ewc_F[t], p->ewc_anchor[t], theta, p->lambda, p->len);
    return 0.5 * p->lambda * s;
  }
  case LT_PEN_ONLINE_EWC:
    return 0.5 * p->lambda * quad(grad, p->F, p->anchor, theta, p->lambda, p->len);
  case LT_PEN_SI:
    return p->c * quad(grad, p->Omega, p->anchor, theta, 2.0 * p->c, p->len);
  default:
    return 0.0;
  }
}

void lt_penalty_pre_step(lt_penalty *p, const float *theta, const float *grad) {
  if (p->kind != LT_PEN_SI) return;
  memcpy(p->g, grad, p->len * sizeof(float));
  memcpy(p->prev, theta, p->len * sizeof(float));
}

void lt_penalty_post_step(lt_penalty *p, const float *theta) {
  if (p->kind != LT_PEN_SI) return;
  for (size_t i = 0; i < p->len; i++) p->omega[i] -= p->g[i] * (theta[i] - p->prev[i]);
}

void lt_penalty_begin_task(lt_penalty *p, const float *theta) {
  if (p->kind == LT_PEN_SI) memcpy(p->start, theta, p->len * sizeof(float));
}

/* Grow the pair arrays to at least `pairs` (each pair allocated zeroed). */
static lt_status ewc_grow(lt_penalty *p, long pairs) {
  lt_ctx *ctx = p->ctx;
  if (pairs <= p->cap) return LT_OK;
  float **F = NULL, **A = NULL;
  if (lt_calloc_aligned((void **)&F, (size_t)pairs, sizeof(*F)) != 0 ||
      lt_calloc_aligned((void **)&A, (size_t)pairs, sizeof(*A)) != 0) {
    lt_free(F);
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory for %ld EWC pairs", pairs);
  }
  if (p->cap > 0) {
    memcpy(F, p->ewc_F, (size_t)p->cap * sizeof(*F));
    memcpy(A, p->ewc_anchor, (size_t)p->cap * sizeof(*A));
  }
  lt_free(p->ewc_F);
  lt_free(p->ewc_anchor);
  p->ewc_F = F;
  p->ewc_anchor = A;
  for (; p->cap < pairs; p->cap++) {
    F[p->cap] = alloc_slice(p);
    A[p->cap] = alloc_slice(p);
    if (!F[p->cap] || !A[p->cap]) {
      lt_free(F[p->cap]);
      lt_free(A[p->cap]);
      F[p->cap] = A[p->cap] = NULL;
      LT_ERROR(ctx, LT_ERR_MEM, "out of memory for EWC pair %ld (2 x %zu floats)", p->cap,
               p->slice);
    }
  }
  return LT_OK;
}

lt_status lt_penalty_reserve(lt_penalty *p, long pairs) {
  if (p->kind != LT_PEN_EWC) return LT_OK;
  LT_CHECK(p->ctx, ewc_grow(p, pairs));
  p->fixed = 1;
  return LT_OK;
}

lt_status lt_penalty_end_task(lt_penalty *p, long done, const float *theta, const float *F_t) {
  lt_ctx *ctx = p->ctx;
  size_t n = p->len;
  if ((p->kind == LT_PEN_EWC || p->kind == LT_PEN_ONLINE_EWC) && !F_t)
    LT_ERROR(ctx, LT_ERR_INTERNAL, "%s: no Fisher at the end of task %ld",
             lt_penalty_name(p->kind), done);
  switch (p->kind) {
  case LT_PEN_EWC:
    if (done >= p->cap) {
      if (p->fixed)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "ewc: task %ld ends, but room (fixed for checkpoints) was made for %ld past "
                 "tasks only",
                 done + 1, p->cap);
      LT_CHECK(ctx, ewc_grow(p, done + 1));
    }
    memcpy(p->ewc_F[done], F_t, n * sizeof(float));
    memcpy(p->ewc_anchor[done], theta, n * sizeof(float));
    break;
  case LT_PEN_ONLINE_EWC: {
    float g = done > 0 ? (float)p->gamma : 0.0f;
    for (size_t i = 0; i < n; i++) p->F[i] = g * p->F[i] + F_t[i];
    memcpy(p->anchor, theta, n * sizeof(float));
    break;
  }
  case LT_PEN_SI: {
    for (size_t i = 0; i < n; i++) {
      double d = (double)theta[i] - (double)p->start[i];
      p->Omega[i] += (float)((double)p->omega[i] / (d * d + p->xi));
      p->omega[i] = 0.0f;
    }
    memcpy(p->anchor, theta, n * sizeof(float));
    break;
  }
  default:
    break;
  }
  return LT_OK;
}

void lt_penalty_stiffness(const lt_penalty *p, long done, double *max_importance, double *coef) {
  double mx = 0.0;
  size_t n = p->len;
  switch (p->kind) {
  case LT_PEN_EWC: {
    long pairs = done < p->cap ? done : p->cap;
    for (size_t i = 0; i < n; i++) {
      double s = 0.0;
      for (long t = 0; t < pairs; t++) s += (double)p->ewc_F[t][i];
      if (s > mx) mx = s;
    }
    *coef = p->lambda;
    break;
  }
  case LT_PEN_ONLINE_EWC:
    for (size_t i = 0; i < n; i++)
      if ((double)p->F[i] > mx) mx = (double)p->F[i];
    *coef = p->lambda;
    break;
  case LT_PEN_SI:
    for (size_t i = 0; i < n; i++)
      if ((double)p->Omega[i] > mx) mx = (double)p->Omega[i];
    *coef = 2.0 * p->c;
    break;
  default:
    *coef = 0.0;
    break;
  }
  *max_importance = mx;
}

int lt_penalty_arrays(const lt_penalty *p, lt_cl_array *out, int max) {
  int k = 0;
#define ADD(fmt, arg, ptr)                                                 \
  do {                                                                     \
    if (k < max) {                                                         \
      snprintf(out[k].name, sizeof(out[k].name), fmt, arg);                \
      out[k].data = (ptr);                                                 \
    }                                                                      \
    k++;                                                                   \
  } while (0)
  switch (p->kind) {
  case LT_PEN_EWC:
    for (long t = 0; t < p->cap; t++) {
      ADD("ewc/fisher_%ld", t, p->ewc_F[t]);
      ADD("ewc/anchor_%ld", t, p->ewc_anchor[t]);
    }
    break;
  case LT_PEN_ONLINE_EWC:
    ADD("%s", "online_ewc/fisher", p->F);
    ADD("%s", "online_ewc/anchor", p->anchor);
    break;
  case LT_PEN_SI:
    ADD("%s", "si/omega", p->omega);
    ADD("%s", "si/Omega", p->Omega);
    ADD("%s", "si/anchor", p->anchor);
    ADD("%s", "si/theta_start", p->start);
    break;
  default:
    break;
  }
#undef ADD
  return k;
}

size_t lt_penalty_bytes(const lt_penalty *p) {
  size_t arrays = (size_t)(2 * p->cap);
  if (p->kind == LT_PEN_ONLINE_EWC) arrays = 2;
  if (p->kind == LT_PEN_SI) arrays = 6;
  return arrays * p->slice * sizeof(float) + sizeof(*p) +
         (size_t)p->cap * 2 * sizeof(float *);
}
