/* lethe train: deck -> data -> model -> data-parallel training -> metrics,
 * snapshots (RUN_DIR/ckpt), restart (--resume) and preemption signals. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "train_setup.h"
#include "finetune_app.h"
#include "lethe/checkpoint.h"
#include "lethe/cl.h"
#include "lethe/data.h"
#include "lethe/deck.h"
#include "lethe/h5io.h"
#include "lethe/metrics.h"
#include "lethe/model.h"
#include "lethe/scenario.h"
#include "lethe/trainer.h"
#include "train_grow.h"

void lt_usage_train(FILE *out) {
  fprintf(out,
          "usage: lethe train DECK.ini [--set section.key=value ...] [--resume RUN_DIR|FILE]\n"
          "                   [--profile]\n"
          "\n"
          "Trains the deck's model on its dataset with data parallelism over the MPI ranks,\n"
          "evaluates on the test split (or [data] valid's hold-out of the training split),\n"
          "and writes RUN_DIR/deck.ini (the resolved deck), RUN_DIR/metrics.h5 and snapshots\n"
          "RUN_DIR/ckpt/step-NNNNNNNN.h5 ([checkpoint]).\n"
          "Options:\n"
          "  --set section.key=value   override a deck key (repeatable), e.g. --set optim.lr=0.1\n"
          "  --resume RUN_DIR|FILE     continue from a snapshot (a run directory: its ckpt/LATEST)\n"
          "  --profile                 print timers (min/mean/max over ranks) at the end\n"
          "\n"
          "SIGUSR1 (send it to mpirun, which forwards it) or SIGTERM to a rank: every rank\n"
          "stops at the next step boundary, writes a snapshot and exits with code 75.\n"
          "\n"
          "Deck keys:\n");
  lt_deck_print_doc(out, 0);
}

static lt_status write_text(lt_ctx *ctx, const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
  fputs(text, f);
  if (fclose(f) != 0) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
  return LT_OK;
}

/* ------------------------------------------------------------ progress */

typedef struct {
  int mode;        /* 1 bar (\r), 2 lines, 3 none */
  double last;     /* time of the last print */
  int dirty;       /* a \r line is on screen */
} progress;

/* A single updating line only on a real terminal. Under mpirun or srun a rank's
 * stdout is a pseudo-terminal or pipe owned by the launcher, whatever mpirun's
 * own output is, so launched ranks print plain lines (progress = bar forces the
 * single line). */
static int auto_progress(const lt_ctx *ctx) {
  const char *term = getenv("TERM");
  int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_RANK") || getenv("SLURM_PROCID");
  int tty = !launched && isatty(fileno(ctx->log)) && term && *term && strcmp(term, "dumb") != 0;
  return tty ? 1 : 2;
}

static void fmt_duration(char *buf, size_t len, double s) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, len, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static void progress_show(const lt_ctx *ctx, progress *p, int force, int epoch, int epochs,
                          long step, long steps, double loss, double rate, double eta) {
  if (ctx->rank != 0 || p->mode == 3 || ctx->log_level < LT_LOG_INFO) return;
  double now = lt_wtime();
  double every = p->mode == 1 ? 0.25 : 10.0;
  if (!force && now - p->last < every) return;
  p->last = now;
  char e[32];
  fmt_duration(e, sizeof(e), eta);
  char line[160];
  snprintf(line, sizeof(line), "epoch %d/%d  step %ld/%ld  loss %.4f  %.0f samples/s  ETA %s",
           epoch, epochs, step, steps, loss, rate, e);
  if (p->mode == 1) {
    fprintf(ctx->log, "\r%-90s", line);
    p->dirty = 1;
  } else {
    fprintf(ctx->log, "%s\n", line);
  }
  fflush(ctx->log);
}

static void progress_clear(const lt_ctx *ctx, progress *p) {
  if (ctx->rank == 0 && p->dirty) {
    fprintf(ctx->log, "\r%-90s\r", "");
    fflush(ctx->log);
  }
  p->dirty = 0;
}

/* ------------------------------------------------------------ the command */

#define LT_MAX_TASKS 1000

typedef struct {
  lt_deck deck;
  char deck_text[16384];
  const char *resume;   /* --resume argument, or NULL */
  lt_data_opts dopts;
  lt_dataset *train, *test; /* test: the test split, or the [data] valid hold-out */
  const char *eval_name;  /* "test" or "valid": the evaluation set's name in the log */
  lt_scenario *sc;      /* NULL: plain training, one task */
  int ntasks;           /* tasks trained in sequence (1 without a scenario or with [cl] joint) */
  int neval;            /* tasks evaluated after each task (T; 0 without a scenario) */
  const lt_dataset *task_train[LT_MAX_TASKS];
  lt_batcher *batchers[LT_MAX_TASKS];
  double *R, *Rtil, *acc_init; /* [T*T], [T*T], [T]: accuracy matrices (class-IL, task-IL) */
  lt_strategy *strat;
  lt_model *model;
  lt_trainer *trainer;
  lt_metrics *metrics;
  lt_ckpt *ck;
  lt_ckpt_cursor cur;   /* where the run stands (restored by --resume) */
  char ckpt_dir[LT_DECK_STR + 8];
  long last_snapshot;   /* global step of the newest snapshot of this run (-1: none) */
  double last_snapshot_time; /* rank 0's clock, for [checkpoint] every_seconds */
  int stop_signal;      /* the signal that stopped the run after a snapshot (0: none) */
  long total_steps;
  lt_train_grow *grow;  /* [model] kind = template: the growth phases are the tasks */
} train_run;

/* Epochs of task t, and the first epoch of task t (t = ntasks: all epochs). */
static int task_epochs(const train_run *r, int t) {
  return r->grow ? lt_grow_phase_epochs(&r->grow->plan, t) : r->deck.epochs;
}
static long task_epoch0(const train_run *r, int t) {
  return r->grow ? lt_grow_phase_epoch0(&r->grow->plan, t) : (long)t * r->deck.epochs;
}

