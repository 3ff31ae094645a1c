/* Micro-benchmarks for the bench suite (tests/bench/run_bench.sh), all on the
 * MLP 784-1024-1024-10 of input/bench_mlp.ini.
 *
 *   bench_gemm gemm B [SECONDS]
 *       Times lt_sgemm on exactly the GEMMs of one training step at local batch
 *       B, as src/model/model.c issues them:
 *         forward   Z_l[B, out]   = A_{l-1}[B, in] W_l[out, in]^T     l = 1, 2, 3
 *         weights   dW_l[out, in] = dZ_l[B, out]^T A_{l-1}[B, in]     l = 1, 2, 3
 *         data      dA_{l-1}[B, in] = dZ_l[B, out] W_l[out, in]       l = 2, 3
 *       (the bias GEMMs, 1 x out x B, are left out: 0.1% of the flops), repeated
 *       for about SECONDS (default 2), and prints the rate in GFLOP/s of the whole
 *       step (at the median step time, the figure after "gflops=", and on average)
 *       and of each shape. Threads: BLIS_NUM_THREADS, as in lethe.
 *
 *   bench_gemm step B [SECONDS]
 *       lethe's training step (lt_trainer_step, SGD with momentum 0.9, stats on)
 *       at local batch B per rank (global B x ranks; run under mpirun for several
 *       ranks) for about SECONDS (default 3), split by the trainer's own timers
 *       (forward+backward, reduce, update, allgather), each step followed by the
 *       step's 8 GEMMs alone (as in `gemm`), so that both see the same load.
 *       Prints the median of each (slowest rank per step); forward+backward minus
 *       the GEMMs is the step's non-GEMM work (bias, activations, softmax).
 *
 *   bench_gemm fisher [SAMPLES] [BATCH] [SECONDS]
 *       Times lt_fisher_diag in empirical mode (per-sample squared gradients by
 *       one GEMM per layer) on an in-memory dataset of SAMPLES (default 4096)
 *       random inputs per rank, 784 features and 10 classes, chunked by BATCH
 *       rows per rank (default 256), whole passes for about SECONDS (default 3),
 *       and prints samples/s over all ranks at the median pass time (and on
 *       average).
 *
 * Every mode first prints the BLIS line "blis <version> kernels <arch> threads <t>".
 * Machine-readable results are lines starting with "RESULT ". Only rank 0 prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/core.h"
#include "lethe/dist.h"
#include "lethe/fisher.h"
#include "lethe/linalg.h"
#include "lethe/model.h"
#include "lethe/optim.h"
#include "lethe/trainer.h"

enum { NLAYERS = 3, MAX_SAMPLES = 4096 };
static const int dims[NLAYERS + 1] = {784, 1024, 1024, 10};

static void fill_uniform(float *x, size_t n, lt_rng *r, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)lt_rng_uniform(r);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of t[n], n >= 1 (sorts t). */
static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void print_blis(const lt_blas_info *bi) {
  printf("blis %s kernels %s threads %d (kernels %s, threads from %s)\n", bi->version, bi->arch,
         bi->threads,
         bi->user_arch ? "set by BLIS_ARCH_TYPE" : bi->forced ? "selected by lethe" : "BLIS default",
         bi->threads_from);
}

/* ------------------------------------------------------------ the step's GEMMs */

typedef struct {
  char name[48];
  int ta, tb, m, n, k;
  const float *A, *B;
  int lda, ldb;
  float *C;
  int ldc;
} gemm_op;

typedef struct {
  float *W[NLAYERS], *dW[NLAYERS], *A[NLAYERS + 1], *dZ[NLAYERS + 1];
  gemm_op ops[3 * NLAYERS];
  int nops;
} step_gemms;

static void step_gemms_destroy(step_gemms *g) {
  for (int l = 0; l <= NLAYERS; l++) {
    LT_FREE(g->A[l]);
    LT_FREE(g->dZ[l]);
    if (l < NLAYERS) {
      LT_FREE(g->W[l]);
      LT_FREE(g->dW[l]);
    }
  }
}

/* Operands of magnitudes training sees (no denormals) and the 8 GEMMs in the
 * model's order. Returns 0, or 1 when out of memory. */
