/* Micro-benchmarks for the bench suite (tests/bench/run_bench.sh).
 *
 *   bench_gemm gemm B [SECONDS]
 *       Times lt_sgemm on exactly the GEMMs of one training step of the MLP
 *       784-1024-1024-10 at local batch B, as src/model/model.c issues them:
 *         forward   Z_l[B, out]   = A_{l-1}[B, in] W_l[out, in]^T     l = 1, 2, 3
 *         weights   dW_l[out, in] = dZ_l[B, out]^T A_{l-1}[B, in]     l = 1, 2, 3
 *         data      dA_{l-1}[B, in] = dZ_l[B, out] W_l[out, in]       l = 2, 3
 *       (the bias GEMMs, 1 x out x B, are left out: 0.1% of the flops), repeated
 *       for about SECONDS (default 2), and prints the rate in GFLOP/s of the whole
 *       step (at the median step time, the figure after "gflops=", and on average)
 *       and of each shape. Threads: BLIS_NUM_THREADS, as in lethe.
 *
 *   bench_gemm fisher [SAMPLES] [BATCH] [SECONDS]
 *       Times lt_fisher_diag in empirical mode (per-sample squared gradients by
 *       one GEMM per layer) for the same model on an in-memory dataset of SAMPLES
 *       (default 4096) random inputs per rank, 784 features and 10 classes,
 *       chunked by BATCH rows per rank (default 256), whole passes for about
 *       SECONDS (default 3), and prints samples/s over all ranks at the median
 *       pass time (and on average). Runs under MPI (a plain
 *       start is a one-rank run); only rank 0 prints.
 *
 * Both modes first print the BLIS line: "blis <version> kernels <arch> threads <t>".
 * Machine-readable results are lines starting with "RESULT ".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/core.h"
#include "lethe/dist.h"
#include "lethe/fisher.h"
#include "lethe/linalg.h"
#include "lethe/model.h"

enum { NLAYERS = 3 };
static const int dims[NLAYERS + 1] = {784, 1024, 1024, 10};

typedef struct {
  const char *name;
  int ta, tb, m, n, k;
  const float *A, *B;
  int lda, ldb;
  float *C;
  int ldc;
} gemm_op;

static void fill_uniform(float *x, size_t n, lt_rng *r, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)lt_rng_uniform(r);
}

static void run_ops(const gemm_op *ops, int nops) {
  for (int i = 0; i < nops; i++) {
    const gemm_op *o = &ops[i];
    lt_sgemm(o->ta, o->tb, o->m, o->n, o->k, 1.0f, o->A, o->lda, o->B, o->ldb, 0.0f, o->C, o->ldc);
  }
}

static double ops_flops(const gemm_op *ops, int nops) {
  double f = 0.0;
  for (int i = 0; i < nops; i++) f += 2.0 * ops[i].m * (double)ops[i].n * ops[i].k;
  return f;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  double median, mean; /* GFLOP/s at the median sample time and over the whole run */
  long reps;
} rate;

#define MAX_SAMPLES 4096

/* Repeat ops for about `seconds`, timing samples of `inner` repetitions each
 * (inner chosen so that a sample lasts >= 2 ms). On a shared machine other
 * processes slow some samples down; the median sample ignores them. */
static rate time_ops(const gemm_op *ops, int nops, double seconds) {
  run_ops(ops, nops); /* warm-up: BLIS packing buffers, page faults */
  double t0 = lt_wtime();
  run_ops(ops, nops);
  double one = lt_wtime() - t0;
  long inner = one > 2e-3 ? 1 : (long)(2e-3 / (one > 1e-7 ? one : 1e-7)) + 1;
  double samples[MAX_SAMPLES], total = 0.0;
  int ns = 0;
  while (total < seconds && ns < MAX_SAMPLES) {
    double ts = lt_wtime();
    for (long i = 0; i < inner; i++) run_ops(ops, nops);
    samples[ns] = lt_wtime() - ts;
    total += samples[ns++];
  }
  qsort(samples, (size_t)ns, sizeof(double), cmp_double);
  double med = ns % 2 ? samples[ns / 2] : 0.5 * (samples[ns / 2 - 1] + samples[ns / 2]);
  double flop = ops_flops(ops, nops) * (double)inner;
  return (rate){flop / med * 1e-9, flop * ns / total * 1e-9, (long)ns * inner};
}