/* Cumulative training FLOPs (lt_grow_step_flops; a dense model's are linear in rows). */
static double run_flops(const train_run *r) {
  return r->grow ? r->grow->flops : lt_grow_step_flops(r->model, r->cur.samples);
}

static void run_destroy(train_run *r) {
  lt_status st = lt_metrics_close(&r->metrics); /* collective; every rank arrives here */
  (void)st; /* a failure was reported by the flush that preceded it */
  lt_ckpt_destroy(&r->ck);
  for (int t = 0; t < r->ntasks; t++) lt_batcher_destroy(&r->batchers[t]);
  lt_strategy_destroy(&r->strat);
  lt_trainer_destroy(&r->trainer);
  lt_train_grow_destroy(&r->grow);
  lt_model_destroy(&r->model);
  lt_scenario_destroy(&r->sc);
  lt_dataset_destroy(&r->train);
  lt_dataset_destroy(&r->test);
  LT_FREE(r->R);
  LT_FREE(r->Rtil);
  LT_FREE(r->acc_init);
}

static lt_status parse_args(lt_ctx *ctx, int argc, char **argv, const char **deck_path,
                            char **sets, int *nsets, const char **resume, int *profile) {
  *deck_path = NULL;
  *nsets = 0;
  *profile = 0;
  *resume = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--set") == 0) {
      if (i + 1 >= argc) LT_ERROR(ctx, LT_ERR_ARG, "--set needs section.key=value");
      sets[(*nsets)++] = argv[++i];
    } else if (strncmp(argv[i], "--set=", 6) == 0) {
      sets[(*nsets)++] = argv[i] + 6;
    } else if (strcmp(argv[i], "--resume") == 0 || strncmp(argv[i], "--resume=", 9) == 0) {
      const char *v = argv[i][8] == '=' ? argv[i] + 9 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v || !*v) LT_ERROR(ctx, LT_ERR_ARG, "--resume needs a run directory or a snapshot file");
      if (*resume) LT_ERROR(ctx, LT_ERR_ARG, "--resume given twice ('%s' and '%s')", *resume, v);
      *resume = v;
    } else if (strcmp(argv[i], "--profile") == 0) {
      *profile = 1;
    } else if (argv[i][0] == '-') {
      LT_ERROR(ctx, LT_ERR_ARG, "unknown option '%s' (see `lethe train --help`)", argv[i]);
    } else if (!*deck_path) {
      *deck_path = argv[i];
    } else {
      LT_ERROR(ctx, LT_ERR_ARG, "more than one deck given ('%s' and '%s')", *deck_path, argv[i]);
    }
  }
  if (!*deck_path) LT_ERROR(ctx, LT_ERR_ARG, "no input deck given (usage: lethe train DECK.ini)");
  return LT_OK;
}

/* Phase 1, no communication: command line, deck. */
static lt_status setup_deck(lt_ctx *ctx, train_run *r, int argc, char **argv, int *profile) {
  const char *deck_path;
  char **sets = calloc((size_t)argc + 1, sizeof(char *));
  if (!sets) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  int nsets = 0;
  lt_status st = parse_args(ctx, argc, argv, &deck_path, sets, &nsets, &r->resume, profile);
  if (st == LT_OK) st = lt_deck_load(ctx, deck_path, nsets, sets, &r->deck);
  free(sets);
  LT_CHECK(ctx, st);
  lt_deck_text(&r->deck, r->deck_text, sizeof(r->deck_text));
  ctx->log_level = (lt_log_level)r->deck.log_level;
  ctx->seed = (uint64_t)r->deck.seed;
  lt_rng_seed(&ctx->rng, ctx->seed, (uint64_t)ctx->rank, LT_RNG_USER);
  return LT_OK;
}

/* Phase 2 (collective inside): data and the scenario's tasks. */
static lt_status setup_data(lt_ctx *ctx, train_run *r) {
  const lt_deck *d = &r->deck;
  r->dopts.scale = d->data_scale;
  r->dopts.standardize = d->data_standardize;
  r->dopts.std = 0.0f;
  LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "train", &r->dopts, &r->train));
  r->eval_name = d->data_valid > 0 ? "valid" : "test";
  if (d->data_valid > 0) {
    if (d->data_valid >= r->train->n_global)
      LT_ERROR(ctx, LT_ERR_DECK, "[data] valid = %ld: the hold-out must leave training samples "
               "(%s has %ld; allowed: 0 to %ld)", d->data_valid, d->data_path,
               r->train->n_global, r->train->n_global - 1);
    LT_CHECK(ctx, lt_dataset_holdout(ctx, &r->train, d->data_valid, &r->test));
  } else {
    LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "test", &r->dopts, &r->test));
    if (r->train->d != r->test->d)
      LT_ERROR(ctx, LT_ERR_DATA, "%s: /train/x has %d features per sample but /test/x has %d",
               d->data_path, r->train->d, r->test->d);
  }
  LT_CHECK(ctx, lt_app_ft_data(ctx, d, &r->train, &r->test)); /* [finetune] subsets */
  if (d->batch_size < ctx->size)
    LT_ERROR(ctx, LT_ERR_DECK, "[optim] batch_size = %d is smaller than the %d ranks",
             d->batch_size, ctx->size);
  if (d->scen_kind == 0) {
    if (d->cl_joint || d->cl_penalty || d->cl_replay || d->refresh)
      LT_ERROR(ctx, LT_ERR_DECK,
               "[cl] and [refresh] need a continual-learning scenario: set [scenario] kind "
               "(split, permuted, rotated or joint)");
    if (r->train->n_global < d->batch_size)
      LT_ERROR(ctx, LT_ERR_DECK, "[optim] batch_size = %d exceeds the %ld training samples of %s",
               d->batch_size, r->train->n_global, d->data_path);
    r->ntasks = 1;
    r->neval = 0;
    r->task_train[0] = r->train;
    return LT_OK;
  }
  lt_scenario_cfg sc;
  lt_scenario_cfg_default(&sc);
  sc.kind = (lt_scenario_kind)(d->scen_kind - 1);
  sc.num_tasks = sc.kind == LT_SCEN_JOINT ? 1 : d->scen_tasks;
  sc.seed = ctx->seed;
  sc.task_il = sc.kind == LT_SCEN_SPLIT && d->scen_setting == 1;
  sc.class_order = d->nclass_order ? d->class_order : NULL;
  sc.class_order_len = d->nclass_order;
  sc.shuffle_classes = sc.kind == LT_SCEN_SPLIT && d->shuffle_classes;
  sc.first_identity = sc.kind == LT_SCEN_PERMUTED && d->first_identity;
  sc.angles = sc.kind == LT_SCEN_ROTATED ? d->angles : NULL;
  sc.num_angles = sc.kind == LT_SCEN_ROTATED ? d->nangles : 0;
  /* rotated images are filled with black, whatever the standardisation */
  if (sc.kind == LT_SCEN_ROTATED && r->dopts.standardize && r->dopts.std > 0)
    sc.fill = -r->dopts.mean / r->dopts.std;
  sc.joint = d->cl_joint && sc.num_tasks > 1;
  if (sc.num_tasks > LT_MAX_TASKS)
    LT_ERROR(ctx, LT_ERR_DECK, "[scenario] tasks = %d: at most %d", sc.num_tasks, LT_MAX_TASKS);
  LT_CHECK(ctx, lt_scenario_create(ctx, &sc, r->train, r->test, &r->sc));
  r->neval = r->sc->num_tasks;
  if (sc.joint) {
    r->ntasks = 1;
    r->task_train[0] = r->sc->joint_train;
  } else {
    r->ntasks = r->sc->num_tasks;
    for (int t = 0; t < r->ntasks; t++) r->task_train[t] = r->sc->tasks[t].train;
  }
  size_t TT = (size_t)r->neval * (size_t)r->neval;
  LT_CALLOC(ctx, r->R, TT);
  LT_CALLOC(ctx, r->Rtil, TT);
  LT_CALLOC(ctx, r->acc_init, r->neval);
  for (size_t i = 0; i < TT; i++) r->R[i] = r->Rtil[i] = NAN;
  return LT_OK;
}

