/* lethe data: read one split of the dataset file as this rank's strided shard
 * (one collective hyperslab read for x and one for y), validate it, convert the
 * features to float32 and standardise them; and `lethe data info`.
 *
 * Every check whose outcome could differ between ranks ends in an agreement
 * (lt_agree or an allreduce), so on any error every rank returns an error and
 * no rank is left waiting in a collective. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "lethe/data.h"

#define MAX_XRANK 4

/* The open arrays of one split. Handles are H5I_INVALID_HID when not open. */
typedef struct {
  hid_t x, y, xspace, yspace, xtype, ytype;
  int xrank;
  hsize_t xdims[MAX_XRANK];
  hsize_t n; /* samples */
  hsize_t d; /* features per sample */
  int x_u8;  /* 1: uint8 features, 0: float32 */
} h5split;

static void split_init(h5split *s) {
  memset(s, 0, sizeof(*s));
  s->x = s->y = s->xspace = s->yspace = s->xtype = s->ytype = H5I_INVALID_HID;
}

static void split_close(h5split *s) {
  if (s->xtype >= 0) H5Tclose(s->xtype);
  if (s->ytype >= 0) H5Tclose(s->ytype);
  if (s->xspace >= 0) H5Sclose(s->xspace);
  if (s->yspace >= 0) H5Sclose(s->yspace);
  if (s->x >= 0) H5Dclose(s->x);
  if (s->y >= 0) H5Dclose(s->y);
  split_init(s);
}

/* 1 when /<split>/<leaf> exists (checked level by level: H5Lexists fails on a
 * path whose intermediate group is missing). */
static int has_array(hid_t file, const char *split, const char *leaf) {
  char p[300];
  if (H5Lexists(file, split, H5P_DEFAULT) <= 0) return 0;
  snprintf(p, sizeof(p), "%s/%s", split, leaf);
  return H5Lexists(file, p, H5P_DEFAULT) > 0;
}

static void dims_str(char *buf, size_t len, const hsize_t *dims, int rank) {
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < rank && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (k < len) snprintf(buf + k, len - k, "]");
}

/* Open /<split>/x and /<split>/y and check their shapes and types. Local;
 * the result is the same on every rank (same file metadata). */
