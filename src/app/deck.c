/* Input decks: one table documents, parses and validates every key. */
#include "lethe/deck.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

typedef enum { K_INT, K_LONG, K_REAL, K_BOOL, K_STR, K_PATH, K_ENUM, K_INTLIST, K_REALLIST } key_type;

typedef struct {
  const char *section, *key;
  key_type type;
  const char *def;     /* default as text (NULL: required) */
  double min, max;     /* numeric range */
  int min_open;        /* 1: (min, max]; 2: [min, max); 0: [min, max] */
  const char *choices; /* K_ENUM: "a|b|c" (index stored as int) */
  size_t off;          /* offset of the field in lt_deck */
  const char *doc;
  size_t count_off;    /* lists: offset of the int holding the entry count */
} key_spec;

#define F(field) offsetof(lt_deck, field)
#define BIG 1e300

/* count_off is given only for list keys; the others leave it 0 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const key_spec keys[] = {
    {"data", "path", K_PATH, NULL, 0, 0, 0, NULL, F(data_path),
     "dataset HDF5 file (layout of `lethe data info`; make one with `lethe data import-idx`)"},
    {"data", "scale", K_BOOL, "true", 0, 0, 0, NULL, F(data_scale),
     "divide uint8 features by 255"},
    {"data", "standardize", K_BOOL, "false", 0, 0, 0, NULL, F(data_standardize),
     "subtract the training set's mean and divide by its standard deviation"},
    {"data", "valid", K_LONG, "0", 0, 1e12, 0, NULL, F(data_valid),
     "lethe train: hold out the last N samples of the training split and evaluate on them "
     "instead of the test split, which is then not read (every test figure of the run is a "
     "validation figure; metrics.h5 root attribute valid_samples = N). For choosing "
     "hyperparameters without the test split. 0: evaluate on the test split"},

    {"model", "hidden", K_INTLIST, "256", 1, 1 << 20, 0, NULL, F(hidden),
     "hidden layer widths of the MLP, comma-separated (empty: linear model)", F(nhidden)},
    {"model", "activation", K_ENUM, "relu", 0, 0, 0, "relu|tanh|gelu", F(activation),
     "activation after every hidden layer"},
    {"model", "init", K_ENUM, "kaiming", 0, 0, 0, "kaiming|xavier", F(init),
     "weight initialisation (uniform variants; biases start at 0)"},

    {"optim", "kind", K_ENUM, "sgd", 0, 0, 0, "sgd|adam|adamw", F(optim_kind),
     "optimizer (adamw: decoupled weight decay)"},
    {"optim", "lr", K_REAL, "0.05", 0, 10, 1, NULL, F(lr), "base learning rate"},
    {"optim", "momentum", K_REAL, "0.9", 0, 1, 2, NULL, F(momentum),
     "SGD momentum, in [0, 1)"},
    {"optim", "nesterov", K_BOOL, "false", 0, 0, 0, NULL, F(nesterov),
     "SGD: Nesterov momentum (needs momentum > 0)"},
    {"optim", "weight_decay", K_REAL, "0", 0, 10, 0, NULL, F(weight_decay),
     "L2 penalty (sgd, adam) or decoupled decay (adamw)"},
    {"optim", "beta1", K_REAL, "0.9", 0, 1, 2, NULL, F(beta1), "Adam first-moment decay, in [0, 1)"},
    {"optim", "beta2", K_REAL, "0.999", 0, 1, 2, NULL, F(beta2),
     "Adam second-moment decay, in [0, 1)"},
    {"optim", "eps", K_REAL, "1e-8", 0, 1, 1, NULL, F(eps), "Adam denominator epsilon"},
    {"optim", "batch_size", K_INT, "128", 1, 1 << 20, 0, NULL, F(batch_size),
     "global mini-batch size, split over the ranks"},
    {"optim", "schedule", K_ENUM, "constant", 0, 0, 0, "constant|step|cosine", F(schedule),
     "learning-rate schedule (cosine decays to min_lr at the last step)"},
    {"optim", "warmup_steps", K_LONG, "0", 0, 1e12, 0, NULL, F(warmup_steps),
     "linear warm-up steps from 0 to lr"},
    {"optim", "step_size", K_LONG, "1000", 1, 1e12, 0, NULL, F(step_size),
     "step schedule: multiply the lr by gamma every step_size steps"},
    {"optim", "gamma", K_REAL, "0.1", 0, 1, 1, NULL, F(gamma), "step schedule: decay factor"},
    {"optim", "min_lr", K_REAL, "0", 0, 10, 0, NULL, F(min_lr), "cosine schedule: final lr"},
    {"optim", "freeze", K_STR, "", 0, 0, 0, NULL, F(freeze),
     "layers not trained, comma-separated names (fc1, fc2, ...)"},
    {"optim", "lr_mult", K_STR, "", 0, 0, 0, NULL, F(lr_mult),
     "per-layer learning-rate multipliers, e.g. `fc1:0.1,fc2:0.5` (0 freezes)"},

    {"train", "epochs", K_INT, "5", 1, 1e6, 0, NULL, F(epochs), "passes over the training set"},
    {"train", "dist", K_ENUM, "sharded", 0, 0, 0, "sharded|allreduce", F(dist),
     "gradient exchange: reduce-scatter + allgather with sharded optimizer state, or plain "
     "allreduce with replicated updates (for comparison)"},
    {"train", "collective", K_ENUM, "ring", 0, 0, 0, "ring|mpi", F(collective),
     "sharded reduce-scatter: lethe's ring of MPI_Sendrecv (fast on one node) or "
     "MPI_Reduce_scatter_block"},
    {"train", "eval_every", K_INT, "1", 0, 1e6, 0, NULL, F(eval_every),
     "evaluate on the test split every N epochs (0: only at the end)"},
    {"train", "max_steps", K_LONG, "0", 0, 1e15, 0, NULL, F(max_steps),
     "stop after this many steps in all (0: no limit)"},

    {"checkpoint", "every_steps", K_LONG, "0", 0, 1e15, 0, NULL, F(ckpt_every_steps),
     "write a snapshot every N global steps (0: off)"},
    {"checkpoint", "every_epochs", K_INT, "1", 0, 1e6, 0, NULL, F(ckpt_every_epochs),
     "write a snapshot after every N epochs (0: off)"},
    {"checkpoint", "every_seconds", K_REAL, "0", 0, 1e6, 0, NULL, F(ckpt_every_seconds),
     "write a snapshot when N seconds passed since the last one, on rank 0's clock (0: off)"},
    {"checkpoint", "at_task_end", K_BOOL, "true", 0, 0, 0, NULL, F(ckpt_at_task_end),
     "write a snapshot at the end of every task (a run without [scenario] is one task)"},
    {"checkpoint", "keep", K_INT, "2", 0, 1e6, 0, NULL, F(ckpt_keep),
     "snapshots kept in RUN_DIR/ckpt, newest first (0: keep all)"},

    {"scenario", "kind", K_ENUM, "none", 0, 0, 0, "none|joint|split|permuted|rotated", F(scen_kind),
     "continual-learning scenario: none (plain training), split (classes into tasks), permuted "
     "(pixel permutation per task), rotated (angle per task), joint (one task of all data)"},
    {"scenario", "tasks", K_INT, "5", 1, 1000, 0, NULL, F(scen_tasks), "number of tasks T"},
    {"scenario", "setting", K_ENUM, "class", 0, 0, 0, "class|task", F(scen_setting),
     "split: class-incremental (one head) or task-incremental (logits masked to the task's "
     "classes in training and evaluation)"},
    {"scenario", "class_order", K_INTLIST, "", 0, 1 << 20, 0, NULL, F(class_order),
     "split: the order classes go to tasks, a permutation of 0..K-1 (empty: natural order)",
     F(nclass_order)},
    {"scenario", "shuffle_classes", K_BOOL, "false", 0, 0, 0, NULL, F(shuffle_classes),
     "split: seeded shuffle of the class order ([run] seed)"},
    {"scenario", "first_identity", K_BOOL, "true", 0, 0, 0, NULL, F(first_identity),
     "permuted: task 1 sees the original images"},
    {"scenario", "angles", K_REALLIST, "0,30,60,90,120", -3600, 3600, 0, NULL, F(angles),
     "rotated: one angle in degrees per task (counter-clockwise)", F(nangles)},

    {"cl", "penalty", K_ENUM, "none", 0, 0, 0, "none|ewc|online_ewc|si|kfac", F(cl_penalty),
     "parameter-space term: EWC (one Fisher per past task), online EWC, SI, K-FAC Laplace"},
    {"cl", "replay", K_ENUM, "none", 0, 0, 0, "none|er|der|derpp", F(cl_replay),
     "output-space term: experience replay, DER (logits), DER++ (logits + labels)"},
    {"cl", "joint", K_BOOL, "false", 0, 0, 0, NULL, F(cl_joint),
     "train once on all tasks' data together (the upper bound), then evaluate every task"},
    {"cl", "ewc_lambda", K_REAL, "100", 0, 1e9, 0, NULL, F(ewc_lambda),
     "EWC / online EWC strength lambda: (lambda/2) sum F (theta - theta*)^2"},
    {"cl", "ewc_gamma", K_REAL, "1", 0, 1, 0, NULL, F(ewc_gamma),
     "online EWC decay: F <- gamma F + F_t"},
    {"cl", "si_c", K_REAL, "1", 0, 1e9, 0, NULL, F(si_c), "SI strength c"},
    {"cl", "si_xi", K_REAL, "0.001", 0, 1e3, 1, NULL, F(si_xi), "SI damping xi"},
    {"cl", "fisher", K_ENUM, "sampled", 0, 0, 0, "empirical|sampled|batch_mean", F(fisher_mode),
     "diagonal Fisher of EWC: labels from the data, drawn from the model (true Fisher), or "
     "squared mean batch gradients"},
    {"cl", "fisher_samples", K_LONG, "0", 0, 1e12, 0, NULL, F(fisher_samples),
     "samples of the task for the Fisher (0: all)"},
    {"cl", "fisher_batch", K_INT, "128", 1, 1 << 20, 0, NULL, F(fisher_batch),
     "global batch of the Fisher computation"},
    {"cl", "buffer_size", K_LONG, "500", 1, 1e9, 0, NULL, F(buffer_size),
     "replay buffer size M over all ranks (reservoir sampling)"},
    {"cl", "replay_batch", K_INT, "32", 1, 1 << 16, 0, NULL, F(replay_batch),
     "global rows of each buffer minibatch"},
    {"cl", "der_alpha", K_REAL, "0.3", 0, 1e6, 0, NULL, F(der_alpha),
     "DER/DER++: alpha * ||f(x') - z'||^2 (squared error summed over classes)"},
    {"cl", "derpp_beta", K_REAL, "0.5", 0, 1e6, 0, NULL, F(derpp_beta),
     "DER++: beta * CE on a second buffer minibatch"},
    /* K-FAC (issue 5) */
    {"cl", "kfac_lambda", K_REAL, "100", 0, 1e9, 0, NULL, F(kfac_lambda),
     "K-FAC Laplace strength lambda: (lambda/2) sum_l tr(dW_l^T G_l dW_l A_l)"},
    {"cl", "kfac_gamma", K_REAL, "1", 0, 1, 0, NULL, F(kfac_gamma),
     "K-FAC Laplace decay of the online factors: G <- gamma G + G_t, A <- (gamma w A + A_t) / "
     "(gamma w + 1) (w <- gamma w + 1: A the decayed mean)"},
    {"cl", "kfac_damping", K_ENUM, "pi", 0, 0, 0, "pi|plain", F(kfac_damping),
     "damping of inverted K-FAC factors (refresh kfac form, lethe fisher): pi-balanced "
     "A + pi sqrt(eps) I, G + sqrt(eps)/pi I, or plain A + sqrt(eps) I, G + sqrt(eps) I"},
    {"cl", "kfac_block", K_INT, "64", 1, 1 << 16, 0, NULL, F(kfac_block),
     "ScaLAPACK block size of the K-FAC factors (block-cyclic layout)"},
    {"cl", "kfac_block_sample", K_INT, "24", 2, 512, 0, NULL, F(kfac_block_sample),
     "lethe fisher: rows and columns of the random weight block of the exact Fisher"},

    {"refresh", "kind", K_ENUM, "off", 0, 0, 0, "off|code|paper|kfac", F(refresh),
     "refresh learning (unlearn step before each relearn step): the authors' code form, the "
     "paper's Langevin form, or that form with the K-FAC Fisher (G^-1 grad_W A^-1)"},
    {"refresh", "delta", K_REAL, "1e-5", 0, 10, 0, NULL, F(refresh_delta), "code form: step size"},
    {"refresh", "kappa", K_REAL, "1e-3", 0, 1e9, 0, NULL, F(refresh_kappa),
     "code form: Fisher preconditioning 1 / (1 + kappa F)"},
    {"refresh", "sigma", K_REAL, "1e-3", 0, 1e3, 0, NULL, F(refresh_sigma), "code form: noise scale"},
    {"refresh", "gamma", K_REAL, "1e-6", 0, 10, 0, NULL, F(refresh_gamma), "paper form: step size"},
    {"refresh", "damping", K_REAL, "1", 0, 1e9, 1, NULL, F(refresh_damping),
     "paper form: Fisher damping (F + damping); kfac form: eps of the damped factors"},
    {"refresh", "every", K_INT, "1", 1, 1e6, 0, NULL, F(refresh_every), "unlearn every N steps"},
    {"refresh", "steps", K_INT, "1", 1, 1000, 0, NULL, F(refresh_steps), "unlearn steps each time"},

    /* [unlearn]: lethe unlearn (SSD, baselines, membership inference; unlearn.h) */
    {"unlearn", "forget", K_ENUM, "class", 0, 0, 0, "class|subclass|random", F(ul_forget),
     "forget set: whole classes, a sub-class (samples of `classes` whose /train/group is in "
     "`groups`) or random training samples"},
    {"unlearn", "classes", K_INTLIST, "", 0, 1 << 20, 0, NULL, F(ul_classes),
     "class and subclass: the classes to forget (subclass: the classes the groups lie in)",
     F(ul_nclasses)},
    {"unlearn", "groups", K_INTLIST, "", -(1 << 30), 1 << 30, 0, NULL, F(ul_groups),
     "subclass: the /train/group values to forget", F(ul_ngroups)},
    {"unlearn", "fraction", K_REAL, "0.01", 0, 1, 1, NULL, F(ul_fraction),
     "random: fraction of the training set to forget (seeded by [run] seed)"},
    {"unlearn", "count", K_LONG, "0", 0, 1e12, 0, NULL, F(ul_count),
     "random: number of samples to forget (0: use fraction)"},
    {"unlearn", "alpha", K_REALLIST, "5", 0, 1e9, 0, NULL, F(ul_alpha),
     "SSD selection: parameters with I_Df > alpha I_D (a list runs a grid with lambda)",
     F(ul_nalpha)},
    {"unlearn", "lambda", K_REALLIST, "0.5", 0, 1e9, 0, NULL, F(ul_lambda),
     "SSD dampening: theta *= min(lambda I_D / I_Df, 1) (a list runs a grid with alpha)",
     F(ul_nlambda)},
    {"unlearn", "importance", K_ENUM, "batch_mean", 0, 0, 0, "batch_mean|empirical|sampled",
     F(ul_importance),
     "SSD importances: squared batch-mean gradients averaged over batches (the authors' code) or "
     "the per-sample diagonal Fisher (empirical or sampled labels)"},
    {"unlearn", "batching", K_ENUM, "by_class", 0, 0, 0, "by_class|shuffled", F(ul_batching),
     "batch_mean: batches of the class-sorted samples (the authors' loader) or of a seeded "
     "shuffle"},
    {"unlearn", "batch_size", K_INT, "64", 1, 1 << 20, 0, NULL, F(ul_batch),
     "global batch of the importances, NegGrad and fine-tuning"},
    {"unlearn", "importance_file", K_STR, "", 0, 0, 0, NULL, F(ul_importance_file),
     "stored I_D of the checkpoint (empty: CKPT.importance.h5 beside the snapshot)"},
    {"unlearn", "reuse_importance", K_BOOL, "true", 0, 0, 0, NULL, F(ul_reuse_importance),
     "reuse the stored I_D when it exists (false: compute it again and replace the file)"},
    {"unlearn", "baselines", K_STR, "retrain,finetune,neggrad", 0, 0, 0, NULL, F(ul_baselines),
     "baselines run beside SSD, comma-separated: retrain, finetune, neggrad (empty: none)"},
    {"unlearn", "finetune_epochs", K_INT, "1", 1, 1e6, 0, NULL, F(ul_finetune_epochs),
     "fine-tune baseline: epochs on the retain set"},
    {"unlearn", "finetune_lr", K_REAL, "0.02", 0, 10, 1, NULL, F(ul_finetune_lr),
     "fine-tune baseline: learning rate (the deck's optimizer, constant schedule)"},
    {"unlearn", "neggrad_steps", K_LONG, "50", 1, 1e9, 0, NULL, F(ul_neggrad_steps),
     "NegGrad baseline: gradient-ascent steps on the forget set"},
    {"unlearn", "neggrad_lr", K_REAL, "0.001", 0, 10, 1, NULL, F(ul_neggrad_lr),
     "NegGrad baseline: learning rate (plain SGD)"},
    {"unlearn", "out", K_STR, "", 0, 0, 0, NULL, F(ul_out),
     "output run directory (empty: RUN_OUT/unlearn, RUN_OUT = [run] out)"},
    /* [model] kind, templates and [grow]: MixtureGrowth (issue 7) */
    {"model", "kind", K_ENUM, "dense", 0, 0, 0, "dense|template", F(model_kind),
     "dense layers, or template layers (MixtureGrowth: each weight block a combination of 2 "
     "templates of one of 2 sets; hidden widths are the full, grown widths and must be even)"},
    {"model", "templates", K_INT, "2", 2, 8, 0, NULL, F(ntemplates),
     "template kind: templates per template set"},
    {"grow", "schedule", K_ENUM, "grow", 0, 0, 0, "grow|member|full", F(grow_mode),
     "template kind: grow (member 0, member 1, then the grown network for [train] epochs), "
     "member (member 0 alone) or full (the full-width template network from scratch)"},
    {"grow", "member_epochs", K_INT, "3", 1, 1e6, 0, NULL, F(grow_member_epochs),
     "template kind: epochs of each member's phase (each with a fresh optimizer and schedule)"},
    {"grow", "init", K_ENUM, "orthogonal", 0, 0, 0, "orthogonal|copy|zero|random", F(grow_init),
     "coefficients of the new blocks at growth: orthogonal to the trained ones, a noisy copy, "
     "zero (grown logits = sum of the members') or random"},
    {"grow", "noise", K_REAL, "0.01", 0, 10, 0, NULL, F(grow_noise),
     "copy init: noise standard deviation relative to the coefficient vector's norm"},
    {"grow", "lr", K_REAL, "0", 0, 10, 0, NULL, F(grow_lr),
     "base learning rate of the grown network's schedule (0: [optim] lr)"},

    {"run", "seed", K_LONG, "0", 0, 9.0e15, 0, NULL, F(seed),
     "base seed of every random stream (init, shuffles, sampling)"},
    {"run", "out", K_STR, "runs/default", 0, 0, 0, NULL, F(out),
     "run directory (created; holds deck.ini and metrics.h5)"},
    {"run", "log_level", K_ENUM, "info", 0, 0, 0, "quiet|info|debug", F(log_level),
     "rank-0 logging (debug also prints tracebacks of errors)"},
    {"run", "progress", K_ENUM, "auto", 0, 0, 0, "auto|bar|lines|none", F(progress),
     "progress display: auto (single updating line on a terminal, plain lines otherwise)"},

    /* [run] seeds, ranks_per_seed and [finetune]: fine-tuning and replicas (issue 8) */
    {"run", "seeds", K_INTLIST, "", 0, 1 << 20, 0, NULL, F(seeds),
     "replicas: one number N runs seeds seed..seed+N-1, a list runs those seeds, each in "
     "RUN_DIR/seed-S, all summarised in /finetune of RUN_DIR/metrics.h5 (empty: one run)",
     F(nseeds)},
    {"run", "ranks_per_seed", K_INT, "0", 0, 1 << 20, 0, NULL, F(ranks_per_seed),
     "ranks of each replica's group; the groups run at once, each its share of the seeds in "
     "turn (0: world size / replicas, at least 1)"},
    {"finetune", "from", K_STR, "", 0, 0, 0, NULL, F(ft_from),
     "pretrained snapshot (file, checkpoint dir or run dir) loaded by layer name; a head of "
     "another shape is re-initialised (empty: no pretraining)"},
    {"finetune", "classes", K_INTLIST, "", 0, 1 << 20, 0, NULL, F(ft_classes),
     "the dataset's classes to use, relabelled 0, 1, ... in this order, in both splits (empty: "
     "all)", F(ft_nclasses)},
    {"finetune", "samples_per_class", K_LONG, "0", 0, 1e9, 0, NULL, F(ft_samples_per_class),
     "seeded class-balanced training subset of n samples per class, the same for a seed "
     "whatever the remedy or rank count (0: all)"},
    {"finetune", "freeze_bottom", K_INT, "0", 0, 31, 0, NULL, F(ft_freeze_bottom),
     "the k lowest layers get no updates (their optimizer moments stay 0)"},
    {"finetune", "llrd", K_REAL, "1", 0, 1, 1, NULL, F(ft_llrd),
     "layer-wise lr decay: layer l of L trains at lr * llrd^(L-l), the head at lr (1: off)"},
    {"finetune", "reinit_top", K_INT, "0", 0, 32, 0, NULL, F(ft_reinit_top),
     "the k top layers (head included) keep the model's seeded initialisation instead of the "
     "pretrained values"},
    {"finetune", "fail_below", K_REAL, "-1", -1, 1, 0, NULL, F(ft_fail_below),
     "a replica whose final test accuracy is below this counts as failed (-1: chance + 0.1)"},
};
#pragma GCC diagnostic pop
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