/* Phase 3: model, optimizer, batcher. */
static lt_status setup_model(lt_ctx *ctx, train_run *r) {
  const lt_deck *d = &r->deck;
  lt_model_cfg mc;
  lt_app_model_cfg(ctx, d, r->train->d, r->train->num_classes, &mc);
  if (mc.kind == LT_MODEL_TEMPLATE) { /* the phases of the growth schedule are the tasks */
    LT_CHECK(ctx, lt_train_grow_create(ctx, d, &r->grow));
    r->ntasks = lt_grow_nphases(&r->grow->plan);
    for (int t = 0; t < r->ntasks; t++) r->task_train[t] = r->train;
  }
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &r->model));
  lt_model_init(r->model, ctx->seed, mc.init);

  lt_optim_cfg oc;
  lt_app_optim_cfg(d, &oc);
  long total = 0;
  for (int t = 0; t < r->ntasks; t++) {
    LT_CHECK(ctx, lt_batcher_create(ctx, r->task_train[t], d->batch_size, &r->batchers[t]));
    total += r->batchers[t]->steps_per_epoch * task_epochs(r, t);
  }
  if (d->max_steps > 0 && d->max_steps < total) total = d->max_steps;
  oc.total_steps = total;
  if (oc.sched == LT_SCHED_COSINE && total <= oc.warmup_steps)
    LT_ERROR(ctx, LT_ERR_DECK,
             "[optim] warmup_steps = %ld must be below the run's %ld steps for the cosine schedule",
             oc.warmup_steps, total);
  if (r->grow) lt_train_grow_optim(r->grow, r->batchers[0]->steps_per_epoch, &oc);
  LT_CHECK(ctx, lt_trainer_create(ctx, r->model, &oc, (lt_dist_mode)d->dist, &r->trainer));
  r->trainer->sh.coll = (lt_coll)d->collective;
  LT_CHECK(ctx, lt_app_ft_model(ctx, d, r->model, r->trainer->opt)); /* [finetune] */
  LT_CHECK(ctx, lt_app_apply_layer_lr(ctx, d, r->model, r->trainer->opt));
  r->total_steps = total;

  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  cc.penalty = (lt_penalty_kind)d->cl_penalty;
  cc.ewc_lambda = d->ewc_lambda;
  cc.ewc_gamma = d->ewc_gamma;
  cc.si_c = d->si_c;
  cc.si_xi = d->si_xi;
  cc.fisher_mode = (lt_fisher_mode)d->fisher_mode;
  cc.fisher_samples = d->fisher_samples;
  cc.fisher_batch = d->fisher_batch;
  cc.replay = (lt_replay_kind)d->cl_replay;
  cc.buffer_size = d->buffer_size;
  cc.replay_batch = d->replay_batch;
  cc.der_alpha = d->der_alpha;
  cc.derpp_beta = d->derpp_beta;
  cc.refresh = (lt_refresh_kind)d->refresh;
  cc.refresh_delta = d->refresh_delta;
  cc.refresh_kappa = d->refresh_kappa;
  cc.refresh_sigma = d->refresh_sigma;
  cc.refresh_gamma = d->refresh_gamma;
  cc.refresh_damping = d->refresh_damping;
  cc.refresh_every = d->refresh_every;
  cc.refresh_steps = d->refresh_steps;
  cc.kfac_lambda = d->kfac_lambda; /* K-FAC (issue 5) */
  cc.kfac_gamma = d->kfac_gamma;
  cc.kfac_damping = d->kfac_damping;
  cc.kfac_block = d->kfac_block;
  LT_CHECK(ctx, lt_strategy_create(ctx, &cc, r->trainer, r->model->out_dim, &r->strat));
  if (r->grow) LT_CHECK(ctx, lt_train_grow_attach(r->grow, r->model, r->trainer));
  return LT_OK;
}

