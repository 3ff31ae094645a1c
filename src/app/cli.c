/* lethe command line. */
#include <stdio.h>
#include <string.h>

#include "lethe/app.h"
#include "lethe/core.h"

int lt_main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) printf("lethe %s (%s)\n", LETHE_VERSION, LETHE_GIT_REV);
  MPI_Finalize();
  return 0;
}