static lt_status open_split(lt_ctx *ctx, const char *path, hid_t file, const char *split,
                            h5split *s) {
  char p[300], tn[64], msg[256];
  for (int k = 0; k < 2; k++) {
    const char *leaf = k ? "y" : "x";
    if (!has_array(file, split, leaf))
      LT_ERROR(ctx, LT_ERR_DATA,
               "dataset file '%s' has no dataset /%s/%s (a split needs /%s/x and /%s/y)", path,
               split, leaf, split, split);
  }
  snprintf(p, sizeof(p), "/%s/x", split);
  s->x = H5Dopen2(file, p, H5P_DEFAULT);
  if (s->x < 0 || (s->xspace = H5Dget_space(s->x)) < 0 || (s->xtype = H5Dget_type(s->x)) < 0)
    LT_ERROR(ctx, LT_ERR_H5, "dataset file '%s': cannot open %s: %s", path, p,
             lt_h5_msg(msg, sizeof(msg)));
  s->xrank = H5Sget_simple_extent_ndims(s->xspace);
  if (s->xrank < 2 || s->xrank > MAX_XRANK)
    LT_ERROR(ctx, LT_ERR_DATA,
             "dataset file '%s': %s has rank %d; expected 2 [N,D], 3 [N,H,W] or 4 [N,C,H,W]", path,
             p, s->xrank);
  H5Sget_simple_extent_dims(s->xspace, s->xdims, NULL);
  H5T_class_t cls = H5Tget_class(s->xtype);
  size_t size = H5Tget_size(s->xtype);
  if (cls == H5T_INTEGER && size == 1 && H5Tget_sign(s->xtype) == H5T_SGN_NONE)
    s->x_u8 = 1;
  else if (cls == H5T_FLOAT && size == 4)
    s->x_u8 = 0;
  else
    LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': %s has type %s; supported are uint8 and float32",
             path, p, lt_data_h5_type_name(s->xtype, tn, sizeof(tn)));
  s->n = s->xdims[0];
  s->d = 1;
  for (int k = 1; k < s->xrank; k++) s->d *= s->xdims[k];
  if (s->d == 0 || s->d > INT_MAX)
    LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': %s has %llu features per sample; allowed 1 to %d",
             path, p, (unsigned long long)s->d, INT_MAX);

  snprintf(p, sizeof(p), "/%s/y", split);
  s->y = H5Dopen2(file, p, H5P_DEFAULT);
  if (s->y < 0 || (s->yspace = H5Dget_space(s->y)) < 0 || (s->ytype = H5Dget_type(s->y)) < 0)
    LT_ERROR(ctx, LT_ERR_H5, "dataset file '%s': cannot open %s: %s", path, p,
             lt_h5_msg(msg, sizeof(msg)));
  int yrank = H5Sget_simple_extent_ndims(s->yspace);
  if (yrank != 1)
    LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': %s has rank %d; expected 1 [N]", path, p, yrank);
  if (H5Tget_class(s->ytype) != H5T_INTEGER || H5Tget_size(s->ytype) > 8)
    LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': %s has type %s; labels must be integers", path, p,
             lt_data_h5_type_name(s->ytype, tn, sizeof(tn)));
  hsize_t ny = 0;
  H5Sget_simple_extent_dims(s->yspace, &ny, NULL);
  if (ny != s->n)
    LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': /%s/x has %llu samples but /%s/y has %llu labels",
             path, split, (unsigned long long)s->n, split, (unsigned long long)ny);
  if (s->n == 0) LT_ERROR(ctx, LT_ERR_DATA, "dataset file '%s': split /%s has no samples", path, split);
  long per_rank = lt_shard_count((long)s->n, 0, ctx->size);
  if (per_rank > INT_MAX)
    LT_ERROR(ctx, LT_ERR_DATA,
             "dataset file '%s': /%s has %llu samples, %ld per rank on %d ranks; at most %d per rank",
             path, split, (unsigned long long)s->n, per_rank, ctx->size, INT_MAX);
  return LT_OK;
}

/* Root attributes: num_classes (an integer >= 2, required) and name (a string, optional). */
static lt_status read_attrs(lt_ctx *ctx, const char *path, hid_t file, int *num_classes,
                            char *name, size_t len) {
  lt_status st = LT_OK;
  hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
  char *vstr = NULL, tn[64], msg[256];
  *num_classes = 0;
  name[0] = '\0';
  if (H5Aexists(file, "num_classes") <= 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "dataset file '%s' has no root attribute num_classes (an integer >= 2)", path);
  if ((a = H5Aopen(file, "num_classes", H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
      (sp = H5Aget_space(a)) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot open attribute num_classes: %s",
                 path, lt_h5_msg(msg, sizeof(msg)));
  if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "dataset file '%s': root attribute num_classes is %s with %lld element(s); "
                 "expected one integer", path, lt_data_h5_type_name(t, tn, sizeof(tn)),
                 (long long)H5Sget_simple_extent_npoints(sp));
  long long nc = 0;
  if (H5Aread(a, H5T_NATIVE_LLONG, &nc) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot read num_classes: %s", path,
                 lt_h5_msg(msg, sizeof(msg)));
  if (nc < 2 || nc > INT_MAX)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "dataset file '%s': num_classes = %lld; must be at least 2",
                 path, nc);
  *num_classes = (int)nc;
  H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
  a = t = sp = H5I_INVALID_HID;

  if (H5Aexists(file, "name") <= 0) goto done;
  if ((a = H5Aopen(file, "name", H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
      (sp = H5Aget_space(a)) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot open attribute name: %s", path,
                 lt_h5_msg(msg, sizeof(msg)));
  if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "dataset file '%s': root attribute name is %s; expected one string", path,
                 lt_data_h5_type_name(t, tn, sizeof(tn)));
  int variable = H5Tis_variable_str(t) > 0;
  /* fixed-length strings are converted to a null-terminated string of len bytes */
  if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
      H5Tset_size(mt, variable ? H5T_VARIABLE : len) < 0 ||
      (!variable && H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0) ||
      H5Aread(a, mt, variable ? (void *)&vstr : (void *)name) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot read attribute name: %s", path,
                 lt_h5_msg(msg, sizeof(msg)));
  if (variable) snprintf(name, len, "%s", vstr ? vstr : "");
  name[len - 1] = '\0';
done:
  if (vstr) H5free_memory(vstr);
  if (mt >= 0) H5Tclose(mt);
  if (a >= 0) H5Aclose(a);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  return st;
}

