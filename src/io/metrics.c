/* metrics.h5 with parallel HDF5: buffered rows, collective flushes. */
#include "lethe/metrics.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lethe/h5io.h"

#define MAX_SUMMARY 16
#define CHUNK 4096

static const char *const ep_names[LT_EP_NCOLS] = {
    "/epoch/train_loss", "/epoch/train_acc",     "/epoch/test_loss",
    "/epoch/test_acc",   "/epoch/samples_per_s", "/epoch/time",
    "/epoch/flops"};

struct lt_metrics {
  lt_ctx *ctx;
  char path[1024];
  lt_metrics_info info;
  char created[64];
  long steps_written, epochs_written; /* rows already in the file */
  long nbuf, cap;                     /* buffered steps */
  double *loss, *lr, *step_time;      /* [cap] */
  long nep, epcap;
  double *ep;                         /* column-major [LT_EP_NCOLS][epcap] */
  int nsum;
  char sum_name[MAX_SUMMARY][32];
  double sum_val[MAX_SUMMARY];
  int cl_T, cl_k, cl_til, cl_init; /* CL matrices recorded (cl_T > 0) */
  double *cl_R, *cl_Rtil, *cl_b;   /* [T*T], [T*T], [T] */
  int nfix;                        /* lt_metrics_fixed datasets */
  char fix_name[8][64];
  const double *fix_v[8];
  int fix_n[8];
};

static hid_t open_mpio(lt_ctx *ctx, const char *path, int create) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, ctx->comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  hid_t f = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                   : H5Fopen(path, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  return f;
}

/* Create an extendible float64 dataset of rank 1 or 2 (rows fixed) filled with NaN. */
static lt_status create_series(lt_ctx *ctx, hid_t f, const char *name, int rank, hsize_t rows,
                               hsize_t len) {
  hsize_t dims[2] = {rank == 1 ? len : rows, len};
  hsize_t maxd[2] = {rank == 1 ? H5S_UNLIMITED : rows, H5S_UNLIMITED};
  hsize_t chunk[2] = {rank == 1 ? CHUNK : 1, CHUNK};
  if (rank == 2) chunk[0] = rows;
  hid_t space = H5Screate_simple(rank, dims, maxd);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  double nan = NAN;
  H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F64LE, space, lcpl, dcpl, H5P_DEFAULT);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  if (ds < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot create dataset %s", name);
  H5Dclose(ds);
  return LT_OK;
}

/* Collective write of doubles v through the selections ms (memory) and fs (file)
 * of dataset ds (skipped when !any; every rank must pass the same any), then close
 * all three. Returns a negative value when the write failed. */
static herr_t write_close(hid_t ds, hid_t ms, hid_t fs, const double *v, int any) {
  herr_t e = 0;
  if (any) {
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    e = H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, dxpl, v);
    H5Pclose(dxpl);
  }
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(ds);
  return e;
}

/* Write n values at [row, off .. off+n) of a series extended to off+n columns.
 * Collective: every rank calls; only ranks with write != 0 contribute data. */
static lt_status append(lt_ctx *ctx, hid_t f, const char *name, int rank, hsize_t row,
                        hsize_t off, hsize_t n, const double *v, int write) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) LT_ERROR(ctx, LT_ERR_H5, "metrics file lacks %s", name);
  hid_t fs = H5Dget_space(ds);
  hsize_t dims[2], maxd[2];
  H5Sget_simple_extent_dims(fs, dims, maxd);
  H5Sclose(fs);
  hsize_t want[2] = {rank == 1 ? off + n : dims[0], off + n};
  herr_t e = H5Dset_extent(ds, want);
  fs = H5Dget_space(ds);
  hsize_t cnt = write ? n : 0;
  hid_t ms = H5Screate_simple(1, &n, NULL);
  if (cnt) {
    hsize_t start[2] = {rank == 1 ? off : row, off}, count[2] = {rank == 1 ? n : 1, n};
    e |= H5Sselect_hyperslab(fs, H5S_SELECT_SET, rank == 1 ? &start[0] : start, NULL,
                             rank == 1 ? &count[0] : count, NULL);
  } else {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
  }
  e |= write_close(ds, ms, fs, v, n > 0);
  if (e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot write %s of the metrics file", name);
  return LT_OK;
}

