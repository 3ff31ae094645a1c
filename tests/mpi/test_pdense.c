/* pdense: distributed Cholesky, inverse, solve and eigenvalues (ScaLAPACK on a
 * BLACS grid over the test's ranks) against serial LAPACK (dpotrf, dpotri,
 * dpotrs, dsyev from liblapack, an independent implementation) on the same
 * matrices, on every grid the rank count allows among 1x1, 1x2, 2x1, 2x2 and the
 * automatic one, for sizes that are not multiples of the block size. Also the
 * grid shapes, the layout round trip (exact) and the error on a matrix that is
 * not positive definite (on every rank, nobody hangs).
 *
 * Tolerance: the test matrices are A = B B^T / n + I with B ~ U(-1, 1), so
 * cond(A) is at most ~ 1 + n/3 (< 40 here); both sides run backward-stable
 * double-precision algorithms whose results differ by ~ cond * n * 1e-16 < 1e-12
 * relative to max|.|. We allow 1e-10: a wrong block/process mapping, a missing
 * or transposed block, a wrong triangle or a skipped mirror gives O(1) errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "lethe/pdense.h"

extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
extern void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
                    const int *lda, double *b, const int *ldb, int *info, size_t);
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info, size_t, size_t);

#define TOL 1e-10

/* Same on every rank: A [n x n] column-major SPD, A = B B^T / n + I. */
static void spd(double *A, int n, uint64_t seed) {
  double *B = calloc((size_t)n * n, sizeof(double));
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_USER);
  for (size_t i = 0; i < (size_t)n * n; i++) B[i] = 2.0 * lt_rng_uniform(&r) - 1.0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      double s = 0.0;
      for (int k = 0; k < n; k++) s += B[i + (size_t)k * n] * B[j + (size_t)k * n];
      A[i + (size_t)j * n] = s / n + (i == j);
    }
  free(B);
}

static double maxabs(const double *x, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
  return m;
}

static void close_d(lt_test_checker *c, const char *what, const double *a, const double *b,
                    size_t n) {
  double scale = maxabs(b, n);
  for (size_t i = 0; i < n && !c->bad; i++)
    if (!(fabs(a[i] - b[i]) <= TOL * (scale > 1 ? scale : 1)))
      lt_test_fail_at(c, "%s: entry %zu is %.17g, LAPACK %.17g", what, i, a[i], b[i]);
}

/* Zero the strict upper triangle of a column-major n x n matrix. */
static void lower_only(double *A, int n) {
  for (int j = 1; j < n; j++)
    for (int i = 0; i < j; i++) A[i + (size_t)j * n] = 0.0;
}
static void mirror_lower(double *A, int n) {
  for (int j = 1; j < n; j++)
    for (int i = 0; i < j; i++) A[i + (size_t)j * n] = A[j + (size_t)i * n];
}