/* Collective: read this rank's strided shard (samples rank, rank+P, ...) of the
 * dataset dset [dims[0], dims[1..rank-1]] into buf [n_local, dims[1..]] as memtype. */
static lt_status read_shard(lt_ctx *ctx, const char *path, const char *what, hid_t dset,
                            hid_t fspace, int rank, const hsize_t *dims, hid_t memtype,
                            hsize_t n_local, void *buf) {
  lt_status st = LT_OK;
  hid_t ms = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  char msg[256];
  hsize_t start[MAX_XRANK], stride[MAX_XRANK], count[MAX_XRANK], block[MAX_XRANK],
      mdims[MAX_XRANK];
  for (int k = 0; k < rank; k++) {
    start[k] = 0;
    stride[k] = 1;
    count[k] = 1;
    block[k] = dims[k];
    mdims[k] = dims[k];
  }
  start[0] = (hsize_t)ctx->rank;
  stride[0] = (hsize_t)ctx->size;
  count[0] = n_local;
  block[0] = 1;
  mdims[0] = n_local > 0 ? n_local : 1;
  if ((ms = H5Screate_simple(rank, mdims, NULL)) < 0 ||
      (dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
      H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot set up the read of %s: %s", path,
                 what, lt_h5_msg(msg, sizeof(msg)));
  /* a rank without samples still takes part in the collective read */
  herr_t sel = n_local > 0
                   ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, stride, count, block)
                   : (H5Sselect_none(fspace) < 0 ? -1 : H5Sselect_none(ms));
  if (sel < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot select the shard of %s: %s", path,
                 what, lt_h5_msg(msg, sizeof(msg)));
  if (H5Dread(dset, memtype, ms, fspace, dxpl, buf) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': reading %s failed: %s", path, what,
                 lt_h5_msg(msg, sizeof(msg)));
  if (ctx->log_level >= LT_LOG_DEBUG) {
    H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
    H5Pget_mpio_actual_io_mode(dxpl, &mode);
    lt_log(ctx, LT_LOG_DEBUG, "data: read %s of '%s' with %s I/O\n", what, path,
           mode == H5D_MPIO_NO_COLLECTIVE ? "independent" : "collective");
  }
done:
  if (ms >= 0) H5Sclose(ms);
  if (dxpl >= 0) H5Pclose(dxpl);
  return st;
}

/* Element i of an array of native integers of the given size and signedness. */
static int64_t int_at(const void *raw, size_t i, size_t size, int is_signed) {
  const unsigned char *p = (const unsigned char *)raw + i * size;
  switch (size) {
  case 1: return is_signed ? (int64_t)(int8_t)p[0] : (int64_t)p[0];
  case 2: {
    uint16_t u;
    memcpy(&u, p, 2);
    return is_signed ? (int64_t)(int16_t)u : (int64_t)u;
  }
  case 4: {
    uint32_t u;
    memcpy(&u, p, 4);
    return is_signed ? (int64_t)(int32_t)u : (int64_t)u;
  }
  default: {
    uint64_t u;
    memcpy(&u, p, 8);
    if (is_signed) return (int64_t)u;
    return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
  }
  }
}

/* Collective: combine a defect found locally (count rows, the first at global
 * index `first` with an associated `value`) into the total over the ranks, the
 * smallest global index and its value, identical on every rank. */
