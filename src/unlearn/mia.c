/* Membership inference as the SSD authors evaluate it: softmax entropy as the
 * one feature, a balanced logistic regression of members (retain-set training
 * samples) against non-members (test samples), applied to the forget set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/unlearn.h"

void lt_softmax_entropy(double *h, const float *logits, int B, int C) {
  for (int i = 0; i < B; i++) {
    const float *z = logits + (size_t)i * (size_t)C;
    double mx = z[0];
    for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
    double s = 0.0;
    for (int c = 0; c < C; c++) s += exp((double)z[c] - mx);
    double ls = log(s), e = 0.0;
    for (int c = 0; c < C; c++) {
      double lp = (double)z[c] - mx - ls, p = exp(lp);
      if (p > 0) e -= p * lp;
    }
    h[i] = e;
  }
}

static double softplus(double u) { return u > 0 ? u + log1p(exp(-u)) : log1p(exp(u)); }
static double sigmoid(double u) {
  if (u >= 0) return 1.0 / (1.0 + exp(-u));
  double e = exp(u);
  return e / (1.0 + e);
}

static double lr_loss(const double *x, const double *t, const double *s, long n, double C,
                      double w, double b) {
  double L = C > 0 ? w * w / (2.0 * C) : 0.0;
  for (long i = 0; i < n; i++) L += s[i] * softplus(-t[i] * (w * x[i] + b));
  return L;
}

lt_status lt_logreg_fit(lt_ctx *ctx, const double *x, const uint8_t *y, long n, int balanced,
                        double C, double *w, double *b) {
  long n1 = 0;
  for (long i = 0; i < n; i++) n1 += y[i] != 0;
  long n0 = n - n1;
  if (n0 == 0 || n1 == 0)
    LT_ERROR(ctx, LT_ERR_DATA, "logistic regression: %ld samples of class 0 and %ld of class 1; "
             "both classes need samples", n0, n1);
  if (!(C > 0)) { /* without a penalty, separable classes have no finite optimum */
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (long i = 0; i < n; i++) {
      int c = y[i] != 0;
      lo[c] = x[i] < lo[c] ? x[i] : lo[c];
      hi[c] = x[i] > hi[c] ? x[i] : hi[c];
    }
    if (hi[0] < lo[1] || hi[1] < lo[0])
      LT_ERROR(ctx, LT_ERR_NUM, "logistic regression did not converge: the classes are separable "
               "(class 0 in [%g, %g], class 1 in [%g, %g]) and there is no penalty", lo[0], hi[0],
               lo[1], hi[1]);
  }
  double *t = NULL, *s = NULL;
  LT_CALLOC(ctx, t, n);
  if (lt_calloc_aligned((void **)&s, (size_t)n, sizeof(*s)) != 0) {
    lt_free(t);
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  }
  double total = 0.0;
  for (long i = 0; i < n; i++) {
    t[i] = y[i] ? 1.0 : -1.0;
    s[i] = balanced ? (double)n / (2.0 * (double)(y[i] ? n1 : n0)) : 1.0;
    total += s[i];
  }
  double W = 0.0, Bi = 0.0, L = lr_loss(x, t, s, n, C, W, Bi);
  int ok = 0;
  for (int it = 0; it < 200 && !ok; it++) {
    double gw = C > 0 ? W / C : 0.0, gb = 0.0, hww = C > 0 ? 1.0 / C : 0.0, hwb = 0.0, hbb = 0.0;
    for (long i = 0; i < n; i++) {
      double z = W * x[i] + Bi, q = sigmoid(-t[i] * z), p = sigmoid(z);
      double r = -s[i] * t[i] * q, v = s[i] * p * (1.0 - p);
      gw += r * x[i];
      gb += r;
      hww += v * x[i] * x[i];
      hwb += v * x[i];
      hbb += v;
    }
    if (fabs(gw) + fabs(gb) <= 1e-10 * total) {
      ok = 1;
      break;
    }
    double det = hww * hbb - hwb * hwb;
    if (!(det > 1e-300 * (hww * hbb + 1e-300))) break; /* singular: no unique optimum */
    double dw = -(hbb * gw - hwb * gb) / det, db = -(hww * gb - hwb * gw) / det;
    double step = 1.0, Ln = L;
    for (int k = 0; k < 60; k++, step *= 0.5) {
      Ln = lr_loss(x, t, s, n, C, W + step * dw, Bi + step * db);
      if (Ln <= L + 1e-4 * step * (gw * dw + gb * db)) break;
    }
    W += step * dw;
    Bi += step * db;
    if (fabs(step * dw) <= 1e-14 * (1.0 + fabs(W)) && fabs(step * db) <= 1e-14 * (1.0 + fabs(Bi)))
      ok = !(fabs(gw) + fabs(gb) > 1e-6 * total) || Ln >= L;
    L = Ln;
  }
  lt_free(t);
  lt_free(s);
  if (!ok || !isfinite(W) || !isfinite(Bi))
    LT_ERROR(ctx, LT_ERR_NUM, "logistic regression did not converge (w = %g, b = %g): the classes "
             "are separable and there is no penalty (C = %g), or the feature is constant", W, Bi, C);
  *w = W;
  *b = Bi;
  return LT_OK;
}

