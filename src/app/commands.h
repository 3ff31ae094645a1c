/* Commands of the lethe executable (internal to src/app). */
#ifndef LETHE_APP_COMMANDS_H
#define LETHE_APP_COMMANDS_H

#include "lethe/core.h"
#include "lethe/linalg.h"

/* Exit codes of the lethe executable (documented in the README). */
enum {
  LT_EXIT_OK = 0,
  LT_EXIT_FAILURE = 1, /* a run failed (I/O, data, numerical, MPI) */
  LT_EXIT_USAGE = 2,   /* bad command line or input deck: nothing was run */
  LT_EXIT_CHECKPOINTED = 75 /* EX_TEMPFAIL: stopped by a signal after a snapshot; resubmit */
};

/* Each returns an lt_status; argv[0] is the command name. Collective.
 * lt_cmd_train sets *code to LT_EXIT_CHECKPOINTED when a stop signal ended the
 * run after a snapshot, else to LT_EXIT_OK. */
LT_WUR lt_status lt_cmd_train(lt_ctx *ctx, const lt_blas_info *blas, int argc, char **argv,
                              int *code);
LT_WUR lt_status lt_cmd_data(lt_ctx *ctx, int argc, char **argv);
/* lethe unlearn (cmd_unlearn.c): handles --help and the BLIS set-up itself */
LT_WUR lt_status lt_cmd_unlearn(lt_ctx *ctx, int argc, char **argv);
void lt_usage_unlearn(FILE *out);
LT_WUR lt_status lt_cmd_fisher(lt_ctx *ctx, const lt_blas_info *blas, int argc, char **argv);
void lt_usage_fisher(FILE *out); /* issue 5: K-FAC spectra and approximation errors */

void lt_usage_train(FILE *out);
void lt_usage_data(FILE *out);

#endif
