/* lethe report: one run's metrics.h5 as tables, or several runs compared.
 *
 * Rank 0 reads every file with the serial HDF5 API (file locking off, so the
 * metrics of a running job can be read) and prints to stdout; the other ranks
 * only take part in the final lt_agree. Every dataset is optional: a section
 * whose datasets are absent is left out. A file that is missing, not HDF5, or
 * lacks the root attribute lethe_version is an error naming the file.
 *
 * Continual-learning metrics are recomputed from R = /cl/acc (T x T, R[i][j]:
 * accuracy on task j after training task i), 0-based:
 *   ACC = mean_j R[T-1][j]
 *   BWT = mean_{j<T-1} (R[T-1][j] - R[j][j])
 *   FWT = mean_{j>=1} (R[j-1][j] - b[j])              b = /cl/acc_init
 *   forgetting = mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j])
 * A run still in progress has trailing rows that are not finite; the metrics
 * then use the leading k x k block of the k tasks trained so far.
 */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lethe/h5io.h"
#include "report.h"

#define REP_PATH 4096
#define REP_STR 128
#define REP_TOL 1e-9 /* stored vs recomputed CL metrics: both are sums of a few doubles */

void lt_usage_report(FILE *out) {
  fprintf(out,
          "usage: lethe report RUN_DIR|FILE.h5 [RUN_DIR|FILE.h5 ...]\n"
          "\n"
          "Tables of the metrics a run wrote (RUN_DIR/metrics.h5); no Python needed.\n"
          "One run: provenance, final test accuracy/loss and throughput, the per-epoch\n"
          "table, a summary of the training loss, the continual-learning accuracy\n"
          "matrix R (/cl/acc) with ACC, BWT, FWT and forgetting recomputed from it\n"
          "(a warning when the stored /cl attributes differ by more than 1e-9), and the\n"
          "per-rank load balance (/ranks/step_time).\n"
          "Several runs: one comparison table. Runs whose decks differ only in\n"
          "[run] seed and [run] out form a group; each group shows mean +- sample std\n"
          "over its runs, and the deck lines that set the groups apart.\n"
          "Plots of the same files: analysis/*.py (python3 with h5py and matplotlib).\n");
}

/* ------------------------------------------------------------ printing */

/* A number right-aligned in width, or "-" when it is not finite (absent). */
static void cell(FILE *out, int width, int prec, double v) {
  if (isfinite(v))
    fprintf(out, " %*.*f", width, prec, v);
  else
    fprintf(out, " %*s", width, "-");
}

/* ------------------------------------------------------------ HDF5 reading */

/* Does every link of an absolute path exist (so that H5Lexists never sees a
 * missing intermediate group)? */
static int has_path(hid_t f, const char *path) {
  char buf[256];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(buf)) return 0;
  memcpy(buf, path, n + 1);
  for (char *s = buf + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return 0;
      if (c == '\0') return 1;
      *s = c;
    }
  }
}

/* Read dataset `name` (rank 1 or 2, integer or float) as double into *v (the
 * caller frees it with lt_free) with its dims; *v = NULL when it is absent. */
static lt_status read_ds(lt_ctx *ctx, hid_t f, const char *file, const char *name, int rank,
                         hsize_t dims[2], double **v) {
  *v = NULL;
  dims[0] = dims[1] = 0;
  if (!has_path(f, name)) return LT_OK;
  lt_status st = LT_OK;
  double *buf = NULL;
  hid_t sp = H5I_INVALID_HID, ty = H5I_INVALID_HID;
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "'%s': %s is not a dataset", file, name);
  sp = H5Dget_space(ds);
  ty = H5Dget_type(ds);
  int r = H5Sget_simple_extent_ndims(sp);
  H5T_class_t cls = H5Tget_class(ty);
  if (r != rank)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "'%s': dataset %s has %d dimension(s), expected %d", file,
                 name, r, rank);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "'%s': dataset %s is not numeric", file, name);
  H5Sget_simple_extent_dims(sp, dims, NULL);
  size_t n = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
  if (lt_calloc_aligned((void **)&buf, n, sizeof(*buf)) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading %s (%zu values) from '%s'", name, n,
                 file);
  if (n && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "'%s': cannot read dataset %s", file, name);
  *v = buf;
  buf = NULL;
done:
  lt_free(buf);
  if (ty >= 0) H5Tclose(ty);
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  return st;
}

