/* IDX import: small IDX files (plain and gzipped) are written here, imported,
 * and read back with plain HDF5 calls; corrupt, truncated, mismatched and
 * wrong-magic inputs fail with the right status and a message naming the file;
 * a failed import leaves no output file. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lethe/data.h"
#include "testutil.h"

#define N_TR 7
#define N_TE 5
#define H 3
#define W 4

static char dir[512];

static uint8_t pix(long i, long p) { return (uint8_t)((i * 13 + p * 7) % 256); }
static uint8_t tr_label(long i) { return (uint8_t)(i % 3); }
static uint8_t te_label(long i) { return (uint8_t)((i + 1) % 4); }

static void path_of(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", dir, name);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* Write an IDX file: big-endian magic and dims, then the bytes; gzipped when gz. */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const uint8_t *data, size_t n) {
  uint8_t hdr[16];
  uint32_t v[4] = {magic, 0, 0, 0};
  for (int k = 0; k < ndim; k++) v[k + 1] = dims[k];
  for (int k = 0; k <= ndim; k++) {
    hdr[4 * k] = (uint8_t)(v[k] >> 24);
    hdr[4 * k + 1] = (uint8_t)(v[k] >> 16);
    hdr[4 * k + 2] = (uint8_t)(v[k] >> 8);
    hdr[4 * k + 3] = (uint8_t)v[k];
  }
  size_t hl = 4 * (size_t)(ndim + 1);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, hdr, (unsigned)hl), (int)hl);
    if (n) assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(hdr, 1, hl, f), hl);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
  }
}

static void write_images(const char *path, int gz, long n, uint32_t h, uint32_t w) {
  uint8_t *x = malloc((size_t)n * h * w);
  for (long i = 0; i < n; i++)
    for (long p = 0; p < (long)(h * w); p++) x[i * h * w + p] = pix(i, p);
  uint32_t dims[3] = {(uint32_t)n, h, w};
  write_idx(path, gz, 0x00000803u, dims, 3, x, (size_t)n * h * w);
  free(x);
}

static void write_labels(const char *path, int gz, long n, uint8_t (*lab)(long)) {
  uint8_t y[1024];
  for (long i = 0; i < n; i++) y[i] = lab(i);
  uint32_t dims[1] = {(uint32_t)n};
  write_idx(path, gz, 0x00000801u, dims, 1, y, (size_t)n);
}

static long file_size(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static int setup(void **state) {
  (void)state;
  lt_test_tmpdir(dir, sizeof(dir), "idx");
  mkdir(dir, 0755);
  char p[600];
  path_of(p, sizeof(p), "tr-img");
  write_images(p, 0, N_TR, H, W); /* plain */
  path_of(p, sizeof(p), "tr-lab");
  write_labels(p, 0, N_TR, tr_label);
  path_of(p, sizeof(p), "te-img.gz");
  write_images(p, 1, N_TE, H, W); /* gzipped */
  path_of(p, sizeof(p), "te-lab.gz");
  write_labels(p, 1, N_TE, te_label);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return lt_test_rmtree(dir);
}

/* Read a whole uint8/integer dataset with plain HDF5; checks its dims. */
static void read_u8(hid_t f, const char *name, int rank, const hsize_t *want, uint8_t *buf) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  assert_true(d >= 0);
  hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
  hsize_t dims[4] = {0};
  assert_int_equal(H5Sget_simple_extent_ndims(sp), rank);
  H5Sget_simple_extent_dims(sp, dims, NULL);
  for (int k = 0; k < rank; k++) assert_int_equal(dims[k], want[k]);
  assert_int_equal(H5Tget_class(t), H5T_INTEGER);
  assert_int_equal(H5Tget_size(t), 1);
  assert_true(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(d);
}

static void read_name_attr(hid_t f, char *buf, size_t len) {
  hid_t a = H5Aopen(f, "name", H5P_DEFAULT);
  assert_true(a >= 0);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8); /* written as UTF-8; HDF5 does not convert between csets */
  char *s = NULL;
  assert_true(H5Aread(a, t, &s) >= 0);
  snprintf(buf, len, "%s", s);
  H5free_memory(s);
  H5Tclose(t);
  H5Aclose(a);
}

