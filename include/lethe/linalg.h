/* lethe linalg: BLIS start-up (kernel selection, threads) and GEMM wrappers.
 *
 * Matrices are row-major unless a stride says otherwise. BLIS takes a row
 * stride and a column stride per operand, so transposes and sub-views are
 * expressed by strides, never by copies.
 */
#ifndef LETHE_LINALG_H
#define LETHE_LINALG_H

#include "lethe/core.h"

typedef struct {
  char arch[32];       /* kernel set BLIS runs, e.g. "skx", "haswell", "generic" */
  int arch_id;         /* BLIS arch_t value */
  int threads;         /* BLIS threads per rank */
  int forced;          /* 1 when lethe set BLIS_ARCH_TYPE itself */
  int user_arch;       /* 1 when the user set BLIS_ARCH_TYPE */
  char threads_from[32]; /* "BLIS_NUM_THREADS", "SLURM_CPUS_PER_TASK" or "default" */
  char version[32];
} lt_blas_info;

/* Decide the kernel set and thread count and initialise BLIS. Must run before
 * any other BLIS call in the process (lt_blas_* calls it lazily otherwise).
 * Order of precedence: the user's BLIS_ARCH_TYPE; else, on x86-64 with
 * AVX-512 (F, DQ, BW, VL) the "skx" set, with AVX2+FMA the "haswell" set,
 * because Debian's BLIS 0.9 falls back to generic kernels on CPUs it does
 * not know. Threads: BLIS_NUM_THREADS, else SLURM_CPUS_PER_TASK, else 1. */
void lt_blas_setup(lt_blas_info *info);

/* Logs "BLIS <version>: kernels <arch> (...), <n> thread(s) per rank" on rank 0. */
void lt_blas_log(const lt_ctx *ctx, const lt_blas_info *info);

/* C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major with leading
 * dimensions; ta/tb nonzero means op(X) = X^T (X stored row-major as [k,m] / [n,k]). */
void lt_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* y[n] += alpha * x[n] */
void lt_saxpy(int n, float alpha, const float *x, float *y);

#endif