/* A scalar numeric attribute as double; NaN when absent or not numeric. */
static double attr_f64(hid_t obj, const char *name) {
  double v = NAN;
  if (H5Aexists(obj, name) <= 0) return v;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return v;
  hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
  H5T_class_t cls = H5Tget_class(ty);
  if ((cls == H5T_FLOAT || cls == H5T_INTEGER) && H5Sget_simple_extent_npoints(sp) == 1 &&
      H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
    v = NAN;
  H5Sclose(sp);
  H5Tclose(ty);
  H5Aclose(a);
  return v;
}

/* A scalar string attribute (variable or fixed length) copied into *out (the
 * caller frees it with lt_free); *out = NULL when absent or not a string. */
static lt_status attr_str(lt_ctx *ctx, hid_t obj, const char *name, char **out) {
  *out = NULL;
  if (H5Aexists(obj, name) <= 0) return LT_OK;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return LT_OK;
  hid_t ty = H5Aget_type(a), sp = H5Aget_space(a), mt = H5I_INVALID_HID;
  lt_status st = LT_OK;
  char *vl = NULL, *s = NULL;
  if (H5Tget_class(ty) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) goto done;
  mt = H5Tcopy(H5T_C_S1);
  H5Tset_cset(mt, H5Tget_cset(ty)); /* HDF5 does not convert between character sets */
  if (H5Tis_variable_str(ty) > 0) {
    H5Tset_size(mt, H5T_VARIABLE);
    if (H5Aread(a, mt, &vl) < 0 || !vl) goto done;
    size_t n = strlen(vl);
    if (lt_calloc_aligned((void **)&s, n + 1, 1) != 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading attribute '%s'", name);
    memcpy(s, vl, n);
  } else {
    size_t n = H5Tget_size(ty);
    H5Tset_size(mt, n + 1);
    H5Tset_strpad(mt, H5T_STR_NULLTERM);
    if (lt_calloc_aligned((void **)&s, n + 1, 1) != 0)
      LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading attribute '%s'", name);
    if (H5Aread(a, mt, s) < 0) goto done;
  }
  *out = s;
  s = NULL;
done:
  lt_free(s);
  if (vl) H5free_memory(vl);
  if (mt >= 0) H5Tclose(mt);
  H5Sclose(sp);
  H5Tclose(ty);
  H5Aclose(a);
  return st;
}

/* A string attribute into a fixed buffer ("-" when absent). */
static lt_status attr_text(lt_ctx *ctx, hid_t obj, const char *name, char *buf, size_t len) {
  char *s = NULL;
  LT_CHECK(ctx, attr_str(ctx, obj, name, &s));
  snprintf(buf, len, "%s", s ? s : "-");
  lt_free(s);
  return LT_OK;
}

/* ------------------------------------------------------------ decks */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
  return s;
}

/* The next "key = value" line of INI text at *p (advanced past it), with the
 * section it is in (sec is updated by header lines on the way). Key and value
 * are trimmed and truncated to their buffers. Returns 0 at the end. */
static int ini_next(const char **p, char sec[64], char key[64], char val[REP_PATH]) {
  char line[REP_PATH + 128];
  while (**p) {
    const char *nl = strchr(*p, '\n');
    size_t n = nl ? (size_t)(nl - *p) : strlen(*p);
    size_t c = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    memcpy(line, *p, c);
    line[c] = '\0';
    *p += n + (nl ? 1 : 0);
    char *t = trim(line);
    if (*t == '\0' || *t == ';' || *t == '#') continue;
    if (*t == '[') {
      char *e = strchr(t, ']');
      if (e) *e = '\0';
      snprintf(sec, 64, "%s", trim(t + 1));
      continue;
    }
    char *eq = strchr(t, '=');
    if (!eq) continue;
    *eq = '\0';
    snprintf(key, 64, "%s", trim(t));
    snprintf(val, REP_PATH, "%s", trim(eq + 1));
    return 1;
  }
  return 0;
}

/* The deck as "\n[section] key = value\n..." lines without [run] seed and
 * [run] out: two runs with equal keys differ only in seed and output
 * directory. The leading newline lets strstr find whole lines. */
static lt_status deck_key(lt_ctx *ctx, const char *deck, char **out) {
  *out = NULL;
  size_t lines = 1;
  for (const char *s = deck; *s; s++) lines += *s == '\n';
  size_t cap = strlen(deck) + lines * 72 + 2; /* each line gains at most "[sec] " */
  char *k = NULL;
  LT_CALLOC(ctx, k, cap);
  size_t len = 0;
  k[len++] = '\n';
  char sec[64] = "", key[64], val[REP_PATH];
  const char *p = deck;
  while (ini_next(&p, sec, key, val)) {
    if (strcmp(sec, "run") == 0 && (strcmp(key, "seed") == 0 || strcmp(key, "out") == 0))
      continue;
    int w = snprintf(k + len, cap - len, "[%s] %s = %s\n", sec, key, val);
    if (w < 0 || (size_t)w >= cap - len) break; /* cannot happen: cap bounds every line */
    len += (size_t)w;
  }
  *out = k;
  return LT_OK;
}

/* [run] seed of a deck, NaN when absent. */
static double deck_seed(const char *deck) {
  char sec[64] = "", key[64], val[REP_PATH];
  const char *p = deck;
  while (ini_next(&p, sec, key, val))
    if (strcmp(sec, "run") == 0 && strcmp(key, "seed") == 0) {
      char *e = NULL;
      double v = strtod(val, &e);
      return e != val ? v : NAN;
    }
  return NAN;
}

/* ------------------------------------------------------------ CL metrics */

enum { CL_ACC, CL_BWT, CL_FWT, CL_FGT, CL_NMET };
static const char *const cl_name[CL_NMET] = {"ACC", "BWT", "FWT", "forgetting"};

/* ACC, BWT, FWT and forgetting (formulas at the top) of the leading k x k block
 * of R [T][T]; b [T] or NULL (then FWT is NaN). Means over empty sets are NaN. */
static void cl_metrics(double m[CL_NMET], const double *R, const double *b, int T, int k) {
  for (int i = 0; i < CL_NMET; i++) m[i] = NAN;
  if (k < 1) return;
  const double *last = R + (size_t)(k - 1) * T;
  double acc = 0, bwt = 0, fwt = 0, fgt = 0;
  for (int j = 0; j < k; j++) acc += last[j];
  m[CL_ACC] = acc / k;
  if (k < 2) return;
  for (int j = 0; j < k - 1; j++) {
    bwt += last[j] - R[(size_t)j * T + j];
    double best = -INFINITY;
    for (int l = 0; l < k - 1; l++) best = fmax(best, R[(size_t)l * T + j]);
    fgt += best - last[j];
  }
  m[CL_BWT] = bwt / (k - 1);
  m[CL_FGT] = fgt / (k - 1);
  if (b) {
    for (int j = 1; j < k; j++) fwt += R[(size_t)(j - 1) * T + j] - b[j];
    m[CL_FWT] = fwt / (k - 1);
  }
}

/* Leading rows of R [T][T] whose entries are all finite: tasks trained so far. */
static int rows_complete(const double *R, int T) {
  for (int i = 0; i < T; i++)
    for (int j = 0; j < T; j++)
      if (!isfinite(R[(size_t)i * T + j])) return i;
  return T;
}

typedef struct {
  int T, k, kt;        /* tasks (0: no /cl/acc); complete rows of R and of Rt */
  double *R, *Rt, *b;  /* /cl/acc [T,T], /cl/acc_task_il [T,T], /cl/acc_init [T] or NULL */
  double m[CL_NMET];   /* recomputed from R (class-IL) */
  double mt[CL_NMET];  /* recomputed from Rt (task-IL; FWT needs a task-IL baseline: NaN) */
  double stored[CL_NMET]; /* attributes of /cl, NaN when absent */
} cl_block;

static void cl_free(cl_block *c) {
  LT_FREE(c->R);
  LT_FREE(c->Rt);
  LT_FREE(c->b);
}

/* Read /cl (if present) and recompute its metrics. On failure the caller
 * still calls cl_free. */
static lt_status read_cl(lt_ctx *ctx, hid_t f, const char *file, cl_block *c) {
  memset(c, 0, sizeof(*c));
  for (int i = 0; i < CL_NMET; i++) c->m[i] = c->mt[i] = c->stored[i] = NAN;
  hsize_t d[2];
  LT_CHECK(ctx, read_ds(ctx, f, file, "/cl/acc", 2, d, &c->R));
  if (!c->R) return LT_OK;
  if (d[0] != d[1] || d[0] == 0 || d[0] > 100000)
    LT_ERROR(ctx, LT_ERR_DATA, "'%s': /cl/acc is %llu x %llu, expected a square T x T matrix",
             file, (unsigned long long)d[0], (unsigned long long)d[1]);
  int T = c->T = (int)d[0];
  LT_CHECK(ctx, read_ds(ctx, f, file, "/cl/acc_task_il", 2, d, &c->Rt));
  if (c->Rt && (d[0] != (hsize_t)T || d[1] != (hsize_t)T))
    LT_ERROR(ctx, LT_ERR_DATA, "'%s': /cl/acc_task_il is %llu x %llu but /cl/acc is %d x %d",
             file, (unsigned long long)d[0], (unsigned long long)d[1], T, T);
  LT_CHECK(ctx, read_ds(ctx, f, file, "/cl/acc_init", 1, d, &c->b));
  if (c->b && d[0] != (hsize_t)T)
    LT_ERROR(ctx, LT_ERR_DATA, "'%s': /cl/acc_init has %llu values but /cl/acc has %d tasks",
             file, (unsigned long long)d[0], T);
  c->k = rows_complete(c->R, T);
  cl_metrics(c->m, c->R, c->b, T, c->k);
  if (c->Rt) {
    c->kt = rows_complete(c->Rt, T);
    cl_metrics(c->mt, c->Rt, NULL, T, c->kt);
  }
  hid_t g = H5Gopen2(f, "/cl", H5P_DEFAULT);
  if (g >= 0) {
    for (int i = 0; i < CL_NMET; i++) c->stored[i] = attr_f64(g, cl_name[i]);
    H5Gclose(g);
  }
  return LT_OK;
}

/* Warnings for stored /cl attributes that the matrices do not reproduce. */
static void cl_warn(FILE *out, const char *file, const cl_block *c) {
  for (int i = 0; i < CL_NMET; i++) {
    double s = c->stored[i], m = c->m[i];
    if (!isfinite(s)) continue;
    if (!isfinite(m))
      fprintf(out, "  warning: '%s': /cl attribute %s = %.9g cannot be recomputed%s\n", file,
              cl_name[i], s, i == CL_FWT && !c->b ? " (no /cl/acc_init)" : "");
    else if (fabs(s - m) > REP_TOL)
      fprintf(out,
              "  warning: '%s': /cl attribute %s = %.12g differs from %.12g recomputed from "
              "/cl/acc by %.3g (> %g)\n",
              file, cl_name[i], s, m, fabs(s - m), REP_TOL);
  }
}

/* ------------------------------------------------------------ one run */

typedef struct {
  char path[REP_PATH];     /* the metrics file */
  char *deck;              /* root attribute deck, NULL when absent */
  char *key;               /* deck_key(deck): the group key, NULL without a deck */
  char version[REP_STR], git[REP_STR], blis[REP_STR], created[REP_STR];
  double ranks, threads, seed, test_acc, test_loss, rate; /* NaN when absent */
  cl_block cl;
  int group; /* 0-based group index (several runs) */
} run_info;

static void run_free(run_info *r) {
  LT_FREE(r->deck);
  LT_FREE(r->key);
  cl_free(&r->cl);
}

/* RUN_DIR -> RUN_DIR/metrics.h5; a file stays itself. Both must exist. */
static lt_status resolve(lt_ctx *ctx, const char *arg, char path[REP_PATH]) {
  struct stat sb;
  if (stat(arg, &sb) != 0) {
    if (errno == ENOENT)
      LT_ERROR(ctx, LT_ERR_IO, "run directory or metrics file '%s' does not exist", arg);
    LT_ERROR(ctx, LT_ERR_IO, "cannot access '%s': %s", arg, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode)) {
    if (snprintf(path, REP_PATH, "%s/metrics.h5", arg) >= REP_PATH)
      LT_ERROR(ctx, LT_ERR_ARG, "path too long: '%s'", arg);
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
      LT_ERROR(ctx, LT_ERR_IO,
               "run directory '%s' has no metrics.h5 (lethe train writes RUN_DIR/metrics.h5)",
               arg);
    return LT_OK;
  }
  if (!S_ISREG(sb.st_mode)) LT_ERROR(ctx, LT_ERR_IO, "'%s' is not a regular file", arg);
  if (snprintf(path, REP_PATH, "%s", arg) >= REP_PATH)
    LT_ERROR(ctx, LT_ERR_ARG, "path too long: '%s'", arg);
  return LT_OK;
}

/* Open a metrics file read-only; error unless it is HDF5 with lethe_version. */
static lt_status open_metrics(lt_ctx *ctx, const char *path, hid_t *out) {
  *out = H5I_INVALID_HID;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, 0, 1); /* read a running job's file: take no lock */
#endif
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0)
    LT_ERROR(ctx, LT_ERR_DATA,
             "'%s' is not a readable HDF5 file (expected a lethe metrics file, "
             "RUN_DIR/metrics.h5)",
             path);
  if (H5Aexists(f, "lethe_version") <= 0) {
    int dataset = H5Aexists(f, "num_classes") > 0;
    H5Fclose(f);
    LT_ERROR(ctx, LT_ERR_DATA,
             "'%s' is not a lethe metrics file: it has no root attribute lethe_version%s", path,
             dataset ? " (it looks like a lethe dataset file)" : "");
  }
  *out = f;
  return LT_OK;
}