typedef struct {
  double s;
  uint8_t y;
} scored;

static int by_score(const void *a, const void *b) {
  double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
  return (x > y) - (x < y);
}

double lt_auc(const double *s, const uint8_t *y, long n) {
  scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(*v));
  if (!v) return NAN;
  long n1 = 0;
  for (long i = 0; i < n; i++) {
    v[i] = (scored){s[i], y[i] ? 1 : 0};
    n1 += v[i].y;
  }
  qsort(v, (size_t)n, sizeof(*v), by_score);
  double rank_sum = 0.0; /* ranks of the positives, ties at their mean rank */
  for (long i = 0; i < n;) {
    long j = i;
    while (j < n && v[j].s == v[i].s) j++;
    double mean_rank = 0.5 * (double)(i + 1 + j), pos = 0;
    for (long k = i; k < j; k++) pos += v[k].y;
    rank_sum += pos * mean_rank;
    i = j;
  }
  free(v);
  long n0 = n - n1;
  if (n0 == 0 || n1 == 0) return NAN;
  return (rank_sum - 0.5 * (double)n1 * (double)(n1 + 1)) / ((double)n1 * (double)n0);
}

/* Entropies of the local rows of ds. */
static void entropies(lt_model *m, const lt_dataset *ds, double *h) {
  for (int i = 0; i < ds->n; i += m->max_batch) {
    int b = ds->n - i < m->max_batch ? ds->n - i : m->max_batch;
    const float *logits = lt_model_forward(m, ds->x + (size_t)i * (size_t)ds->d, b);
    lt_softmax_entropy(h + i, logits, b, m->out_dim);
  }
}

/* Every rank's n values of v into all[sum n] in rank order. */
static lt_status gather_all(lt_ctx *ctx, const double *v, int n, double *all, int *counts,
                            int *displs) {
  LT_CHECK_MPI(ctx, MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, ctx->comm));
  int o = 0;
  for (int r = 0; r < ctx->size; r++) {
    displs[r] = o;
    o += counts[r];
  }
  LT_CHECK_MPI(ctx, MPI_Allgatherv(v, n, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, ctx->comm));
  return LT_OK;
}

lt_status lt_mia(lt_ctx *ctx, lt_model *m, const lt_dataset *retain, const lt_dataset *test,
                 const lt_dataset *forget, lt_mia_result *res) {
  long nr = retain->n_global, nt = test->n_global, n = nr + nt;
  double *hl = NULL, *x = NULL;
  uint8_t *y = NULL;
  int *counts = NULL, *displs = NULL;
  int nloc = retain->n > test->n ? retain->n : test->n;
  if (forget->n > nloc) nloc = forget->n;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&hl, (size_t)nloc, sizeof(*hl)) != 0 ||
      lt_calloc_aligned((void **)&x, (size_t)n, sizeof(*x)) != 0 ||
      lt_calloc_aligned((void **)&y, (size_t)n, sizeof(*y)) != 0 ||
      lt_calloc_aligned((void **)&counts, (size_t)ctx->size, sizeof(int)) != 0 ||
      lt_calloc_aligned((void **)&displs, (size_t)ctx->size, sizeof(int)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory for the membership attack (%ld samples)", n);
  st = lt_agree(ctx, st);
  if (st == LT_OK) {
    entropies(m, retain, hl);
    st = gather_all(ctx, hl, retain->n, x, counts, displs);
  }
  if (st == LT_OK) {
    entropies(m, test, hl);
    st = gather_all(ctx, hl, test->n, x + nr, counts, displs);
  }
  if (st == LT_OK) {
    for (long i = 0; i < n; i++) y[i] = i < nr;
    /* the same data on every rank: the same fit */
    st = lt_logreg_fit(ctx, x, y, n, 1, LT_MIA_C, &res->w, &res->b);
  }
  st = lt_agree(ctx, st);
  if (st == LT_OK) {
    for (long i = 0; i < n; i++) x[i] = res->w * x[i] + res->b;
    res->auc = lt_auc(x, y, n);
    entropies(m, forget, hl);
    double v[2] = {0.0, (double)forget->n};
    for (int i = 0; i < forget->n; i++) v[0] += res->w * hl[i] + res->b > 0;
    if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, ctx->comm) != MPI_SUCCESS)
      st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
    res->score = v[1] > 0 ? v[0] / v[1] : NAN;
  }
  lt_free(hl);
  lt_free(x);
  lt_free(y);
  lt_free(counts);
  lt_free(displs);
  LT_CHECK(ctx, st);
  return LT_OK;
}
