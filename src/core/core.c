/* lethe core: context, errors, logging, timers. */
#include "lethe/core.h"

#include <stdlib.h>
#include <string.h>

static const char *const status_names[LT_STATUS_COUNT] = {
    [LT_OK] = "ok",
    [LT_ERR_ARG] = "invalid argument",
    [LT_ERR_DECK] = "input deck error",
    [LT_ERR_IO] = "I/O error",
    [LT_ERR_DATA] = "invalid data",
    [LT_ERR_MEM] = "out of memory",
    [LT_ERR_MPI] = "MPI error",
    [LT_ERR_H5] = "HDF5 error",
    [LT_ERR_NUM] = "numerical error",
    [LT_ERR_INTERNAL] = "internal error",
};

const char *lt_status_str(lt_status s) {
  if ((int)s < 0 || s >= LT_STATUS_COUNT) return "unknown status";
  return status_names[s];
}

int lt_calloc_aligned(void **p, size_t n, size_t size) {
  *p = NULL;
  if (n == 0) n = 1;
  if (size != 0 && n > SIZE_MAX / size) return 1;
  size_t bytes = n * size;
  bytes = (bytes + 63) & ~(size_t)63;
  void *q = aligned_alloc(64, bytes);
  if (!q) return 1;
  memset(q, 0, bytes);
  *p = q;
  return 0;
}

void lt_free(void *p) { free(p); }

double lt_wtime(void) { return MPI_Wtime(); }

lt_status lt_ctx_create(MPI_Comm comm, uint64_t seed, lt_ctx **out) {
  *out = NULL;
  lt_ctx *ctx = calloc(1, sizeof(*ctx));
  if (!ctx) return LT_ERR_MEM;
  if (MPI_Comm_dup(comm, &ctx->comm) != MPI_SUCCESS) {
    free(ctx);
    return LT_ERR_MPI;
  }
  MPI_Comm_rank(ctx->comm, &ctx->rank);
  MPI_Comm_size(ctx->comm, &ctx->size);
  ctx->log_level = LT_LOG_INFO;
  ctx->log = stdout;
  ctx->seed = seed;
  lt_rng_seed(&ctx->rng, seed, (uint64_t)ctx->rank, LT_RNG_USER);
  *out = ctx;
  return LT_OK;
}

void lt_ctx_destroy(lt_ctx **pctx) {
  if (!pctx || !*pctx) return;
  lt_ctx *ctx = *pctx;
  if (ctx->comm != MPI_COMM_NULL) MPI_Comm_free(&ctx->comm);
  free(ctx);
  *pctx = NULL;
}

/* ---------------------------------------------------------------- errors */

static const char *basename_of(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void trace_append(lt_ctx *ctx, const char *file, int line, const char *func) {
  size_t len = strlen(ctx->trace);
  if (len + 1 >= sizeof(ctx->trace)) return;
  snprintf(ctx->trace + len, sizeof(ctx->trace) - len, "    at %s:%d %s()\n",
           basename_of(file), line, func);
}

lt_status lt_error_set(lt_ctx *ctx, lt_status code, const char *file, int line,
                       const char *func, const char *fmt, ...) {
  if (!ctx) return code;
  if (ctx->err == LT_OK) { /* the first error's message wins */
    ctx->err = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
    va_end(ap);
    ctx->trace[0] = '\0';
  }
  trace_append(ctx, file, line, func);
  return code;
}

lt_status lt_error_trace(lt_ctx *ctx, lt_status code, const char *file, int line,
                         const char *func) {
  if (!ctx) return code;
  if (ctx->err == LT_OK) { /* a failure that did not go through LT_ERROR */
    ctx->err = code;
    snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s", lt_status_str(code));
    ctx->trace[0] = '\0';
  }
  trace_append(ctx, file, line, func);
  return code;
}

void lt_error_clear(lt_ctx *ctx) {
  ctx->err = LT_OK;
  ctx->errmsg[0] = '\0';
  ctx->trace[0] = '\0';
}

void lt_error_print(const lt_ctx *ctx, int with_rank) {
  if (ctx->err == LT_OK) return;
  char prefix[32] = "";
  if (with_rank) snprintf(prefix, sizeof(prefix), "[rank %d] ", ctx->rank);
  fprintf(stderr, "%slethe: error: %s\n", prefix, ctx->errmsg);
  if (ctx->log_level >= LT_LOG_DEBUG || getenv("LETHE_TRACEBACK"))
    fprintf(stderr, "%s  (%s) traceback:\n%s", prefix, lt_status_str(ctx->err), ctx->trace);
  fflush(stderr);
}

lt_status lt_agree(lt_ctx *ctx, lt_status st) {
  int mine = (int)st, worst = 0;
  if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, ctx->comm) != MPI_SUCCESS)
    return LT_ERR_MPI;
  if (worst != LT_OK && st == LT_OK && ctx->err == LT_OK) {
    ctx->err = (lt_status)worst;
    snprintf(ctx->errmsg, sizeof(ctx->errmsg), "another rank failed (%s)",
             lt_status_str((lt_status)worst));
    ctx->trace[0] = '\0';
  }
  return (lt_status)worst;
}

