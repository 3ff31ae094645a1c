/* Private HDF5 and file helpers of the data module. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "data_internal.h"

void lt_data_h5_silence(lt_data_h5_quiet *saved) {
  saved->func = NULL;
  saved->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &saved->func, &saved->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void lt_data_h5_restore(const lt_data_h5_quiet *saved) {
  H5Eset_auto2(H5E_DEFAULT, saved->func, saved->data);
}

typedef struct {
  char *buf;
  size_t len;
} msg_sink;

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data) {
  msg_sink *s = data;
  /* walking upward, frame 0 is where the error was first detected */
  if (n == 0 && e && e->desc) snprintf(s->buf, s->len, "%s", e->desc);
  return 0;
}

const char *lt_data_h5_msg(char *buf, size_t len) {
  if (!buf || len == 0) return "";
  buf[0] = '\0';
  msg_sink s = {buf, len};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &s);
  if (!buf[0]) snprintf(buf, len, "no HDF5 error message");
  return buf;
}

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