static lt_status setup_outdir(lt_ctx *ctx, train_run *r) {
  if (ctx->rank != 0) return LT_OK;
  LT_CHECK(ctx, lt_make_dirs(ctx, r->deck.out, "run directory", "[run] out"));
  char path[LT_DECK_STR + 16];
  snprintf(path, sizeof(path), "%s/deck.ini", r->deck.out);
  LT_CHECK(ctx, write_text(ctx, path, r->deck_text));
  return LT_OK;
}

static const char *signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : (sig == SIGUSR1 ? "SIGUSR1" : "a signal");
}

/* Collective: the snapshot registry (theta, optimizer state, RNG streams) and,
 * with --resume, the restored state and cursor. */
static lt_status setup_ckpt(lt_ctx *ctx, train_run *r, const lt_blas_info *blas) {
  snprintf(r->ckpt_dir, sizeof(r->ckpt_dir), "%s/ckpt", r->deck.out);
  r->cur = (lt_ckpt_cursor){.test_acc = NAN, .test_loss = NAN};
  r->last_snapshot = -1;
  LT_CHECK(ctx, lt_app_ckpt_create(ctx, r->model, r->trainer, r->deck_text, blas, &r->ck));
  /* the batchers' shuffles are functions of (seed, rank, epoch): lt_batcher_seek */
  LT_CHECK(ctx, lt_strategy_ckpt_add(r->strat, r->ck, r->ntasks));
  if (r->grow) LT_CHECK(ctx, lt_train_grow_ckpt_add(r->grow, r->ck));
  if (r->neval) {
    size_t T = (size_t)r->neval;
    LT_CHECK(ctx, lt_ckpt_add_replicated(r->ck, "/cl/acc", LT_CKPT_F64, r->R, T * T));
    LT_CHECK(ctx, lt_ckpt_add_replicated(r->ck, "/cl/acc_task_il", LT_CKPT_F64, r->Rtil, T * T));
    LT_CHECK(ctx, lt_ckpt_add_replicated(r->ck, "/cl/acc_init", LT_CKPT_F64, r->acc_init, T));
  }
  if (!r->resume) return LT_OK;

  lt_ckpt_report rep;
  LT_CHECK(ctx, lt_ckpt_read(r->ck, r->resume, &r->cur, &rep));
  LT_CHECK(ctx, lt_strategy_ckpt_restore(r->strat, rep.per_rank_restored));
  lt_optim_set_steps(r->trainer->opt, r->cur.optim_steps);
  r->last_snapshot = r->cur.global_step;
  lt_log(ctx, LT_LOG_INFO,
         "resume %s: epoch %ld step %ld (global step %ld), %.3g MB read in %.4f s (%.0f MB/s), "
         "hash %.3f s  theta %016llx state %016llx\n",
         rep.path, r->cur.epoch + 1, r->cur.step, r->cur.global_step, rep.bytes / 1e6,
         rep.io_seconds, rep.bytes / 1e6 / (rep.io_seconds > 0 ? rep.io_seconds : 1e-9),
         rep.hash_seconds, (unsigned long long)rep.theta_hash, (unsigned long long)rep.state_hash);
  if (rep.file_ranks != ctx->size)
    lt_log(ctx, LT_LOG_INFO,
           "resume resharded from %d to %d rank(s): parameters and optimizer state are the "
           "snapshot's; the data order differs from the original run's from here on\n",
           rep.file_ranks, ctx->size);
  return LT_OK;
}

/* Collective: metrics.h5 in the run directory, buffering one epoch of steps. On
 * resume the file is cut back to the snapshot's steps and epochs. */
static lt_status setup_metrics(lt_ctx *ctx, train_run *r, const lt_blas_info *blas) {
  char path[LT_DECK_STR + 16];
  snprintf(path, sizeof(path), "%s/metrics.h5", r->deck.out);
  lt_metrics_info mi = {.deck_text = r->deck_text,
                        .blis_kernels = blas->arch,
                        .blis_threads = blas->threads,
                        .seed = ctx->seed};
  long keep_steps = -1, keep_epochs = -1;
  if (r->resume) {
    int exists = ctx->rank == 0 && access(path, F_OK) == 0;
    LT_CHECK_MPI(ctx, MPI_Bcast(&exists, 1, MPI_INT, 0, ctx->comm));
    if (exists) {
      keep_steps = r->cur.global_step;
      keep_epochs = r->cur.epoch;
    } else {
      lt_log(ctx, LT_LOG_INFO, "note   %s does not exist: a new one starts at global step %ld\n",
             path, r->cur.global_step);
    }
  }
  long most = 1;
  for (int t = 0; t < r->ntasks; t++)
    if (r->batchers[t]->steps_per_epoch > most) most = r->batchers[t]->steps_per_epoch;
  LT_CHECK(ctx, lt_metrics_open(ctx, path, &mi, keep_steps, keep_epochs, most, &r->metrics));
  if (r->grow) LT_CHECK(ctx, lt_train_grow_metrics_add(r->grow, r->metrics));
  return LT_OK;
}

