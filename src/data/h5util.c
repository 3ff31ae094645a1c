/* Private HDF5 and file helpers of the data module. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "data_internal.h"

lt_status lt_data_check_file(lt_ctx *ctx, const char *path, const char *what) {
  if (!path || !*path) LT_ERROR(ctx, LT_ERR_ARG, "no %s file given", what);
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) LT_ERROR(ctx, LT_ERR_IO, "%s file '%s' does not exist", what, path);
    LT_ERROR(ctx, LT_ERR_IO, "cannot access %s file '%s': %s", what, path, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode))
    LT_ERROR(ctx, LT_ERR_IO, "%s file '%s' is a directory, not a file", what, path);
  return LT_OK;
}

const char *lt_data_h5_type_name(hid_t type, char *buf, size_t len) {
  size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
  case H5T_INTEGER:
    snprintf(buf, len, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
    break;
  case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
  case H5T_STRING: snprintf(buf, len, "string"); break;
  case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
  case H5T_ENUM: snprintf(buf, len, "enum"); break;
  case H5T_ARRAY: snprintf(buf, len, "array"); break;
  default: snprintf(buf, len, "unsupported HDF5 type class"); break;
  }
  return buf;
}
