/* Small HDF5 helpers. */
#include "lethe/h5io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void lt_h5_quiet_on(lt_h5_quiet *saved) {
  saved->func = NULL;
  saved->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &saved->func, &saved->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void lt_h5_quiet_off(const lt_h5_quiet *saved) {
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

const char *lt_h5_msg(char *buf, size_t len) {
  if (!buf || len == 0) return "";
  buf[0] = '\0';
  msg_sink s = {buf, len};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &s);
  if (!buf[0]) snprintf(buf, len, "no HDF5 error message");
  return buf;
}

hid_t lt_h5_fapl_mpio(lt_ctx *ctx) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, ctx->comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  return fapl;
}

lt_status lt_h5_write_f64(lt_ctx *ctx, hid_t loc, const char *path, const double *v, size_t n) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t ds = H5Dcreate2(loc, path, H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = ds < 0 ? -1 : (n ? H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : 0);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
  if (ds < 0 || e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot write HDF5 dataset '%s'", path);
  return LT_OK;
}

lt_status lt_h5_attr_str(lt_ctx *ctx, hid_t obj, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, type, &value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  if (a < 0 || e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot write HDF5 attribute '%s'", name);
  return LT_OK;
}

static lt_status attr_scalar(lt_ctx *ctx, hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                             const void *v) {
  hid_t space = H5Screate(H5S_SCALAR);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  if (a < 0 || e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot write HDF5 attribute '%s'", name);
  return LT_OK;
}

lt_status lt_h5_attr_i64(lt_ctx *ctx, hid_t obj, const char *name, int64_t value) {
  return attr_scalar(ctx, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

lt_status lt_h5_attr_f64(lt_ctx *ctx, hid_t obj, const char *name, double value) {
  return attr_scalar(ctx, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

lt_status lt_h5_attr_provenance(lt_ctx *ctx, hid_t obj, const char *deck_text,
                                const char *blis_kernels, int blis_threads) {
  LT_CHECK(ctx, lt_h5_attr_str(ctx, obj, "deck", deck_text ? deck_text : ""));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, obj, "lethe_version", LETHE_VERSION));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, obj, "git_revision", LETHE_GIT_REV));
  LT_CHECK(ctx, lt_h5_attr_i64(ctx, obj, "ranks", ctx->size));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, obj, "blis_kernels", blis_kernels ? blis_kernels : "unknown"));
  LT_CHECK(ctx, lt_h5_attr_i64(ctx, obj, "blis_threads", blis_threads));
  return LT_OK;
}

lt_status lt_make_dirs(lt_ctx *ctx, const char *dir, const char *what, const char *hint) {
  char p[4096];
  if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
    LT_ERROR(ctx, LT_ERR_IO, "%s '%s' is too long (at most %zu characters)", what, dir,
             sizeof(p) - 1);
  for (char *s = p + 1;; s++) {
    char c = *s;
    if (c == '/' || c == '\0') {
      *s = '\0';
      if (mkdir(p, 0775) != 0 && errno != EEXIST) {
        if (hint)
          LT_ERROR(ctx, LT_ERR_IO, "cannot create %s '%s': %s (%s = %s)", what, p, strerror(errno),
                   hint, dir);
        LT_ERROR(ctx, LT_ERR_IO, "cannot create %s '%s': %s", what, p, strerror(errno));
      }
      *s = c;
      if (c == '\0') break;
    }
  }
  return LT_OK;
}
