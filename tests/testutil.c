#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
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
