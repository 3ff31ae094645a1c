/* lethe data: import IDX files (MNIST, Fashion-MNIST; gzipped or plain) into the
 * dataset layout. Rank 0 reads and writes (serial HDF5 with the default file
 * driver); the file is written as OUT.tmp and renamed, so a failed import never
 * leaves a partial OUT. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data_internal.h"
#include "lethe/data.h"

#define IDX_IMAGES 0x00000803u /* unsigned byte, 3 dimensions [N, H, W] */
#define IDX_LABELS 0x00000801u /* unsigned byte, 1 dimension [N] */

typedef struct {
  uint8_t *data;
  uint32_t n, h, w; /* labels: h = w = 1 */
} idx_array;

/* Read n bytes; returns the count read (short at end of data), or -1 on a zlib error. */
static long long gz_read_all(gzFile f, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t want = n - got < (1u << 30) ? n - got : (1u << 30);
    int r = gzread(f, (uint8_t *)buf + got, (unsigned)want);
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (long long)got;
}

/* zlib's message for the stream's error state without the "path: " prefix zlib
 * adds, or `otherwise` when zlib saw no error. */
static const char *gz_msg(gzFile f, const char *path, const char *otherwise) {
  int errnum = Z_OK;
  const char *m = gzerror(f, &errnum);
  if (errnum == Z_OK || !m || !*m) return otherwise;
  size_t pl = strlen(path);
  if (strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ') m += pl + 2;
  return m;
}

/* Read an IDX file of the kind `magic` into a (uint8 data). */
static lt_status idx_read(lt_ctx *ctx, const char *path, uint32_t magic, idx_array *a) {
  lt_status st = LT_OK;
  const int images = magic == IDX_IMAGES;
  const char *kind = images ? "IDX image" : "IDX label";
  gzFile f = NULL;
  memset(a, 0, sizeof(*a));
  LT_CHECK_DONE(ctx, st, lt_data_check_file(ctx, path, kind));
  if (!(f = gzopen(path, "rb")))
    LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot open %s file '%s'", kind, path);

  /* header: magic and dims, big-endian 32-bit */
  const int ndim = images ? 3 : 1;
  uint8_t hdr[16];
  size_t hlen = 4 + 4 * (size_t)ndim;
  long long r = gz_read_all(f, hdr, hlen);
  if (r < 0 || (size_t)r < 4)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "corrupt or truncated gzip/IDX file '%s': %s", path,
                 gz_msg(f, path, "shorter than the 4-byte IDX magic"));
  uint32_t v[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; k++)
    v[k] = (uint32_t)hdr[4 * k] << 24 | (uint32_t)hdr[4 * k + 1] << 16 |
           (uint32_t)hdr[4 * k + 2] << 8 | (uint32_t)hdr[4 * k + 3];
  if (v[0] != magic)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "'%s' is not an %s file: magic 0x%08x (expected 0x%08x)",
                 path, kind, v[0], magic);
  if ((size_t)r < hlen)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "corrupt or truncated gzip/IDX file '%s': header of %zu bytes ends after %lld",
                 path, hlen, r);
  a->n = v[1];
  a->h = images ? v[2] : 1;
  a->w = images ? v[3] : 1;
  if (a->n == 0 || a->h == 0 || a->w == 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s file '%s' is empty: dimensions %u x %u x %u", kind,
                 path, a->n, a->h, a->w);
  if ((uint64_t)a->h * a->w > INT_MAX)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s file '%s': images of %u x %u pixels are too large",
                 kind, path, a->h, a->w);
  size_t bytes = (size_t)a->n * a->h * a->w;
  if (lt_calloc_aligned((void **)&a->data, bytes, 1) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading %zu bytes of %s file '%s'", bytes,
                 kind, path);
  r = gz_read_all(f, a->data, bytes);
  if (r < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "corrupt or truncated gzip/IDX file '%s': %s (reading %zu data bytes for "
                 "%u x %u x %u)", path, gz_msg(f, path, "read error"), bytes, a->n, a->h, a->w);
  if ((size_t)r < bytes)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "corrupt or truncated gzip/IDX file '%s': %s: the data ends after %lld of "
                 "%zu bytes for %u x %u x %u", path, gz_msg(f, path, "short file"), r, bytes,
                 a->n, a->h, a->w);
  /* reading past the end verifies the gzip trailer (CRC, length) and finds extra bytes */
  uint8_t extra;
  r = gz_read_all(f, &extra, 1);
  if (r < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "corrupt or truncated gzip/IDX file '%s': %s", path,
                 gz_msg(f, path, "read error"));
  if (r > 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "%s file '%s' has data after its %u x %u x %u values (wrong dimensions?)", kind,
                 path, a->n, a->h, a->w);
  int zr = gzclose_r(f);
  f = NULL;
  if (zr != Z_OK)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "corrupt or truncated gzip/IDX file '%s': %s", path,
                 zr == Z_BUF_ERROR ? "ends in the middle of a gzip stream" : "close failed");