/* Resolve, open and read the summary of one run. With fout the file stays
 * open for the caller (who closes it), else it is closed. The caller calls
 * run_free even on failure. */
static lt_status load_run(lt_ctx *ctx, const char *arg, run_info *r, hid_t *fout) {
  memset(r, 0, sizeof(*r));
  cl_block empty = {0};
  for (int i = 0; i < CL_NMET; i++) empty.m[i] = empty.mt[i] = empty.stored[i] = NAN;
  r->cl = empty;
  if (fout) *fout = H5I_INVALID_HID;
  LT_CHECK(ctx, resolve(ctx, arg, r->path));
  hid_t f;
  LT_CHECK(ctx, open_metrics(ctx, r->path, &f));
  lt_status st = LT_OK;
  LT_CHECK_DONE(ctx, st, attr_text(ctx, f, "lethe_version", r->version, sizeof(r->version)));
  LT_CHECK_DONE(ctx, st, attr_text(ctx, f, "git_revision", r->git, sizeof(r->git)));
  LT_CHECK_DONE(ctx, st, attr_text(ctx, f, "blis_kernels", r->blis, sizeof(r->blis)));
  LT_CHECK_DONE(ctx, st, attr_text(ctx, f, "created", r->created, sizeof(r->created)));
  LT_CHECK_DONE(ctx, st, attr_str(ctx, f, "deck", &r->deck));
  r->ranks = attr_f64(f, "ranks");
  r->threads = attr_f64(f, "blis_threads");
  r->seed = attr_f64(f, "seed");
  r->test_acc = attr_f64(f, "test_acc");
  r->test_loss = attr_f64(f, "test_loss");
  r->rate = attr_f64(f, "samples_per_s");
  if (r->deck) {
    LT_CHECK_DONE(ctx, st, deck_key(ctx, r->deck, &r->key));
    if (!isfinite(r->seed)) r->seed = deck_seed(r->deck);
  }
  LT_CHECK_DONE(ctx, st, read_cl(ctx, f, r->path, &r->cl));
done:
  if (st == LT_OK && fout)
    *fout = f;
  else
    H5Fclose(f);
  return st;
}

