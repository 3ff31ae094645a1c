/* lethe core: context, status codes and error propagation, logging, timers, RNG.
 *
 * Everything a module needs from its surroundings comes through an lt_ctx:
 * there is no other global state. Library code never uses MPI_COMM_WORLD;
 * it uses ctx->comm, a duplicate of the communicator given to lt_ctx_create.
 */
#ifndef LETHE_CORE_H
#define LETHE_CORE_H

#include <mpi.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LT_WUR __attribute__((warn_unused_result))
#define LT_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---------------------------------------------------------------- status */

typedef enum {
  LT_OK = 0,
  LT_ERR_ARG,      /* bad argument or configuration value */
  LT_ERR_DECK,     /* input deck: unknown key, bad value */
  LT_ERR_IO,       /* file missing, unreadable, unwritable */
  LT_ERR_DATA,     /* file readable but content invalid */
  LT_ERR_MEM,      /* allocation failed */
  LT_ERR_MPI,      /* an MPI call failed */
  LT_ERR_H5,       /* an HDF5 call failed */
  LT_ERR_NUM,      /* numerical failure (NaN, not positive definite) */
  LT_ERR_INTERNAL, /* a bug in lethe */
  LT_STATUS_COUNT
} lt_status;

const char *lt_status_str(lt_status s);

/* ---------------------------------------------------------------- logging */

typedef enum { LT_LOG_QUIET = 0, LT_LOG_INFO = 1, LT_LOG_DEBUG = 2 } lt_log_level;

/* ---------------------------------------------------------------- timers */

#define LT_MAX_TIMERS 32
#define LT_TIMER_NAME 32

typedef struct {
  char name[LT_TIMER_NAME];
  double total; /* seconds accumulated */
  double start; /* MPI_Wtime at the last start, < 0 when stopped */
  long count;
} lt_timer;

/* ---------------------------------------------------------------- RNG */

/* Counter-based generator: output k of a stream is mix(key, k). A stream is
 * fully described by (key, counter), so it can be saved, restored and jumped
 * ahead in O(1). Keys are derived from (seed, rank, purpose). */
typedef struct {
  uint64_t key;
  uint64_t ctr;
} lt_rng;

/* Purposes: each gets an independent stream for the same (seed, rank). */
enum {
  LT_RNG_INIT = 1,    /* parameter initialisation (rank-independent) */
  LT_RNG_SHUFFLE = 2, /* per-epoch shuffle of a rank's data shard */
  LT_RNG_FISHER = 3,  /* sampled labels for the true Fisher */
  LT_RNG_NOISE = 4,   /* noise injection (refresh learning) */
  LT_RNG_DATA = 5,    /* scenario construction (permutations, class order) */
  LT_RNG_USER = 16    /* first free purpose id */
};

void lt_rng_seed(lt_rng *r, uint64_t seed, uint64_t rank, uint64_t purpose);
uint64_t lt_rng_u64(lt_rng *r);
double lt_rng_uniform(lt_rng *r);               /* [0, 1) with 53 random bits */
uint64_t lt_rng_below(lt_rng *r, uint64_t n);   /* uniform in [0, n), unbiased; n > 0 */
double lt_rng_normal(lt_rng *r);                /* standard normal */
void lt_rng_jump(lt_rng *r, uint64_t n);        /* skip n outputs of lt_rng_u64 */
void lt_rng_shuffle_u32(lt_rng *r, uint32_t *a, size_t n); /* Fisher-Yates */

/* ---------------------------------------------------------------- context */

#define LT_ERRMSG 2048
#define LT_TRACE 4096

typedef struct lt_ctx {
  MPI_Comm comm; /* duplicate of the communicator given at creation */
  int rank, size;
  lt_log_level log_level;
  FILE *log;     /* rank 0's log stream (stdout by default) */
  uint64_t seed; /* base seed of the run */
  lt_rng rng;    /* general stream (seed, rank, LT_RNG_USER) */
  lt_timer timers[LT_MAX_TIMERS];
  int ntimers;
  /* last error: message of the first failure and the traceback as it propagated */
  lt_status err;
  char errmsg[LT_ERRMSG];
  char trace[LT_TRACE];
} lt_ctx;

