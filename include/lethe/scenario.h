/* lethe scenarios: continual-learning task sequences built from a loaded dataset
 * (part of the data module, src/data/scenario.c).
 *
 *   split     the classes 0..K-1, in a class order (given, seeded shuffle, or the
 *             natural order), cut into T consecutive groups of K/T classes; task t
 *             holds the rows whose label is in group t. Class-incremental (one
 *             head, loss over all logits) or task-incremental (training and
 *             evaluation with the logits masked to the task's classes). Every task
 *             has a class mask in both settings: a class-IL run also reports the
 *             masked (task-IL) accuracy.
 *   permuted  T tasks, each all rows with the features permuted by a fixed seeded
 *             permutation (task 0 optionally the identity). Domain-incremental.
 *   rotated   T tasks, each all rows rotated by its angle (bilinear, about the
 *             image centre). Domain-incremental. Needs the image shape (ds->h, w).
 *   joint     one task: all rows of the dataset (the upper bound). With cfg.joint
 *             on a split/permuted/rotated scenario, sc->joint_train is the union of
 *             all T tasks' training rows, to train once and evaluate on each task.
 *
 * Everything is built from this rank's strided shard (lt_dataset_load): task t's
 * datasets hold this rank's rows of the task, so the ranks of a split task hold
 * different numbers of rows (the batcher agrees on the steps, see data.h). Row
 * order within a task is the shard's order; index[] keeps the global sample index
 * in the file's split.
 *
 * Randomness is rank-independent: class order shuffle and permutations come from
 * the stream lt_rng_seed(seed, 0, LT_RNG_DATA); the class shuffle uses its outputs
 * from 0 on, task t's permutation those from (t + 1) * 2^40 on, so task t's
 * permutation depends only on (seed, t), the same on every rank.
 *
 * Memory: every task's datasets are copies. split costs one extra copy of the
 * train and test shards in total (each row is in one task); permuted and rotated
 * cost T copies (Fashion-MNIST, T = 10: 10 x 70000 x 784 floats = 2.2 GB over all
 * ranks, 2.2 GB / P per rank); cfg.joint adds one more copy of the training rows
 * of all tasks. Fine at MNIST scale; larger data would want on-the-fly transforms.
 */
#ifndef LETHE_SCENARIO_H
#define LETHE_SCENARIO_H

#include "lethe/data.h"

typedef enum {
  LT_SCEN_JOINT = 0, /* one task, the whole dataset */
  LT_SCEN_SPLIT,
  LT_SCEN_PERMUTED,
  LT_SCEN_ROTATED,
  LT_SCEN_KIND_COUNT
} lt_scenario_kind;

typedef enum {
  LT_CL_CLASS_IL = 0, /* one head, loss and evaluation over all logits (split, joint) */
  LT_CL_TASK_IL,      /* logits masked to the task's classes in training and evaluation */
  LT_CL_DOMAIN_IL     /* all classes in every task, no mask (permuted, rotated) */
} lt_cl_setting;

typedef struct {
  lt_scenario_kind kind;
  int num_tasks;          /* T >= 1; split: T divides num_classes; joint: 1 */
  uint64_t seed;          /* scenario stream (class shuffle, permutations); usually ctx->seed */
  /* split */
  int task_il;            /* 1: task-incremental, 0: class-incremental */
  const int *class_order; /* NULL, or a permutation of 0..K-1 (class_order_len = K) */
  int class_order_len;
  int shuffle_classes;    /* without class_order: 1 seeded shuffle, 0 natural order 0..K-1 */
  /* permuted */
  int first_identity;     /* 1: task 0's permutation is the identity */
  /* rotated */
  const double *angles;   /* [num_angles] degrees, counter-clockwise; num_angles = T */
  int num_angles;
  float fill;             /* value outside the source image (0: zero outside; with
                           * standardised features -mean/std is the black of the file) */
  /* split, permuted, rotated */
  int joint;              /* 1: also build sc->joint_train (union of all tasks' train rows) */
} lt_scenario_cfg;