static void print_provenance(FILE *out, const run_info *r) {
  fprintf(out, "run %s\n", r->path);
  fprintf(out, "  lethe        %s (git %s)\n", r->version, r->git);
  fprintf(out, "  created      %s\n", r->created);
  fprintf(out, "  ranks       ");
  cell(out, 1, 0, r->ranks);
  fprintf(out, "\n  BLIS         %s kernels,", r->blis);
  cell(out, 1, 0, r->threads);
  fprintf(out, " thread(s)\n  seed        ");
  cell(out, 1, 0, r->seed);
  fprintf(out, "\nfinal\n  test_acc    ");
  cell(out, 1, 6, r->test_acc);
  fprintf(out, "\n  test_loss   ");
  cell(out, 1, 6, r->test_loss);
  fprintf(out, "\n  samples/s   ");
  cell(out, 1, 1, r->rate);
  fprintf(out, "\n");
}

/* first/last/min of /train/loss; lr range of /train/lr; mean of /train/step_time. */
static lt_status print_loss(lt_ctx *ctx, hid_t f, const char *file, FILE *out) {
  hsize_t d[2];
  double *loss = NULL, *lr = NULL, *dt = NULL;
  lt_status st = LT_OK;
  LT_CHECK_DONE(ctx, st, read_ds(ctx, f, file, "/train/loss", 1, d, &loss));
  long n = loss ? (long)d[0] : 0;
  if (n > 0) {
    fprintf(out, "training loss (/train/loss, %ld steps)\n", n);
    long imin = -1, nbad = 0, firstbad = -1;
    for (long s = 0; s < n; s++) {
      if (!isfinite(loss[s])) {
        if (nbad++ == 0) firstbad = s;
      } else if (imin < 0 || loss[s] < loss[imin]) {
        imin = s;
      }
    }
    fprintf(out, "  first       ");
    cell(out, 10, 6, loss[0]);
    fprintf(out, "   (step 1)\n  last        ");
    cell(out, 10, 6, loss[n - 1]);
    fprintf(out, "   (step %ld)\n", n);
    if (imin >= 0) {
      fprintf(out, "  min         ");
      cell(out, 10, 6, loss[imin]);
      fprintf(out, "   (step %ld)\n", imin + 1);
    }
    if (nbad)
      fprintf(out, "  non-finite   %ld step(s), the first at step %ld\n", nbad, firstbad + 1);
  }
  LT_CHECK_DONE(ctx, st, read_ds(ctx, f, file, "/train/lr", 1, d, &lr));
  if (lr && d[0] > 0) {
    long m = (long)d[0];
    double mx = lr[0];
    for (long s = 1; s < m; s++) mx = fmax(mx, lr[s]);
    fprintf(out, "  lr           first %.6g, max %.6g, last %.6g (/train/lr)\n", lr[0], mx,
            lr[m - 1]);
  }
  LT_CHECK_DONE(ctx, st, read_ds(ctx, f, file, "/train/step_time", 1, d, &dt));
  if (dt && d[0] > 0) {
    double sum = 0;
    for (hsize_t s = 0; s < d[0]; s++) sum += dt[s];
    fprintf(out, "  step time    mean %.4g ms over %llu steps (rank 0, /train/step_time)\n",
            1e3 * sum / (double)d[0], (unsigned long long)d[0]);
  }
done:
  lt_free(loss);
  lt_free(lr);
  lt_free(dt);
  return st;
}