/* Cut a series back to len columns (resume). */
static lt_status truncate_series(lt_ctx *ctx, hid_t f, const char *name, hsize_t len) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) LT_ERROR(ctx, LT_ERR_H5, "metrics file lacks %s", name);
  hid_t fs = H5Dget_space(ds);
  int rank = H5Sget_simple_extent_ndims(fs);
  hsize_t dims[2];
  H5Sget_simple_extent_dims(fs, dims, NULL);
  H5Sclose(fs);
  herr_t e = 0;
  if (dims[rank - 1] > len) {
    dims[rank - 1] = len;
    e = H5Dset_extent(ds, dims);
  } else if (dims[rank - 1] < len) {
    H5Dclose(ds);
    LT_ERROR(ctx, LT_ERR_DATA, "%s has %llu rows, fewer than the %llu of the snapshot resumed",
             name, (unsigned long long)dims[rank - 1], (unsigned long long)len);
  }
  H5Dclose(ds);
  if (e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot truncate %s", name);
  return LT_OK;
}

static lt_status ranks_rows(lt_ctx *ctx, hid_t f, int *rows) {
  hid_t ds = H5Dopen2(f, "/ranks/step_time", H5P_DEFAULT);
  if (ds < 0) LT_ERROR(ctx, LT_ERR_H5, "metrics file lacks /ranks/step_time");
  hid_t fs = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(fs, dims, NULL);
  H5Sclose(fs);
  H5Dclose(ds);
  *rows = (int)dims[0];
  return LT_OK;
}

static lt_status create_layout(lt_ctx *ctx, hid_t f, hsize_t steps, hsize_t epochs) {
  LT_CHECK(ctx, create_series(ctx, f, "/train/loss", 1, 0, steps));
  LT_CHECK(ctx, create_series(ctx, f, "/train/lr", 1, 0, steps));
  LT_CHECK(ctx, create_series(ctx, f, "/train/step_time", 1, 0, steps));
  LT_CHECK(ctx, create_series(ctx, f, "/ranks/step_time", 2, (hsize_t)ctx->size, steps));
  for (int c = 0; c < LT_EP_NCOLS; c++)
    LT_CHECK(ctx, create_series(ctx, f, ep_names[c], 1, 0, epochs));
  return LT_OK;
}

static lt_status reopen_layout(lt_ctx *ctx, hid_t f, hsize_t steps, hsize_t epochs) {
  LT_CHECK(ctx, truncate_series(ctx, f, "/train/loss", steps));
  LT_CHECK(ctx, truncate_series(ctx, f, "/train/lr", steps));
  LT_CHECK(ctx, truncate_series(ctx, f, "/train/step_time", steps));
  for (int c = 0; c < LT_EP_NCOLS; c++) LT_CHECK(ctx, truncate_series(ctx, f, ep_names[c], epochs));
  int rows = 0;
  LT_CHECK(ctx, ranks_rows(ctx, f, &rows));
  if (rows == ctx->size) {
    LT_CHECK(ctx, truncate_series(ctx, f, "/ranks/step_time", steps));
  } else { /* resharded run: per-rank rows of the earlier rank count do not map */
    if (H5Ldelete(f, "/ranks/step_time", H5P_DEFAULT) < 0)
      LT_ERROR(ctx, LT_ERR_H5, "cannot replace /ranks/step_time");
    LT_CHECK(ctx, create_series(ctx, f, "/ranks/step_time", 2, (hsize_t)ctx->size, steps));
  }
  return LT_OK;
}

static lt_status write_attrs(lt_metrics *m, hid_t f) {
  lt_ctx *ctx = m->ctx;
  LT_CHECK(ctx, lt_h5_attr_provenance(ctx, f, m->info.deck_text, m->info.blis_kernels,
                                      m->info.blis_threads));
  LT_CHECK(ctx, lt_h5_attr_i64(ctx, f, "seed", (int64_t)m->info.seed));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, f, "created", m->created));
  for (int i = 0; i < m->nsum; i++)
    LT_CHECK(ctx, lt_h5_attr_f64(ctx, f, m->sum_name[i], m->sum_val[i]));
  return LT_OK;
}

static lt_status metrics_open_file(lt_metrics *m, long keep_steps, long keep_epochs) {
  lt_ctx *ctx = m->ctx;
  int resume = keep_steps >= 0;
  hid_t f = open_mpio(ctx, m->path, !resume);
  if (f < 0)
    LT_ERROR(ctx, LT_ERR_IO, "cannot %s the metrics file '%s'", resume ? "reopen" : "create",
             m->path);
  lt_status st = resume ? reopen_layout(ctx, f, (hsize_t)keep_steps, (hsize_t)keep_epochs)
                        : create_layout(ctx, f, 0, 0);
  if (st == LT_OK) st = write_attrs(m, f);
  if (H5Fclose(f) < 0 && st == LT_OK)
    st = lt_error_set(ctx, LT_ERR_H5, __FILE__, __LINE__, __func__, "cannot close '%s'", m->path);
  LT_CHECK(ctx, st);
  return LT_OK;
}