static void test_import_roundtrip(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  char ti[600], tl[600], ei[600], el[600], out[600];
  path_of(ti, sizeof(ti), "tr-img");
  path_of(tl, sizeof(tl), "tr-lab");
  path_of(ei, sizeof(ei), "te-img.gz");
  path_of(el, sizeof(el), "te-lab.gz");
  path_of(out, sizeof(out), "tiny.h5");
  lt_status st = lt_data_import_idx(ctx, ti, tl, ei, el, out, "tiny");
  if (st) lt_error_print(ctx, 1);
  assert_int_equal(st, LT_OK);
  char tmp[700];
  snprintf(tmp, sizeof(tmp), "%s.tmp", out);
  assert_false(exists(tmp)); /* renamed */

  /* num_classes: max label over both splits + 1, computed here */
  int maxl = 0;
  for (long i = 0; i < N_TR; i++) maxl = tr_label(i) > maxl ? tr_label(i) : maxl;
  for (long i = 0; i < N_TE; i++) maxl = te_label(i) > maxl ? te_label(i) : maxl;

  hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  for (int s = 0; s < 2; s++) {
    long n = s ? N_TE : N_TR;
    uint8_t x[N_TR * H * W], y[N_TR];
    hsize_t xd[4] = {(hsize_t)n, 1, H, W}, yd[1] = {(hsize_t)n};
    read_u8(f, s ? "/test/x" : "/train/x", 4, xd, x);
    read_u8(f, s ? "/test/y" : "/train/y", 1, yd, y);
    for (long i = 0; i < n; i++) {
      assert_int_equal(y[i], s ? te_label(i) : tr_label(i));
      for (long p = 0; p < H * W; p++) assert_int_equal(x[i * H * W + p], pix(i, p));
    }
  }
  int nc = 0;
  hid_t a = H5Aopen(f, "num_classes", H5P_DEFAULT);
  assert_true(H5Aread(a, H5T_NATIVE_INT, &nc) >= 0);
  H5Aclose(a);
  assert_int_equal(nc, maxl + 1);
  char name[64];
  read_name_attr(f, name, sizeof(name));
  assert_string_equal(name, "tiny");
  H5Fclose(f);

  /* the loader reads the imported file */
  lt_dataset *ds = NULL;
  assert_int_equal(lt_dataset_load(ctx, out, "test", NULL, &ds), LT_OK);
  assert_int_equal(ds->n, N_TE);
  assert_int_equal(ds->d, H * W);
  assert_int_equal(ds->num_classes, maxl + 1);
  for (long i = 0; i < N_TE; i++)
    for (long p = 0; p < H * W; p++)
      assert_float_equal(ds->x[i * H * W + p], pix(i, p) / 255.0, 1e-7); /* one float division */
  lt_dataset_destroy(&ds);

  /* info: class counts of each split, counted here */
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  assert_int_equal(lt_data_info(ctx, out, mem), LT_OK);
  fclose(mem);
  for (int s = 0; s < 2; s++) {
    char want[256] = "", item[32];
    for (int c = 0; c <= maxl; c++) {
      long cnt = 0;
      for (long i = 0; i < (s ? N_TE : N_TR); i++) cnt += (s ? te_label(i) : tr_label(i)) == c;
      snprintf(item, sizeof(item), "%s%d:%ld", c ? " " : "", c, cnt);
      strcat(want, item);
    }
    assert_non_null(strstr(text, want));
  }
  assert_non_null(strstr(text, "[7, 1, 3, 4]"));
  assert_non_null(strstr(text, "tiny"));
  free(text);

  /* without a test split; the name defaults to the output's base name */
  path_of(out, sizeof(out), "only-train.h5");
  assert_int_equal(lt_data_import_idx(ctx, ti, tl, NULL, NULL, out, NULL), LT_OK);
  f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  assert_true(H5Lexists(f, "train", H5P_DEFAULT) > 0);
  assert_true(H5Lexists(f, "test", H5P_DEFAULT) == 0);
  read_name_attr(f, name, sizeof(name));
  assert_string_equal(name, "only-train");
  H5Fclose(f);
  lt_ctx_destroy(&ctx);
}

