#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lt_test_mpi_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests,
                     size_t ntests) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    /* keep rank 0's report readable: other ranks report failures through the
     * combined result and stderr */
    if (!freopen("/dev/null", "w", stdout)) return 1;
  }
  int failed = _cmocka_run_group_tests(name, tests, ntests, NULL, NULL);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed) fprintf(stderr, "[rank %d] %d test(s) failed in %s\n", rank, failed, name);
  MPI_Finalize();
  return any ? 1 : 0;
}

lt_ctx *lt_test_ctx(void) {
  lt_ctx *ctx = NULL;
  if (lt_ctx_create(MPI_COMM_WORLD, 1234, &ctx) != LT_OK) return NULL;
  return ctx;
}

void lt_test_tmpdir(char *buf, size_t len, const char *name) {
  int pid = (int)getpid();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const char *base = getenv("TMPDIR");
  snprintf(buf, len, "%s/lethe-test-%s-%d", base && *base ? base : "/tmp", name, pid);
}

int lt_test_mkdir(char *buf, size_t len, const char *name) {
  lt_test_tmpdir(buf, len, name);
  int rank = 0, st = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0 && mkdir(buf, 0775) != 0 && errno != EEXIST) {
    fprintf(stderr, "cannot create %s: %s\n", buf, strerror(errno));
    st = -1;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return st;
}

int lt_test_rmtree(const char *dir) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank != 0) return 0;
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) == 0) return 0;
  fprintf(stderr, "cannot remove %s\n", dir);
  return -1;
}

void lt_test_fail_at(lt_test_checker *c, const char *fmt, ...) {
  if (c->bad) return;
  c->bad = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
  va_end(ap);
}

void lt_test_check_close(lt_test_checker *c, const char *what, const float *a, const float *b,
                         size_t n, double rtol, double atol) {
  for (size_t i = 0; i < n && !c->bad; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= rtol * fabs((double)b[i]) + atol))
      lt_test_fail_at(c, "%s, element %zu: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
  }
}

void lt_test_agree(MPI_Comm comm, lt_test_checker *c) {
  int any = 0, rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Allreduce(&c->bad, &any, 1, MPI_INT, MPI_MAX, comm);
  if (c->bad) fprintf(stderr, "[rank %d] %s\n", rank, c->msg);
  if (any) fail_msg("a check failed on some rank (see stderr): %s", c->bad ? c->msg : "");
}

void lt_test_agree_status(lt_ctx *ctx, lt_status st) {
  if (st != LT_OK) lt_error_print(ctx, 1);
  int mine = (int)st, worst = 0;
  MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, ctx->comm);
  assert_int_equal(worst, LT_OK);
}

void lt_test_block(int n, int rank, int P, int *first, int *cnt) {
  *first = 0;
  for (int q = 0; q < rank; q++) *first += lt_local_batch(n, q, P);
  *cnt = lt_local_batch(n, rank, P);
}

int lt_test_shard(lt_dataset *ds, const float *x, const int32_t *y, long n_global, int d,
                  int num_classes, int rank, int P) {
  int n = (int)lt_shard_count(n_global, rank, P);
  *ds = (lt_dataset){.n = n, .n_global = n_global, .d = d, .num_classes = num_classes,
                     .x = calloc((size_t)n * (size_t)d + 1, sizeof(float)),
                     .y = calloc((size_t)n + 1, sizeof(int32_t)),
                     .index = calloc((size_t)n + 1, sizeof(int64_t))};
  if (!ds->x || !ds->y || !ds->index) {
    lt_test_shard_free(ds);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    long g = rank + (long)i * P;
    memcpy(ds->x + (size_t)i * (size_t)d, x + (size_t)g * (size_t)d, (size_t)d * sizeof(float));
    ds->y[i] = y[g];
    ds->index[i] = g;
  }
  return 0;
}

void lt_test_shard_free(lt_dataset *ds) {
  free(ds->x);
  free(ds->y);
  free(ds->index);
  ds->x = NULL;
  ds->y = NULL;
  ds->index = NULL;
}

void lt_test_h5_write(hid_t file, const char *path, hid_t ftype, hid_t mtype, int rank,
                      const hsize_t *dims, const void *buf) {
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(file, path, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    fprintf(stderr, "test setup: cannot write %s\n", path);
    abort();
  }
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(sp);
}

void lt_test_h5_attr_int(hid_t obj, const char *name, int v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT, &v) < 0) {
    fprintf(stderr, "test setup: cannot write attribute %s\n", name);
    abort();
  }
  H5Aclose(a);
  H5Sclose(sp);
}
