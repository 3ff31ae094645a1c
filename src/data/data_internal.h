/* Private helpers of the data module (src/data only; not a public interface). */
#ifndef LETHE_DATA_INTERNAL_H
#define LETHE_DATA_INTERNAL_H

#include <hdf5.h>

#include "lethe/core.h"
#include "lethe/h5io.h" /* lt_h5_quiet, lt_h5_msg, LT_FAIL_DONE, LT_CHECK_DONE */

/* LT_OK when path names an existing regular file, else LT_ERR_IO with
 * "<what> file 'X' does not exist" (or is a directory / cannot be accessed). */
LT_WUR lt_status lt_data_check_file(lt_ctx *ctx, const char *path, const char *what);

/* A short name of an HDF5 datatype: "uint8", "int64", "float32", "string", ... */
const char *lt_data_h5_type_name(hid_t type, char *buf, size_t len);

/* Record an error (first message wins) and evaluate to its code. */
#define LT_DATA_ERR(ctx, code, ...) \
  lt_error_set((ctx), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
