/* Benchmark: factor and invert one damped K-FAC-like factor (pdpotrf + pdpotri on
 * the automatic BLACS grid over all ranks), side by side with ONE process calling
 * LAPACK's dpotrf + dpotri on the same matrix in the same run, and the dgemm rate
 * BLIS reaches on one process in the same run (the ceiling of both).
 *
 *   mpirun -n P bench_pdense [NB] [N ...]      (default NB 64, N 1024 2048 4096)
 *
 * The matrix is A = X^T X / k + 1e-3 I (X [k = n, n] uniform, formed by dsyrk in
 * double): symmetric positive definite like a damped factor. Flops counted: n^3/3
 * (potrf) + 2 n^3/3 (potri) = n^3; dgemm n x n x n: 2 n^3. Each time is the best of
 * REPS runs (the slowest rank's, after a barrier). Both results are checked:
 * max |(A A^-1 - I)| over 8 columns must be < 1e-6 (cond(A) < 1e7 here). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/pdense.h"

extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);

enum { REPS = 2 };

static double residual(const double *A, const double *Ainv_lower, int n) {
  double worst = 0.0; /* Ainv column-major, lower triangle valid */
  for (int c = 0; c < n; c += n / 8) {
    for (int i = 0; i < n; i++) {
      double s = 0.0;
      for (int k = 0; k < n; k++) {
        double v = k >= c ? Ainv_lower[k + (size_t)c * n] : Ainv_lower[c + (size_t)k * n];
        s += A[i + (size_t)k * n] * v;
      }
      worst = fmax(worst, fabs(s - (i == c)));
    }
  }
  return worst;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  lt_ctx *ctx = NULL;
  if (lt_ctx_create(MPI_COMM_WORLD, 1, &ctx) != LT_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  int nb = argc > 1 ? atoi(argv[1]) : 64;
  int sizes[16], ns = 0;
  for (int i = 2; i < argc && ns < 16; i++) sizes[ns++] = atoi(argv[i]);
  if (ns == 0) sizes[ns++] = 1024, sizes[ns++] = 2048, sizes[ns++] = 4096;
  int bad = 0;
  lt_pgrid *g = NULL;
  if (lt_pgrid_create(ctx, 0, 0, &g) != LT_OK) MPI_Abort(ctx->comm, 1);
  if (ctx->rank == 0)
    printf("| n | ranks | grid | nb | ScaLAPACK s | GFLOP/s | LAPACK (1 process) s | GFLOP/s | "
           "ScaLAPACK / LAPACK speed | BLIS dgemm GFLOP/s (1 process) | ScaLAPACK / dgemm | "
           "LAPACK / dgemm |\n|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (int si = 0; si < ns; si++) {
    int n = sizes[si];
    size_t nn = (size_t)n * n;
    double *A = calloc(nn, sizeof(double)), *W = calloc(nn, sizeof(double)),
           *X = calloc(nn, sizeof(double));
    lt_rng r;
    lt_rng_seed(&r, 42, 0, LT_RNG_USER); /* the same matrix on every rank */
    for (size_t i = 0; i < nn; i++) X[i] = lt_rng_uniform(&r) - 0.5;
    lt_dsyrk_lower_t(n, n, 1.0 / n, X, n, A, n);
    lt_dsym_from_lower(A, n, n);
    for (int i = 0; i < n; i++) A[(size_t)i * n + i] += 1e-3;

    /* ScaLAPACK on all ranks */
    double t_sc = 1e30;
    lt_pmat *pm = NULL;
    if (lt_pmat_create(g, n, n, nb, &pm) != LT_OK) MPI_Abort(ctx->comm, 1);
    for (int rep = 0; rep < REPS; rep++) {
      lt_pmat_set_full(pm, A, n);
      MPI_Barrier(ctx->comm);
      double t0 = lt_wtime();
      if (lt_pinv_spd(pm) != LT_OK) {
        lt_error_print(ctx, 1);
        MPI_Abort(ctx->comm, 1);
      }
      double t = lt_wtime() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, ctx->comm);
      t_sc = fmin(t_sc, t);
    }
    if (lt_pmat_get_full(pm, W, 0) != LT_OK) MPI_Abort(ctx->comm, 1);
    lt_pmat_destroy(&pm);
    double res_sc = ctx->rank == 0 ? residual(A, W, n) : 0.0;

    /* LAPACK and dgemm on rank 0 alone (the others wait at the barrier) */
    double t_la = 1e30, t_mm = 1e30, res_la = 0.0;
    if (ctx->rank == 0) {
      for (int rep = 0; rep < REPS; rep++) {
        memcpy(W, A, nn * sizeof(double));
        int info = 0;
        double t0 = lt_wtime();
        dpotrf_("L", &n, W, &n, &info, 1);
        if (info == 0) dpotri_("L", &n, W, &n, &info, 1);
        t_la = fmin(t_la, lt_wtime() - t0);
        if (info) bad = 1;
      }
      res_la = residual(A, W, n);
      for (int rep = 0; rep < REPS; rep++) {
        double t0 = lt_wtime();
        lt_dgemm(0, 0, n, n, n, 1.0, A, n, X, n, 0.0, W, n);
        t_mm = fmin(t_mm, lt_wtime() - t0);
      }
    }
    MPI_Barrier(ctx->comm);
    if (ctx->rank == 0) {
      double f = (double)n * n * n, gsc = f / t_sc / 1e9, gla = f / t_la / 1e9,
             gmm = 2.0 * f / t_mm / 1e9;
      printf("| %d | %d | %dx%d | %d | %.3f | %.2f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
             n, ctx->size, g->nprow, g->npcol, nb, t_sc, gsc, t_la, gla, t_la / t_sc, gmm,
             gsc / gmm, gla / gmm);
      if (!(res_sc < 1e-6) || !(res_la < 1e-6)) {
        printf("   check FAILED: residual ScaLAPACK %.3g, LAPACK %.3g\n", res_sc, res_la);
        bad = 1;
      }
      fflush(stdout);
    }
    free(A);
    free(W);
    free(X);
  }
  MPI_Bcast(&bad, 1, MPI_INT, 0, ctx->comm);
  lt_pgrid_destroy(&g);
  lt_ctx_destroy(&ctx);
  MPI_Finalize();
  return bad;
}