/* kind joint, T = 1, seed 0, everything else off, fill 0. */
void lt_scenario_cfg_default(lt_scenario_cfg *cfg);

typedef struct {
  lt_dataset *train, *test; /* this rank's rows of the task (own copies) */
  uint8_t *mask;            /* [num_classes]: 1 for the task's classes (all 1 when domain-IL
                             * or joint): the task-IL evaluation mask, in every setting */
  int *classes;             /* [num_task_classes] the task's classes (split: in class order) */
  int num_task_classes;
  uint32_t *perm;           /* permuted: [d], feature j of a task row = feature perm[j] of the
                             * original row; NULL for the other kinds */
  double angle;             /* rotated: degrees (counter-clockwise); 0 otherwise */
} lt_task;

typedef struct {
  lt_scenario_kind kind;
  lt_cl_setting setting;
  int num_tasks, num_classes, d;
  int *class_order;         /* [num_classes]: split: the order classes go to tasks; else 0..K-1 */
  lt_task *tasks;           /* [num_tasks] */
  lt_dataset *joint_train;  /* cfg.joint: every task's train rows (task 0's first); else NULL */
} lt_scenario;

/* Build the scenario from this rank's train and test shards (same d and
 * num_classes). Collective over ctx->comm (task sizes are summed into each task
 * dataset's n_global). Invalid configurations fail on every rank with LT_ERR_ARG
 * and a message naming the value and what is allowed: split needs T to divide
 * num_classes and a class order that is a permutation of 0..K-1 (not together
 * with shuffle_classes); rotated needs image data (ds->h, ds->w > 0) and exactly
 * T finite angles; permuted needs T >= 1; options of another kind are errors. */
LT_WUR lt_status lt_scenario_create(lt_ctx *ctx, const lt_scenario_cfg *cfg,
                                    const lt_dataset *train, const lt_dataset *test,
                                    lt_scenario **sc);
void lt_scenario_destroy(lt_scenario **sc); /* accepts NULL; NULLs *sc */

/* The training mask of task t: its mask in the task-IL setting, NULL otherwise. */
const uint8_t *lt_scenario_train_mask(const lt_scenario *sc, int t);

/* Collective: LT_OK when every task's training set (and joint_train) holds at
 * least B_r rows on every rank r for the global batch B, else LT_ERR_ARG on every
 * rank naming the task, its size and the batch. One allreduce; lets a driver fail
 * before any training instead of at task t's batcher. */
LT_WUR lt_status lt_scenario_check_batch(lt_ctx *ctx, const lt_scenario *sc, int global_batch);

const char *lt_scenario_kind_name(lt_scenario_kind k); /* "joint", "split", ... */
const char *lt_cl_setting_name(lt_cl_setting s);       /* "class-IL", "task-IL", "domain-IL" */

/* ---------------------------------------------------------------- kernels */

/* Task t's feature permutation of d features for the scenario seed (see above):
 * perm[j] = source feature of feature j. identity: the identity (task 0 with
 * first_identity). Rank-independent. */
void lt_scenario_permutation(uint32_t *perm, int d, uint64_t seed, int task, int identity);

/* Rotate one h x w image (row-major, row 0 at the top) by `degrees`
 * counter-clockwise about its centre ((h-1)/2, (w-1)/2) in pixel-index
 * coordinates, with bilinear interpolation; source points outside the image
 * (including the outer neighbours of a border pixel) take the value fill.
 * out[i][j] = bilinear(in, i_s, j_s) with, for u = j - cx, v = cy - i,
 *   j_s = cx + cos(a) u + sin(a) v,   i_s = cy + sin(a) u - cos(a) v.
 * Multiples of 90 degrees use exact cos/sin, so 90 degrees on a square image is
 * out[i][j] = in[j][w-1-i] (transpose, then flip upside down) exactly.
 * out: [h, w], in: [h, w], out != in. Never allocates. */
void lt_rotate_bilinear(float *out, const float *in, int h, int w, double degrees, float fill);

#endif
