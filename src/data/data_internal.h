/* Private helpers of the data module (src/data only; not a public interface). */
#ifndef LETHE_DATA_INTERNAL_H
#define LETHE_DATA_INTERNAL_H

#include <hdf5.h>

#include "lethe/core.h"

/* HDF5 prints its error stack to stderr by default; the data module reports
 * errors itself. Silence the printing for the duration of a call and restore
 * the caller's handler afterwards. */
typedef struct {
  H5E_auto2_t func;
  void *data;
} lt_data_h5_quiet;
void lt_data_h5_silence(lt_data_h5_quiet *saved);
void lt_data_h5_restore(const lt_data_h5_quiet *saved);

/* The innermost (most specific) description on HDF5's current error stack,
 * written to buf; "no HDF5 error message" when the stack is empty. Returns buf. */
const char *lt_data_h5_msg(char *buf, size_t len);

/* LT_OK when path names an existing regular file, else LT_ERR_IO with
 * "<what> file 'X' does not exist" (or is a directory / cannot be accessed). */
LT_WUR lt_status lt_data_check_file(lt_ctx *ctx, const char *path, const char *what);

/* A short name of an HDF5 datatype: "uint8", "int64", "float32", "string", ... */
const char *lt_data_h5_type_name(hid_t type, char *buf, size_t len);

/* Record an error (first message wins) and evaluate to its code. */
#define LT_DATA_ERR(ctx, code, ...) \
  lt_error_set((ctx), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* For functions with a cleanup label `done` and a status variable: record an
 * error (or a traceback frame for a failed call) and jump to `done`. */
#define LT_DATA_FAIL(ctx, st, code, ...)                                       \
  do {                                                                         \
    (st) = lt_error_set((ctx), (code), __FILE__, __LINE__, __func__, __VA_ARGS__); \
    goto done;                                                                 \
  } while (0)
#define LT_DATA_TRY(ctx, st, expr)                                             \
  do {                                                                         \
    (st) = (expr);                                                             \
    if ((st) != LT_OK) {                                                       \
      (st) = lt_error_trace((ctx), (st), __FILE__, __LINE__, __func__);        \
      goto done;                                                               \
    }                                                                          \
  } while (0)

#endif