/* The per-epoch table: one column per /epoch dataset present. */
static lt_status print_epochs(lt_ctx *ctx, hid_t f, const char *file, FILE *out) {
  enum { NCOL = 6 };
  static const char *const name[NCOL] = {"/epoch/train_loss", "/epoch/train_acc",
                                         "/epoch/test_loss",  "/epoch/test_acc",
                                         "/epoch/samples_per_s", "/epoch/time"};
  static const char *const head[NCOL] = {"train_loss", "train_acc", "test_loss",
                                         "test_acc",   "samples/s", "time [s]"};
  static const int prec[NCOL] = {6, 6, 6, 6, 1, 4};
  double *col[NCOL] = {NULL};
  long len[NCOL] = {0}, rows = 0;
  lt_status st = LT_OK;
  for (int c = 0; c < NCOL; c++) {
    hsize_t d[2];
    LT_CHECK_DONE(ctx, st, read_ds(ctx, f, file, name[c], 1, d, &col[c]));
    len[c] = col[c] ? (long)d[0] : 0;
    if (len[c] > rows) rows = len[c];
  }
  if (rows == 0) goto done;
  fprintf(out, "epochs (/epoch)\n  %5s", "epoch");
  for (int c = 0; c < NCOL; c++)
    if (col[c]) fprintf(out, " %11s", head[c]);
  fprintf(out, "\n");
  for (long e = 0; e < rows; e++) {
    fprintf(out, "  %5ld", e + 1);
    for (int c = 0; c < NCOL; c++)
      if (col[c]) cell(out, 11, prec[c], e < len[c] ? col[c][e] : NAN);
    fprintf(out, "\n");
  }
done:
  for (int c = 0; c < NCOL; c++) lt_free(col[c]);
  return st;
}