static int step_gemms_create(step_gemms *g, int B) {
  memset(g, 0, sizeof(*g));
  int fail = 0;
  for (int l = 0; l <= NLAYERS; l++) {
    size_t w = (size_t)dims[l];
    fail |= lt_calloc_aligned((void **)&g->A[l], (size_t)B * w, sizeof(float)); /* A_l / Z_l */
    fail |= lt_calloc_aligned((void **)&g->dZ[l], (size_t)B * w, sizeof(float)); /* dZ_l / dA_l */
    if (l < NLAYERS) {
      size_t n = (size_t)dims[l] * (size_t)dims[l + 1];
      fail |= lt_calloc_aligned((void **)&g->W[l], n, sizeof(float));
      fail |= lt_calloc_aligned((void **)&g->dW[l], n, sizeof(float));
    }
  }
  if (fail) {
    step_gemms_destroy(g);
    return 1;
  }
  lt_rng r;
  lt_rng_seed(&r, 42, 0, LT_RNG_USER);
  for (int l = 0; l <= NLAYERS; l++) {
    size_t w = (size_t)dims[l];
    fill_uniform(g->A[l], (size_t)B * w, &r, 0.0f, 1.0f);
    fill_uniform(g->dZ[l], (size_t)B * w, &r, -1e-3f, 1e-3f);
    if (l < NLAYERS) fill_uniform(g->W[l], w * (size_t)dims[l + 1], &r, -0.05f, 0.05f);
  }
  gemm_op *o = g->ops;
  for (int l = 1; l <= NLAYERS; l++) { /* forward: Z_l = A_{l-1} W_l^T */
    int in = dims[l - 1], out = dims[l];
    *o = (gemm_op){"", 0, 1, B, out, in, g->A[l - 1], g->W[l - 1], in, in, g->A[l], out};
    snprintf(o->name, sizeof(o->name), "fwd  fc%d Z[%d,%d]", l, B, out);
    o++;
  }
  for (int l = NLAYERS; l >= 1; l--) { /* backward */
    int in = dims[l - 1], out = dims[l];
    *o = (gemm_op){"", 1, 0, out, in, B, g->dZ[l], g->A[l - 1], out, in, g->dW[l - 1], in};
    snprintf(o->name, sizeof(o->name), "bwd  fc%d dW[%d,%d]", l, out, in);
    o++;
    if (l > 1) { /* dA_{l-1} lands in dZ[l-1] (the model then applies act') */
      *o = (gemm_op){"", 0, 0, B, in, out, g->dZ[l], g->W[l - 1], out, in, g->dZ[l - 1], in};
      snprintf(o->name, sizeof(o->name), "bwd  fc%d dA[%d,%d]", l, B, in);
      o++;
    }
  }
  g->nops = (int)(o - g->ops);
  return 0;
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

typedef struct {
  double median, mean; /* GFLOP/s at the median sample time and over the whole run */
  long reps;
} rate;

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
  double flop = ops_flops(ops, nops) * (double)inner;
  double med = median(samples, ns);
  return (rate){flop / med * 1e-9, flop * ns / total * 1e-9, (long)ns * inner};
}

static int bench_gemm(int B, double seconds) {
  step_gemms g;
  if (step_gemms_create(&g, B)) {
    fprintf(stderr, "bench_gemm: out of memory for batch %d\n", B);
    return 1;
  }
  rate all = time_ops(g.ops, g.nops, seconds);
  double flop = ops_flops(g.ops, g.nops);
  printf("step GEMMs at local batch %d: %d GEMMs, %.4g GFLOP per step, %ld steps, %.1f GFLOP/s "
         "at the median step, %.1f GFLOP/s on average\n",
         B, g.nops, flop * 1e-9, all.reps, all.median, all.mean);
  for (int i = 0; i < g.nops; i++) {
    const gemm_op *o = &g.ops[i];
    rate one = time_ops(o, 1, seconds / 10.0);
    printf("  %-24s m=%4d n=%4d k=%4d  %7.1f GFLOP/s  (%4.1f%% of the flops)\n", o->name, o->m,
           o->n, o->k, one.median, 100.0 * ops_flops(o, 1) / flop);
  }
  printf("RESULT gemm_batch=%d gflops=%.2f gflops_mean=%.2f\n", B, all.median, all.mean);
  step_gemms_destroy(&g);
  return 0;
}

