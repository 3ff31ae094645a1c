/* BLIS start-up and GEMM wrappers. */
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "lethe/linalg.h"

/* Decide the kernel set from the CPU's features (BLIS's own detection is not
 * exported by Debian's library). Returns -1 to leave BLIS's choice alone. */
static int arch_from_cpu(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return (int)BLIS_ARCH_SKX;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return (int)BLIS_ARCH_HASWELL;
#endif
  return -1;
}

static int positive_env(const char *name) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 1 || v > 4096) return 0;
  return (int)v;
}

void lt_blas_setup(lt_blas_info *info) {
  memset(info, 0, sizeof(*info));
  const char *user = getenv("BLIS_ARCH_TYPE");
  if (user && *user) {
    info->user_arch = 1;
  } else {
    int a = arch_from_cpu();
    if (a >= 0) {
      char buf[16];
      snprintf(buf, sizeof(buf), "%d", a);
      setenv("BLIS_ARCH_TYPE", buf, 1); /* read by bli_init() below */
      info->forced = 1;
    }
  }
  int t = positive_env("BLIS_NUM_THREADS");
  if (t) {
    snprintf(info->threads_from, sizeof(info->threads_from), "BLIS_NUM_THREADS");
  } else if ((t = positive_env("SLURM_CPUS_PER_TASK"))) {
    snprintf(info->threads_from, sizeof(info->threads_from), "SLURM_CPUS_PER_TASK");
  } else {
    t = 1;
    snprintf(info->threads_from, sizeof(info->threads_from), "default");
  }
  bli_init();
  bli_thread_set_num_threads(t);
  info->threads = t;
  info->arch_id = (int)bli_arch_query_id();
  snprintf(info->arch, sizeof(info->arch), "%s", bli_arch_string((arch_t)info->arch_id));
  snprintf(info->version, sizeof(info->version), "%s", bli_info_get_version_str());
}

void lt_blas_log(const lt_ctx *ctx, const lt_blas_info *info) {
  const char *how = info->user_arch ? "set by BLIS_ARCH_TYPE"
                    : info->forced  ? "selected by lethe from CPU features"
                                    : "BLIS default";
  lt_log(ctx, LT_LOG_INFO, "BLIS %s: kernels %s (%s), %d thread(s) per rank (%s)\n",
         info->version, info->arch, how, info->threads, info->threads_from);
}

void lt_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
  if (m <= 0 || n <= 0) return;
  /* row-major X with leading dimension ld: rs = ld, cs = 1 */
  bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            (dim_t)m, (dim_t)n, (dim_t)k, &alpha, (float *)A, (inc_t)lda, 1, (float *)B,
            (inc_t)ldb, 1, &beta, C, (inc_t)ldc, 1);
}

void lt_saxpy(int n, float alpha, const float *x, float *y) {
  bli_saxpyv(BLIS_NO_CONJUGATE, (dim_t)n, &alpha, (float *)x, 1, y, 1);
}