static void print_matrix(FILE *out, const char *title, const double *R, int T) {
  fprintf(out, "  %s\n  %-9s", title, "");
  for (int j = 0; j < T; j++) fprintf(out, " %6s%-2d", "task ", j);
  fprintf(out, "\n");
  for (int i = 0; i < T; i++) {
    fprintf(out, "  after %-3d", i);
    for (int j = 0; j < T; j++) cell(out, 8, 4, R[(size_t)i * T + j]);
    fprintf(out, "\n");
  }
}

static void print_cl(FILE *out, const char *file, const cl_block *c) {
  if (!c->R) return;
  int T = c->T;
  fprintf(out, "continual learning (/cl: %d tasks)\n", T);
  print_matrix(out, "R[i][j] = accuracy on task j after training task i (class-IL, /cl/acc)",
               c->R, T);
  if (c->Rt)
    print_matrix(out, "task-IL: logits masked to task j's classes (/cl/acc_task_il)", c->Rt, T);
  if (c->b) {
    fprintf(out, "  %-9s", "untrained");
    for (int j = 0; j < T; j++) cell(out, 8, 4, c->b[j]);
    fprintf(out, "   (/cl/acc_init)\n");
  }
  if (c->k < T)
    fprintf(out, "  note: %d of %d tasks trained so far; the metrics cover those tasks\n",
            c->k, T);
  fprintf(out, "  %-11s %11s %11s %11s\n", "metric", "class-IL", "task-IL", "stored");
  for (int i = 0; i < CL_NMET; i++) {
    fprintf(out, "  %-11s", cl_name[i]);
    cell(out, 11, 6, c->m[i]);
    cell(out, 11, 6, c->mt[i]);
    cell(out, 11, 6, c->stored[i]);
    fprintf(out, "\n");
  }
  cl_warn(out, file, c);
}

/* Per rank: mean step time and total of /ranks/step_time [P, steps];
 * imbalance = max/mean of the totals. */
