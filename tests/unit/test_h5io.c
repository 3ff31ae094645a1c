/* The shared run-file helpers of lethe/h5io.h: lt_make_dirs (mkdir -p and its
 * messages), HDF5 error silencing and messages, the provenance attributes.
 * Every result is checked with plain POSIX or HDF5 calls. */
#include <string.h>
#include <sys/stat.h>

#include "lethe/h5io.h"
#include "testutil.h"

static char dir[512];

static int setup(void **state) {
  (void)state;
  return lt_test_mkdir(dir, sizeof(dir), "h5io");
}

static int teardown(void **state) {
  (void)state;
  return lt_test_rmtree(dir);
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Nested directories are created, existing ones accepted; a path through a
 * regular file fails naming the component that failed (and the hint). */
static void test_make_dirs(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  char p[700], q[700];
  snprintf(p, sizeof(p), "%s/a/b/c", dir);
  assert_int_equal(lt_make_dirs(ctx, p, "run directory", "[run] out"), LT_OK);
  assert_true(is_dir(p));
  assert_int_equal(lt_make_dirs(ctx, p, "run directory", "[run] out"), LT_OK); /* exists */
  snprintf(p, sizeof(p), "%s/file", dir);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(p, sizeof(p), "%s/file/x/y", dir);
  assert_int_equal(lt_make_dirs(ctx, p, "run directory", "[run] out"), LT_ERR_IO);
  snprintf(q, sizeof(q), "cannot create run directory '%s/file/x': ", dir);
  assert_non_null(strstr(ctx->errmsg, q));
  snprintf(q, sizeof(q), "([run] out = %s/file/x/y)", dir);
  assert_non_null(strstr(ctx->errmsg, q));
  lt_error_clear(ctx);
  assert_int_equal(lt_make_dirs(ctx, p, "checkpoint directory", NULL), LT_ERR_IO);
  assert_non_null(strstr(ctx->errmsg, "cannot create checkpoint directory"));
  assert_null(strstr(ctx->errmsg, " = ")); /* no hint */
  lt_ctx_destroy(&ctx);
}

static int diag_calls = 0;
static herr_t count_diag(hid_t stack, void *data) {
  (void)stack;
  (void)data;
  diag_calls++;
  return 0;
}

/* While quiet, a failing HDF5 call does not reach the caller's handler and
 * lt_h5_msg gives HDF5's innermost reason; afterwards the handler is back. */
static void test_quiet_and_msg(void **state) {
  (void)state;
  char p[700], m[256];
  snprintf(p, sizeof(p), "%s/missing.h5", dir);
  H5E_auto2_t func0 = NULL;
  void *data0 = NULL;
  H5Eget_auto2(H5E_DEFAULT, &func0, &data0);
  H5Eclear2(H5E_DEFAULT);
  assert_string_equal(lt_h5_msg(m, sizeof(m)), "no HDF5 error message");
  H5Eset_auto2(H5E_DEFAULT, count_diag, NULL);
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  assert_true(H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT) < 0);
  lt_h5_msg(m, sizeof(m));
  lt_h5_quiet_off(&q);
  assert_int_equal(diag_calls, 0);
  assert_true(m[0] != '\0');
  assert_string_not_equal(m, "no HDF5 error message");
  H5E_auto2_t func = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  assert_true(func == count_diag);
  assert_true(H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT) < 0); /* not quiet: the handler runs */
  assert_true(diag_calls > 0);
  char one[4];
  assert_true(strlen(lt_h5_msg(one, sizeof(one))) <= 3); /* truncated to the buffer */
  H5Eset_auto2(H5E_DEFAULT, func0, data0);
}

static void read_str(hid_t f, const char *name, char *buf, size_t len) {
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  assert_true(a >= 0);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8); /* as lethe writes them; HDF5 does not convert charsets */
  char *s = NULL;
  assert_true(H5Aread(a, t, &s) >= 0);
  snprintf(buf, len, "%s", s);
  H5free_memory(s);
  H5Tclose(t);
  H5Aclose(a);
}

static long long read_i64(hid_t f, const char *name) {
  long long v = -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0);
  H5Aclose(a);
  return v;
}

/* NULL deck and kernels become "" and "unknown"; the rest as given. */
static void test_provenance(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  char p[700], s[256];
  snprintf(p, sizeof(p), "%s/prov.h5", dir);
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(f >= 0);
  assert_int_equal(lt_h5_attr_provenance(ctx, f, NULL, NULL, 3), LT_OK);
  H5Fclose(f);
  f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
  read_str(f, "deck", s, sizeof(s));
  assert_string_equal(s, "");
  read_str(f, "blis_kernels", s, sizeof(s));
  assert_string_equal(s, "unknown");
  read_str(f, "lethe_version", s, sizeof(s));
  assert_string_equal(s, LETHE_VERSION);
  read_str(f, "git_revision", s, sizeof(s));
  assert_string_equal(s, LETHE_GIT_REV);
  assert_int_equal(read_i64(f, "ranks"), ctx->size);
  assert_int_equal(read_i64(f, "blis_threads"), 3);
  H5Fclose(f);
  /* given values, written again over the old ones */
  f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
  assert_int_equal(lt_h5_attr_provenance(ctx, f, "[run]\nseed = 1\n", "skx", 1), LT_OK);
  read_str(f, "deck", s, sizeof(s));
  assert_string_equal(s, "[run]\nseed = 1\n");
  read_str(f, "blis_kernels", s, sizeof(s));
  assert_string_equal(s, "skx");
  assert_int_equal(read_i64(f, "blis_threads"), 1);
  H5Fclose(f);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_make_dirs, setup, teardown),
    cmocka_unit_test_setup_teardown(test_quiet_and_msg, setup, teardown),
    cmocka_unit_test_setup_teardown(test_provenance, setup, teardown),
};

LT_TEST_MPI_MAIN("h5io", tests)