/* An import that must fail: status, substrings of the message, no output left. */
static void expect_fail(const char *ti, const char *tl, const char *ei, const char *el,
                        lt_status want, const char *sub1, const char *sub2) {
  lt_ctx *ctx = lt_test_ctx();
  char out[600], tmp[700];
  path_of(out, sizeof(out), "fail.h5");
  snprintf(tmp, sizeof(tmp), "%s.tmp", out);
  lt_status st = lt_data_import_idx(ctx, ti, tl, ei, el, out, "x");
  if (getenv("LETHE_TEST_VERBOSE")) fprintf(stderr, "expected error: %s\n", ctx->errmsg);
  if (st != want || !strstr(ctx->errmsg, sub1) || (sub2 && !strstr(ctx->errmsg, sub2)))
    fprintf(stderr, "got status %d, message: %s\n", st, ctx->errmsg);
  assert_int_equal(st, want);
  assert_non_null(strstr(ctx->errmsg, sub1));
  if (sub2) assert_non_null(strstr(ctx->errmsg, sub2));
  assert_false(exists(out));
  assert_false(exists(tmp));
  lt_ctx_destroy(&ctx);
}

static void test_import_errors(void **state) {
  (void)state;
  char ti[600], tl[600], ei[600], el[600], p[600];
  path_of(ti, sizeof(ti), "tr-img");
  path_of(tl, sizeof(tl), "tr-lab");
  path_of(ei, sizeof(ei), "te-img.gz");
  path_of(el, sizeof(el), "te-lab.gz");

  /* missing file */
  path_of(p, sizeof(p), "no-such-images.gz");
  expect_fail(p, tl, NULL, NULL, LT_ERR_IO, p, "does not exist");

  /* wrong magic: a label file given as images, and the other way round */
  expect_fail(tl, tl, NULL, NULL, LT_ERR_DATA, tl,
              "is not an IDX image file: magic 0x00000801 (expected 0x00000803)");
  expect_fail(ti, ti, NULL, NULL, LT_ERR_DATA, ti,
              "is not an IDX label file: magic 0x00000803 (expected 0x00000801)");

  /* count mismatch: 7 images, 6 labels */
  path_of(p, sizeof(p), "six-labels");
  write_labels(p, 0, N_TR - 1, tr_label);
  expect_fail(ti, p, NULL, NULL, LT_ERR_DATA, "has 7 images", "has 6 labels");

  /* test images without test labels */
  expect_fail(ti, tl, ei, NULL, LT_ERR_ARG, "together", NULL);

  /* test images of another size */
  char big[600];
  path_of(big, sizeof(big), "te-img-4x4");
  write_images(big, 0, N_TE, 4, 4);
  expect_fail(ti, tl, big, el, LT_ERR_DATA, big, "4 x 4");

  /* plain IDX with fewer data bytes than its header announces */
  path_of(p, sizeof(p), "short-plain");
  {
    uint8_t x[10] = {0};
    uint32_t dims[3] = {N_TR, H, W};
    write_idx(p, 0, 0x00000803u, dims, 3, x, sizeof(x));
  }
  expect_fail(p, tl, NULL, NULL, LT_ERR_DATA, "corrupt or truncated gzip/IDX file", p);

  /* a plain IDX file with bytes after the announced data */
  path_of(p, sizeof(p), "long-plain");
  {
    uint8_t x[N_TR * H * W + 3] = {0};
    uint32_t dims[3] = {N_TR, H, W};
    write_idx(p, 0, 0x00000803u, dims, 3, x, sizeof(x));
  }
  expect_fail(p, tl, NULL, NULL, LT_ERR_DATA, p, "has data after its 7 x 3 x 4 values");

  /* a gzip stream cut in the middle; and one with bytes flipped mid-stream
   * (big enough, 200 images of 16x16, that the cut/flip hits deflate data) */
  char gz[600], cut[600], flip[600], lab[600];
  path_of(gz, sizeof(gz), "big.gz");
  path_of(lab, sizeof(lab), "big-lab");
  write_images(gz, 1, 200, 16, 16);
  write_labels(lab, 0, 200, tr_label);
  long size = file_size(gz);
  assert_true(size > 200);
  FILE *f = fopen(gz, "rb");
  uint8_t *buf = malloc((size_t)size);
  assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  path_of(cut, sizeof(cut), "cut.gz");
  f = fopen(cut, "wb");
  fwrite(buf, 1, (size_t)size / 2, f);
  fclose(f);
  expect_fail(cut, lab, NULL, NULL, LT_ERR_DATA, "corrupt or truncated gzip/IDX file", cut);
  for (long k = size / 2; k < size / 2 + 8; k++) buf[k] ^= 0x5a;
  path_of(flip, sizeof(flip), "flip.gz");
  f = fopen(flip, "wb");
  fwrite(buf, 1, (size_t)size, f);
  fclose(f);
  expect_fail(flip, lab, NULL, NULL, LT_ERR_DATA, "corrupt or truncated gzip/IDX file", flip);
  /* only the 8-byte trailer damaged (CRC): caught by reading past the data */
  for (long k = size / 2; k < size / 2 + 8; k++) buf[k] ^= 0x5a; /* undo */
  buf[size - 6] ^= 0xff;
  f = fopen(flip, "wb");
  fwrite(buf, 1, (size_t)size, f);
  fclose(f);
  expect_fail(flip, lab, NULL, NULL, LT_ERR_DATA, "corrupt or truncated gzip/IDX file", flip);
  free(buf);

  /* a failure after OUT.tmp was written (OUT is a directory: rename fails)
   * removes OUT.tmp */
  {
    lt_ctx *ctx = lt_test_ctx();
    char out[600], tmp[700];
    path_of(out, sizeof(out), "is-a-dir.h5");
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    mkdir(out, 0755);
    lt_status st = lt_data_import_idx(ctx, ti, tl, NULL, NULL, out, NULL);
    assert_int_equal(st, LT_ERR_IO);
    assert_non_null(strstr(ctx->errmsg, "cannot rename"));
    assert_non_null(strstr(ctx->errmsg, out));
    assert_false(exists(tmp));
    lt_ctx_destroy(&ctx);
  }

  /* an error in the test pair also leaves no output */
  expect_fail(ti, tl, ei, tl, LT_ERR_DATA, "has 5 images", "has 7 labels");
}