static void print_blis(const lt_blas_info *bi) {
  printf("blis %s kernels %s threads %d (kernels %s, threads from %s)\n", bi->version, bi->arch,
         bi->threads,
         bi->user_arch ? "set by BLIS_ARCH_TYPE" : bi->forced ? "selected by lethe" : "BLIS default",
         bi->threads_from);
}

static int bench_gemm_step(int B, double seconds) {
  lt_rng r;
  lt_rng_seed(&r, 42, 0, LT_RNG_USER);
  float *W[NLAYERS], *dW[NLAYERS], *A[NLAYERS + 1], *dZ[NLAYERS + 1];
  memset(A, 0, sizeof(A));
  memset(dZ, 0, sizeof(dZ));
  int fail = 0;
  for (int l = 1; l <= NLAYERS; l++) {
    size_t in = (size_t)dims[l - 1], out = (size_t)dims[l];
    fail |= lt_calloc_aligned((void **)&W[l - 1], out * in, sizeof(float));
    fail |= lt_calloc_aligned((void **)&dW[l - 1], out * in, sizeof(float));
    fail |= lt_calloc_aligned((void **)&A[l], (size_t)B * out, sizeof(float));  /* Z_l / A_l */
    fail |= lt_calloc_aligned((void **)&dZ[l], (size_t)B * out, sizeof(float));
  }
  fail |= lt_calloc_aligned((void **)&A[0], (size_t)B * (size_t)dims[0], sizeof(float));
  fail |= lt_calloc_aligned((void **)&dZ[0], (size_t)B * (size_t)dims[0], sizeof(float)); /* unused */
  if (fail) {
    fprintf(stderr, "bench_gemm: out of memory for batch %d\n", B);
    return 1;
  }
  /* values of the magnitude training sees; no denormals */
  fill_uniform(A[0], (size_t)B * (size_t)dims[0], &r, 0.0f, 1.0f);
  for (int l = 1; l <= NLAYERS; l++) {
    size_t in = (size_t)dims[l - 1], out = (size_t)dims[l];
    fill_uniform(W[l - 1], out * in, &r, -0.05f, 0.05f);
    fill_uniform(A[l], (size_t)B * out, &r, 0.0f, 1.0f);
    fill_uniform(dZ[l], (size_t)B * out, &r, -1e-3f, 1e-3f);
  }
  gemm_op ops[3 * NLAYERS];
  int nops = 0;
  char names[3 * NLAYERS][48];
  for (int l = 1; l <= NLAYERS; l++) { /* forward: Z_l = A_{l-1} W_l^T */
    int in = dims[l - 1], out = dims[l];
    snprintf(names[nops], sizeof(names[nops]), "fwd  fc%d Z[%d,%d]", l, B, out);
    ops[nops] = (gemm_op){names[nops], 0, 1, B, out, in, A[l - 1], W[l - 1], in, in, A[l], out};
    nops++;
  }
  for (int l = NLAYERS; l >= 1; l--) { /* backward, in the model's order */
    int in = dims[l - 1], out = dims[l];
    snprintf(names[nops], sizeof(names[nops]), "bwd  fc%d dW[%d,%d]", l, out, in);
    ops[nops] = (gemm_op){names[nops], 1, 0, out, in, B, dZ[l], A[l - 1], out, in, dW[l - 1], in};
    nops++;
    if (l > 1) {
      snprintf(names[nops], sizeof(names[nops]), "bwd  fc%d dA[%d,%d]", l, B, in);
      /* dA_{l-1} lands in dZ[l-1] (the model then applies act'). */
      ops[nops] = (gemm_op){names[nops], 0, 0, B, in, out, dZ[l], W[l - 1], out, in, dZ[l - 1], in};
      nops++;
    }
  }
  rate all = time_ops(ops, nops, seconds);
  double flop = ops_flops(ops, nops);
  printf("step GEMMs at local batch %d: %d GEMMs, %.4g GFLOP per step, %ld steps, %.1f GFLOP/s "
         "at the median step, %.1f GFLOP/s on average\n",
         B, nops, flop * 1e-9, all.reps, all.median, all.mean);
  for (int i = 0; i < nops; i++) {
    rate one = time_ops(&ops[i], 1, seconds / 10.0);
    printf("  %-24s m=%4d n=%4d k=%4d  %7.1f GFLOP/s  (%4.1f%% of the flops)\n", ops[i].name,
           ops[i].m, ops[i].n, ops[i].k, one.median, 100.0 * ops_flops(&ops[i], 1) / flop);
  }
  printf("RESULT gemm_batch=%d gflops=%.2f gflops_mean=%.2f\n", B, all.median, all.mean);
  for (int l = 0; l <= NLAYERS; l++) {
    lt_free(A[l]);
    lt_free(dZ[l]);
    if (l < NLAYERS) {
      lt_free(W[l]);
      lt_free(dW[l]);
    }
  }
  return 0;
}

