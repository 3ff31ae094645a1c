/* lethe data: the dataset HDF5 file, IDX import, strided shards, batching.
 *
 * File layout (DESIGN §5):
 *   /train/x  uint8 or float32, [N, D] or [N, C, H, W]   /train/y  integer [N]
 *   /test/x   same layout                                 /test/y   integer [N]
 *   root attributes: num_classes (int), name (string); optional /train/group [N]
 *
 * Rank r of P reads the strided shard of samples r, r+P, r+2P, ... with one
 * collective hyperslab read, so a class-sorted file still gives every rank
 * every class. Features are converted to float32 in [0, 1] for uint8 input
 * (divided by 255), then optionally standardised with the training split's
 * global mean and standard deviation.
 */
#ifndef LETHE_DATA_H
#define LETHE_DATA_H

#include "lethe/core.h"

typedef struct {
  int n;              /* samples on this rank */
  long n_global;      /* samples in the split over all ranks */
  int d;              /* features per sample (product of the trailing dims) */
  int num_classes;
  float *x;           /* [n, d] */
  int32_t *y;         /* [n] labels in [0, num_classes) */
  int64_t *index;     /* [n] global sample index of each local row */
  char name[64];      /* dataset name attribute */
  /* image shape when /<split>/x was [N, H, W] (c = 1) or [N, C, H, W], so that
   * d = c * h * w and feature k*h*w + i*w + j is channel k, row i, column j;
   * all 0 for [N, D] files (no image shape known) */
  int c, h, w;
} lt_dataset;

typedef struct {
  int scale;          /* 1: uint8 pixels divided by 255 (default 1) */
  int standardize;    /* 1: subtract mean, divide by std (train statistics) */
  float mean, std;    /* statistics to use; computed from the train split when std <= 0 */
} lt_data_opts;

/* Collective over ctx->comm. split is "train" or "test". On standardisation with
 * opts->std <= 0 the train split's global mean/std are computed and written back
 * into opts so that the test split can reuse them. Errors name the file and the
 * problem (missing file, missing dataset, shape/dtype mismatch, label out of range).
 * opts may be NULL (scale 1, no standardisation). Standardising a split other
 * than "train" with opts->std <= 0 is an error (load "train" first). mean/std are
 * those of the scaled features, over all samples and features of the split.
 * On error every rank returns an error (no rank is left in a collective). */
LT_WUR lt_status lt_dataset_load(lt_ctx *ctx, const char *path, const char *split,
                                 lt_data_opts *opts, lt_dataset **ds);
void lt_dataset_destroy(lt_dataset **ds);

/* Rows i of ds with sel[i] == want, copied into a new dataset (x, y, index, image
 * shape; the global count summed over the ranks). Collective. Free with
 * lt_dataset_destroy. */
LT_WUR lt_status lt_dataset_subset(lt_ctx *ctx, const lt_dataset *ds, const uint8_t *sel,
                                   uint8_t want, lt_dataset **out);

/* Hold out the samples of global index >= n_global - n_valid: *valid gets them and
 * *train is replaced by the rest (both stay strided shards in index order, so the
 * split does not depend on the rank count). 0 < n_valid < n_global, else LT_ERR_ARG
 * on every rank naming the values. Collective. */
LT_WUR lt_status lt_dataset_holdout(lt_ctx *ctx, lt_dataset **train, long n_valid,
                                    lt_dataset **valid);

/* Convert IDX files (gzipped or plain) to the dataset layout. test_images and
 * test_labels may be NULL (then no /test group). Runs on rank 0 only (others
 * return LT_OK immediately after the agreement); collective. Writes x as uint8
 * [N, 1, H, W] and y as uint8 [N] (contiguous), num_classes = max label + 1 (at
 * least 2) and name (NULL: the output's base name without extension). The file
 * is written as OUT.tmp and renamed to OUT, so a failed import leaves no OUT. */
LT_WUR lt_status lt_data_import_idx(lt_ctx *ctx, const char *train_images,
                                    const char *train_labels, const char *test_images,
                                    const char *test_labels, const char *out, const char *name);

/* Print a description of a dataset file (splits, shapes, dtypes, class counts). Rank 0. */
LT_WUR lt_status lt_data_info(lt_ctx *ctx, const char *path, FILE *out);

/* Mini-batches: the global batch B is split over the P ranks, rank r taking
 * B_r = B/P + (r < B%P) rows. Each epoch each rank shuffles its rows with its own
 * stream (seed, rank, LT_RNG_SHUFFLE) and walks them; the number of steps per
 * epoch is min over ranks of floor(n_r / B_r) (drop-last), agreed at create with
 * one MPI_Allreduce over ctx->comm, so the ranks may hold any numbers of rows
 * (the strided shard lt_dataset_load gives, or a scenario task's class-filtered
 * subset); a rank with more rows leaves more of them out of each epoch. create
 * is collective; it fails with LT_ERR_ARG on every rank when B < P or when some
 * rank holds fewer rows than its B_r (the message names the dataset, its size,
 * the rank and the batch). Epoch e's order is a shuffle with the stream's outputs
 * from e * 2^40 on, so it depends only on (ctx->seed, rank, e): b->rng holds the
 * base stream and the position is just (epoch, step). */
typedef struct {
  const lt_dataset *ds;
  int global_batch;
  int local_batch;     /* this rank's rows per step */
  long steps_per_epoch;
  uint32_t *perm;      /* [ds->n] */
  float *xb;           /* [local_batch, d] gathered batch */
  int32_t *yb;         /* [local_batch] */
  lt_rng rng;
  long epoch, step;    /* position: step within epoch */
} lt_batcher;

LT_WUR lt_status lt_batcher_create(lt_ctx *ctx, const lt_dataset *ds, int global_batch,
                                   lt_batcher **b);
void lt_batcher_destroy(lt_batcher **b);
/* Start epoch e (reshuffles). create starts epoch 0. */
void lt_batcher_epoch(lt_batcher *b, long epoch);
/* Position at (epoch, step) as if `step` batches of that epoch had been taken (restart). */
void lt_batcher_seek(lt_batcher *b, long epoch, long step);
/* Fill b->xb, b->yb with the next batch of the epoch; returns the rows (local_batch),
 * or 0 when the epoch's steps_per_epoch batches are used up (then call lt_batcher_epoch).
 * Row k of the batch is local row b->perm[(b->step - 1) * local_batch + k] of ds. */
int lt_batcher_next(lt_batcher *b);

/* Rows of the global batch that rank r of P takes. */
int lt_local_batch(int global_batch, int rank, int size);
/* Samples of an N-sample split in rank r's strided shard. */
long lt_shard_count(long n_global, int rank, int size);

#endif