int lt_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int c = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
      int v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + c < v) v = d[i - 1][j - 1] + c;
      d[i][j] = v;
    }
  return d[la][lb];
}

static const key_spec *find_key(const char *section, const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) return &keys[i];
  return NULL;
}

/* Nearest "[section] key" to the unknown one, over all keys. */
static const key_spec *suggest(const char *section, const char *key) {
  const key_spec *best = NULL;
  int bestd = 1 << 30;
  for (size_t i = 0; i < NKEYS; i++) {
    int d = lt_edit_distance(keys[i].key, key) + (strcmp(keys[i].section, section) ? 2 : 0);
    if (d < bestd) {
      bestd = d;
      best = &keys[i];
    }
  }
  return bestd <= 4 ? best : NULL;
}

static int section_exists(const char *section) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].section, section) == 0) return 1;
  return 0;
}

/* Where a value came from, for messages. */
typedef struct {
  lt_ctx *ctx;
  lt_deck *deck;
  const char *file;
  int line;
  unsigned char seen[NKEYS];
  lt_status st;
} parse_state;

static void range_text(const key_spec *k, char *buf, size_t len) {
  switch (k->type) {
  case K_BOOL: snprintf(buf, len, "true or false"); break;
  case K_ENUM: {
    snprintf(buf, len, "one of: ");
    size_t o = strlen(buf);
    for (const char *c = k->choices; *c && o + 2 < len; c++) {
      if (*c == '|') {
        buf[o++] = ',';
        buf[o++] = ' ';
      } else {
        buf[o++] = *c;
      }
      buf[o] = '\0';
    }
    break;
  }
  case K_INTLIST:
    snprintf(buf, len, "comma-separated integers in [%.0f, %.0f]", k->min, k->max);
    break;
  case K_REALLIST:
    snprintf(buf, len, "comma-separated numbers in [%g, %g]", k->min, k->max);
    break;
  case K_INT:
  case K_LONG:
    if (k->max >= 1e12)
      snprintf(buf, len, "an integer >= %.0f", k->min);
    else
      snprintf(buf, len, "an integer in [%.0f, %.0f]", k->min, k->max);
    break;
  case K_REAL:
    snprintf(buf, len, "a number in %s%g, %g%s", k->min_open == 1 ? "(" : "[", k->min, k->max,
             k->min_open == 2 ? ")" : "]");
    break;
  case K_PATH: snprintf(buf, len, "the path of an existing, readable file"); break;
  case K_STR: snprintf(buf, len, "text"); break;
  }
}