static lt_status print_ranks(lt_ctx *ctx, hid_t f, const char *file, FILE *out) {
  hsize_t d[2];
  double *t = NULL, *tot = NULL;
  lt_status st = LT_OK;
  LT_CHECK_DONE(ctx, st, read_ds(ctx, f, file, "/ranks/step_time", 2, d, &t));
  if (!t || d[0] == 0 || d[1] == 0) goto done;
  size_t P = (size_t)d[0], S = (size_t)d[1];
  if (lt_calloc_aligned((void **)&tot, P, sizeof(*tot)) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory for %zu rank totals", P);
  fprintf(out, "load balance (/ranks/step_time: %zu ranks x %zu steps)\n", P, S);
  fprintf(out, "  %5s %15s %14s\n", "rank", "mean step [ms]", "total [ms]");
  double sum_tot = 0, max_tot = -INFINITY, sum_max = 0, sum_mean = 0;
  for (size_t r = 0; r < P; r++) {
    long n = 0;
    for (size_t s = 0; s < S; s++)
      if (isfinite(t[r * S + s])) {
        tot[r] += t[r * S + s];
        n++;
      }
    fprintf(out, "  %5zu", r);
    cell(out, 15, 4, n ? 1e3 * tot[r] / (double)n : NAN);
    cell(out, 14, 4, 1e3 * tot[r]);
    fprintf(out, "\n");
    sum_tot += tot[r];
    max_tot = fmax(max_tot, tot[r]);
  }
  for (size_t s = 0; s < S; s++) { /* a synchronous step waits for its slowest rank */
    double mx = -INFINITY, sum = 0;
    long n = 0;
    for (size_t r = 0; r < P; r++)
      if (isfinite(t[r * S + s])) {
        mx = fmax(mx, t[r * S + s]);
        sum += t[r * S + s];
        n++;
      }
    if (n) {
      sum_max += mx;
      sum_mean += sum / (double)n;
    }
  }
  fprintf(out, "  imbalance   ");
  cell(out, 10, 4, sum_tot > 0 ? max_tot / (sum_tot / (double)P) : NAN);
  fprintf(out, "   (max/mean of the rank totals)\n  per step    ");
  cell(out, 10, 4, sum_mean > 0 ? sum_max / sum_mean : NAN);
  fprintf(out, "   (sum over steps of the slowest rank / of the mean rank)\n");
done:
  lt_free(t);
  lt_free(tot);
  return st;
}

static lt_status report_one(lt_ctx *ctx, const char *arg, FILE *out) {
  run_info r;
  hid_t f = H5I_INVALID_HID;
  lt_status st = LT_OK;
  LT_CHECK_DONE(ctx, st, load_run(ctx, arg, &r, &f));
  print_provenance(out, &r);
  LT_CHECK_DONE(ctx, st, print_loss(ctx, f, r.path, out));
  LT_CHECK_DONE(ctx, st, print_epochs(ctx, f, r.path, out));
  print_cl(out, r.path, &r.cl);
  LT_CHECK_DONE(ctx, st, print_ranks(ctx, f, r.path, out));
done:
  if (f >= 0) H5Fclose(f);
  run_free(&r);
  return st;
}

/* ------------------------------------------------------------ several runs */

enum { Q_ACC, Q_LOSS, Q_RATE, Q_CL, NQ = Q_CL + CL_NMET };
static const char *const q_name[NQ] = {"test_acc", "test_loss", "samples/s", "ACC", "BWT",
                                       "FWT",      "forgetting"};

static double run_q(const run_info *r, int q) {
  switch (q) {
  case Q_ACC: return r->test_acc;
  case Q_LOSS: return r->test_loss;
  case Q_RATE: return r->rate;
  default: return r->cl.m[q - Q_CL];
  }
}

static int q_prec(int q) { return q == Q_RATE ? 1 : 6; }

/* "mean +- std" (sample std, n-1) over the finite values of q in group g,
 * "mean" for one value, "-" for none, right-aligned in width. */
static void group_cell(FILE *out, int width, const run_info *runs, int n, int g, int q) {
  double sum = 0, ss = 0;
  long m = 0;
  for (int i = 0; i < n; i++) {
    double v = run_q(&runs[i], q);
    if (runs[i].group == g && isfinite(v)) {
      sum += v;
      m++;
    }
  }
  char buf[96] = "-";
  int p = q_prec(q);
  if (m > 0) {
    double mean = sum / (double)m;
    for (int i = 0; i < n; i++) {
      double v = run_q(&runs[i], q);
      if (runs[i].group == g && isfinite(v)) ss += (v - mean) * (v - mean);
    }
    if (m > 1)
      snprintf(buf, sizeof(buf), "%.*f +- %.*f", p, mean, p, sqrt(ss / (double)(m - 1)));
    else
      snprintf(buf, sizeof(buf), "%.*f", p, mean);
  }
  fprintf(out, " %*s", width, buf);
}

/* Print the deck lines of group g that not every group shares. */
static void print_group_diff(FILE *out, const run_info *runs, int n, int g, int ngroups) {
  const run_info *rep = NULL;
  for (int i = 0; i < n && !rep; i++)
    if (runs[i].group == g) rep = &runs[i];
  fprintf(out, "  group %d:", g + 1);
  if (!rep->key) {
    fprintf(out, " no deck attribute in '%s'\n", rep->path);
    return;
  }
  int shown = 0;
  const char *p = rep->key + 1;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = (size_t)(nl - p) + 1; /* keys end every line with '\n' */
    char line[REP_PATH + 160];
    if (len + 2 > sizeof(line)) len = sizeof(line) - 2;
    line[0] = '\n';
    memcpy(line + 1, p, len);
    line[len + 1] = '\0';
    int everywhere = 1;
    for (int i = 0; i < n && everywhere; i++) /* runs without a deck do not count */
      if (runs[i].group != g && runs[i].key && !strstr(runs[i].key, line)) everywhere = 0;
    if (!everywhere) {
      fprintf(out, "%s %.*s", shown ? "," : "", (int)len - 1, p);
      shown = 1;
    }
    p += len;
  }
  if (!shown)
    fprintf(out, ngroups > 1 ? " (no deck line of its own)"
                             : " all runs share one deck (apart from [run] seed and out)");
  fprintf(out, "\n");
}

