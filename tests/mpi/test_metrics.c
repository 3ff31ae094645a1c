/* metrics.h5: CL summaries against hand-computed values; parallel writes of the
 * series, per-rank rows, CL matrices and attributes read back with HDF5; resume
 * truncation. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lethe/metrics.h"
#include "testutil.h"

static const double R[9] = {0.9, 0.1, 0.05, 0.7, 0.85, 0.2, 0.6, 0.75, 0.8};
static const double b[3] = {0.1, 0.12, 0.08};

static void near(double got, double want) {
  if (!(fabs(got - want) < 1e-12)) fail_msg("got %.15g, want %.15g", got, want);
}

static void test_summary_by_hand(void **state) {
  (void)state;
  /* k = 3: ACC (0.6+0.75+0.8)/3; BWT ((0.6-0.9)+(0.75-0.85))/2; FWT ((0.1-0.12)+(0.2-0.08))/2;
   * forgetting ((0.9-0.6)+(0.85-0.75))/2 */
  lt_cl_summary s = lt_cl_summarize(3, 3, R, b);
  near(s.acc, 2.15 / 3);
  near(s.bwt, -0.2);
  near(s.fwt, 0.05);
  near(s.forgetting, 0.2);
  /* k = 2: ACC (0.7+0.85)/2, BWT 0.7-0.9, FWT 0.1-0.12, forgetting 0.9-0.7 */
  s = lt_cl_summarize(3, 2, R, b);
  near(s.acc, 0.775);
  near(s.bwt, -0.2);
  near(s.fwt, -0.02);
  near(s.forgetting, 0.2);
  s = lt_cl_summarize(3, 1, R, NULL);
  near(s.acc, 0.9);
  assert_true(isnan(s.bwt) && isnan(s.fwt) && isnan(s.forgetting));
  s = lt_cl_summarize(3, 3, R, NULL);
  assert_true(isnan(s.fwt));
}

static double read_attr(hid_t obj, const char *name) {
  double v = NAN;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  assert_true(a >= 0);
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  return v;
}

static void read_ds(hid_t f, const char *name, double *v, hsize_t *dims) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  assert_true(ds >= 0);
  hid_t sp = H5Dget_space(ds);
  dims[0] = dims[1] = 1;
  H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
  H5Dclose(ds);
}

static void test_write_read_resume(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  char dir[256], path[300];
  assert_int_equal(lt_test_mkdir(dir, sizeof(dir), "metrics"), 0);
  snprintf(path, sizeof(path), "%s/metrics.h5", dir);
  lt_metrics_info mi = {.deck_text = "[run]\nseed = 3\n", .blis_kernels = "skx", .blis_threads = 1,
                        .seed = 3};
  lt_metrics *m = NULL;
  assert_int_equal(lt_metrics_open(ctx, path, &mi, -1, -1, 4, &m), LT_OK);
  /* two flushes of 4 and 3 steps; step s of rank r took (r + 1) * 100 + s seconds */
  for (int s = 0; s < 7; s++) {
    assert_int_equal(lt_metrics_step(m, 2.0 - 0.1 * s, 0.01 * s, (ctx->rank + 1) * 100.0 + s),
                     LT_OK);
    if (s == 3) {
      assert_int_equal(lt_metrics_step(m, 0, 0, 0), LT_ERR_INTERNAL); /* buffer full */
      lt_error_clear(ctx);
      double row[LT_EP_NCOLS] = {1.5, 0.5, 1.6, 0.45, 1000, 2.0};
      assert_int_equal(lt_metrics_epoch(m, row), LT_OK);
      assert_int_equal(lt_metrics_flush(m), LT_OK);
    }
  }
  double row2[LT_EP_NCOLS] = {1.2, 0.6, NAN, NAN, 1100, 1.8};
  assert_int_equal(lt_metrics_epoch(m, row2), LT_OK);
  assert_int_equal(lt_metrics_summary(m, "test_acc", 0.77), LT_OK);
  assert_int_equal(lt_metrics_cl(m, 3, 2, R, R, b), LT_OK);
  assert_int_equal(lt_metrics_close(&m), LT_OK);
  assert_null(m);

  if (ctx->rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    double v[64];
    hsize_t dims[2];
    read_ds(f, "/train/loss", v, dims);
    assert_int_equal(dims[0], 7);
    for (int s = 0; s < 7; s++) near(v[s], 2.0 - 0.1 * s);
    read_ds(f, "/train/lr", v, dims);
    near(v[6], 0.06);
    read_ds(f, "/ranks/step_time", v, dims);
    assert_int_equal(dims[0], (hsize_t)ctx->size);
    assert_int_equal(dims[1], 7);
    for (int r = 0; r < ctx->size; r++)
      for (int s = 0; s < 7; s++) near(v[r * 7 + s], (r + 1) * 100.0 + s);
    read_ds(f, "/epoch/test_acc", v, dims);
    assert_int_equal(dims[0], 2);
    near(v[0], 0.45);
    assert_true(isnan(v[1]));
    read_ds(f, "/cl/acc", v, dims);
    assert_int_equal(dims[0], 3);
    for (int i = 0; i < 6; i++) near(v[i], R[i]);
    for (int i = 6; i < 9; i++) assert_true(isnan(v[i])); /* task 3 not trained */
    hid_t g = H5Gopen2(f, "/cl", H5P_DEFAULT);
    near(read_attr(g, "ACC"), 0.775);
    near(read_attr(g, "FWT"), -0.02);
    near(read_attr(g, "forgetting"), 0.2);
    H5Gclose(g);
    near(read_attr(f, "test_acc"), 0.77);
    near(read_attr(f, "seed"), 3);
    H5Fclose(f);
  }
  MPI_Barrier(ctx->comm);

  /* resume from a snapshot after step 3 of epoch 1: later rows are cut */
  assert_int_equal(lt_metrics_open(ctx, path, &mi, 3, 0, 4, &m), LT_OK);
  assert_int_equal(lt_metrics_steps(m), 3);
  assert_int_equal(lt_metrics_step(m, 9.0, 0.5, 1.0), LT_OK);
  assert_int_equal(lt_metrics_close(&m), LT_OK);
  if (ctx->rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    double v[64];
    hsize_t dims[2];
    read_ds(f, "/train/loss", v, dims);
    assert_int_equal(dims[0], 4);
    near(v[2], 1.8);
    near(v[3], 9.0);
    read_ds(f, "/epoch/train_loss", v, dims);
    assert_int_equal(dims[0], 0);
    H5Fclose(f);
    char cmd[320];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
  }
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_summary_by_hand),
    cmocka_unit_test(test_write_read_resume),
};
LT_TEST_MPI_MAIN("metrics", tests)
