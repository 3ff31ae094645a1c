/* lethe report: tables of the metrics a run wrote (internal to src/app). */
#ifndef LETHE_APP_REPORT_H
#define LETHE_APP_REPORT_H

#include <stdio.h>

#include "lethe/core.h"

/* `lethe report RUN_DIR|FILE.h5 [RUN_DIR|FILE.h5 ...]`; argv[0] is "report".
 * Rank 0 reads the files (serial HDF5) and prints to stdout; the other ranks
 * wait for the agreed status. Collective over ctx->comm. */
LT_WUR lt_status lt_cmd_report(lt_ctx *ctx, int argc, char **argv);
void lt_usage_report(FILE *out);

#endif