/* In-memory dataset of random inputs; freed with free_dataset (not the data module's). */
static lt_status make_dataset(lt_ctx *ctx, int n, lt_dataset *ds) {
  memset(ds, 0, sizeof(*ds));
  ds->n = n;
  ds->n_global = (long)n * ctx->size;
  ds->d = dims[0];
  ds->num_classes = dims[NLAYERS];
  snprintf(ds->name, sizeof(ds->name), "random");
  LT_CALLOC(ctx, ds->x, (size_t)n * (size_t)ds->d);
  LT_CALLOC(ctx, ds->y, n);
  LT_CALLOC(ctx, ds->index, n);
  lt_rng r;
  lt_rng_seed(&r, ctx->seed, (uint64_t)ctx->rank, LT_RNG_DATA);
  fill_uniform(ds->x, (size_t)n * (size_t)ds->d, &r, 0.0f, 1.0f);
  for (int i = 0; i < n; i++) {
    ds->y[i] = (int32_t)lt_rng_below(&r, (uint64_t)ds->num_classes);
    ds->index[i] = (int64_t)i * ctx->size + ctx->rank;
  }
  return LT_OK;
}

static void free_dataset(lt_dataset *ds) {
  LT_FREE(ds->x);
  LT_FREE(ds->y);
  LT_FREE(ds->index);
}

static lt_status bench_fisher(lt_ctx *ctx, int n_local, int batch, double seconds) {
  lt_model_cfg mc = {0};
  mc.in_dim = dims[0];
  mc.nhidden = NLAYERS - 1;
  for (int l = 1; l < NLAYERS; l++) mc.hidden[l - 1] = dims[l];
  mc.out_dim = dims[NLAYERS];
  mc.act = LT_ACT_RELU;
  mc.init = LT_INIT_KAIMING;
  mc.max_batch = batch;
  mc.pad_ranks = ctx->size;
  lt_model *m = NULL;
  lt_dataset ds;
  float *F = NULL;
  lt_shard sh;
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &m));
  lt_status st = make_dataset(ctx, n_local, &ds);
  if (st == LT_OK) st = lt_shard_init(ctx, m->n, m->n_pad, &sh);
  if (st == LT_OK && lt_calloc_aligned((void **)&F, sh.slice, sizeof(*F)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  long global_batch = (long)batch * ctx->size;
  /* warm-up on one chunk, then whole passes until `seconds` have passed */
  if (st == LT_OK)
    st = lt_fisher_diag(ctx, m, &sh, &ds, LT_FISHER_EMPIRICAL, (int)global_batch, global_batch, F);
  double times[MAX_SAMPLES], total = 0.0;
  int passes = 0;
  if (st == LT_OK) {
    int more = 1;
    while (st == LT_OK && more) {
      MPI_Barrier(ctx->comm);
      double t0 = lt_wtime();
      st = lt_fisher_diag(ctx, m, &sh, &ds, LT_FISHER_EMPIRICAL, (int)global_batch, 0, F);
      double dt = lt_wtime() - t0;
      MPI_Bcast(&dt, 1, MPI_DOUBLE, 0, ctx->comm); /* rank 0's clock decides for all */
      times[passes++] = dt;
      total += dt;
      more = total < seconds && passes < MAX_SAMPLES;
    }
  }
  if (st == LT_OK) {
    /* a finite, positive Fisher is the least a benchmark must produce */
    double sum = 0.0;
    for (size_t j = 0; j < sh.slice; j++) sum += F[j];
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, ctx->comm);
    if (!(sum > 0.0) || sum != sum)
      st = lt_error_set(ctx, LT_ERR_NUM, __FILE__, __LINE__, __func__,
                        "Fisher sum is %g, expected finite and positive", sum);
    qsort(times, (size_t)passes, sizeof(double), cmp_double);
    double med = passes % 2 ? times[passes / 2] : 0.5 * (times[passes / 2 - 1] + times[passes / 2]);
    double n = (double)ds.n_global;
    if (st == LT_OK && ctx->rank == 0) {
      printf("fisher empirical: %d rank(s), %ld samples per pass, chunk %d rows, %d passes in "
             "%.2f s (%.0f samples/s on average), sum(F) = %.4g\n",
             ctx->size, ds.n_global, batch, passes, total, n * passes / total, sum);
      printf("RESULT fisher_samples_per_s=%.1f fisher_mean_samples_per_s=%.1f\n", n / med,
             n * passes / total);
    }
  }
  LT_FREE(F);
  free_dataset(&ds);
  lt_model_destroy(&m);
  LT_CHECK(ctx, st);
  return LT_OK;
}