static void run_grid(lt_ctx *ctx, int nprow, int npcol, int n, int nb, lt_test_checker *c) {
  char what[96];
  snprintf(what, sizeof(what), "grid %dx%d n %d nb %d", nprow, npcol, n, nb);
  size_t nn = (size_t)n * n;
  int nrhs = 3, info = 0;
  double *A = calloc(nn, sizeof(double)), *ref = calloc(nn, sizeof(double)),
         *got = calloc(nn, sizeof(double)), *w = calloc((size_t)n, sizeof(double)),
         *wref = calloc((size_t)n, sizeof(double)), *Bm = calloc((size_t)n * nrhs, sizeof(double)),
         *Xref = calloc((size_t)n * nrhs, sizeof(double)), *X = calloc((size_t)n * nrhs, sizeof(double));
  spd(A, n, 100 + (uint64_t)n);
  for (int i = 0; i < n * nrhs; i++) Bm[i] = sin(1.0 + i);

  lt_pgrid *g = NULL;
  lt_test_agree_status(ctx, lt_pgrid_create(ctx, nprow, npcol, &g));
  lt_pmat *pa = NULL, *pb = NULL;
  lt_test_agree_status(ctx, lt_pmat_create(g, n, n, nb, &pa));
  lt_test_agree_status(ctx, lt_pmat_create(g, n, nrhs, nb, &pb));

  /* layout round trip: exact */
  lt_pmat_set_full(pa, A, n);
  lt_test_agree_status(ctx, lt_pmat_get_full(pa, got, 0));
  for (size_t i = 0; i < nn && !c->bad; i++)
    if (got[i] != A[i]) lt_test_fail_at(c, "%s: round trip entry %zu", what, i);

  /* Cholesky vs dpotrf */
  memcpy(ref, A, nn * sizeof(double));
  dpotrf_("L", &n, ref, &n, &info, 1);
  if (info) lt_test_fail_at(c, "%s: reference dpotrf info %d", what, info);
  lower_only(ref, n);
  lt_test_agree_status(ctx, lt_pchol(pa));
  lt_test_agree_status(ctx, lt_pmat_get_full(pa, got, 2));
  close_d(c, what, got, ref, nn);

  /* solve with that factor vs dpotrs */
  lt_pmat_set_full(pb, Bm, n);
  lt_test_agree_status(ctx, lt_psolve_chol(pa, pb));
  lt_test_agree_status(ctx, lt_pmat_get_full(pb, X, 0));
  memcpy(Xref, Bm, (size_t)n * nrhs * sizeof(double));
  dpotrs_("L", &n, &nrhs, ref, &n, Xref, &n, &info, 1);
  close_d(c, what, X, Xref, (size_t)n * nrhs);

  /* inverse vs dpotri, and A A^-1 = I (closed form) */
  lt_pmat_set_full(pa, A, n);
  lt_test_agree_status(ctx, lt_pinv_spd(pa));
  lt_test_agree_status(ctx, lt_pmat_get_full(pa, got, 1));
  memcpy(ref, A, nn * sizeof(double));
  dpotrf_("L", &n, ref, &n, &info, 1);
  dpotri_("L", &n, ref, &n, &info, 1);
  mirror_lower(ref, n);
  close_d(c, what, got, ref, nn);
  for (int i = 0; i < n && !c->bad; i++)
    for (int j = 0; j < n; j++) {
      double s = 0.0;
      for (int k = 0; k < n; k++) s += A[i + (size_t)k * n] * got[k + (size_t)j * n];
      if (fabs(s - (i == j)) > 1e-10) {
        lt_test_fail_at(c, "%s: (A A^-1)[%d][%d] = %.3g", what, i, j, s);
        break;
      }
    }

  /* eigenvalues vs dsyev */
  lt_pmat_set_full(pa, A, n);
  lt_test_agree_status(ctx, lt_peigvals(pa, w));
  memcpy(ref, A, nn * sizeof(double));
  int lwork = 3 * n + 64;
  double *work = calloc((size_t)lwork, sizeof(double));
  dsyev_("N", "L", &n, ref, &n, wref, work, &lwork, &info, 1, 1);
  free(work);
  close_d(c, what, w, wref, (size_t)n);

  lt_pmat_destroy(&pa);
  lt_pmat_destroy(&pb);
  lt_pgrid_destroy(&g);
  free(A), free(ref), free(got), free(w), free(wref), free(Bm), free(Xref), free(X);
}

static void test_grids(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  int grids[][2] = {{0, 0}, {1, 1}, {1, 2}, {2, 1}, {2, 2}};
  int sizes[][2] = {{37, 8}, {70, 16}, {5, 4}, {1, 3}, {131, 64}};
  lt_test_checker c = {0};
  for (size_t k = 0; k < sizeof(grids) / sizeof(grids[0]); k++) {
    if (grids[k][0] * grids[k][1] > ctx->size) continue;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
      run_grid(ctx, grids[k][0], grids[k][1], sizes[s][0], sizes[s][1], &c);
  }
  lt_test_agree(ctx->comm, &c);
  lt_ctx_destroy(&ctx);
}

static void test_shape(void **state) {
  (void)state;
  int want[][3] = {{1, 1, 1}, {2, 1, 2}, {3, 1, 3}, {4, 2, 2}, {6, 2, 3}, {8, 2, 4}, {9, 3, 3}, {7, 1, 7}};
  for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
    int r, c;
    lt_pgrid_shape(want[k][0], &r, &c);
    assert_int_equal(r, want[k][1]);
    assert_int_equal(c, want[k][2]);
  }
}

static void test_not_pd(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  int n = 11;
  double *A = calloc((size_t)n * n, sizeof(double));
  for (int i = 0; i < n; i++) A[i + (size_t)i * n] = i == 6 ? -1.0 : 2.0;
  lt_pgrid *g = NULL;
  lt_pmat *pa = NULL;
  lt_test_agree_status(ctx, lt_pgrid_create(ctx, 0, 0, &g));
  lt_test_agree_status(ctx, lt_pmat_create(g, n, n, 4, &pa));
  lt_pmat_set_full(pa, A, n);
  lt_status st = lt_pinv_spd(pa);
  assert_int_equal(st, LT_ERR_NUM);
  assert_non_null(strstr(ctx->errmsg, "not positive definite"));
  lt_error_clear(ctx);
  /* a grid larger than the rank count is an error */
  lt_pgrid *big = NULL;
  assert_int_equal(lt_pgrid_create(ctx, ctx->size + 1, 1, &big), LT_ERR_ARG);
  assert_null(big);
  lt_pmat_destroy(&pa);
  lt_pgrid_destroy(&g);
  free(A);
  lt_ctx_destroy(&ctx);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shape),
      cmocka_unit_test(test_grids),
      cmocka_unit_test(test_not_pd),
  };
  return lt_test_mpi_main(argc, argv, "pdense", tests, sizeof(tests) / sizeof(tests[0]));
}
