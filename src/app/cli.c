/* lethe command line: MPI start-up, BLIS set-up, dispatch, error exit without hangs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lethe/app.h"
#include "lethe/deck.h"
#include "report.h"

static void usage(FILE *out) {
  fprintf(out,
          "lethe %s: memory of neural networks (continual learning, unlearning, growth)\n"
          "\n"
          "usage:\n"
          "  lethe train DECK.ini [--set section.key=value ...] [--resume RUN_DIR|FILE] [--profile]\n"
          "  lethe unlearn DECK.ini --from CKPT [--set section.key=value ...]\n"
          "  lethe data import-idx IMAGES LABELS [TEST_IMAGES TEST_LABELS] OUT.h5 [--name NAME]\n"
          "  lethe data info FILE.h5\n"
          "  lethe report RUN_DIR|FILE.h5 [RUN_DIR ...]\n"
          "  lethe fisher DECK.ini --from RUN_DIR|SNAPSHOT.h5 [--out FILE.h5] [--samples N]\n"
          "  lethe --version | --help | train --help\n"
          "\n"
          "Run under MPI: mpirun -n 2 lethe train input/quickstart.ini\n"
          "Exit codes: 0 success, 1 run failed, 2 bad command line or input deck,\n"
          "75 stopped by SIGUSR1/SIGTERM after writing a snapshot (resume with --resume).\n",
          LETHE_VERSION);
}

static int is_help(const char *s) { return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0; }

int lt_main(int argc, char **argv) {
  /* SIGTERM and SIGUSR1 ask lethe train to snapshot and exit 75. Blocked here,
   * before MPI_Init, so that every thread Open MPI starts inherits the mask and
   * the signals stay pending until the training loop polls them (sigpending)
   * at a step boundary. Other commands unblock them again below. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  MPI_Init(&argc, &argv);
  lt_ctx *ctx = NULL;
  if (lt_ctx_create(MPI_COMM_WORLD, 0, &ctx) != LT_OK) {
    fprintf(stderr, "lethe: error: cannot create the MPI context\n");
    MPI_Abort(MPI_COMM_WORLD, LT_EXIT_FAILURE);
  }
  int code = LT_EXIT_OK;
  lt_status st = LT_OK;
  const char *cmd = argc > 1 ? argv[1] : NULL;
  int training = cmd && strcmp(cmd, "train") == 0 &&
                 !(argc > 2 && (is_help(argv[2]) || strcmp(argv[2], "--help-markdown") == 0));
  if (!training) pthread_sigmask(SIG_UNBLOCK, &stop, NULL); /* default actions again */

  if (!cmd || is_help(cmd)) {
    if (ctx->rank == 0) usage(stdout);
    code = cmd ? LT_EXIT_OK : LT_EXIT_USAGE;
  } else if (strcmp(cmd, "--version") == 0) {
    if (ctx->rank == 0) printf("lethe %s (git %s)\n", LETHE_VERSION, LETHE_GIT_REV);
  } else if (strcmp(cmd, "train") == 0) {
    if (argc > 2 && is_help(argv[2])) {
      if (ctx->rank == 0) lt_usage_train(stdout);
    } else if (argc > 2 && strcmp(argv[2], "--help-markdown") == 0) {
      if (ctx->rank == 0) lt_deck_print_doc(stdout, 1); /* the README's table */
    } else {
      lt_blas_info blas;
      lt_blas_setup(&blas);
      st = lt_cmd_train(ctx, &blas, argc - 1, argv + 1, &code);
    }
  } else if (strcmp(cmd, "unlearn") == 0) { /* issue 6 */
    st = lt_cmd_unlearn(ctx, argc - 1, argv + 1);
  } else if (strcmp(cmd, "report") == 0) {
    if (argc > 2 && is_help(argv[2])) {
      if (ctx->rank == 0) lt_usage_report(stdout);
    } else {
      st = lt_cmd_report(ctx, argc - 1, argv + 1);
    }
  } else if (strcmp(cmd, "fisher") == 0) { /* issue 5 */
    if (argc > 2 && is_help(argv[2])) {
      if (ctx->rank == 0) lt_usage_fisher(stdout);
    } else {
      lt_blas_info blas;
      lt_blas_setup(&blas);
      st = lt_cmd_fisher(ctx, &blas, argc - 1, argv + 1);
    }
  } else if (strcmp(cmd, "data") == 0) {
    if (argc > 2 && is_help(argv[2])) {
      if (ctx->rank == 0) lt_usage_data(stdout);
    } else {
      st = lt_cmd_data(ctx, argc - 1, argv + 1);
    }
  } else {
    if (ctx->rank == 0) {
      fprintf(stderr, "lethe: error: unknown command '%s'\n\n", cmd);
      usage(stderr);
    }
    code = LT_EXIT_USAGE;
  }

  if (st != LT_OK) {
    /* Commands agree on their status at every phase boundary, so every rank
     * arrives here together: rank 0 prints an error that all ranks share, and
     * each rank prints an error of its own. */
    int own = strncmp(ctx->errmsg, "another rank failed", 19) != 0;
    int all_same = 0;
    int mine = (int)st, mn = 0, mx = 0;
    MPI_Allreduce(&mine, &mn, 1, MPI_INT, MPI_MIN, ctx->comm);
    MPI_Allreduce(&mine, &mx, 1, MPI_INT, MPI_MAX, ctx->comm);
    all_same = (mn == mx);
    if (own && (ctx->rank == 0 || !all_same)) lt_error_print(ctx, !all_same && ctx->size > 1);
    code = (st == LT_ERR_DECK || st == LT_ERR_ARG) ? LT_EXIT_USAGE : LT_EXIT_FAILURE;
  }
  lt_ctx_destroy(&ctx);
  MPI_Finalize();
  return code;
}
