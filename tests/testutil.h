/* Helpers shared by lethe's tests. */
#ifndef LETHE_TESTUTIL_H
#define LETHE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the above first */
#include <cmocka.h>
#include <hdf5.h>

#include "lethe/core.h"
#include "lethe/data.h"

/* Run a cmocka group under MPI (MPI_Init/Finalize included). Every rank runs
 * the tests; only rank 0's cmocka output is shown (other ranks print their
 * failures to stderr). Returns nonzero on every rank when any rank failed. */
int lt_test_mpi_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests,
                     size_t ntests);

/* A context on MPI_COMM_WORLD (tests only; library code never uses WORLD). */
lt_ctx *lt_test_ctx(void);

/* Make a scratch directory name unique to this test and run: base/name-<pid of rank 0>. */
void lt_test_tmpdir(char *buf, size_t len, const char *name);

/* Collective over MPI_COMM_WORLD: lt_test_tmpdir, then rank 0 creates that
 * directory; returns after a barrier. Returns -1 on rank 0 when it could not be
 * created (and did not exist), else 0. */
int lt_test_mkdir(char *buf, size_t len, const char *name);

/* Collective over MPI_COMM_WORLD: after a barrier, rank 0 removes dir and all
 * below it. Returns -1 on rank 0 when that failed (reported on stderr), else 0. */
int lt_test_rmtree(const char *dir);

/* ------------------------------------------------------------------ checks
 * A failure on one rank must not leave the others waiting in a collective:
 * checks record the first failure locally (lt_test_fail_at, lt_test_check_close)
 * and all ranks agree (lt_test_agree) before asserting. */
typedef struct {
  int bad;       /* 1 after the first failure */
  char msg[512]; /* that failure's message */
} lt_test_checker;

/* Record a failure unless one is recorded already (the first one is kept). */
void lt_test_fail_at(lt_test_checker *c, const char *fmt, ...) LT_PRINTF(2, 3);

/* Record a failure at the first i with !(|a[i] - b[i]| <= rtol |b[i]| + atol)
 * (NaN fails); does nothing when c holds a failure already. */
void lt_test_check_close(lt_test_checker *c, const char *what, const float *a, const float *b,
                         size_t n, double rtol, double atol);

/* Collective over comm: ranks with a failure print it to stderr, and every
 * rank fails the running test when any rank recorded one. */
void lt_test_agree(MPI_Comm comm, lt_test_checker *c);

/* Collective over ctx->comm: a rank whose st is not LT_OK prints ctx's error,
 * and every rank asserts that all ranks returned LT_OK. */
void lt_test_agree_status(lt_ctx *ctx, lt_status st);

/* ------------------------------------------------------------------ data */

/* Rank `rank` of P takes lt_local_batch(n, rank, P) rows of a batch of n: the
 * contiguous block [*first, *first + *cnt) after those of ranks 0..rank-1. */
void lt_test_block(int n, int rank, int P, int *first, int *cnt);

/* ds = rank's strided shard (rows rank, rank + P, ...) of n_global samples
 * x[n_global, d], y[n_global], as lt_dataset_load gives it: allocates ds->x,
 * ds->y and ds->index (free with lt_test_shard_free); the rest of ds is zero.
 * Returns 0, or -1 when out of memory. */
int lt_test_shard(lt_dataset *ds, const float *x, const int32_t *y, long n_global, int d,
                  int num_classes, int rank, int P);
void lt_test_shard_free(lt_dataset *ds);

/* Write a whole dataset of the given file type from memory of type mtype with
 * plain serial HDF5 (creating intermediate groups); aborts on failure (test
 * setup). */
void lt_test_h5_write(hid_t file, const char *path, hid_t ftype, hid_t mtype, int rank,
                      const hsize_t *dims, const void *buf);
/* A scalar 32-bit integer attribute (H5T_STD_I32LE) on obj; aborts on failure. */
void lt_test_h5_attr_int(hid_t obj, const char *name, int v);

#define LT_TEST_MPI_MAIN(name, tests) \
  int main(int argc, char **argv) {   \
    return lt_test_mpi_main(argc, argv, name, tests, sizeof(tests) / sizeof(tests[0])); \
  }

#endif