static void log_setup(const lt_ctx *ctx, const train_run *r, const lt_blas_info *blas) {
  const lt_model *m = r->model;
  lt_log(ctx, LT_LOG_INFO, "lethe %s (git %s): %d rank(s)\n", LETHE_VERSION, LETHE_GIT_REV,
         ctx->size);
  lt_blas_log(ctx, blas);
  lt_log(ctx, LT_LOG_INFO, "data   %s: %ld train / %ld %s samples%s, %d features, %d classes\n",
         r->deck.data_path, r->train->n_global, r->test->n_global, r->eval_name,
         r->deck.data_valid > 0 ? " (the last of the training split; the test split is not read)"
                                : "",
         r->train->d, r->train->num_classes);
  char arch[256];
  size_t o = (size_t)snprintf(arch, sizeof(arch), "%d", m->in_dim);
  for (int l = 0; l < m->nlayers && o < sizeof(arch); l++)
    o += (size_t)snprintf(arch + o, sizeof(arch) - o, "-%d", m->layer[l].out);
  lt_log(ctx, LT_LOG_INFO, "model  MLP %s (%s), %zu parameters\n", arch,
         lt_act_name(m->layer[0].act), m->n);
  if (r->sc) {
    const lt_deck *d = &r->deck;
    lt_log(ctx, LT_LOG_INFO,
           "cl     %s, %d tasks (%s)%s; penalty %s, replay %s, refresh %s\n",
           lt_scenario_kind_name(r->sc->kind), r->neval, lt_cl_setting_name(r->sc->setting),
           d->cl_joint ? ", trained jointly" : "", lt_penalty_name((lt_penalty_kind)d->cl_penalty),
           lt_replay_name((lt_replay_kind)d->cl_replay), lt_refresh_name((lt_refresh_kind)d->refresh));
  }
  lt_log(ctx, LT_LOG_INFO,
         "train  %d task(s) x %d epochs, %ld steps in all, global batch %d (%d per rank at most), "
         "%s\n",
         r->ntasks, r->deck.epochs, r->total_steps, r->deck.batch_size,
         lt_local_batch(r->deck.batch_size, 0, ctx->size),
         r->deck.dist == LT_DIST_SHARDED ? "sharded state (reduce-scatter + allgather)"
                                         : "allreduce");
  if (r->grow) {
    const lt_grow_plan *p = &r->grow->plan;
    static const char *const mode[] = {"member 0, member 1, grown", "member 0 alone",
                                       "full width from scratch"};
    lt_log(ctx, LT_LOG_INFO,
           "grow   template layers, 2 sets of %d templates; %s: member phases %d epochs, "
           "grown/full %d epochs; init %s; weight decay %g on templates only\n",
           m->ntemplates, mode[p->mode], p->member_epochs, p->grown_epochs,
           lt_grow_init_name(r->grow->init), r->grow->wd);
  }
  lt_log(ctx, LT_LOG_INFO, "output %s\n", r->deck.out);
}

/* A pending SIGTERM or SIGUSR1 (blocked in every thread by lt_main before
 * MPI_Init), consumed; 0 when none is pending. */
static int take_stop_signal(void) {
  sigset_t pend, stop;
  if (sigpending(&pend) != 0) return 0;
  if (!sigismember(&pend, SIGTERM) && !sigismember(&pend, SIGUSR1)) return 0;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGUSR1);
  struct timespec zero = {0, 0};
  int sig = sigtimedwait(&stop, NULL, &zero);
  return sig > 0 ? sig : 0;
}

/* Collective, at every step boundary (one small allreduce): the largest stop
 * signal any rank received, and whether rank 0's every_seconds clock is due. */
static lt_status boundary(lt_ctx *ctx, train_run *r, int *sig, int *timed) {
  int v[2] = {take_stop_signal(), 0};
  double every = r->deck.ckpt_every_seconds;
  if (ctx->rank == 0 && every > 0 && lt_wtime() - r->last_snapshot_time >= every) v[1] = 1;
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, ctx->comm));
  *sig = v[0];
  *timed = v[1];
  return LT_OK;
}

/* Collective: write RUN_DIR/ckpt/step-<global step>.h5 for the cursor (at most
 * one per global step). metrics.h5 must hold every row up to the cursor. */
static lt_status snapshot(lt_ctx *ctx, train_run *r, const char *why) {
  if (r->cur.global_step == r->last_snapshot) return LT_OK;
  lt_timer_start(ctx, "checkpoint");
  r->cur.optim_steps = lt_optim_steps(r->trainer->opt);
  lt_strategy_ckpt_prepare(r->strat);
  lt_ckpt_report rep;
  LT_CHECK(ctx, lt_ckpt_write(r->ck, r->ckpt_dir, r->deck.ckpt_keep, &r->cur, &rep));
  lt_timer_stop(ctx, "checkpoint");
  r->last_snapshot = r->cur.global_step;
  r->last_snapshot_time = lt_wtime();
  lt_log(ctx, LT_LOG_INFO,
         "ckpt   %s (%s): %.3g MB written in %.4f s (%.0f MB/s), hash %.3f s  theta %016llx "
         "state %016llx\n",
         rep.path, why, rep.bytes / 1e6, rep.io_seconds,
         rep.bytes / 1e6 / (rep.io_seconds > 0 ? rep.io_seconds : 1e-9), rep.hash_seconds,
         (unsigned long long)rep.theta_hash, (unsigned long long)rep.state_hash);
  return LT_OK;
}

/* Template runs at the start of phase t: the growth step before the grown phase,
 * with a snapshot before it (RUN_DIR/ckpt/pre-growth) and after it (RUN_DIR/ckpt),
 * then the phase's fresh optimizer and schedule. Collective. */
static lt_status grow_begin(lt_ctx *ctx, train_run *r, int t) {
  lt_train_grow *g = r->grow;
  if (!lt_grow_grows_before(&g->plan, t) || g->state[0]) {
    LT_CHECK(ctx, lt_train_grow_enter(g, t, 1));
    return LT_OK;
  }
  char dir[sizeof(r->ckpt_dir) + 16];
  snprintf(dir, sizeof(dir), "%s/pre-growth", r->ckpt_dir);
  r->cur.optim_steps = lt_optim_steps(r->trainer->opt);
  lt_ckpt_report rep;
  LT_CHECK(ctx, lt_ckpt_write(r->ck, dir, 0, &r->cur, &rep));
  lt_log(ctx, LT_LOG_INFO, "ckpt   %s (before growth)  theta %016llx\n", rep.path,
         (unsigned long long)rep.theta_hash);
  int grew = 0;
  LT_CHECK(ctx, lt_train_grow_grow(g, t, ctx->seed, &grew));
  LT_CHECK(ctx, lt_train_grow_enter(g, t, 1));
  lt_log(ctx, LT_LOG_INFO, "grow   to full width (init %s) after %.4g training FLOPs\n",
         lt_grow_init_name(g->init), g->flops);
  r->last_snapshot = -1;
  LT_CHECK(ctx, snapshot(ctx, r, "after growth"));
  return LT_OK;
}

