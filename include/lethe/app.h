/* lethe app: the command line (train, data, report) over the library modules. */
#ifndef LETHE_APP_H
#define LETHE_APP_H

/* The whole program: MPI_Init, dispatch on argv[1], MPI_Finalize. Returns the exit code. */
int lt_main(int argc, char **argv);

#endif