static lt_status agree_defect(lt_ctx *ctx, long count, int64_t first, int64_t value, long *total,
                              int64_t *gfirst, int64_t *gvalue) {
  LT_CHECK_MPI(ctx, MPI_Allreduce(&count, total, 1, MPI_LONG, MPI_SUM, ctx->comm));
  if (*total == 0) return LT_OK;
  int64_t f = count > 0 ? first : INT64_MAX;
  LT_CHECK_MPI(ctx, MPI_Allreduce(&f, gfirst, 1, MPI_INT64_T, MPI_MIN, ctx->comm));
  int64_t v = (count > 0 && first == *gfirst) ? value : INT64_MIN;
  LT_CHECK_MPI(ctx, MPI_Allreduce(&v, gvalue, 1, MPI_INT64_T, MPI_MAX, ctx->comm));
  return LT_OK;
}

static lt_status alloc(lt_ctx *ctx, void **p, size_t n, size_t size, const char *what) {
  if (lt_calloc_aligned(p, n, size) != 0)
    LT_ERROR(ctx, LT_ERR_MEM, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
  return LT_OK;
}

static lt_status check_args(lt_ctx *ctx, const char *path, const char *split,
                            const lt_data_opts *opts) {
  if (!split || !*split || strchr(split, '/') || strlen(split) > 200)
    LT_ERROR(ctx, LT_ERR_ARG, "invalid split name '%s' for dataset file '%s' (e.g. train, test)",
             split ? split : "(null)", path ? path : "(null)");
  if (opts->standardize && !(opts->std > 0) && strcmp(split, "train") != 0)
    LT_ERROR(ctx, LT_ERR_ARG,
             "standardising split '%s' of '%s' needs the training split's mean and std: "
             "load split 'train' first with the same options", split, path);
  if (opts->standardize && opts->std > 0 && !(isfinite(opts->mean) && isfinite(opts->std)))
    LT_ERROR(ctx, LT_ERR_ARG, "standardisation statistics mean %g, std %g are not finite",
             (double)opts->mean, (double)opts->std);
  return lt_data_check_file(ctx, path, "dataset");
}

static lt_status load(lt_ctx *ctx, const char *path, const char *split, lt_data_opts *opts,
                      lt_dataset **out) {
  h5split s;
  split_init(&s);
  hid_t file = H5I_INVALID_HID, fapl = H5I_INVALID_HID, ymem = H5I_INVALID_HID;
  lt_dataset *ds = NULL;
  void *xraw = NULL, *yraw = NULL;
  char msg[256];

  /* 1. arguments and the file itself: local checks, then agreement */
  lt_status st = check_args(ctx, path, split, opts);
  if (st == LT_OK && H5Fis_hdf5(path) <= 0)
    st = LT_DATA_ERR(ctx, LT_ERR_DATA, "dataset file '%s' is not an HDF5 file", path);
  st = lt_agree(ctx, st);
  if (st != LT_OK) return st;

  /* 2. collective open with MPI-IO */
  if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) >= 0 &&
      H5Pset_fapl_mpio(fapl, ctx->comm, MPI_INFO_NULL) >= 0)
    file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (file < 0)
    st = LT_DATA_ERR(ctx, LT_ERR_H5, "cannot open dataset file '%s' with MPI-IO: %s", path,
                     lt_h5_msg(msg, sizeof(msg)));
  if (fapl >= 0) H5Pclose(fapl);
  st = lt_agree(ctx, st);
  if (st != LT_OK) goto done;

  /* 3. metadata (identical on every rank) and buffers */
  int num_classes = 0;
  char name[sizeof(ds->name)];
  st = open_split(ctx, path, file, split, &s);
  if (st == LT_OK) st = read_attrs(ctx, path, file, &num_classes, name, sizeof(name));
  hsize_t n = 0;
  size_t nd = 0, ysize = 0;
  int ysigned = 0;
  if (st == LT_OK) {
    n = (hsize_t)lt_shard_count((long)s.n, ctx->rank, ctx->size);
    nd = (size_t)n * (size_t)s.d;
    if ((ymem = H5Tget_native_type(s.ytype, H5T_DIR_ASCEND)) < 0)
      st = LT_DATA_ERR(ctx, LT_ERR_H5, "dataset file '%s': /%s/y: no native type: %s", path,
                       split, lt_h5_msg(msg, sizeof(msg)));
  }
  if (st == LT_OK) {
    ysize = H5Tget_size(ymem);
    ysigned = H5Tget_sign(ymem) != H5T_SGN_NONE;
    st = alloc(ctx, (void **)&ds, 1, sizeof(*ds), "the dataset");
  }
  if (st == LT_OK) st = alloc(ctx, (void **)&ds->x, nd, sizeof(float), "the features");
  if (st == LT_OK) st = alloc(ctx, (void **)&ds->y, n, sizeof(int32_t), "the labels");
  if (st == LT_OK) st = alloc(ctx, (void **)&ds->index, n, sizeof(int64_t), "the sample index");
  if (st == LT_OK) st = alloc(ctx, &yraw, n, ysize, "the raw labels");
  if (st == LT_OK && s.x_u8) st = alloc(ctx, &xraw, nd, 1, "the raw features");
  st = lt_agree(ctx, st);
  if (st != LT_OK) goto done;

  /* 4. one collective read each for x and y (every rank calls both) */
  char what[300];
  snprintf(what, sizeof(what), "/%s/x", split);
  lt_status sx = read_shard(ctx, path, what, s.x, s.xspace, s.xrank, s.xdims,
                            s.x_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, n,
                            s.x_u8 ? xraw : (void *)ds->x);
  snprintf(what, sizeof(what), "/%s/y", split);
  lt_status sy = read_shard(ctx, path, what, s.y, s.yspace, 1, &s.n, ymem, n, yraw);
  st = lt_agree(ctx, sx != LT_OK ? sx : sy);
  if (st != LT_OK) goto done;

  ds->n = (int)n;
  ds->n_global = (long)s.n;
  ds->d = (int)s.d;
  if (s.xrank >= 3) { /* [N, H, W] or [N, C, H, W] */
    ds->c = s.xrank == 4 ? (int)s.xdims[1] : 1;
    ds->h = (int)s.xdims[s.xrank - 2];
    ds->w = (int)s.xdims[s.xrank - 1];
  }
  ds->num_classes = num_classes;
  snprintf(ds->name, sizeof(ds->name), "%s", name);
  for (hsize_t i = 0; i < n; i++) ds->index[i] = (int64_t)ctx->rank + (int64_t)i * ctx->size;

  /* 5. labels in [0, num_classes), agreed over the ranks */
  long bad = 0, total = 0;
  int64_t first = 0, value = 0, gfirst = 0, gvalue = 0;
  for (hsize_t i = 0; i < n; i++) {
    int64_t v = int_at(yraw, i, ysize, ysigned);
    if (v < 0 || v >= num_classes) {
      if (bad++ == 0) {
        first = ds->index[i];
        value = v;
      }
    }
    ds->y[i] = (int32_t)(v < 0 || v >= num_classes ? 0 : v);
  }
  LT_CHECK_DONE(ctx, st, agree_defect(ctx, bad, first, value, &total, &gfirst, &gvalue));
  if (total > 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "dataset file '%s': label /%s/y[%lld] = %lld is outside [0, %d) "
                 "(num_classes = %d); %ld label(s) out of range in this split",
                 path, split, (long long)gfirst, (long long)gvalue, num_classes, num_classes,
                 total);

  /* 6. features to float: uint8 optionally scaled to [0, 1]; float32 must be finite */
  if (s.x_u8) {
    const uint8_t *r = xraw;
    if (opts->scale)
      for (size_t i = 0; i < nd; i++) ds->x[i] = (float)r[i] / 255.0f;
    else
      for (size_t i = 0; i < nd; i++) ds->x[i] = (float)r[i];
  } else {
    bad = 0;
    for (size_t i = 0; i < nd; i++) {
      if (!isfinite(ds->x[i]) && bad++ == 0) {
        first = ds->index[i / s.d];
        value = (int64_t)(i % s.d);
      }
    }
    LT_CHECK_DONE(ctx, st, agree_defect(ctx, bad, first, value, &total, &gfirst, &gvalue));
    if (total > 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                   "dataset file '%s': /%s/x of sample %lld, feature %lld is not finite; "
                   "%ld non-finite value(s) in this split",
                   path, split, (long long)gfirst, (long long)gvalue, total);
  }

  /* 7. standardisation with the global statistics of the training split */
  if (opts->standardize) {
    if (!(opts->std > 0)) {
      double acc[2] = {0.0, 0.0}; /* sum, sum of squares */
      for (size_t i = 0; i < nd; i++) {
        acc[0] += ds->x[i];
        acc[1] += (double)ds->x[i] * ds->x[i];
      }
      if (MPI_Allreduce(MPI_IN_PLACE, acc, 2, MPI_DOUBLE, MPI_SUM, ctx->comm) != MPI_SUCCESS)
        LT_FAIL_DONE(ctx, st, LT_ERR_MPI, "MPI_Allreduce of the feature statistics failed");
      double cnt = (double)s.n * (double)s.d;
      double mean = acc[0] / cnt, var = acc[1] / cnt - mean * mean;
      if (!(var > 1e-12 * (1.0 + mean * mean)))
        LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                     "dataset file '%s': /%s/x is constant (mean %g, variance %g); "
                     "cannot standardise", path, split, mean, var);
      opts->mean = (float)mean;
      opts->std = (float)sqrt(var);
    }
    const float mean = opts->mean, inv = 1.0f / opts->std;
    for (size_t i = 0; i < nd; i++) ds->x[i] = (ds->x[i] - mean) * inv;
  }