LT_WUR lt_status lt_ctx_create(MPI_Comm comm, uint64_t seed, lt_ctx **ctx);
void lt_ctx_destroy(lt_ctx **ctx);

/* ---------------------------------------------------------------- errors */

/* Record an error in ctx (message of the first error wins) and return code. */
LT_WUR lt_status lt_error_set(lt_ctx *ctx, lt_status code, const char *file, int line,
                              const char *func, const char *fmt, ...) LT_PRINTF(6, 7);
/* Append one traceback frame; returns code. */
LT_WUR lt_status lt_error_trace(lt_ctx *ctx, lt_status code, const char *file, int line,
                                const char *func);
void lt_error_clear(lt_ctx *ctx);
/* Print the recorded error (and, at log level debug or with LETHE_TRACEBACK set,
 * its traceback) to stderr; with_rank prefixes "[rank r] " (for an error of
 * one rank rather than one all ranks share). */
void lt_error_print(const lt_ctx *ctx, int with_rank);
/* All ranks agree on a status: returns the largest code over the ranks
 * (LT_OK only when every rank passed). Collective. On a rank that passed but
 * others failed, sets ctx's error to a note that another rank failed. */
LT_WUR lt_status lt_agree(lt_ctx *ctx, lt_status st);

/* Return an error from the current function with a formatted message. */
#define LT_ERROR(ctx, code, ...) \
  return lt_error_set((ctx), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Propagate the status of a fallible call, adding a traceback frame. */
#define LT_CHECK(ctx, expr)                                                  \
  do {                                                                       \
    lt_status lt__s = (expr);                                                \
    if (lt__s != LT_OK) return lt_error_trace((ctx), lt__s, __FILE__, __LINE__, __func__); \
  } while (0)

/* Wrap an MPI call. */
#define LT_CHECK_MPI(ctx, call)                                              \
  do {                                                                       \
    int lt__e = (call);                                                      \
    if (lt__e != MPI_SUCCESS) {                                              \
      char lt__m[MPI_MAX_ERROR_STRING]; int lt__l = 0;                       \
      MPI_Error_string(lt__e, lt__m, &lt__l);                                \
      LT_ERROR((ctx), LT_ERR_MPI, "%s failed: %s", #call, lt__m);            \
    }                                                                        \
  } while (0)

/* Allocate n elements of *p's type, zeroed, 64-byte aligned; error on failure. */
#define LT_CALLOC(ctx, p, n)                                                 \
  do {                                                                       \
    if (lt_calloc_aligned((void **)&(p), (size_t)(n), sizeof(*(p))) != 0)    \
      LT_ERROR((ctx), LT_ERR_MEM, "out of memory allocating %zu x %zu bytes for %s", \
               (size_t)(n), sizeof(*(p)), #p);                               \
  } while (0)

int lt_calloc_aligned(void **p, size_t n, size_t size); /* 0 on success */
void lt_free(void *p); /* accepts NULL */
#define LT_FREE(p) do { lt_free(p); (p) = NULL; } while (0)

/* ---------------------------------------------------------------- logging */

/* Rank 0 only, at level <= ctx->log_level. */
void lt_log(const lt_ctx *ctx, lt_log_level level, const char *fmt, ...) LT_PRINTF(3, 4);
/* Every rank, prefixed "[rank r] ", to stderr (debugging). */
void lt_log_all(const lt_ctx *ctx, const char *fmt, ...) LT_PRINTF(2, 3);

/* ---------------------------------------------------------------- timers */

/* Start/stop a named timer (created on first use; at most LT_MAX_TIMERS). */
void lt_timer_start(lt_ctx *ctx, const char *name);
void lt_timer_stop(lt_ctx *ctx, const char *name);
double lt_timer_total(const lt_ctx *ctx, const char *name); /* this rank's seconds */
/* Collective: reduce each timer (min/mean/max over ranks) and print a table on
 * rank 0. Every rank must have created the same timers in the same order. */
LT_WUR lt_status lt_timer_report(lt_ctx *ctx, FILE *out);

double lt_wtime(void);

#endif