static lt_status report_many(lt_ctx *ctx, int n, char **args, FILE *out) {
  run_info *runs = NULL;
  LT_CALLOC(ctx, runs, n);
  lt_status st = LT_OK;
  int loaded = 0, ngroups = 0, has_cl = 0;
  for (int i = 0; i < n; i++) {
    loaded = i + 1;
    LT_CHECK_DONE(ctx, st, load_run(ctx, args[i], &runs[i], NULL));
    runs[i].group = -1;
    for (int j = 0; j < i && runs[i].key && runs[i].group < 0; j++)
      if (runs[j].key && strcmp(runs[j].key, runs[i].key) == 0) runs[i].group = runs[j].group;
    if (runs[i].group < 0) runs[i].group = ngroups++;
    has_cl |= runs[i].cl.R != NULL;
  }
  int nq = has_cl ? NQ : Q_CL;

  fprintf(out, "runs (%d)\n  %4s %5s %6s", n, "run", "group", "seed");
  for (int q = 0; q < nq; q++) fprintf(out, " %10s", q_name[q]);
  fprintf(out, "  file\n");
  for (int i = 0; i < n; i++) {
    fprintf(out, "  %4d %5d", i + 1, runs[i].group + 1);
    cell(out, 6, 0, runs[i].seed);
    for (int q = 0; q < nq; q++) cell(out, 10, q_prec(q), run_q(&runs[i], q));
    fprintf(out, "  %s\n", runs[i].path);
  }
  for (int i = 0; i < n; i++) cl_warn(out, runs[i].path, &runs[i].cl);

  fprintf(out, "groups (%d): mean +- sample std over the runs of a group; runs whose decks "
               "differ only in [run] seed and out form a group\n  %5s %3s", ngroups, "group", "n");
  for (int q = 0; q < nq; q++) fprintf(out, " %22s", q_name[q]);
  fprintf(out, "\n");
  for (int g = 0; g < ngroups; g++) {
    int m = 0;
    for (int i = 0; i < n; i++) m += runs[i].group == g;
    fprintf(out, "  %5d %3d", g + 1, m);
    for (int q = 0; q < nq; q++) group_cell(out, 22, runs, n, g, q);
    fprintf(out, "\n");
  }
  fprintf(out, "deck lines that set the groups apart\n");
  for (int g = 0; g < ngroups; g++) print_group_diff(out, runs, n, g, ngroups);
done:
  for (int i = 0; i < loaded; i++) run_free(&runs[i]);
  LT_FREE(runs);
  return st;
}

/* ------------------------------------------------------------ command */

static int is_help(const char *s) { return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0; }

lt_status lt_cmd_report(lt_ctx *ctx, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (is_help(argv[i])) {
      if (ctx->rank == 0) lt_usage_report(stdout);
      return LT_OK;
    }
  lt_status st = LT_OK;
  if (argc < 2) {
    if (ctx->rank == 0) lt_usage_report(stderr);
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "`lethe report` needs at least one RUN_DIR or metrics file");
  }
  for (int i = 1; i < argc && st == LT_OK; i++)
    if (argv[i][0] == '-')
      st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                        "unknown option '%s' for `lethe report` (it takes RUN_DIR or FILE.h5 "
                        "arguments, and --help)",
                        argv[i]);
  if (st == LT_OK && ctx->rank == 0) {
    lt_h5_quiet q;
    lt_h5_quiet_on(&q); /* lethe reports HDF5 failures itself */
    st = argc == 2 ? report_one(ctx, argv[1], stdout)
                   : report_many(ctx, argc - 1, argv + 1, stdout);
    lt_h5_quiet_off(&q);
    fflush(stdout);
  }
  st = lt_agree(ctx, st);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}