done:
  split_close(&s);
  if (ymem >= 0) H5Tclose(ymem);
  if (file >= 0) H5Fclose(file); /* collective: every rank that opened it gets here */
  lt_free(xraw);
  lt_free(yraw);
  if (st != LT_OK)
    lt_dataset_destroy(&ds);
  else
    *out = ds;
  return st;
}

lt_status lt_dataset_load(lt_ctx *ctx, const char *path, const char *split, lt_data_opts *opts,
                          lt_dataset **ds) {
  *ds = NULL;
  lt_data_opts defaults = {.scale = 1, .standardize = 0, .mean = 0.0f, .std = 0.0f};
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = load(ctx, path, split, opts ? opts : &defaults, ds);
  lt_h5_quiet_off(&q);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}

void lt_dataset_destroy(lt_dataset **pds) {
  if (!pds || !*pds) return;
  lt_dataset *ds = *pds;
  lt_free(ds->x);
  lt_free(ds->y);
  lt_free(ds->index);
  lt_free(ds);
  *pds = NULL;
}

/* ---------------------------------------------------------------- info */

static lt_status info_split(lt_ctx *ctx, const char *path, hid_t file, const char *split,
                            int num_classes, FILE *out) {
  lt_status st = LT_OK;
  h5split s;
  split_init(&s);
  int64_t *y = NULL;
  long *counts = NULL;
  hid_t g = H5I_INVALID_HID, gs = H5I_INVALID_HID, gt = H5I_INVALID_HID;
  char tx[64], ty[64], dx[160], dy[64], msg[256];
  LT_CHECK_DONE(ctx, st, open_split(ctx, path, file, split, &s));
  dims_str(dx, sizeof(dx), s.xdims, s.xrank);
  dims_str(dy, sizeof(dy), &s.n, 1);
  fprintf(out, "  split %s: %llu samples, %llu features\n", split, (unsigned long long)s.n,
          (unsigned long long)s.d);
  fprintf(out, "    x      %-8s %s\n", lt_data_h5_type_name(s.xtype, tx, sizeof(tx)), dx);
  fprintf(out, "    y      %-8s %s\n", lt_data_h5_type_name(s.ytype, ty, sizeof(ty)), dy);
  if (has_array(file, split, "group")) {
    char p[300];
    hsize_t gd[MAX_XRANK] = {0};
    snprintf(p, sizeof(p), "/%s/group", split);
    if ((g = H5Dopen2(file, p, H5P_DEFAULT)) < 0 || (gs = H5Dget_space(g)) < 0 ||
        (gt = H5Dget_type(g)) < 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot open %s: %s", path, p,
                   lt_h5_msg(msg, sizeof(msg)));
    int gr = H5Sget_simple_extent_ndims(gs);
    if (gr < 1 || gr > MAX_XRANK)
      LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "dataset file '%s': %s has rank %d; expected 1 [N]", path,
                   p, gr);
    H5Sget_simple_extent_dims(gs, gd, NULL);
    dims_str(dx, sizeof(dx), gd, gr);
    fprintf(out, "    group  %-8s %s\n", lt_data_h5_type_name(gt, tx, sizeof(tx)), dx);
  }
  LT_CHECK_DONE(ctx, st, alloc(ctx, (void **)&y, s.n, sizeof(*y), "the labels"));
  LT_CHECK_DONE(ctx, st, alloc(ctx, (void **)&counts, (size_t)num_classes, sizeof(*counts),
                               "the class counts"));
  if (H5Dread(s.y, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': reading /%s/y failed: %s", path, split,
                 lt_h5_msg(msg, sizeof(msg)));
  long outside = 0;
  for (hsize_t i = 0; i < s.n; i++) {
    if (y[i] >= 0 && y[i] < num_classes)
      counts[y[i]]++;
    else
      outside++;
  }
  fprintf(out, "    class counts (class:count):");
  for (int c = 0; c < num_classes; c++)
    fprintf(out, "%s%d:%ld", c % 10 == 0 ? "\n      " : " ", c, counts[c]);
  fprintf(out, "\n");
  if (outside > 0)
    fprintf(out, "    WARNING: %ld label(s) outside [0, %d)\n", outside, num_classes);
done:
  if (gt >= 0) H5Tclose(gt);
  if (gs >= 0) H5Sclose(gs);
  if (g >= 0) H5Dclose(g);
  split_close(&s);
  lt_free(y);
  lt_free(counts);
  return st;
}

