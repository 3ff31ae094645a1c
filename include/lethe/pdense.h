/* lethe pdense: distributed dense algebra on a BLACS process grid (ScaLAPACK),
 * and the double-precision BLIS kernels of the K-FAC code.
 *
 * Grid. lt_pgrid_create builds a BLACS context over the ranks of ctx->comm
 * (Csys2blacs_handle(ctx->comm), never MPI_COMM_WORLD), nprow x npcol, row-major:
 * rank r of the first nprow * npcol ranks sits at (r / npcol, r % npcol); ranks
 * beyond them are outside the grid (in_grid = 0) but still take part in every
 * collective of this module (they contribute nothing and receive the results).
 * With nprow = npcol = 0 the grid is as square as the rank count allows:
 * nprow = the largest divisor of P that is <= sqrt(P), npcol = P / nprow
 * (1 -> 1x1, 2 -> 1x2, 3 -> 1x3, 4 -> 2x2, 6 -> 2x3).
 *
 * Matrices. An lt_pmat is an m x n double matrix in the 2-D block-cyclic layout
 * of ScaLAPACK (square nb x nb blocks, first block on process (0, 0)); every grid
 * process holds its local part column-major in a[lld * nloc]. Redistribution
 * between the block-cyclic layout and a full (replicated) column-major matrix:
 * lt_pmat_set_full copies each process's blocks out of the full matrix (no
 * communication: the K-FAC factors are replicated after their allreduce), and
 * lt_pmat_get_full puts every process's blocks back into a zeroed full matrix
 * and sums them over ctx->comm (MPI_Allreduce), so every rank gets the whole.
 *
 * Every function that calls ScaLAPACK is collective over ctx->comm and agrees
 * on the outcome: a failure (e.g. a factor that is not positive definite) is an
 * error on every rank.
 */
#ifndef LETHE_PDENSE_H
#define LETHE_PDENSE_H

#include "lethe/core.h"

typedef struct {
  lt_ctx *ctx;
  int sys;                /* BLACS system handle of ctx->comm */
  int ictxt;              /* BLACS context (-1 outside the grid) */
  int nprow, npcol;
  int myrow, mycol;       /* -1 outside the grid */
  int in_grid;
} lt_pgrid;

/* The most square nprow x npcol = P (nprow <= npcol). */
void lt_pgrid_shape(int P, int *nprow, int *npcol);

/* nprow = npcol = 0: lt_pgrid_shape(ctx->size). Otherwise 1 <= nprow * npcol
 * <= ctx->size. Collective. */
LT_WUR lt_status lt_pgrid_create(lt_ctx *ctx, int nprow, int npcol, lt_pgrid **g);
void lt_pgrid_destroy(lt_pgrid **g);

typedef struct {
  lt_pgrid *g;
  int m, n, nb;           /* global size and block size */
  int mloc, nloc, lld;    /* local rows, columns, leading dimension (>= 1) */
  int desc[9];            /* ScaLAPACK descriptor (context -1 outside the grid) */
  double *a;              /* [lld * nloc] local blocks, column-major; NULL outside */
} lt_pmat;

/* m, n >= 1, nb >= 1. Zeroed. Collective (agrees on allocation). */
LT_WUR lt_status lt_pmat_create(lt_pgrid *g, int m, int n, int nb, lt_pmat **pm);
void lt_pmat_destroy(lt_pmat **pm);

/* Global (i, j) -> this process's local element, NULL when another process owns it. */
double *lt_pmat_at(lt_pmat *pm, int i, int j);

/* Local: the blocks of full [m x n, column-major, leading dimension ldf]. */
void lt_pmat_set_full(lt_pmat *pm, const double *full, int ldf);
/* Collective: full [m x n, ld m] on every rank. lower_sym: only the lower
 * triangle is meaningful (after potrf/potri); it is mirrored to the upper one
 * (lower_sym = 2: the upper triangle is set to 0, i.e. the Cholesky factor L). */
LT_WUR lt_status lt_pmat_get_full(lt_pmat *pm, double *full, int lower_sym);

/* A += v I (square matrices; local). */
void lt_pmat_add_diag(lt_pmat *pm, double v);

/* Cholesky A = L L^T of a symmetric positive definite square A (lower triangle
 * used and overwritten with L; pdpotrf). */
LT_WUR lt_status lt_pchol(lt_pmat *A);
/* A^-1 of a symmetric positive definite A: pdpotrf then pdpotri; the lower
 * triangle holds the inverse. */
LT_WUR lt_status lt_pinv_spd(lt_pmat *A);
/* B <- A^-1 B with L from lt_pchol (pdpotrs); B is n x nrhs on the same grid
 * and block size. */
LT_WUR lt_status lt_psolve_chol(const lt_pmat *L, lt_pmat *B);
/* Eigenvalues w[n] (ascending, on every rank) of a symmetric A (lower triangle)
 * with pdsyevd (divide and conquer; A is destroyed). */
LT_WUR lt_status lt_peigvals(lt_pmat *A, double *w);

/* ---------------------------------------------------------------- BLIS, double */

/* C[m,n] = alpha op(A) op(B) + beta C, row-major with leading dimensions (as lt_sgemm). */
void lt_dgemm(int ta, int tb, int m, int n, int k, double alpha, const double *A, int lda,
              const double *B, int ldb, double beta, double *C, int ldc);
/* Lower triangle of C[n,n] (row-major, ldc) += alpha X^T X, X [k, n] row-major (ldx). */
void lt_dsyrk_lower_t(int n, int k, double alpha, const double *X, int ldx, double *C, int ldc);
/* Copy the lower triangle of the row-major C[n,n] to the upper one. */
void lt_dsym_from_lower(double *C, int n, int ldc);

#endif
