/* lethe h5io: small helpers shared by the modules that read and write run files
 * (HDF5 datasets, attributes and errors; run directories). */
#ifndef LETHE_H5IO_H
#define LETHE_H5IO_H

#include <hdf5.h>

#include "lethe/core.h"

/* HDF5 prints its error stack to stderr by default; lethe reports HDF5 failures
 * itself. lt_h5_quiet_on saves the caller's handler in *saved and silences the
 * printing; lt_h5_quiet_off restores the saved handler. */
typedef struct {
  H5E_auto2_t func;
  void *data;
} lt_h5_quiet;
void lt_h5_quiet_on(lt_h5_quiet *saved);
void lt_h5_quiet_off(const lt_h5_quiet *saved);

/* The innermost (most specific) description on HDF5's current error stack,
 * written to buf; "no HDF5 error message" when the stack is empty. Returns buf. */
const char *lt_h5_msg(char *buf, size_t len);

/* For functions that release handles at a cleanup label `done`, with a status
 * variable st: record an error (LT_FAIL_DONE) or a traceback frame for a failed
 * call (LT_CHECK_DONE) in st and jump to `done`. */
#define LT_FAIL_DONE(ctx, st, code, ...)                                              \
  do {                                                                                \
    (st) = lt_error_set((ctx), (code), __FILE__, __LINE__, __func__, __VA_ARGS__);    \
    goto done;                                                                        \
  } while (0)
#define LT_CHECK_DONE(ctx, st, expr)                                                  \
  do {                                                                                \
    (st) = (expr);                                                                    \
    if ((st) != LT_OK) {                                                              \
      (st) = lt_error_trace((ctx), (st), __FILE__, __LINE__, __func__);               \
      goto done;                                                                      \
    }                                                                                 \
  } while (0)

/* A file-access property list for the MPI-IO driver on ctx->comm with collective
 * metadata reads and writes (the caller closes it). */
hid_t lt_h5_fapl_mpio(lt_ctx *ctx);

/* Write a 1-D dataset (creating intermediate groups) of n values. */
LT_WUR lt_status lt_h5_write_f64(lt_ctx *ctx, hid_t loc, const char *path, const double *v,
                                 size_t n);
/* Scalar attributes on an object (file, group or dataset), replacing any of that name.
 * In a file opened with the MPI-IO driver every rank calls with the same value. */
LT_WUR lt_status lt_h5_attr_str(lt_ctx *ctx, hid_t obj, const char *name, const char *value);
LT_WUR lt_status lt_h5_attr_i64(lt_ctx *ctx, hid_t obj, const char *name, int64_t value);
LT_WUR lt_status lt_h5_attr_f64(lt_ctx *ctx, hid_t obj, const char *name, double value);
/* The provenance attributes every run file carries, on obj: deck (deck_text, ""
 * when NULL), lethe_version, git_revision, ranks (ctx->size), blis_kernels
 * ("unknown" when NULL) and blis_threads. */
LT_WUR lt_status lt_h5_attr_provenance(lt_ctx *ctx, hid_t obj, const char *deck_text,
                                       const char *blis_kernels, int blis_threads);

/* mkdir -p: create dir and its missing parents (0775); existing ones are fine.
 * Errors name the directory that failed as "<what> '<path>'" and, when hint is
 * not NULL, end with " (<hint> = <dir>)". */
LT_WUR lt_status lt_make_dirs(lt_ctx *ctx, const char *dir, const char *what, const char *hint);

#endif