static lt_status info(lt_ctx *ctx, const char *path, FILE *out) {
  lt_status st = LT_OK;
  hid_t file = H5I_INVALID_HID;
  char msg[256], name[256];
  LT_CHECK_DONE(ctx, st, lt_data_check_file(ctx, path, "dataset"));
  if (H5Fis_hdf5(path) <= 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "dataset file '%s' is not an HDF5 file", path);
  if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot open dataset file '%s': %s", path,
                 lt_h5_msg(msg, sizeof(msg)));
  int num_classes = 0;
  LT_CHECK_DONE(ctx, st, read_attrs(ctx, path, file, &num_classes, name, sizeof(name)));
  fprintf(out, "dataset file %s\n  name         %s\n  num_classes  %d\n", path,
          name[0] ? name : "(none)", num_classes);
  H5G_info_t gi;
  if (H5Gget_info(file, &gi) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot list the root group: %s", path,
                 lt_h5_msg(msg, sizeof(msg)));
  int nsplits = 0;
  for (hsize_t i = 0; i < gi.nlinks; i++) {
    char split[256];
    if (H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, split, sizeof(split),
                           H5P_DEFAULT) < 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_H5, "dataset file '%s': cannot list the root group: %s", path,
                   lt_h5_msg(msg, sizeof(msg)));
    if (!has_array(file, split, "x") && !has_array(file, split, "y")) {
      fprintf(out, "  (%s: not a split, no x and y)\n", split);
      continue;
    }
    LT_CHECK_DONE(ctx, st, info_split(ctx, path, file, split, num_classes, out));
    nsplits++;
  }
  if (nsplits == 0) fprintf(out, "  WARNING: no splits (groups with x and y)\n");
  fflush(out);