/* A dataset file with num_classes = 2 and a label 5 fails to load, naming the
 * file, the sample and the value. */
static void test_label_out_of_range(void **state) {
  (void)state;
  char p[600];
  path_of(p, sizeof(p), "badlabel.h5");
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  uint8_t x[6 * 4];
  int32_t y[6] = {0, 1, 1, 5, 0, 1};
  for (int i = 0; i < 24; i++) x[i] = (uint8_t)i;
  hsize_t xd[2] = {6, 4}, yd[1] = {6};
  lt_test_h5_write(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, xd, x);
  lt_test_h5_write(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
  lt_test_h5_attr_int(f, "num_classes", 2);
  H5Fclose(f);

  lt_ctx *ctx = lt_test_ctx();
  lt_dataset *ds = NULL;
  lt_status st = lt_dataset_load(ctx, p, "train", NULL, &ds);
  fprintf(stderr, "expected error: %s\n", ctx->errmsg);
  assert_int_equal(st, LT_ERR_DATA);
  assert_null(ds);
  assert_non_null(strstr(ctx->errmsg, p));
  assert_non_null(strstr(ctx->errmsg, "/train/y[3] = 5"));
  assert_non_null(strstr(ctx->errmsg, "[0, 2)"));
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_import_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_import_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_label_out_of_range, setup, teardown),
};

LT_TEST_MPI_MAIN("idx", tests)