/* Accuracies of every task after training task `row` (or before any, row < 0:
 * the untrained model's class-IL accuracies into acc_init). Collective. */
static lt_status evaluate_tasks(lt_ctx *ctx, train_run *r, int row) {
  int T = r->neval;
  for (int j = 0; j < T; j++) {
    const lt_task *tk = &r->sc->tasks[j];
    double acc, loss, acc_til, loss_til;
    LT_CHECK(ctx, lt_evaluate(ctx, r->model, tk->test, NULL, &acc, &loss));
    if (row < 0) {
      r->acc_init[j] = acc;
      continue;
    }
    LT_CHECK(ctx, lt_evaluate(ctx, r->model, tk->test, tk->mask, &acc_til, &loss_til));
    r->R[(size_t)row * (size_t)T + (size_t)j] = acc;
    r->Rtil[(size_t)row * (size_t)T + (size_t)j] = acc_til;
  }
  return LT_OK;
}

/* After the last epoch of task t: the strategy's task end, every task's accuracy,
 * the CL metrics. With [cl] joint the one training phase fills every row. */
static lt_status finish_task(lt_ctx *ctx, train_run *r, int t) {
  LT_CHECK(ctx, lt_strategy_end_task(r->strat, t, r->task_train[t]));
  if (!r->sc) return LT_OK;
  int T = r->neval;
  lt_timer_start(ctx, "evaluate");
  LT_CHECK(ctx, evaluate_tasks(ctx, r, t));
  lt_timer_stop(ctx, "evaluate");
  int k = t + 1;
  if (r->ntasks == 1 && T > 1) { /* joint: the upper bound after "every" task */
    for (int i = 1; i < T; i++) {
      memcpy(r->R + (size_t)i * (size_t)T, r->R, (size_t)T * sizeof(double));
      memcpy(r->Rtil + (size_t)i * (size_t)T, r->Rtil, (size_t)T * sizeof(double));
    }
    k = T;
  }
  LT_CHECK(ctx, lt_metrics_cl(r->metrics, T, k, r->R, r->Rtil, r->acc_init));
  LT_CHECK(ctx, lt_metrics_flush(r->metrics));
  lt_cl_summary cs = lt_cl_summarize(T, k, r->R, r->acc_init);
  lt_cl_summary ct = lt_cl_summarize(T, k, r->Rtil, NULL);
  char accs[512];
  size_t o = 0;
  for (int j = 0; j < T && o < sizeof(accs); j++)
    o += (size_t)snprintf(accs + o, sizeof(accs) - o, " %.3f", r->R[(size_t)(k - 1) * (size_t)T + (size_t)j]);
  lt_log(ctx, LT_LOG_INFO,
         "task %3d/%d done: accuracy per task%s | class-IL ACC %.4f BWT %+.4f forgetting %.4f | "
         "task-IL ACC %.4f\n",
         k, T, accs, cs.acc, cs.bwt, cs.forgetting, ct.acc);
  return LT_OK;
}

/* The run from r->cur on: tasks, their epochs and steps. A snapshot due at a step
 * boundary (every_steps, every_seconds, a stop signal) is written there, except at
 * the last step of an epoch, where it waits until the epoch's evaluation and
 * metrics row (and, at a task's last epoch, the task's end) are done. The cursor's
 * epoch counts epochs over all tasks; task t owns epochs [t E, (t+1) E) (template
 * runs: the phases' epochs in turn, task_epoch0). */