done:
  if (file >= 0) H5Fclose(file);
  return st;
}

lt_status lt_data_info(lt_ctx *ctx, const char *path, FILE *out) {
  lt_status st = LT_OK;
  if (ctx->rank == 0) {
    lt_h5_quiet q;
    lt_h5_quiet_on(&q);
    st = info(ctx, path, out ? out : stdout);
    lt_h5_quiet_off(&q);
  }
  st = lt_agree(ctx, st);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}

lt_status lt_dataset_subset(lt_ctx *ctx, const lt_dataset *ds, const uint8_t *sel, uint8_t want,
                            lt_dataset **out) {
  *out = NULL;
  int n = 0;
  for (int i = 0; i < ds->n; i++) n += sel[i] == want;
  lt_dataset *s = NULL;
  lt_status st = LT_OK;
  const size_t nr = (size_t)n;
  const int nomem = lt_calloc_aligned((void **)&s, 1, sizeof(*s)) != 0 ||
                    lt_calloc_aligned((void **)&s->x, nr * (size_t)ds->d, sizeof(float)) != 0 ||
                    lt_calloc_aligned((void **)&s->y, nr, sizeof(int32_t)) != 0 ||
                    lt_calloc_aligned((void **)&s->index, nr, sizeof(int64_t)) != 0;
  /* one collective whatever happened here: the global count and the ranks out of memory */
  long v[2] = {nomem ? 0 : n, nomem}, g[2] = {0, 0};
  if (MPI_Allreduce(v, g, 2, MPI_LONG, MPI_SUM, ctx->comm) != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
  else if (g[1] > 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory copying %d rows of '%s' (on %ld rank(s))", n, ds->name, g[1]);
  if (st == LT_OK) {
    *s = (lt_dataset){.n = n, .n_global = g[0], .d = ds->d, .num_classes = ds->num_classes,
                      .x = s->x, .y = s->y, .index = s->index, .c = ds->c, .h = ds->h, .w = ds->w};
    snprintf(s->name, sizeof(s->name), "%.60s", ds->name);
    int k = 0;
    for (int i = 0; i < ds->n; i++) {
      if (sel[i] != want) continue;
      memcpy(s->x + (size_t)k * (size_t)ds->d, ds->x + (size_t)i * (size_t)ds->d,
             (size_t)ds->d * sizeof(float));
      s->y[k] = ds->y[i];
      s->index[k] = ds->index[i];
      k++;
    }
  }
  if (st != LT_OK) {
    lt_dataset_destroy(&s);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  *out = s;
  return LT_OK;
}

lt_status lt_dataset_holdout(lt_ctx *ctx, lt_dataset **train, long n_valid, lt_dataset **valid) {
  *valid = NULL;
  const lt_dataset *ds = *train;
  if (n_valid <= 0 || n_valid >= ds->n_global)
    LT_ERROR(ctx, LT_ERR_ARG,
             "a validation hold-out of %ld samples from the %ld of '%s': it must be in [1, %ld]",
             n_valid, ds->n_global, ds->name, ds->n_global - 1);
  uint8_t *sel = NULL;
  int nomem = lt_calloc_aligned((void **)&sel, (size_t)ds->n + 1, 1) != 0, any = 0;
  if (MPI_Allreduce(&nomem, &any, 1, MPI_INT, MPI_MAX, ctx->comm) != MPI_SUCCESS || any) {
    lt_free(sel);
    LT_ERROR(ctx, any ? LT_ERR_MEM : LT_ERR_MPI, "%s selecting the hold-out of '%s'",
             any ? "out of memory (on some rank)" : "MPI_Allreduce failed", ds->name);
  }
  const long first = ds->n_global - n_valid;
  for (int i = 0; i < ds->n; i++) sel[i] = ds->index[i] >= first;
  lt_dataset *rest = NULL;
  lt_status st = lt_dataset_subset(ctx, ds, sel, 1, valid);
  if (st == LT_OK) st = lt_dataset_subset(ctx, ds, sel, 0, &rest);
  lt_free(sel);
  if (st != LT_OK) {
    lt_dataset_destroy(valid);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  lt_dataset_destroy(train);
  *train = rest;
  return LT_OK;
}
