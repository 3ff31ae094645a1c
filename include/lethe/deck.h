/* lethe deck: input decks (INI files parsed with inih), every key documented
 * and validated in one table.
 *
 * A deck is read from a file, then `--set section.key=value` overrides are
 * applied in order. Every key has a type, a default, an allowed range or set
 * of choices and a one-line doc; the table drives parsing, validation, the
 * resolved deck text written with every run, `lethe train --help` and the
 * README. Errors name the file, the line, the key and what is allowed; an
 * unknown key gets the nearest valid name suggested.
 */
#ifndef LETHE_DECK_H
#define LETHE_DECK_H

#include "lethe/core.h"

#define LT_DECK_STR 512
#define LT_DECK_MAXLIST 31

typedef struct {
  /* [data] */
  char data_path[LT_DECK_STR];
  int data_scale;
  int data_standardize;
  long data_valid;      /* samples held out of the training split as the evaluation set */
  /* [model] */
  int hidden[LT_DECK_MAXLIST];
  int nhidden;
  int activation;       /* lt_act */
  int init;             /* lt_init */
  /* [optim] */
  int optim_kind;       /* lt_opt_kind */
  double lr, momentum, weight_decay, beta1, beta2, eps;
  int nesterov;
  int batch_size;
  int schedule;         /* lt_sched_kind */
  long warmup_steps, step_size;
  double gamma, min_lr;
  char freeze[LT_DECK_STR];  /* comma-separated layer names */
  char lr_mult[LT_DECK_STR]; /* comma-separated name:multiplier pairs */
  /* [train] */
  int epochs;
  int dist;             /* lt_dist_mode */
  int collective;       /* lt_coll */
  int eval_every;
  long max_steps;       /* 0: no limit */
  /* [checkpoint] */
  long ckpt_every_steps;     /* 0: off */
  int ckpt_every_epochs;     /* 0: off */
  double ckpt_every_seconds; /* 0: off (rank 0's clock) */
  int ckpt_at_task_end;
  int ckpt_keep;             /* 0: keep all */
  /* [scenario] */
  int scen_kind;             /* 0 none, else lt_scenario_kind + 1 */
  int scen_tasks;
  int scen_setting;          /* 0 class-IL, 1 task-IL (split) */
  int class_order[LT_DECK_MAXLIST];
  int nclass_order;
  int shuffle_classes;
  int first_identity;
  double angles[LT_DECK_MAXLIST];
  int nangles;
  /* [cl] */
  int cl_penalty;            /* lt_penalty_kind */
  int cl_replay;             /* lt_replay_kind */
  int cl_joint;              /* train once on the union of all tasks (upper bound) */
  double ewc_lambda, ewc_gamma, si_c, si_xi;
  int fisher_mode;           /* lt_fisher_mode */
  long fisher_samples;
  int fisher_batch;
  long buffer_size;
  int replay_batch;
  double der_alpha, derpp_beta;
  /* [cl] K-FAC (issue 5: K-FAC Laplace penalty, refresh kfac form, lethe fisher) */
  double kfac_lambda, kfac_gamma;
  int kfac_damping;          /* lt_kfac_damp */
  int kfac_block;
  int kfac_block_sample;     /* lethe fisher: side of the random weight block */
  /* [refresh] */
  int refresh;               /* lt_refresh_kind */
  double refresh_delta, refresh_kappa, refresh_sigma, refresh_gamma, refresh_damping;
  int refresh_every, refresh_steps;
  /* [unlearn] (lethe unlearn: forget set, SSD, baselines; see unlearn.h) */
  int ul_forget;             /* lt_forget_kind: class, subclass, random */
  int ul_classes[LT_DECK_MAXLIST];
  int ul_nclasses;
  int ul_groups[LT_DECK_MAXLIST];
  int ul_ngroups;
  double ul_fraction;
  long ul_count;
  double ul_alpha[LT_DECK_MAXLIST];
  int ul_nalpha;
  double ul_lambda[LT_DECK_MAXLIST];
  int ul_nlambda;
  int ul_importance;         /* lt_importance_kind */
  int ul_batching;           /* lt_imp_batching */
  int ul_batch;
  char ul_importance_file[LT_DECK_STR];
  int ul_reuse_importance;
  char ul_baselines[LT_DECK_STR];
  int ul_finetune_epochs;
  double ul_finetune_lr;
  long ul_neggrad_steps;
  double ul_neggrad_lr;
  char ul_out[LT_DECK_STR];
  /* [model] kind, templates and [grow] (MixtureGrowth, issue 7) */
  int model_kind;            /* lt_model_kind */
  int ntemplates;            /* templates per set */
  int grow_mode;             /* lt_grow_mode */
  int grow_member_epochs;
  int grow_init;             /* lt_grow_init */
  double grow_noise, grow_lr;
  /* [run] */
  long seed;
  char out[LT_DECK_STR];
  int log_level;        /* lt_log_level */
  int progress;         /* 0 auto, 1 always single-line (\r), 2 plain lines, 3 none */
  /* [run] seeds, ranks_per_seed and [finetune]: fine-tuning and replicas (issue 8) */
  int seeds[LT_DECK_MAXLIST]; /* one entry N: seeds seed..seed+N-1; more: the list */
  int nseeds;                 /* 0: one run */
  int ranks_per_seed;         /* 0: world size / replicas (at least 1) */
  char ft_from[LT_DECK_STR];  /* pretrained snapshot ("" none) */
  int ft_classes[LT_DECK_MAXLIST];
  int ft_nclasses;            /* 0: all classes */
  long ft_samples_per_class;  /* 0: all */
  int ft_freeze_bottom, ft_reinit_top;
  double ft_llrd, ft_fail_below;

  /* provenance */
  char path[LT_DECK_STR]; /* deck file */
} lt_deck;

/* Parse a deck file and apply overrides ("section.key=value" strings).
 * path may be NULL (defaults + overrides only). Every rank may call it: no
 * communication; errors are recorded in ctx with file, line and key. */
LT_WUR lt_status lt_deck_load(lt_ctx *ctx, const char *path, int noverrides,
                              char *const *overrides, lt_deck *deck);

/* The resolved deck (every key, defaults included) as INI text in buf. Returns
 * the length written (truncated to len - 1). */
size_t lt_deck_text(const lt_deck *deck, char *buf, size_t len);

/* Print the documentation of every key: as text (markdown = 0, for --help) or
 * as a markdown table (markdown = 1, for the README). */
void lt_deck_print_doc(FILE *out, int markdown);

/* Levenshtein distance (for suggestions). */
int lt_edit_distance(const char *a, const char *b);

#endif