static lt_status train_loop(lt_ctx *ctx, train_run *r, const lt_blas_info *blas) {
  const lt_deck *d = &r->deck;
  lt_ckpt_cursor *c = &r->cur;
  progress prog = {.mode = d->progress == 0 ? auto_progress(ctx) : d->progress};
  long total = r->total_steps;
  double rate = c->train_time > 0 ? (double)c->samples / c->train_time : 0.0;
  double run_start = lt_wtime();
  r->last_snapshot_time = run_start;
  if (r->sc && c->global_step == 0 && c->epoch == 0 && c->step == 0)
    LT_CHECK(ctx, evaluate_tasks(ctx, r, -1)); /* the untrained model, for FWT */
  while (c->task < r->ntasks && c->global_step < total && !r->stop_signal) {
    int t = (int)c->task;
    lt_batcher *b = r->batchers[t];
    const uint8_t *mask = r->sc ? lt_scenario_train_mask(r->sc, t) : NULL;
    /* the epoch's test: the task's own (joint and plain runs: the whole test split) */
    const lt_dataset *test = r->sc && r->ntasks > 1 ? r->sc->tasks[t].test : r->test;
    const long e0 = task_epoch0(r, t);
    if (c->epoch == e0 && c->step == 0) /* not when resuming inside the task */
      LT_CHECK(ctx, lt_strategy_begin_task(r->strat, t, r->task_train[t]));
    if (r->grow && c->epoch == e0 && c->step == 0) LT_CHECK(ctx, grow_begin(ctx, r, t));
    else if (r->grow) LT_CHECK(ctx, lt_train_grow_enter(r->grow, t, 0)); /* resumed inside */
    long e = c->epoch;
    lt_batcher_seek(b, e, c->step);
    double ep_start = lt_wtime() - c->epoch_time;
    int sig = 0, timed = 0, due_steps = 0;
    while (c->step < b->steps_per_epoch && c->global_step < total) {
      double t0 = lt_wtime();
      int rows = lt_batcher_next(b);
      double lr = lt_optim_current_lr(r->trainer->opt);
      lt_step_stats stt;
      LT_CHECK(ctx, lt_strategy_step(r->strat, b->xb, b->yb, rows, d->batch_size, mask, &stt));
      double dt = lt_wtime() - t0;
      if (!isfinite(stt.loss) || !isfinite(stt.total))
        LT_ERROR(ctx, LT_ERR_NUM,
                 "training diverged: the loss is %g (total with the strategy's terms %g) at task "
                 "%d epoch %ld step %ld (global step %ld), penalty %s, replay %s, refresh %s. "
                 "Likely cause: a step too large for the penalty's stiffness (with SGD, "
                 "lr * lambda * max F above about 2) or for the data: lower [optim] lr = %g or "
                 "[cl] ewc_lambda / si_c / kfac_lambda. Nothing was written after the last "
                 "snapshot.",
                 stt.loss, stt.total, t + 1, e - e0 + 1, c->step + 1, c->global_step + 1,
                 lt_penalty_name((lt_penalty_kind)d->cl_penalty),
                 lt_replay_name((lt_replay_kind)d->cl_replay),
                 lt_refresh_name((lt_refresh_kind)d->refresh), d->lr);
      LT_CHECK(ctx, lt_metrics_step(r->metrics, stt.loss, lr, dt));
      if (r->grow) lt_train_grow_step(r->grow, stt.rows);
      c->step++;
      c->global_step++;
      c->samples += stt.rows;
      c->train_time += dt;
      c->epoch_loss_sum += stt.loss * (double)stt.rows;
      c->epoch_correct += stt.correct;
      c->epoch_rows += stt.rows;
      rate = (double)c->samples / c->train_time;
      double eta = (double)(total - c->global_step) * (c->train_time / (double)c->global_step);
      progress_show(ctx, &prog, 0, (int)(e - e0) + 1, task_epochs(r, t), c->step, b->steps_per_epoch,
                    c->epoch_loss_sum / (double)c->epoch_rows, rate, eta);

      int s = 0, tm = 0;
      LT_CHECK(ctx, boundary(ctx, r, &s, &tm));
      sig = sig ? sig : s;
      timed |= tm;
      due_steps = d->ckpt_every_steps > 0 && c->global_step % d->ckpt_every_steps == 0;
      if (c->step >= b->steps_per_epoch || c->global_step >= total) break; /* epoch ends */
      if (sig || timed || due_steps) {
        progress_clear(ctx, &prog);
        c->epoch_time = lt_wtime() - ep_start;
        LT_CHECK(ctx, lt_metrics_flush(r->metrics)); /* rows up to this step */
        LT_CHECK(ctx, snapshot(ctx, r, sig ? signal_name(sig) : (timed ? "every_seconds"
                                                                       : "every_steps")));
        timed = 0;
        if (sig) {
          r->stop_signal = sig;
          break;
        }
      }
    }
    if (r->stop_signal) break;
    progress_clear(ctx, &prog);
    double ep_time = lt_wtime() - ep_start;
    int task_done = (e + 1 >= task_epoch0(r, t + 1)) || c->global_step >= total;
    int finished = (task_done && t + 1 >= r->ntasks) || c->global_step >= total;
    double eacc = NAN, eloss = NAN;
    if (task_done || (d->eval_every > 0 && (e - e0 + 1) % d->eval_every == 0)) {
      lt_timer_start(ctx, "evaluate");
      LT_CHECK(ctx, lt_evaluate(ctx, r->model, test, r->sc && r->sc->setting == LT_CL_TASK_IL
                                                          ? r->sc->tasks[t].mask : NULL,
                                &eacc, &eloss));
      lt_timer_stop(ctx, "evaluate");
      c->test_acc = eacc;
      c->test_loss = eloss;
    }
    double rows = (double)(c->epoch_rows ? c->epoch_rows : 1);
    double row[LT_EP_NCOLS] = {[LT_EP_TRAIN_LOSS] = c->epoch_loss_sum / rows,
                               [LT_EP_TRAIN_ACC] = (double)c->epoch_correct / rows,
                               [LT_EP_TEST_LOSS] = eloss,
                               [LT_EP_TEST_ACC] = eacc,
                               [LT_EP_SAMPLES_PER_S] = (double)c->epoch_rows / ep_time,
                               [LT_EP_TIME] = ep_time,
                               [LT_EP_FLOPS] = run_flops(r)};
    char task_txt[32] = "";
    if (r->ntasks > 1) snprintf(task_txt, sizeof(task_txt), r->grow ? "phase %d " : "task %d ", t + 1);
    lt_log(ctx, LT_LOG_INFO,
           "%sepoch %3ld  train loss %.4f acc %.4f  %s loss %.4f acc %.4f  %.0f samples/s  %.1f s"
           "  %.4g FLOPs\n",
           task_txt, e - e0 + 1, row[LT_EP_TRAIN_LOSS], row[LT_EP_TRAIN_ACC], r->eval_name, eloss,
           eacc, row[LT_EP_SAMPLES_PER_S], ep_time, row[LT_EP_FLOPS]);
    LT_CHECK(ctx, lt_metrics_epoch(r->metrics, row));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "test_acc", c->test_acc));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "test_loss", c->test_loss));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "valid_samples", (double)r->deck.data_valid));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "samples_per_s", rate));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "train_flops", row[LT_EP_FLOPS]));
    if (r->grow && task_done) lt_train_grow_phase_end(r->grow, t, c->test_acc);
    lt_timer_start(ctx, "metrics");
    LT_CHECK(ctx, lt_metrics_flush(r->metrics));
    lt_timer_stop(ctx, "metrics");

    c->epoch = e + 1;
    c->step = 0;
    c->epoch_loss_sum = 0.0;
    c->epoch_correct = c->epoch_rows = 0;
    c->epoch_time = 0.0;
    if (task_done) {
      LT_CHECK(ctx, finish_task(ctx, r, t));
      c->task = t + 1;
      c->epoch = task_epoch0(r, t + 1); /* a max_steps cut ends the task early */
    }
    int due_epoch = d->ckpt_every_epochs > 0 && (e + 1) % d->ckpt_every_epochs == 0;
    int at_end = task_done && d->ckpt_at_task_end;
    const char *why = sig ? signal_name(sig)
                          : (at_end ? "end of task"
                                    : (due_epoch ? "every_epochs"
                                                 : (timed ? "every_seconds" : "every_steps")));
    if (sig || timed || due_steps || due_epoch || at_end) LT_CHECK(ctx, snapshot(ctx, r, why));
    if (sig && !finished) r->stop_signal = sig; /* a finished run exits 0 */
  }
  double wall = lt_wtime() - run_start;
  char w[32];
  fmt_duration(w, sizeof(w), wall);
  uint64_t th, sh;
  LT_CHECK(ctx, lt_ckpt_hash(r->ck, &th, &sh));
  if (r->stop_signal) {
    lt_log(ctx, LT_LOG_INFO,
           "stop   %s at task %ld epoch %ld step %ld (global step %ld): snapshot written, exit %d; "
           "continue with --resume %s  theta %016llx state %016llx\n",
           signal_name(r->stop_signal), c->task + 1, c->epoch - task_epoch0(r, (int)c->task) + 1, c->step,
           c->global_step, LT_EXIT_CHECKPOINTED, d->out, (unsigned long long)th,
           (unsigned long long)sh);
    return LT_OK;
  }
  if (r->sc) {
    int k = r->ntasks == 1 ? r->neval : (int)c->task;
    lt_cl_summary cs = lt_cl_summarize(r->neval, k, r->R, r->acc_init);
    lt_cl_summary ct = lt_cl_summarize(r->neval, k, r->Rtil, NULL);
    lt_log(ctx, LT_LOG_INFO,
           "cl     class-IL ACC %.4f BWT %+.4f FWT %+.4f forgetting %.4f | task-IL ACC %.4f BWT "
           "%+.4f forgetting %.4f | strategy state %.1f KB per rank\n",
           cs.acc, cs.bwt, cs.fwt, cs.forgetting, ct.acc, ct.bwt, ct.forgetting,
           (double)lt_strategy_bytes(r->strat) / 1024.0);
  }
  lt_log(ctx, LT_LOG_INFO, "flops  %.6g training FLOPs (forward + backward, from the layer shapes)\n",
         run_flops(r));
  lt_log(ctx, LT_LOG_INFO,
         "done   %s accuracy %.4f  %s loss %.4f  training throughput %.0f samples/s "
         "(%d rank(s) x %d thread(s))  wall %s  theta %016llx state %016llx\n",
         r->eval_name, c->test_acc, r->eval_name, c->test_loss, rate, ctx->size, blas->threads, w,
         (unsigned long long)th, (unsigned long long)sh);
  return LT_OK;
}