done:
  if (f) gzclose_r(f);
  if (st != LT_OK) LT_FREE(a->data);
  return st;
}

/* Read an image file and its label file and check that they match. */
static lt_status read_pair(lt_ctx *ctx, const char *images, const char *labels, idx_array *x,
                           idx_array *y) {
  LT_CHECK(ctx, idx_read(ctx, images, IDX_IMAGES, x));
  LT_CHECK(ctx, idx_read(ctx, labels, IDX_LABELS, y));
  if (x->n != y->n)
    LT_ERROR(ctx, LT_ERR_DATA, "'%s' has %u images but '%s' has %u labels", images, x->n, labels,
             y->n);
  return LT_OK;
}

static lt_status write_split(lt_ctx *ctx, const char *tmp, hid_t file, const char *split,
                             const idx_array *x, const idx_array *y) {
  lt_status st = LT_OK;
  hid_t g = H5I_INVALID_HID, sp = H5I_INVALID_HID, d = H5I_INVALID_HID;
  char msg[256];
  hsize_t xd[4] = {x->n, 1, x->h, x->w}, yd[1] = {y->n};
  if ((g = H5Gcreate2(file, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot create group /%s in '%s': %s", split, tmp,
                 lt_h5_msg(msg, sizeof(msg)));
  for (int k = 0; k < 2; k++) {
    const idx_array *a = k ? y : x;
    /* contiguous layout: the strided parallel reads need no chunk decompression */
    if ((sp = H5Screate_simple(k ? 1 : 4, k ? yd : xd, NULL)) < 0 ||
        (d = H5Dcreate2(g, k ? "y" : "x", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, a->data) < 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot write /%s/%s to '%s': %s", split, k ? "y" : "x",
                   tmp, lt_h5_msg(msg, sizeof(msg)));
    H5Dclose(d);
    H5Sclose(sp);
    d = sp = H5I_INVALID_HID;
  }
done:
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  if (g >= 0) H5Gclose(g);
  return st;
}

static lt_status write_attrs(lt_ctx *ctx, const char *tmp, hid_t file, int num_classes,
                             const char *name) {
  lt_status st = LT_OK;
  hid_t sp = H5I_INVALID_HID, a = H5I_INVALID_HID, t = H5I_INVALID_HID;
  char msg[256];
  if ((sp = H5Screate(H5S_SCALAR)) < 0 ||
      (a = H5Acreate2(file, "num_classes", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      H5Awrite(a, H5T_NATIVE_INT, &num_classes) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot write attribute num_classes to '%s': %s", tmp,
                 lt_h5_msg(msg, sizeof(msg)));
  H5Aclose(a);
  a = H5I_INVALID_HID;
  /* a variable-length UTF-8 string: h5py reads it as str */
  if ((t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 ||
      H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
      (a = H5Acreate2(file, "name", t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      H5Awrite(a, t, &name) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot write attribute name to '%s': %s", tmp,
                 lt_h5_msg(msg, sizeof(msg)));
done:
  if (a >= 0) H5Aclose(a);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

static int max_label(const idx_array *y) {
  int m = 0;
  for (size_t i = 0; i < y->n; i++)
    if (y->data[i] > m) m = y->data[i];
  return m;
}

static lt_status import(lt_ctx *ctx, const char *train_images, const char *train_labels,
                        const char *test_images, const char *test_labels, const char *out,
                        const char *name) {
  lt_status st = LT_OK;
  idx_array tx = {0}, ty = {0}, ex = {0}, ey = {0};
  hid_t file = H5I_INVALID_HID;
  char *tmp = NULL, msg[256], base[256];
  const int has_test = test_images != NULL;
  if (!out || !*out) LT_FAIL_DONE(ctx, st, LT_ERR_ARG, "import-idx: no output file given");
  if (!train_images || !train_labels)
    LT_FAIL_DONE(ctx, st, LT_ERR_ARG, "import-idx: training images and labels are required");
  if ((test_images == NULL) != (test_labels == NULL))
    LT_FAIL_DONE(ctx, st, LT_ERR_ARG,
                 "import-idx: test images and test labels must be given together (got %s)",
                 test_images ? test_images : test_labels);
  if (!name || !*name) { /* default: the output file's base name without extension */
    const char *b = strrchr(out, '/');
    snprintf(base, sizeof(base), "%s", b ? b + 1 : out);
    char *dot = strrchr(base, '.');
    if (dot && dot != base) *dot = '\0';
    name = base;
  }

  LT_CHECK_DONE(ctx, st, read_pair(ctx, train_images, train_labels, &tx, &ty));
  int nc = max_label(&ty) + 1;
  if (has_test) {
    LT_CHECK_DONE(ctx, st, read_pair(ctx, test_images, test_labels, &ex, &ey));
    if (ex.h != tx.h || ex.w != tx.w)
      LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                   "test images '%s' are %u x %u pixels but training images '%s' are %u x %u",
                   test_images, ex.h, ex.w, train_images, tx.h, tx.w);
    if (max_label(&ey) + 1 > nc) nc = max_label(&ey) + 1;
  }
  if (nc < 2) nc = 2;

  size_t len = strlen(out) + 5;
  if (!(tmp = malloc(len))) LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory");
  snprintf(tmp, len, "%s.tmp", out);
  if ((file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot create '%s': %s", tmp,
                 lt_h5_msg(msg, sizeof(msg)));
  LT_CHECK_DONE(ctx, st, write_split(ctx, tmp, file, "train", &tx, &ty));
  if (has_test) LT_CHECK_DONE(ctx, st, write_split(ctx, tmp, file, "test", &ex, &ey));
  LT_CHECK_DONE(ctx, st, write_attrs(ctx, tmp, file, nc, name));
  herr_t cl = H5Fclose(file);
  file = H5I_INVALID_HID;
  if (cl < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot finish writing '%s': %s", tmp,
                 lt_h5_msg(msg, sizeof(msg)));
  if (rename(tmp, out) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
  lt_log(ctx, LT_LOG_INFO, "data: wrote '%s' (%s): train %u x %u x %u%s, %d classes\n", out,
         name, tx.n, tx.h, tx.w, has_test ? ", test too" : "", nc);
  if (has_test) lt_log(ctx, LT_LOG_INFO, "data: test split %u samples\n", ex.n);
done:
  if (file >= 0) H5Fclose(file);
  if (st != LT_OK && tmp) remove(tmp);
  free(tmp);
  lt_free(tx.data);
  lt_free(ty.data);
  lt_free(ex.data);
  lt_free(ey.data);
  return st;
}

lt_status lt_data_import_idx(lt_ctx *ctx, const char *train_images, const char *train_labels,
                             const char *test_images, const char *test_labels, const char *out,
                             const char *name) {
  lt_status st = LT_OK;
  if (ctx->rank == 0) {
    lt_h5_quiet q;
    lt_h5_quiet_on(&q);
    st = import(ctx, train_images, train_labels, test_images, test_labels, out, name);
    lt_h5_quiet_off(&q);
  }
  st = lt_agree(ctx, st);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}
