/* lethe finetune: fine-tuning a pretrained network on a small labelled set,
 * the stability remedies of Tinn et al. (Patterns 2023) and many seeds at once.
 *
 *   data      a class subset of the dataset, relabelled 0..K'-1 in the given order,
 *             and a seeded class-balanced training subset of n samples per class
 *             (stream (seed, 0, LT_RNG_FT_SUBSET): the same subset for a seed
 *             whatever the remedy or the rank count)
 *   load      pretrained parameters by layer name from a snapshot; the head (last
 *             layer) keeps its fresh initialisation when its shape differs; any
 *             other mismatch is an error naming the layer
 *   remedies  freeze_bottom = k: layers 1..k get learning-rate multiplier 0 (no
 *             update; their optimizer moments are never written and stay 0);
 *             llrd = xi: layer l of L gets multiplier xi^(L - l) (head: 1);
 *             reinit_top = k: layers L-k+1..L keep the model's own seeded
 *             initialisation instead of the pretrained values
 *   replicas  the world split into groups (MPI_Comm_split), each group a
 *             data-parallel replica with its own lt_ctx, running its share of the
 *             seeds in turn; results gathered into /finetune of one HDF5 file
 *
 * Layers are numbered 1..L from the input (names fc1..fcL), as in the deck.
 */
#ifndef LETHE_FINETUNE_H
#define LETHE_FINETUNE_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/model.h"
#include "lethe/optim.h"

#define LT_RNG_FT_SUBSET (LT_RNG_USER + 8) /* purpose of the subset stream */
#define LT_FT_MAX_CLASSES 1024

/* ---------------------------------------------------------------- data */

typedef struct {
  const int *classes;      /* [nclasses] dataset classes, relabelled 0..nclasses-1; NULL: all */
  int nclasses;
  long samples_per_class;  /* training samples kept per class (0: all) */
  uint64_t seed;
} lt_ft_data_cfg;

/* Collective. Replaces *train and *test (strided shards as lt_dataset_load gives
 * them) by the class subset, relabelled, and *train additionally by the seeded
 * class-balanced subset: per class (in the order given), the class's samples in
 * global-index order are shuffled with the stream (seed, 0, LT_RNG_FT_SUBSET) and
 * the first samples_per_class kept; the kept samples in global-index order are
 * dealt to the ranks round robin (rank r gets kept samples r, r+P, ...).
 * Errors (every rank): a class out of range or repeated, a class with fewer
 * samples than asked. */
LT_WUR lt_status lt_ft_select(lt_ctx *ctx, const lt_ft_data_cfg *cfg, lt_dataset **train,
                              lt_dataset **test);

/* ---------------------------------------------------------------- load, remedies */

typedef struct {
  const char *from;  /* snapshot file, checkpoint dir or run dir; NULL or "": no loading */
  int freeze_bottom; /* 0..L-1 */
  double llrd;       /* (0, 1]; 1: off */
  int reinit_top;    /* 0..L */
} lt_ft_cfg;

typedef struct {
  char path[1024];  /* snapshot read ("" when none) */
  int loaded;       /* layers copied from the snapshot */
  int head_reinit;  /* 1: the head's shape differed, so it kept its initialisation */
  int reinit;       /* layers kept at their initialisation (head_reinit + reinit_top) */
} lt_ft_report;

/* Collective. Validates cfg against m (LT_ERR_ARG naming [finetune] keys); with
 * cfg->from, copies every pretrained layer into m->theta by name except the top
 * reinit_top layers (and a head of another shape), which keep the values m holds
 * (its seeded initialisation). A model layer missing from the snapshot, a snapshot
 * layer the model lacks, or a non-head layer of another shape is an LT_ERR_DATA
 * naming the layer and both shapes. rep may be NULL. */
LT_WUR lt_status lt_ft_load(lt_ctx *ctx, const lt_ft_cfg *cfg, lt_model *m, lt_ft_report *rep);

/* Learning-rate multiplier of layer l (1-based) of L: 0 when l <= freeze_bottom,
 * else llrd^(L - l). */
double lt_ft_layer_mult(int l, int L, int freeze_bottom, double llrd);

/* Sets every layer's multiplier (weights and bias) on opt. */
LT_WUR lt_status lt_ft_apply_lr(lt_ctx *ctx, const lt_ft_cfg *cfg, const lt_model *m,
                                lt_optim *opt);

/* ---------------------------------------------------------------- replicas */

/* What one replica reports back (filled on its group's ranks). */
typedef struct {
  double acc, loss;  /* final test accuracy and loss (NaN when diverged) */
  int diverged;      /* 1: the run stopped on a non-finite loss */
  int num_classes;   /* of the task (chance = 1 / num_classes) */
} lt_ft_result;

/* One replica: train with seed on ctx (the group's context, seed set) into the
 * run directory out; fill *res. A returned error other than a divergence (which
 * the function reports in res) fails the whole run. */
typedef lt_status (*lt_ft_replica_fn)(lt_ctx *ctx, long seed, const char *out, void *user,
                                      lt_ft_result *res);

typedef struct {
  const long *seeds;     /* [nseeds] */
  int nseeds;
  int ranks_per_group;   /* 0: max(1, world size / nseeds) */
  const char *out;       /* the run directory: replicas in OUT/seed-S, results in OUT/metrics.h5 */
  double fail_below;     /* < 0: chance + 0.1 */
  const char *deck_text; /* provenance of OUT/metrics.h5 */
  const char *blis_kernels;
  int blis_threads;
} lt_ft_replicas_cfg;

/* Summary of the replicas' accuracies: mean, sample standard deviation, min and
 * max over the finite ones; failed counts accuracies below the threshold and
 * diverged runs. */
typedef struct {
  double mean, std, min, max, threshold;
  int n, finite, failed, diverged;
} lt_ft_summary;
lt_ft_summary lt_ft_summarize(const double *acc, const int *diverged, int n, double threshold);

/* Collective over ctx (the world). Splits it into groups of ranks_per_group ranks
 * (ranks beyond the last full group idle), runs seed i on group i mod G, reads each
 * replica's curves from OUT/seed-S/metrics.h5 (/train/loss, /epoch/test_acc,
 * /epoch/train_loss) and writes OUT/metrics.h5 with the group /finetune:
 *   seeds int64 [S], acc, test_loss float64 [S], diverged, failed int64 [S],
 *   train_loss float64 [S, steps], epoch_test_acc, epoch_train_loss float64 [S, epochs]
 *   (NaN beyond a replica's own length); attributes mean, std, min, max, failed,
 *   diverged, threshold, chance, n_seeds, groups, ranks_per_group.
 * sum (may be NULL) gets the summary on every rank. */
LT_WUR lt_status lt_ft_run_replicas(lt_ctx *ctx, const lt_ft_replicas_cfg *cfg,
                                    lt_ft_replica_fn fn, void *user, lt_ft_summary *sum);

#endif