static int usage(void) {
  fprintf(stderr, "usage: bench_gemm gemm BATCH [SECONDS]\n"
                  "       bench_gemm fisher [SAMPLES] [BATCH] [SECONDS]\n");
  return 2;
}

static int arg_int(int argc, char **argv, int i, int def, int lo, int hi, int *out) {
  if (i >= argc) {
    *out = def;
    return 1;
  }
  char *end = NULL;
  long v = strtol(argv[i], &end, 10);
  if (*end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "bench_gemm: argument '%s' must be an integer in [%d, %d]\n", argv[i], lo, hi);
    return 0;
  }
  *out = (int)v;
  return 1;
}

static int arg_seconds(int argc, char **argv, int i, double def, double *out) {
  *out = def;
  if (i >= argc) return 1;
  char *end = NULL;
  double v = strtod(argv[i], &end);
  if (*end != '\0' || !(v > 0.0) || v > 3600.0) {
    fprintf(stderr, "bench_gemm: SECONDS '%s' must be in (0, 3600]\n", argv[i]);
    return 0;
  }
  *out = v;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  lt_blas_info bi;
  lt_blas_setup(&bi); /* before any BLIS call: kernel set and threads as lethe picks them */
  if (strcmp(argv[1], "gemm") == 0) {
    int B;
    double sec;
    if (argc < 3 || argc > 4) return usage();
    if (!arg_int(argc, argv, 2, 0, 1, 1 << 16, &B) || !arg_seconds(argc, argv, 3, 2.0, &sec)) return 2;
    print_blis(&bi);
    return bench_gemm_step(B, sec);
  }
  if (strcmp(argv[1], "fisher") != 0) return usage();
  int n, batch;
  double sec;
  if (argc > 5 || !arg_int(argc, argv, 2, 4096, 1, 1 << 24, &n) ||
      !arg_int(argc, argv, 3, 256, 1, 1 << 16, &batch) || !arg_seconds(argc, argv, 4, 3.0, &sec))
    return 2;
  MPI_Init(&argc, &argv);
  lt_ctx *ctx = NULL;
  lt_status st = lt_ctx_create(MPI_COMM_WORLD, 7, &ctx);
  if (st != LT_OK) {
    fprintf(stderr, "bench_gemm: cannot create the context\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (ctx->rank == 0) print_blis(&bi);
  st = bench_fisher(ctx, n, batch, sec);
  if (st != LT_OK) lt_error_print(ctx, 1);
  lt_ctx_destroy(&ctx);
  MPI_Finalize();
  return st == LT_OK ? 0 : 1;
}