lt_status lt_metrics_open(lt_ctx *ctx, const char *path, const lt_metrics_info *info,
                          long keep_steps, long keep_epochs, long max_buffered,
                          lt_metrics **out) {
  *out = NULL;
  lt_metrics *m = NULL;
  LT_CALLOC(ctx, m, 1);
  m->ctx = ctx;
  snprintf(m->path, sizeof(m->path), "%s", path);
  m->info = *info;
  time_t now = time(NULL);
  struct tm tmv;
  strftime(m->created, sizeof(m->created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
  m->cap = max_buffered > 0 ? max_buffered : 1;
  m->epcap = 16;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&m->loss, (size_t)m->cap, sizeof(double)) ||
      lt_calloc_aligned((void **)&m->lr, (size_t)m->cap, sizeof(double)) ||
      lt_calloc_aligned((void **)&m->step_time, (size_t)m->cap, sizeof(double)) ||
      lt_calloc_aligned((void **)&m->ep, (size_t)m->epcap * LT_EP_NCOLS, sizeof(double)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory for %ld buffered metric rows", m->cap);
  st = lt_agree(ctx, st);
  if (st == LT_OK) st = lt_agree(ctx, metrics_open_file(m, keep_steps, keep_epochs));
  if (st != LT_OK) {
    LT_FREE(m->loss);
    LT_FREE(m->lr);
    LT_FREE(m->step_time);
    LT_FREE(m->ep);
    lt_free(m);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  m->steps_written = keep_steps > 0 ? keep_steps : 0;
  m->epochs_written = keep_epochs > 0 ? keep_epochs : 0;
  *out = m;
  return LT_OK;
}

lt_status lt_metrics_step(lt_metrics *m, double loss, double lr, double step_time) {
  if (m->nbuf >= m->cap)
    LT_ERROR(m->ctx, LT_ERR_INTERNAL, "metrics: more than %ld steps buffered between flushes",
             m->cap);
  m->loss[m->nbuf] = loss;
  m->lr[m->nbuf] = lr;
  m->step_time[m->nbuf] = step_time;
  m->nbuf++;
  return LT_OK;
}

lt_status lt_metrics_epoch(lt_metrics *m, const double *row) {
  if (m->nep >= m->epcap) { /* epochs are rare: growing here is not in a hot loop */
    double *ep = NULL;
    if (lt_calloc_aligned((void **)&ep, (size_t)m->epcap * 2 * LT_EP_NCOLS, sizeof(double)))
      LT_ERROR(m->ctx, LT_ERR_MEM, "out of memory for metric epochs");
    for (int c = 0; c < LT_EP_NCOLS; c++)
      memcpy(ep + (size_t)c * (size_t)m->epcap * 2, m->ep + (size_t)c * (size_t)m->epcap,
             (size_t)m->nep * sizeof(double));
    lt_free(m->ep);
    m->ep = ep;
    m->epcap *= 2;
  }
  for (int c = 0; c < LT_EP_NCOLS; c++) m->ep[(size_t)c * (size_t)m->epcap + (size_t)m->nep] = row[c];
  m->nep++;
  return LT_OK;
}

lt_status lt_metrics_summary(lt_metrics *m, const char *name, double value) {
  for (int i = 0; i < m->nsum; i++)
    if (strcmp(m->sum_name[i], name) == 0) {
      m->sum_val[i] = value;
      return LT_OK;
    }
  if (m->nsum >= MAX_SUMMARY || strlen(name) >= sizeof(m->sum_name[0]))
    LT_ERROR(m->ctx, LT_ERR_INTERNAL, "metrics: too many or too long summary names ('%s')", name);
  snprintf(m->sum_name[m->nsum], sizeof(m->sum_name[0]), "%s", name);
  m->sum_val[m->nsum++] = value;
  return LT_OK;
}

lt_cl_summary lt_cl_summarize(int T, int k, const double *R, const double *b) {
  lt_cl_summary s = {NAN, NAN, NAN, NAN};
  if (k < 1 || k > T) return s;
  const double *last = R + (size_t)(k - 1) * (size_t)T;
  double acc = 0.0;
  for (int j = 0; j < k; j++) acc += last[j];
  s.acc = acc / k;
  if (k >= 2) {
    double bwt = 0.0, fgt = 0.0, fwt = 0.0;
    for (int j = 0; j < k - 1; j++) {
      bwt += last[j] - R[(size_t)j * (size_t)T + (size_t)j];
      double best = -INFINITY;
      for (int l = 0; l < k - 1; l++) best = fmax(best, R[(size_t)l * (size_t)T + (size_t)j]);
      fgt += best - last[j];
    }
    s.bwt = bwt / (k - 1);
    s.forgetting = fgt / (k - 1);
    if (b) {
      for (int j = 1; j < k; j++) fwt += R[(size_t)(j - 1) * (size_t)T + (size_t)j] - b[j];
      s.fwt = fwt / (k - 1);
    }
  }
  return s;
}

lt_status lt_metrics_cl(lt_metrics *m, int T, int k, const double *R, const double *R_til,
                        const double *b) {
  lt_ctx *ctx = m->ctx;
  if (T < 1 || k < 0 || k > T || (m->cl_T && m->cl_T != T))
    LT_ERROR(ctx, LT_ERR_INTERNAL, "metrics: CL matrix of %d tasks (%d trained; earlier T %d)", T,
             k, m->cl_T);
  if (!m->cl_T) {
    LT_CALLOC(ctx, m->cl_R, (size_t)T * (size_t)T);
    LT_CALLOC(ctx, m->cl_Rtil, (size_t)T * (size_t)T);
    LT_CALLOC(ctx, m->cl_b, T);
    m->cl_T = T;
  }
  size_t TT = (size_t)T * (size_t)T;
  for (size_t i = 0; i < TT; i++) {
    int row_ok = (int)(i / (size_t)T) < k;
    m->cl_R[i] = row_ok ? R[i] : NAN;
    m->cl_Rtil[i] = row_ok && R_til ? R_til[i] : NAN;
  }
  for (int j = 0; j < T; j++) m->cl_b[j] = b ? b[j] : NAN;
  m->cl_k = k;
  m->cl_til = R_til != NULL;
  m->cl_init = b != NULL;
  return LT_OK;
}

/* Does absolute path name exist? Checks each component in turn: H5Lexists on a
 * path whose parent group is missing is an error (and prints HDF5's stack). */
static int path_exists(hid_t f, const char *name) {
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", name);
  for (char *p = buf + 1;; p++) {
    char c = *p;
    if (c == '/' || c == '\0') {
      *p = '\0';
      if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return 0;
      *p = c;
      if (c == '\0') return 1;
    }
  }
}

/* Write (or overwrite) a fixed-size float64 dataset with rank 0's values; collective. */
static lt_status write_fixed(lt_ctx *ctx, hid_t f, const char *name, int rank, hsize_t T,
                             const double *v) {
  hsize_t dims[2] = {T, T};
  hid_t ds;
  if (path_exists(f, name)) {
    ds = H5Dopen2(f, name, H5P_DEFAULT);
  } else {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    ds = H5Dcreate2(f, name, H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    H5Pclose(lcpl);
  }
  if (ds < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot create %s in the metrics file", name);
  hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(rank, dims, NULL);
  if (ctx->rank != 0) {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
  }
  herr_t e = write_close(ds, ms, fs, v, 1);
  if (e < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot write %s of the metrics file", name);
  return LT_OK;
}

static lt_status flush_cl(lt_metrics *m, hid_t f) {
  lt_ctx *ctx = m->ctx;
  hsize_t T = (hsize_t)m->cl_T;
  LT_CHECK(ctx, write_fixed(ctx, f, "/cl/acc", 2, T, m->cl_R));
  if (m->cl_til) LT_CHECK(ctx, write_fixed(ctx, f, "/cl/acc_task_il", 2, T, m->cl_Rtil));
  if (m->cl_init) LT_CHECK(ctx, write_fixed(ctx, f, "/cl/acc_init", 1, T, m->cl_b));
  hid_t g = H5Gopen2(f, "/cl", H5P_DEFAULT);
  if (g < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot open /cl in the metrics file");
  const double *b = m->cl_init ? m->cl_b : NULL;
  lt_cl_summary s = lt_cl_summarize(m->cl_T, m->cl_k, m->cl_R, b);
  lt_status st = lt_h5_attr_f64(ctx, g, "ACC", s.acc);
  if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "BWT", s.bwt);
  if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "FWT", s.fwt);
  if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "forgetting", s.forgetting);
  if (st == LT_OK) st = lt_h5_attr_i64(ctx, g, "tasks_trained", m->cl_k);
  if (st == LT_OK && m->cl_til) {
    lt_cl_summary t = lt_cl_summarize(m->cl_T, m->cl_k, m->cl_Rtil, NULL);
    st = lt_h5_attr_f64(ctx, g, "ACC_task_il", t.acc);
    if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "BWT_task_il", t.bwt);
    if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "forgetting_task_il", t.forgetting);
  }
  H5Gclose(g);
  LT_CHECK(ctx, st);
  return LT_OK;
}

lt_status lt_metrics_fixed(lt_metrics *m, const char *path, const double *v, int n) {
  for (int i = 0; i < m->nfix; i++)
    if (strcmp(m->fix_name[i], path) == 0) {
      m->fix_v[i] = v;
      m->fix_n[i] = n;
      return LT_OK;
    }
  if (m->nfix >= 8 || strlen(path) >= sizeof(m->fix_name[0]) || path[0] != '/' || n < 1)
    LT_ERROR(m->ctx, LT_ERR_INTERNAL, "metrics: fixed dataset '%s' [%d] (at most 8, paths < 64)",
             path, n);
  snprintf(m->fix_name[m->nfix], sizeof(m->fix_name[0]), "%s", path);
  m->fix_v[m->nfix] = v;
  m->fix_n[m->nfix] = n;
  m->nfix++;
  return LT_OK;
}

static lt_status flush_into(lt_metrics *m, hid_t f) {
  lt_ctx *ctx = m->ctx;
  int w = ctx->rank == 0;
  hsize_t so = (hsize_t)m->steps_written, sn = (hsize_t)m->nbuf;
  LT_CHECK(ctx, append(ctx, f, "/train/loss", 1, 0, so, sn, m->loss, w));
  LT_CHECK(ctx, append(ctx, f, "/train/lr", 1, 0, so, sn, m->lr, w));
  LT_CHECK(ctx, append(ctx, f, "/train/step_time", 1, 0, so, sn, m->step_time, w));
  LT_CHECK(ctx, append(ctx, f, "/ranks/step_time", 2, (hsize_t)ctx->rank, so, sn, m->step_time, 1));
  for (int c = 0; c < LT_EP_NCOLS; c++)
    LT_CHECK(ctx, append(ctx, f, ep_names[c], 1, 0, (hsize_t)m->epochs_written, (hsize_t)m->nep,
                         m->ep + (size_t)c * (size_t)m->epcap, w));
  if (m->cl_T) LT_CHECK(ctx, flush_cl(m, f));
  for (int i = 0; i < m->nfix; i++)
    LT_CHECK(ctx, write_fixed(ctx, f, m->fix_name[i], 1, (hsize_t)m->fix_n[i], m->fix_v[i]));
  LT_CHECK(ctx, write_attrs(m, f));
  return LT_OK;
}

lt_status lt_metrics_flush(lt_metrics *m) {
  lt_ctx *ctx = m->ctx;
  hid_t f = open_mpio(ctx, m->path, 0);
  lt_status st = f < 0 ? lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                                      "cannot open the metrics file '%s'", m->path)
                       : flush_into(m, f);
  if (f >= 0 && H5Fclose(f) < 0 && st == LT_OK)
    st = lt_error_set(ctx, LT_ERR_H5, __FILE__, __LINE__, __func__, "cannot close '%s'", m->path);
  LT_CHECK(ctx, lt_agree(ctx, st));
  m->steps_written += m->nbuf;
  m->epochs_written += m->nep;
  m->nbuf = 0;
  m->nep = 0;
  return LT_OK;
}

lt_status lt_metrics_close(lt_metrics **pm) {
  if (!pm || !*pm) return LT_OK;
  lt_metrics *m = *pm;
  lt_status st = lt_metrics_flush(m);
  lt_free(m->loss);
  lt_free(m->lr);
  lt_free(m->step_time);
  lt_free(m->ep);
  lt_free(m->cl_R);
  lt_free(m->cl_Rtil);
  lt_free(m->cl_b);
  lt_free(m);
  *pm = NULL;
  return st;
}

long lt_metrics_steps(const lt_metrics *m) { return m->steps_written + m->nbuf; }
long lt_metrics_epochs(const lt_metrics *m) { return m->epochs_written + m->nep; }
