/* lethe data: import-idx and info. */
#include <string.h>

#include "commands.h"
#include "lethe/data.h"

void lt_usage_data(FILE *out) {
  fprintf(out,
          "usage:\n"
          "  lethe data import-idx IMAGES LABELS [TEST_IMAGES TEST_LABELS] OUT.h5 [--name NAME]\n"
          "      Convert IDX files (MNIST, Fashion-MNIST; gzipped or plain) into lethe's\n"
          "      dataset layout: /train/x uint8 [N,1,H,W], /train/y [N], the same under /test,\n"
          "      root attributes num_classes and name. Written to OUT.h5 atomically.\n"
          "  lethe data info FILE.h5\n"
          "      Print the splits, shapes, dtypes and per-class counts of a dataset file.\n"
          "\n"
          "Fashion-MNIST from Debian's dataset-fashion-mnist package:\n"
          "  d=/usr/share/datasets/fashion-mnist\n"
          "  lethe data import-idx $d/train-images-idx3-ubyte.gz $d/train-labels-idx1-ubyte.gz \\\n"
          "      $d/t10k-images-idx3-ubyte.gz $d/t10k-labels-idx1-ubyte.gz data/fashion-mnist.h5 \\\n"
          "      --name fashion-mnist\n");
}

lt_status lt_cmd_data(lt_ctx *ctx, int argc, char **argv) {
  if (argc < 2) {
    if (ctx->rank == 0) lt_usage_data(stderr);
    LT_ERROR(ctx, LT_ERR_ARG, "`lethe data` needs a subcommand: import-idx or info");
  }
  const char *sub = argv[1];
  if (strcmp(sub, "info") == 0) {
    if (argc != 3) LT_ERROR(ctx, LT_ERR_ARG, "usage: lethe data info FILE.h5");
    LT_CHECK(ctx, lt_data_info(ctx, argv[2], stdout));
    return LT_OK;
  }
  if (strcmp(sub, "import-idx") == 0) {
    const char *pos[5];
    int npos = 0;
    const char *name = NULL;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "--name") == 0) {
        if (i + 1 >= argc) LT_ERROR(ctx, LT_ERR_ARG, "--name needs a value");
        name = argv[++i];
      } else if (argv[i][0] == '-' && argv[i][1] == '-') {
        LT_ERROR(ctx, LT_ERR_ARG, "unknown option '%s' for `lethe data import-idx`", argv[i]);
      } else {
        if (npos >= 5) LT_ERROR(ctx, LT_ERR_ARG, "too many arguments for `lethe data import-idx`");
        pos[npos++] = argv[i];
      }
    }
    if (npos != 3 && npos != 5)
      LT_ERROR(ctx, LT_ERR_ARG,
               "usage: lethe data import-idx IMAGES LABELS [TEST_IMAGES TEST_LABELS] OUT.h5 "
               "(got %d file arguments)",
               npos);
    const char *out = pos[npos - 1];
    LT_CHECK(ctx, lt_data_import_idx(ctx, pos[0], pos[1], npos == 5 ? pos[2] : NULL,
                                     npos == 5 ? pos[3] : NULL, out, name));
    lt_log(ctx, LT_LOG_INFO, "wrote %s\n", out);
    return LT_OK;
  }
  LT_ERROR(ctx, LT_ERR_ARG, "unknown `lethe data` subcommand '%s' (import-idx, info)", sub);
}
