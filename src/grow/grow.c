/* MixtureGrowth: the phase plan, growth of a template model, FLOPs, template decay. */
#include <math.h>
#include <string.h>

#include "lethe/grow.h"

int lt_grow_nphases(const lt_grow_plan *p) { return p->mode == LT_GROW_SCHEDULE ? 3 : 1; }

int lt_grow_phase_member(const lt_grow_plan *p, int k) {
  if (p->mode == LT_GROW_MEMBER) return 0;
  if (p->mode == LT_GROW_FULL) return -1;
  return k < 2 ? k : -1;
}

int lt_grow_phase_epochs(const lt_grow_plan *p, int k) {
  return lt_grow_phase_member(p, k) >= 0 ? p->member_epochs : p->grown_epochs;
}

long lt_grow_phase_epoch0(const lt_grow_plan *p, int k) {
  long e = 0;
  for (int i = 0; i < k && i < lt_grow_nphases(p); i++) e += lt_grow_phase_epochs(p, i);
  return e;
}

int lt_grow_grows_before(const lt_grow_plan *p, int k) { return p->mode == LT_GROW_SCHEDULE && k == 2; }

const char *lt_grow_init_name(lt_grow_init i) {
  switch (i) {
  case LT_GROW_ORTHOGONAL: return "orthogonal";
  case LT_GROW_COPY: return "copy";
  case LT_GROW_ZERO: return "zero";
  case LT_GROW_RANDOM: return "random";
  }
  return "?";
}

static double norm(const float *c, int n) {
  double s = 0.0;
  for (int k = 0; k < n; k++) s += (double)c[k] * (double)c[k];
  return sqrt(s);
}

/* The new coefficient vector of a set whose trained vector is c (double precision). */
static void new_coefs(float *out, const float *c, int nt, lt_grow_init init, double noise,
                      lt_rng *r) {
  double g[8], cn = norm(c, nt);
  if (init == LT_GROW_ZERO) {
    for (int k = 0; k < nt; k++) out[k] = 0.0f;
    return;
  }
  if (init == LT_GROW_COPY) {
    for (int k = 0; k < nt; k++) out[k] = (float)((double)c[k] + noise * cn * lt_rng_normal(r));
    return;
  }
  for (;;) {
    for (int k = 0; k < nt; k++) g[k] = lt_rng_normal(r);
    if (init == LT_GROW_ORTHOGONAL && cn > 0)
      for (int pass = 0; pass < 2; pass++) {
        double d = 0.0;
        for (int k = 0; k < nt; k++) d += g[k] * (double)c[k];
        for (int k = 0; k < nt; k++) g[k] -= d * (double)c[k] / (cn * cn);
      }
    double gn = 0.0;
    for (int k = 0; k < nt; k++) gn += g[k] * g[k];
    gn = sqrt(gn);
    if (gn > 1e-6) {
      double s = (cn > 0 ? cn : 1.0) / gn;
      for (int k = 0; k < nt; k++) out[k] = (float)(g[k] * s);
      return;
    }
  }
}

lt_status lt_grow_apply(lt_model *m, lt_grow_init init, double noise, lt_rng *r) {
  if (!m->tmpl) LT_ERROR(m->ctx, LT_ERR_ARG, "grow: the model is not a template model");
  if ((unsigned)init > (unsigned)LT_GROW_RANDOM)
    LT_ERROR(m->ctx, LT_ERR_ARG, "grow: init %d unknown (orthogonal, copy, zero, random)",
             (int)init);
  int nt = m->ntemplates;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    float *c = m->theta + t->c_off;
    for (int b = 2; b < t->nblocks; b++) /* block b uses set b - 2's trained vector */
      new_coefs(c + (size_t)b * (size_t)nt, c + (size_t)t->bset[b] * (size_t)nt, nt, init, noise,
                r);
    if (l == m->nlayers - 1) { /* classifier: one bias, the sum of the members' */
      float *b0 = m->theta + t->bias_off, *b1 = b0 + t->full_out;
      for (int o = 0; o < t->full_out; o++) {
        b0[o] += b1[o];
        b1[o] = 0.0f;
      }
    }
  }
  LT_CHECK(m->ctx, lt_model_set_member(m, -1));
  return LT_OK;
}

double lt_grow_step_flops(const lt_model *m, long rows) {
  double R = (double)rows, f = 0.0;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    double io = (double)ly->in * (double)ly->out;
    f += 2 * R * io + R * ly->out;             /* forward */
    f += 2 * R * io + R * ly->out;             /* dW, db */
    if (l > 0) f += 2 * R * io;                /* dA */
    if (m->tmpl) {
      const lt_tmpl_layer *t = &m->tmpl[l];
      int active = m->member < 0 ? t->nblocks : 1;
      f += (double)active * 6.0 * m->ntemplates * (double)t->tr * (double)t->tc;
    }
  }
  return f;
}

void lt_grow_decay(const lt_model *m, double wd, size_t lo, size_t hi, const float *theta,
                   float *grad_owned) {
  if (!m->tmpl || wd == 0.0) return;
  float w = (float)wd;
  for (int l = 0; l < m->nlayers; l++) {
    const lt_tmpl_layer *t = &m->tmpl[l];
    size_t set = (size_t)m->ntemplates * (size_t)t->tr * (size_t)t->tc;
    size_t a = t->t_off + (m->member > 0 ? set : 0);
    size_t b = t->t_off + (m->member < 0 ? 2 * set : (m->member > 0 ? 2 : 1) * set);
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    for (size_t i = a; i < b; i++) grad_owned[i - lo] += w * theta[i];
  }
}
