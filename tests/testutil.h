/* Helpers shared by lethe's tests. */
#ifndef LETHE_TESTUTIL_H
#define LETHE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the above first */
#include <cmocka.h>

#include "lethe/core.h"

/* Run a cmocka group under MPI (MPI_Init/Finalize included). Every rank runs
 * the tests; only rank 0's cmocka output is shown (other ranks print their
 * failures to stderr). Returns nonzero on every rank when any rank failed. */
int lt_test_mpi_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests,
                     size_t ntests);

/* A context on MPI_COMM_WORLD (tests only; library code never uses WORLD). */
lt_ctx *lt_test_ctx(void);

/* Make a scratch directory name unique to this test and run: base/name-<pid of rank 0>. */
void lt_test_tmpdir(char *buf, size_t len, const char *name);

#define LT_TEST_MPI_MAIN(name, tests) \
  int main(int argc, char **argv) {   \
    return lt_test_mpi_main(argc, argv, name, tests, sizeof(tests) / sizeof(tests[0])); \
  }

#endif