/* ------------------------------------------------------------ model, data */

static lt_status make_model(lt_ctx *ctx, int max_batch, lt_model **m) {
  lt_model_cfg mc = {0};
  mc.in_dim = dims[0];
  mc.nhidden = NLAYERS - 1;
  for (int l = 1; l < NLAYERS; l++) mc.hidden[l - 1] = dims[l];
  mc.out_dim = dims[NLAYERS];
  mc.act = LT_ACT_RELU;
  mc.init = LT_INIT_KAIMING;
  mc.max_batch = max_batch;
  mc.pad_ranks = ctx->size;
  LT_CHECK(ctx, lt_model_create(ctx, &mc, m));
  return LT_OK;
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

/* ------------------------------------------------------------ step parts */

/* Parts of a step: the trainer's own timers, read around each lt_trainer_step. */
enum { P_STEP = 0, P_FB, P_REDUCE, P_UPDATE, P_ALLGATHER, P_GEMMS, P_COUNT };
static const char *const part_name[P_COUNT] = {"step", "forward+backward", "reduce",
                                               "update", "allgather", "gemms"};

static lt_status bench_step(lt_ctx *ctx, int B, double seconds) {
  lt_model *m = NULL;
  lt_trainer *t = NULL;
  lt_dataset ds; /* B rows: the batch, reused every step */
  step_gemms g;
  memset(&g, 0, sizeof(g));
  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = LT_OPT_SGD;
  oc.lr = 1e-4; /* small: thousands of steps on one batch must stay finite */
  oc.momentum = 0.9;
  LT_CHECK(ctx, make_model(ctx, B, &m));
  lt_status st = make_dataset(ctx, B, &ds);
  if (st == LT_OK) st = lt_trainer_create(ctx, m, &oc, LT_DIST_SHARDED, &t);
  if (st == LT_OK && step_gemms_create(&g, B))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  long global = (long)B * ctx->size;
  lt_step_stats stats; /* as lethe train asks for them (one small allreduce) */
  double tm[P_COUNT][MAX_SAMPLES]; /* seconds per sample */
  int n = 0;
  for (int i = 0; i < 3 && st == LT_OK; i++) /* warm-up */
    st = lt_trainer_step(t, ds.x, ds.y, B, global, NULL, &stats);
  if (st == LT_OK) { /* sample count: rank 0's choice, about `seconds` in all */
    double t0 = lt_wtime();
    st = lt_trainer_step(t, ds.x, ds.y, B, global, NULL, &stats);
    run_ops(g.ops, g.nops);
    double one = lt_wtime() - t0;
    n = (int)(seconds / (one > 1e-6 ? one : 1e-6));
    n = n < 9 ? 9 : n > MAX_SAMPLES ? MAX_SAMPLES : n;
    MPI_Bcast(&n, 1, MPI_INT, 0, ctx->comm);
  }
  /* Each sample: one real step, split by the trainer's timers, then the step's GEMMs
   * alone, so that both see the same conditions on a shared machine. */
  for (int i = 0; i < n && st == LT_OK; i++) {
    double before[P_GEMMS];
    for (int p = P_FB; p < P_GEMMS; p++) before[p] = lt_timer_total(ctx, part_name[p]);
    MPI_Barrier(ctx->comm);
    double t0 = lt_wtime();
    st = lt_trainer_step(t, ds.x, ds.y, B, global, NULL, &stats);
    tm[P_STEP][i] = lt_wtime() - t0;
    for (int p = P_FB; p < P_GEMMS; p++) tm[p][i] = lt_timer_total(ctx, part_name[p]) - before[p];
    MPI_Barrier(ctx->comm);
    t0 = lt_wtime();
    run_ops(g.ops, g.nops);
    tm[P_GEMMS][i] = lt_wtime() - t0;
  }
  if (st == LT_OK && !(stats.loss == stats.loss))
    st = lt_error_set(ctx, LT_ERR_NUM, __FILE__, __LINE__, __func__, "loss is %g", stats.loss);
  st = lt_agree(ctx, st);
  double ms[P_COUNT] = {0};
  for (int p = 0; p < P_COUNT && st == LT_OK; p++) { /* slowest rank per sample */
    MPI_Allreduce(MPI_IN_PLACE, tm[p], n, MPI_DOUBLE, MPI_MAX, ctx->comm);
    ms[p] = 1e3 * median(tm[p], n);
  }
  if (st == LT_OK && ctx->rank == 0) {
    printf("step parts at %d rank(s) x %d rows (global batch %ld), %d steps, median ms "
           "(slowest rank):\n", ctx->size, B, global, n);
    for (int p = 0; p < P_COUNT; p++)
      printf("  %-26s %8.3f ms  %5.1f%% of the step\n", p == P_GEMMS ? "gemms (alone)" : part_name[p],
             ms[p], 100.0 * ms[p] / ms[P_STEP]);
    double ng = ms[P_FB] - ms[P_GEMMS];
    printf("  %-26s %8.3f ms  %5.1f%% of the step\n", "forward+backward - gemms", ng,
           100.0 * ng / ms[P_STEP]);
    printf("RESULT step_ms=%.3f fb_ms=%.3f reduce_ms=%.3f update_ms=%.3f allgather_ms=%.3f "
           "gemms_ms=%.3f samples_per_s=%.1f\n",
           ms[P_STEP], ms[P_FB], ms[P_REDUCE], ms[P_UPDATE], ms[P_ALLGATHER], ms[P_GEMMS],
           (double)global / (ms[P_STEP] * 1e-3));
  }
  step_gemms_destroy(&g);
  lt_trainer_destroy(&t);
  free_dataset(&ds);
  lt_model_destroy(&m);
  LT_CHECK(ctx, st);
  return LT_OK;
}

/* ------------------------------------------------------------ Fisher */

static lt_status bench_fisher(lt_ctx *ctx, int n_local, int batch, double seconds) {
  lt_model *m = NULL;
  lt_dataset ds;
  float *F = NULL;
  lt_shard sh;
  LT_CHECK(ctx, make_model(ctx, batch, &m));
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
    double med = median(times, passes);
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

/* ------------------------------------------------------------ main */

static int usage(void) {
  fprintf(stderr, "usage: bench_gemm gemm BATCH [SECONDS]\n"
                  "       bench_gemm step BATCH [SECONDS]\n"
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
  const char *mode = argv[1];
  int B = 0, n = 0, batch = 0;
  double sec = 0.0;
  if (strcmp(mode, "gemm") == 0 || strcmp(mode, "step") == 0) {
    if (argc < 3 || argc > 4 || !arg_int(argc, argv, 2, 0, 1, 1 << 16, &B) ||
        !arg_seconds(argc, argv, 3, mode[0] == 'g' ? 2.0 : 3.0, &sec))
      return usage();
  } else if (strcmp(mode, "fisher") == 0) {
    if (argc > 5 || !arg_int(argc, argv, 2, 4096, 1, 1 << 24, &n) ||
        !arg_int(argc, argv, 3, 256, 1, 1 << 16, &batch) || !arg_seconds(argc, argv, 4, 3.0, &sec))
      return usage();
  } else {
    return usage();
  }
  lt_blas_info bi;
  lt_blas_setup(&bi); /* before any BLIS call: kernel set and threads as lethe picks them */
  if (mode[0] == 'g') {
    print_blis(&bi);
    return bench_gemm(B, sec);
  }
  MPI_Init(&argc, &argv);
  lt_ctx *ctx = NULL;
  lt_status st = lt_ctx_create(MPI_COMM_WORLD, 7, &ctx);
  if (st != LT_OK) {
    fprintf(stderr, "bench_gemm: cannot create the context\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (ctx->rank == 0) print_blis(&bi);
  st = mode[0] == 's' ? bench_step(ctx, B, sec) : bench_fisher(ctx, n, batch, sec);
  if (st != LT_OK) lt_error_print(ctx, 1);
  lt_ctx_destroy(&ctx);
  MPI_Finalize();
  return st == LT_OK ? 0 : 1;
}