/* The phases of one run whose deck is set (collective over ctx). */
static lt_status run_phases(lt_ctx *ctx, train_run *r, const lt_blas_info *blas, int profile) {
  lt_status st = lt_agree(ctx, setup_data(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, setup_model(ctx, r));
  if (st == LT_OK) log_setup(ctx, r, blas);
  if (st == LT_OK) st = lt_agree(ctx, setup_ckpt(ctx, r, blas)); /* reads agree inside */
  if (st == LT_OK) st = lt_agree(ctx, setup_outdir(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, setup_metrics(ctx, r, blas));
  if (st == LT_OK) st = train_loop(ctx, r, blas);
  if (st == LT_OK && profile) st = lt_timer_report(ctx, ctx->log);
  return st;
}

typedef struct {
  const lt_deck *deck;
  const lt_blas_info *blas;
} replica_base;

/* One replica of [run] seeds on its group's ctx: the deck with run.seed = seed and
 * run.out = out. A diverged run is a result (res->diverged), not an error. */
static lt_status train_replica(lt_ctx *ctx, long seed, const char *out, void *user,
                               lt_ft_result *res) {
  const replica_base *b = user;
  train_run *r = calloc(1, sizeof(*r));
  if (!r) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  r->deck = *b->deck;
  r->deck.seed = seed;
  r->deck.nseeds = 0;
  snprintf(r->deck.out, sizeof(r->deck.out), "%s", out);
  lt_deck_text(&r->deck, r->deck_text, sizeof(r->deck_text));
  lt_rng_seed(&ctx->rng, ctx->seed, (uint64_t)ctx->rank, LT_RNG_USER);
  lt_status st = run_phases(ctx, r, b->blas, 0);
  res->acc = r->cur.test_acc;
  res->loss = r->cur.test_loss;
  res->num_classes = r->model ? r->model->out_dim : 0;
  if (st == LT_ERR_NUM) {
    lt_log(ctx, LT_LOG_INFO, "seed %ld diverged: %s\n", seed, ctx->errmsg);
    lt_error_clear(ctx);
    *res = (lt_ft_result){.acc = NAN, .loss = NAN, .diverged = 1, .num_classes = res->num_classes};
    st = LT_OK;
  }
  if (st == LT_OK && r->stop_signal)
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                      "stopped by %s; replicas of [run] seeds are not resumed (rerun them)",
                      signal_name(r->stop_signal));
  run_destroy(r);
  free(r);
  return st;
}

lt_status lt_cmd_train(lt_ctx *ctx, const lt_blas_info *blas, int argc, char **argv,
                       int *code) {
  *code = LT_EXIT_OK;
  train_run *r = calloc(1, sizeof(*r));
  if (!r) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  int profile = 0;
  lt_status st = setup_deck(ctx, r, argc, argv, &profile);
  st = lt_agree(ctx, st);
  if (st == LT_OK && r->deck.nseeds > 0) { /* [run] seeds: replicas on groups of ranks */
    replica_base b = {.deck = &r->deck, .blas = blas};
    st = lt_agree(ctx, setup_outdir(ctx, r));
    if (st == LT_OK)
      st = lt_app_ft_replicas(ctx, &r->deck, r->deck_text, blas, r->resume, train_replica, &b);
  } else if (st == LT_OK) {
    st = run_phases(ctx, r, blas, profile);
  }
  if (st == LT_OK && r->stop_signal) *code = LT_EXIT_CHECKPOINTED;
  run_destroy(r);
  free(r);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}