/* ---------------------------------------------------------------- logging */

void lt_log(const lt_ctx *ctx, lt_log_level level, const char *fmt, ...) {
  if (ctx->rank != 0 || level > ctx->log_level) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(ctx->log, fmt, ap);
  va_end(ap);
  fflush(ctx->log);
}

void lt_log_all(const lt_ctx *ctx, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fprintf(stderr, "[rank %d] %s", ctx->rank, buf);
  fflush(stderr);
}

/* ---------------------------------------------------------------- timers */

static lt_timer *timer_find(lt_ctx *ctx, const char *name, int create) {
  for (int i = 0; i < ctx->ntimers; i++)
    if (strncmp(ctx->timers[i].name, name, LT_TIMER_NAME) == 0) return &ctx->timers[i];
  if (!create || ctx->ntimers >= LT_MAX_TIMERS) return NULL;
  lt_timer *t = &ctx->timers[ctx->ntimers++];
  memset(t, 0, sizeof(*t));
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->start = -1.0;
  return t;
}

void lt_timer_start(lt_ctx *ctx, const char *name) {
  lt_timer *t = timer_find(ctx, name, 1);
  if (t) t->start = MPI_Wtime();
}

void lt_timer_stop(lt_ctx *ctx, const char *name) {
  lt_timer *t = timer_find(ctx, name, 0);
  if (!t || t->start < 0) return;
  t->total += MPI_Wtime() - t->start;
  t->count++;
  t->start = -1.0;
}

double lt_timer_total(const lt_ctx *ctx, const char *name) {
  for (int i = 0; i < ctx->ntimers; i++)
    if (strncmp(ctx->timers[i].name, name, LT_TIMER_NAME) == 0) return ctx->timers[i].total;
  return 0.0;
}

lt_status lt_timer_report(lt_ctx *ctx, FILE *out) {
  /* rank 0's timer names drive the table; a rank lacking a timer contributes 0 */
  int n = ctx->ntimers;
  LT_CHECK_MPI(ctx, MPI_Bcast(&n, 1, MPI_INT, 0, ctx->comm));
  char names[LT_MAX_TIMERS][LT_TIMER_NAME];
  memset(names, 0, sizeof(names));
  if (ctx->rank == 0)
    for (int i = 0; i < n; i++) memcpy(names[i], ctx->timers[i].name, LT_TIMER_NAME);
  LT_CHECK_MPI(ctx, MPI_Bcast(names, LT_MAX_TIMERS * LT_TIMER_NAME, MPI_CHAR, 0, ctx->comm));
  double v[LT_MAX_TIMERS], mn[LT_MAX_TIMERS], mx[LT_MAX_TIMERS], sum[LT_MAX_TIMERS];
  long cnt[LT_MAX_TIMERS];
  for (int i = 0; i < n; i++) {
    lt_timer *t = timer_find(ctx, names[i], 0);
    v[i] = t ? t->total : 0.0;
    cnt[i] = t ? t->count : 0;
  }
  if (n == 0) return LT_OK;
  LT_CHECK_MPI(ctx, MPI_Reduce(v, mn, n, MPI_DOUBLE, MPI_MIN, 0, ctx->comm));
  LT_CHECK_MPI(ctx, MPI_Reduce(v, mx, n, MPI_DOUBLE, MPI_MAX, 0, ctx->comm));
  LT_CHECK_MPI(ctx, MPI_Reduce(v, sum, n, MPI_DOUBLE, MPI_SUM, 0, ctx->comm));
  if (ctx->rank == 0) {
    fprintf(out, "%-24s %10s %12s %12s %12s\n", "timer", "calls", "min [s]", "mean [s]",
            "max [s]");
    for (int i = 0; i < n; i++)
      fprintf(out, "%-24s %10ld %12.4f %12.4f %12.4f\n", names[i], cnt[i], mn[i],
              sum[i] / ctx->size, mx[i]);
    fflush(out);
  }
  return LT_OK;
}