/* Value within range, with the ends open or closed as min_open says. */
static int real_ok(const key_spec *k, double v) {
  if (!isfinite(v)) return 0;
  if (k->min_open == 1 ? !(v > k->min) : !(v >= k->min)) return 0;
  return k->min_open == 2 ? v < k->max : v <= k->max;
}

static int parse_bool(const char *s, int *out) {
  static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, t[i]) == 0) { *out = 1; return 1; }
    if (strcasecmp(s, f[i]) == 0) { *out = 0; return 1; }
  }
  return 0;
}

static int parse_long(const char *s, long *out) {
  errno = 0;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0') return 0;
  *out = v;
  return 1;
}

static lt_status bad_value(parse_state *ps, const key_spec *k, const char *value,
                           const char *why) {
  char allowed[256];
  range_text(k, allowed, sizeof(allowed));
  return lt_error_set(ps->ctx, LT_ERR_DECK, __FILE__, __LINE__, __func__,
                      "%s:%d: [%s] %s = '%s': %s; allowed: %s", ps->file, ps->line, k->section,
                      k->key, value, why, allowed);
}

static lt_status set_value(parse_state *ps, const key_spec *k, const char *value) {
  char *base = (char *)ps->deck;
  void *field = base + k->off;
  switch (k->type) {
  case K_INT:
  case K_LONG: {
    long v;
    if (!parse_long(value, &v)) return bad_value(ps, k, value, "not an integer");
    if ((double)v < k->min || (double)v > k->max) return bad_value(ps, k, value, "out of range");
    if (k->type == K_INT) *(int *)field = (int)v;
    else *(long *)field = v;
    return LT_OK;
  }
  case K_REAL: {
    errno = 0;
    char *end = NULL;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0') return bad_value(ps, k, value, "not a number");
    if (!real_ok(k, v)) return bad_value(ps, k, value, "out of range");
    *(double *)field = v;
    return LT_OK;
  }
  case K_BOOL: {
    int v;
    if (!parse_bool(value, &v)) return bad_value(ps, k, value, "not a boolean");
    *(int *)field = v;
    return LT_OK;
  }
  case K_ENUM: {
    int idx = 0;
    const char *c = k->choices;
    size_t vl = strlen(value);
    while (*c) {
      const char *bar = strchr(c, '|');
      size_t cl = bar ? (size_t)(bar - c) : strlen(c);
      if (cl == vl && strncasecmp(c, value, cl) == 0) {
        *(int *)field = idx;
        return LT_OK;
      }
      idx++;
      c += cl + (bar ? 1 : 0);
    }
    return bad_value(ps, k, value, "unknown choice");
  }
  case K_INTLIST: {
    int *list = (int *)field;
    int n = 0;
    char tmp[LT_DECK_STR];
    snprintf(tmp, sizeof(tmp), "%s", value);
    for (char *save = NULL, *tok = strtok_r(tmp, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
      long v;
      if (!parse_long(tok, &v)) return bad_value(ps, k, value, "not a list of integers");
      if ((double)v < k->min || (double)v > k->max) return bad_value(ps, k, value, "out of range");
      if (n >= LT_DECK_MAXLIST) return bad_value(ps, k, value, "too many entries (at most 31)");
      list[n++] = (int)v;
    }
    *(int *)(base + k->count_off) = n;
    return LT_OK;
  }
  case K_REALLIST: {
    double *list = (double *)field;
    int n = 0;
    char tmp[LT_DECK_STR];
    snprintf(tmp, sizeof(tmp), "%s", value);
    for (char *save = NULL, *tok = strtok_r(tmp, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
      errno = 0;
      char *end = NULL;
      double v = strtod(tok, &end);
      if (errno || end == tok || *end != '\0' || !isfinite(v))
        return bad_value(ps, k, value, "not a list of numbers");
      if (v < k->min || v > k->max) return bad_value(ps, k, value, "out of range");
      if (n >= LT_DECK_MAXLIST) return bad_value(ps, k, value, "too many entries (at most 31)");
      list[n++] = v;
    }
    *(int *)(base + k->count_off) = n;
    return LT_OK;
  }
  case K_PATH:
  case K_STR:
    if (strlen(value) >= LT_DECK_STR) return bad_value(ps, k, value, "too long (511 characters at most)");
    snprintf((char *)field, LT_DECK_STR, "%s", value);
    return LT_OK;
  }
  return LT_ERR_INTERNAL;
}

static lt_status apply(parse_state *ps, const char *section, const char *key, const char *value) {
  const key_spec *k = find_key(section, key);
  if (!k) {
    if (!section_exists(section)) {
      const char *best = NULL;
      int bestd = 1 << 30;
      char all[256] = "";
      for (size_t i = 0; i < NKEYS; i++) { /* each section once, from the key table */
        size_t j = 0;
        while (j < i && strcmp(keys[j].section, keys[i].section)) j++;
        if (j < i) continue;
        int d = lt_edit_distance(keys[i].section, section);
        if (d < bestd) { bestd = d; best = keys[i].section; }
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "%s[%s]", len ? ", " : "", keys[i].section);
      }
      return lt_error_set(ps->ctx, LT_ERR_DECK, __FILE__, __LINE__, __func__,
                          "%s:%d: unknown section [%s]%s%s%s; sections are %s", ps->file,
                          ps->line, section, bestd <= 3 ? " (did you mean [" : "",
                          bestd <= 3 ? best : "", bestd <= 3 ? "]?)" : "", all);
    }
    const key_spec *s = suggest(section, key);
    if (s)
      return lt_error_set(ps->ctx, LT_ERR_DECK, __FILE__, __LINE__, __func__,
                          "%s:%d: unknown key '%s' in [%s]; did you mean [%s] %s? "
                          "(`lethe train --help` lists every key)",
                          ps->file, ps->line, key, section, s->section, s->key);
    return lt_error_set(ps->ctx, LT_ERR_DECK, __FILE__, __LINE__, __func__,
                        "%s:%d: unknown key '%s' in [%s] (`lethe train --help` lists every key)",
                        ps->file, ps->line, key, section);
  }
  size_t idx = (size_t)(k - keys);
  lt_status st = set_value(ps, k, value);
  if (st == LT_OK) ps->seen[idx] = 1;
  return st;
}

static int deck_handler(void *user, const char *section, const char *name, const char *value) {
  parse_state *ps = user;
  if (ps->st != LT_OK) return 0;
  ps->st = apply(ps, section, name, value);
  return ps->st == LT_OK;
}

/* inih calls the reader once per line: count lines to name them in messages. */
typedef struct {
  FILE *f;
  parse_state *ps;
} reader_state;

static char *counting_reader(char *str, int num, void *stream) {
  reader_state *rs = stream;
  char *r = fgets(str, num, rs->f);
  if (r) rs->ps->line++;
  return r;
}

static lt_status check_consistency(lt_ctx *ctx, const lt_deck *d) {
  if (d->optim_kind == 0 && d->nesterov && d->momentum <= 0)
    LT_ERROR(ctx, LT_ERR_DECK, "%s: [optim] nesterov = true needs momentum > 0 (momentum = %g)",
             d->path, d->momentum);
  if (d->model_kind == 1) { /* template (issue 7) */
    if (d->nhidden < 1)
      LT_ERROR(ctx, LT_ERR_DECK, "%s: [model] kind = template needs at least one hidden layer",
               d->path);
    for (int i = 0; i < d->nhidden; i++)
      if (d->hidden[i] % 2)
        LT_ERROR(ctx, LT_ERR_DECK,
                 "%s: [model] kind = template: hidden width %d is odd (the full width of two "
                 "half-width members must be even)", d->path, d->hidden[i]);
    if (d->scen_kind != 0)
      LT_ERROR(ctx, LT_ERR_DECK,
               "%s: [model] kind = template trains without a [scenario] (its phases are the "
               "growth schedule's)", d->path);
    if (d->freeze[0] || d->lr_mult[0])
      LT_ERROR(ctx, LT_ERR_DECK,
               "%s: [optim] freeze and lr_mult name dense layers; [model] kind = template "
               "trains the phases' members instead", d->path);
  }
  return LT_OK;
}

lt_status lt_deck_load(lt_ctx *ctx, const char *path, int noverrides, char *const *overrides,
                       lt_deck *deck) {
  memset(deck, 0, sizeof(*deck));
  parse_state ps = {.ctx = ctx, .deck = deck, .file = "(defaults)", .line = 0, .st = LT_OK};
  for (size_t i = 0; i < NKEYS; i++) {
    if (!keys[i].def) continue;
    if (keys[i].type == K_PATH) continue;
    LT_CHECK(ctx, set_value(&ps, &keys[i], keys[i].def));
  }
  if (path) {
    snprintf(deck->path, sizeof(deck->path), "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) LT_ERROR(ctx, LT_ERR_IO, "cannot open input deck '%s': %s", path, strerror(errno));
    reader_state rs = {.f = f, .ps = &ps};
    ps.file = path;
    int rc = ini_parse_stream(counting_reader, &rs, deck_handler, &ps);
    fclose(f);
    if (ps.st != LT_OK) return lt_error_trace(ctx, ps.st, __FILE__, __LINE__, __func__);
    if (rc != 0)
      LT_ERROR(ctx, LT_ERR_DECK, "%s:%d: syntax error (expected `key = value` or `[section]`)",
               path, rc);
  }
  for (int i = 0; i < noverrides; i++) {
    const char *o = overrides[i];
    const char *dot = strchr(o, '.'), *eq = strchr(o, '=');
    if (!dot || !eq || dot > eq)
      LT_ERROR(ctx, LT_ERR_DECK, "--set '%s': expected section.key=value (e.g. optim.lr=0.1)", o);
    char section[64], key[64];
    size_t sl = (size_t)(dot - o), kl = (size_t)(eq - dot - 1);
    if (sl >= sizeof(section) || kl >= sizeof(key) || sl == 0 || kl == 0)
      LT_ERROR(ctx, LT_ERR_DECK, "--set '%s': expected section.key=value", o);
    memcpy(section, o, sl);
    section[sl] = '\0';
    memcpy(key, dot + 1, kl);
    key[kl] = '\0';
    ps.file = "--set";
    ps.line = i + 1;
    LT_CHECK(ctx, apply(&ps, section, key, eq + 1));
  }
  /* required keys, then files that must exist */
  for (size_t i = 0; i < NKEYS; i++) {
    const key_spec *k = &keys[i];
    if (!k->def && !ps.seen[i])
      LT_ERROR(ctx, LT_ERR_DECK, "%s: required key [%s] %s is missing (%s)",
               path ? path : "(no deck)", k->section, k->key, k->doc);
    if (k->type == K_PATH && ps.seen[i]) {
      const char *p = (const char *)deck + k->off;
      if (access(p, R_OK) != 0)
        LT_ERROR(ctx, LT_ERR_IO, "%s: [%s] %s = '%s': %s (allowed: the path of an existing, "
                 "readable file; relative paths are taken from the current directory)",
                 path ? path : "--set", k->section, k->key, p, strerror(errno));
    }
  }
  LT_CHECK(ctx, check_consistency(ctx, deck));
  return LT_OK;
}

static void value_text(const lt_deck *d, const key_spec *k, char *buf, size_t len) {
  const char *field = (const char *)d + k->off;
  switch (k->type) {
  case K_INT: snprintf(buf, len, "%d", *(const int *)field); break;
  case K_LONG: snprintf(buf, len, "%ld", *(const long *)field); break;
  case K_REAL: { /* shortest text that reads back to the same double */
    double v = *(const double *)field;
    for (int prec = 6; prec <= 17; prec++) {
      snprintf(buf, len, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;
    }
    break;
  }
  case K_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
  case K_STR:
  case K_PATH: snprintf(buf, len, "%s", field); break;
  case K_ENUM: {
    int idx = *(const int *)field;
    const char *c = k->choices;
    for (int i = 0; i < idx && c; i++) {
      c = strchr(c, '|');
      if (c) c++;
    }
    size_t cl = c ? (strchr(c, '|') ? (size_t)(strchr(c, '|') - c) : strlen(c)) : 0;
    snprintf(buf, len, "%.*s", (int)cl, c ? c : "");
    break;
  }
  case K_INTLIST:
  case K_REALLIST: {
    buf[0] = '\0';
    size_t o = 0;
    int n = *(const int *)((const char *)d + k->count_off);
    for (int i = 0; i < n && o < len; i++) {
      if (k->type == K_INTLIST)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", ((const int *)field)[i]);
      else
        o += (size_t)snprintf(buf + o, len - o, "%s%.17g", i ? "," : "", ((const double *)field)[i]);
    }
    break;
  }
  }
}

size_t lt_deck_text(const lt_deck *deck, char *buf, size_t len) {
  size_t o = 0;
  const char *cur = "";
  buf[0] = '\0';
  for (size_t i = 0; i < NKEYS && o + 1 < len; i++) {
    char v[LT_DECK_STR];
    value_text(deck, &keys[i], v, sizeof(v));
    if (strcmp(cur, keys[i].section) != 0) {
      cur = keys[i].section;
      o += (size_t)snprintf(buf + o, len - o, "%s[%s]\n", o ? "\n" : "", cur);
      if (o >= len) break;
    }
    o += (size_t)snprintf(buf + o, len - o, "%s = %s\n", keys[i].key, v);
  }
  return o < len ? o : len - 1;
}

void lt_deck_print_doc(FILE *out, int markdown) {
  if (markdown) {
    fprintf(out, "| section | key | default | allowed | meaning |\n|---|---|---|---|---|\n");
  }
  const char *cur = "";
  for (size_t i = 0; i < NKEYS; i++) {
    const key_spec *k = &keys[i];
    char allowed[256];
    range_text(k, allowed, sizeof(allowed));
    const char *def = k->def ? k->def : "(required)";
    if (markdown) {
      fprintf(out, "| `[%s]` | `%s` | `%s` | %s | %s |\n", k->section, k->key,
              *def ? def : "(empty)", allowed, k->doc);
    } else {
      if (strcmp(cur, k->section) != 0) {
        cur = k->section;
        fprintf(out, "\n[%s]\n", cur);
      }
      fprintf(out, "  %-14s %s\n  %-14s default: %s; allowed: %s\n", k->key, k->doc, "",
              *def ? def : "(empty)", allowed);
    }
  }
}
