/* lt_dataset_load validation: each malformed file fails with the right status
 * and a message naming the file and the problem; HDF5's own error stack is not
 * printed and the caller's HDF5 error handler is restored. */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lethe/data.h"
#include "testutil.h"

static char dir[512];

typedef struct {
  hid_t xtype;      /* file type of x; <= 0: no x */
  int xrank;
  hsize_t xdims[4];
  hid_t ytype;      /* file type of y; <= 0: no y */
  hsize_t ny;
  int nc_mode;      /* 0: int attribute nc, 1: missing, 2: float attribute */
  int nc;
  long nan_at;      /* x element set to NaN, -1: none */
  int constant;     /* all x equal */
  int fixed_name;   /* name as a fixed-length string */
  int x_is_group;   /* /train/x is a group, not a dataset */
} spec;

static spec base_spec(void) {
  spec s = {.xtype = H5T_IEEE_F32LE, .xrank = 2, .xdims = {6, 3}, .ytype = H5T_STD_I32LE,
            .ny = 6, .nc_mode = 0, .nc = 3, .nan_at = -1};
  return s;
}

static void write_spec(const char *path, const spec *s) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(f >= 0);
  hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (s->x_is_group) H5Gclose(H5Gcreate2(g, "x", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (s->xtype > 0 && !s->x_is_group) {
    hsize_t n = 1;
    for (int k = 0; k < s->xrank; k++) n *= s->xdims[k];
    double *x = calloc(n, sizeof(double));
    for (hsize_t i = 0; i < n; i++) x[i] = s->constant ? 0.5 : (double)(i % 7);
    if (s->nan_at >= 0) x[s->nan_at] = NAN;
    hid_t sp = H5Screate_simple(s->xrank, s->xdims, NULL);
    hid_t d = H5Dcreate2(g, "x", s->xtype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    free(x);
  }
  if (s->ytype > 0) {
    int64_t y[64];
    for (hsize_t i = 0; i < s->ny; i++) y[i] = (int64_t)(i % 3);
    hid_t sp = H5Screate_simple(1, &s->ny, NULL);
    hid_t d = H5Dcreate2(g, "y", s->ytype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
  }
  H5Gclose(g);
  hid_t sp = H5Screate(H5S_SCALAR);
  if (s->nc_mode != 1) {
    hid_t a = H5Acreate2(f, "num_classes", s->nc_mode == 2 ? H5T_IEEE_F64LE : H5T_STD_I64LE, sp,
                         H5P_DEFAULT, H5P_DEFAULT);
    double v = s->nc;
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
  }
  if (s->fixed_name) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 12);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t a = H5Acreate2(f, "name", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    char buf[12] = "fixed-name"; /* 10 chars, null-padded */
    assert_true(H5Awrite(a, t, buf) >= 0);
    H5Aclose(a);
    H5Tclose(t);
  }
  H5Sclose(sp);
  H5Fclose(f);
}

static int setup(void **state) {
  (void)state;
  lt_test_tmpdir(dir, sizeof(dir), "data_load");
  mkdir(dir, 0755);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return lt_test_rmtree(dir);
}

/* Load `path` and expect status want with sub in the message (and the path). */
static void expect(const char *path, const char *split, lt_data_opts *o, lt_status want,
                   const char *sub) {
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_status st = lt_dataset_load(ctx, path, split, o, &ds);
  if (getenv("LETHE_TEST_VERBOSE") || st != want || !strstr(ctx->errmsg, sub))
    fprintf(stderr, "status %d, message: %s\n", st, ctx->errmsg);
  assert_int_equal(st, want);
  assert_null(ds);
  assert_non_null(strstr(ctx->errmsg, path));
  assert_non_null(strstr(ctx->errmsg, sub));
  lt_ctx_destroy(&ctx);
}

static void expect_spec(const char *name, const spec *s, lt_data_opts *o, lt_status want,
                        const char *sub) {
  char p[600];
  snprintf(p, sizeof(p), "%s/%s.h5", dir, name);
  write_spec(p, s);
  expect(p, "train", o, want, sub);
}

static void test_file_errors(void **state) {
  (void)state;
  char p[600];
  snprintf(p, sizeof(p), "%s/missing.h5", dir);
  expect(p, "train", NULL, LT_ERR_IO, "does not exist");
  snprintf(p, sizeof(p), "%s/text.h5", dir);
  FILE *f = fopen(p, "w");
  fputs("this is not HDF5\n", f);
  fclose(f);
  expect(p, "train", NULL, LT_ERR_DATA, "is not an HDF5 file");
  expect(dir, "train", NULL, LT_ERR_IO, "is a directory");
}

static void test_content_errors(void **state) {
  (void)state;
  spec s = base_spec();
  s.xtype = 0;
  expect_spec("nox", &s, NULL, LT_ERR_DATA, "has no dataset /train/x");
  s = base_spec();
  s.ytype = 0;
  expect_spec("noy", &s, NULL, LT_ERR_DATA, "has no dataset /train/y");
  s = base_spec();
  s.ny = 5;
  expect_spec("len", &s, NULL, LT_ERR_DATA, "/train/x has 6 samples but /train/y has 5 labels");
  s = base_spec();
  s.xtype = H5T_IEEE_F64LE;
  expect_spec("f64", &s, NULL, LT_ERR_DATA, "has type float64; supported are uint8 and float32");
  s = base_spec();
  s.xtype = H5T_STD_I16LE;
  expect_spec("i16", &s, NULL, LT_ERR_DATA, "has type int16");
  s = base_spec();
  s.xrank = 1;
  s.xdims[0] = 6;
  expect_spec("rank1", &s, NULL, LT_ERR_DATA, "has rank 1; expected 2 [N,D]");
  s = base_spec();
  s.ytype = H5T_IEEE_F32LE;
  expect_spec("yfloat", &s, NULL, LT_ERR_DATA, "labels must be integers");
  s = base_spec();
  s.nc_mode = 1;
  expect_spec("nonc", &s, NULL, LT_ERR_DATA, "no root attribute num_classes");
  s = base_spec();
  s.nc = 1;
  expect_spec("nc1", &s, NULL, LT_ERR_DATA, "num_classes = 1; must be at least 2");
  s = base_spec();
  s.nc_mode = 2;
  expect_spec("ncfloat", &s, NULL, LT_ERR_DATA, "expected one integer");
  s = base_spec();
  s.nan_at = 13; /* sample 4, feature 1 of [6, 3] */
  expect_spec("nan", &s, NULL, LT_ERR_DATA, "sample 4, feature 1 is not finite");
  s = base_spec();
  s.constant = 1;
  lt_data_opts o = {.scale = 1, .standardize = 1};
  expect_spec("const", &s, &o, LT_ERR_DATA, "is constant");
}

/* A valid file with a rank-3 uint8 x, uint16 labels and a fixed-length name. */
static void test_variants(void **state) {
  (void)state;
  spec s = base_spec();
  s.xtype = H5T_STD_U8LE;
  s.xrank = 3;
  s.xdims[0] = 6;
  s.xdims[1] = 2;
  s.xdims[2] = 2;
  s.ytype = H5T_STD_U16BE; /* big-endian in the file */
  s.fixed_name = 1;
  char p[600];
  snprintf(p, sizeof(p), "%s/variants.h5", dir);
  write_spec(p, &s);
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_data_opts o = {.scale = 0};
  lt_status st = lt_dataset_load(ctx, p, "train", &o, &ds);
  if (st) lt_error_print(ctx, 1);
  assert_int_equal(st, LT_OK);
  assert_int_equal(ds->n, 6);
  assert_int_equal(ds->d, 4);
  assert_string_equal(ds->name, "fixed-name");
  for (int i = 0; i < 6; i++) {
    assert_int_equal(ds->y[i], i % 3);
    for (int j = 0; j < 4; j++) assert_true(ds->x[i * 4 + j] == (float)((i * 4 + j) % 7));
  }
  lt_dataset_destroy(&ds);
  /* a split that does not exist */
  st = lt_dataset_load(ctx, p, "test", NULL, &ds);
  assert_int_equal(st, LT_ERR_DATA);
  assert_non_null(strstr(ctx->errmsg, "has no dataset /test/x"));
  lt_error_clear(ctx);
  st = lt_dataset_load(ctx, p, "a/b", NULL, &ds);
  assert_int_equal(st, LT_ERR_ARG);
  lt_ctx_destroy(&ctx);
}

static int count_hdf5_diag = 0;
static herr_t my_handler(hid_t stack, void *data) {
  (void)stack;
  (void)data;
  count_hdf5_diag++;
  return 0;
}

/* No HDF5 error stack is printed on an error inside HDF5 (H5Dopen2 of a group),
 * the message carries HDF5's reason, and the caller's handler is back afterwards. */
static void test_quiet_hdf5(void **state) {
  (void)state;
  spec s = base_spec();
  s.x_is_group = 1;
  char p[600], log[600];
  snprintf(p, sizeof(p), "%s/quiet.h5", dir);
  snprintf(log, sizeof(log), "%s/stderr.txt", dir);
  write_spec(p, &s);
  H5Eset_auto2(H5E_DEFAULT, my_handler, NULL);
  fflush(stderr);
  int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_status st = lt_dataset_load(ctx, p, "train", NULL, &ds);
  char msg[LT_ERRMSG];
  snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
  lt_error_clear(ctx);
  FILE *devnull = fopen("/dev/null", "w");
  lt_status st2 = lt_data_info(ctx, p, devnull);
  fclose(devnull);
  lt_ctx_destroy(&ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fprintf(stderr, "expected error: %s\n", msg);
  assert_int_equal(st, LT_ERR_H5);
  assert_int_equal(st2, LT_ERR_H5);
  assert_non_null(strstr(msg, "cannot open /train/x: "));
  assert_null(strstr(msg, "no HDF5 error message")); /* HDF5's reason was captured */
  assert_int_equal(count_hdf5_diag, 0);
  H5E_auto2_t fn = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &fn, &data);
  assert_ptr_equal(fn, my_handler);
  FILE *f = fopen(log, "r");
  char buf[4096] = "";
  size_t got = fread(buf, 1, sizeof(buf) - 1, f);
  buf[got] = '\0';
  fclose(f);
  assert_null(strstr(buf, "HDF5-DIAG"));
  /* the handler works again for the caller's own HDF5 calls */
  hid_t bad = H5Dopen2(-1, "nothing", H5P_DEFAULT);
  assert_true(bad < 0);
  assert_int_equal(count_hdf5_diag, 1);
  H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)H5Eprint2, stderr);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_content_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_variants, setup, teardown),
    cmocka_unit_test_setup_teardown(test_quiet_hdf5, setup, teardown),
};

LT_TEST_MPI_MAIN("data_load", tests)
