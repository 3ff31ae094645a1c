/* lethe train: deck -> data -> model -> data-parallel training -> metrics. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "lethe/data.h"
#include "lethe/deck.h"
#include "lethe/metrics.h"
#include "lethe/model.h"
#include "lethe/trainer.h"

void lt_usage_train(FILE *out) {
  fprintf(out,
          "usage: lethe train DECK.ini [--set section.key=value ...] [--profile]\n"
          "\n"
          "Trains the deck's model on its dataset with data parallelism over the MPI ranks,\n"
          "evaluates on the test split, and writes RUN_DIR/deck.ini (the resolved deck) and\n"
          "RUN_DIR/metrics.h5. Options:\n"
          "  --set section.key=value   override a deck key (repeatable), e.g. --set optim.lr=0.1\n"
          "  --profile                 print timers (min/mean/max over ranks) at the end\n"
          "\n"
          "Deck keys:\n");
  lt_deck_print_doc(out, 0);
}

/* mkdir -p */
static lt_status make_dirs(lt_ctx *ctx, const char *dir) {
  char p[LT_DECK_STR];
  snprintf(p, sizeof(p), "%s", dir);
  for (char *s = p + 1;; s++) {
    char c = *s;
    if (c == '/' || c == '\0') {
      *s = '\0';
      if (mkdir(p, 0775) != 0 && errno != EEXIST)
        LT_ERROR(ctx, LT_ERR_IO, "cannot create run directory '%s': %s ([run] out = %s)", p,
                 strerror(errno), dir);
      *s = c;
      if (c == '\0') break;
    }
  }
  return LT_OK;
}

static lt_status write_text(lt_ctx *ctx, const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
  fputs(text, f);
  if (fclose(f) != 0) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
  return LT_OK;
}

/* ------------------------------------------------------------ per-layer lr */

static const lt_layer *layer_named(const lt_model *m, const char *name) {
  for (int l = 0; l < m->nlayers; l++)
    if (strcmp(m->layer[l].name, name) == 0) return &m->layer[l];
  return NULL;
}

static lt_status unknown_layer(lt_ctx *ctx, const lt_model *m, const char *key, const char *name) {
  char names[256] = "";
  size_t o = 0;
  for (int l = 0; l < m->nlayers && o < sizeof(names); l++)
    o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", l ? ", " : "", m->layer[l].name);
  LT_ERROR(ctx, LT_ERR_DECK, "[optim] %s: unknown layer '%s'; this model's layers are %s", key,
           name, names);
}

static lt_status set_layer_mult(lt_ctx *ctx, lt_optim *opt, const lt_layer *L, double mult) {
  LT_CHECK(ctx, lt_optim_set_lr_mult(opt, L->w_off, (size_t)L->in * (size_t)L->out, mult));
  LT_CHECK(ctx, lt_optim_set_lr_mult(opt, L->b_off, (size_t)L->out, mult));
  return LT_OK;
}

/* [optim] lr_mult = fc1:0.1,fc2:0.5 then [optim] freeze = fc1 (freeze wins). */
static lt_status apply_layer_lr(lt_ctx *ctx, const lt_deck *d, const lt_model *m, lt_optim *opt) {
  char buf[LT_DECK_STR];
  snprintf(buf, sizeof(buf), "%s", d->lr_mult);
  for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    char *colon = strchr(tok, ':');
    char *end = NULL;
    double v = colon ? strtod(colon + 1, &end) : NAN;
    if (!colon || end == colon + 1 || *end != '\0' || !(v >= 0) || v > 1e3)
      LT_ERROR(ctx, LT_ERR_DECK,
               "[optim] lr_mult: '%s' is not name:multiplier with a multiplier in [0, 1000]", tok);
    *colon = '\0';
    const lt_layer *L = layer_named(m, tok);
    if (!L) return unknown_layer(ctx, m, "lr_mult", tok);
    LT_CHECK(ctx, set_layer_mult(ctx, opt, L, v));
  }
  snprintf(buf, sizeof(buf), "%s", d->freeze);
  for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    const lt_layer *L = layer_named(m, tok);
    if (!L) return unknown_layer(ctx, m, "freeze", tok);
    LT_CHECK(ctx, set_layer_mult(ctx, opt, L, 0.0));
  }
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

typedef struct {
  lt_deck deck;
  char deck_text[8192];
  lt_data_opts dopts;
  lt_dataset *train, *test;
  lt_model *model;
  lt_trainer *trainer;
  lt_batcher *batcher;
  lt_metrics *metrics;
  long total_steps;
} train_run;

static void run_destroy(train_run *r) {
  lt_status st = lt_metrics_close(&r->metrics); /* collective; every rank arrives here */
  (void)st; /* a failure was reported by the flush that preceded it */
  lt_batcher_destroy(&r->batcher);
  lt_trainer_destroy(&r->trainer);
  lt_model_destroy(&r->model);
  lt_dataset_destroy(&r->train);
  lt_dataset_destroy(&r->test);
}

static lt_status parse_args(lt_ctx *ctx, int argc, char **argv, const char **deck_path,
                            char **sets, int *nsets, int *profile) {
  *deck_path = NULL;
  *nsets = 0;
  *profile = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--set") == 0) {
      if (i + 1 >= argc) LT_ERROR(ctx, LT_ERR_ARG, "--set needs section.key=value");
      sets[(*nsets)++] = argv[++i];
    } else if (strncmp(argv[i], "--set=", 6) == 0) {
      sets[(*nsets)++] = argv[i] + 6;
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
  lt_status st = parse_args(ctx, argc, argv, &deck_path, sets, &nsets, profile);
  if (st == LT_OK) st = lt_deck_load(ctx, deck_path, nsets, sets, &r->deck);
  free(sets);
  LT_CHECK(ctx, st);
  lt_deck_text(&r->deck, r->deck_text, sizeof(r->deck_text));
  ctx->log_level = (lt_log_level)r->deck.log_level;
  ctx->seed = (uint64_t)r->deck.seed;
  lt_rng_seed(&ctx->rng, ctx->seed, (uint64_t)ctx->rank, LT_RNG_USER);
  return LT_OK;
}

/* Phase 2 (collective inside): data. */
static lt_status setup_data(lt_ctx *ctx, train_run *r) {
  const lt_deck *d = &r->deck;
  r->dopts.scale = d->data_scale;
  r->dopts.standardize = d->data_standardize;
  r->dopts.std = 0.0f;
  LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "train", &r->dopts, &r->train));
  LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "test", &r->dopts, &r->test));
  if (r->train->d != r->test->d)
    LT_ERROR(ctx, LT_ERR_DATA, "%s: /train/x has %d features per sample but /test/x has %d",
             d->data_path, r->train->d, r->test->d);
  if (r->train->n_global < d->batch_size)
    LT_ERROR(ctx, LT_ERR_DECK, "[optim] batch_size = %d exceeds the %ld training samples of %s",
             d->batch_size, r->train->n_global, d->data_path);
  if (d->batch_size < ctx->size)
    LT_ERROR(ctx, LT_ERR_DECK, "[optim] batch_size = %d is smaller than the %d ranks",
             d->batch_size, ctx->size);
  return LT_OK;
}

/* Phase 3: model, optimizer, batcher. */
static lt_status setup_model(lt_ctx *ctx, train_run *r) {
  const lt_deck *d = &r->deck;
  lt_model_cfg mc = {0};
  mc.in_dim = r->train->d;
  mc.out_dim = r->train->num_classes;
  mc.nhidden = d->nhidden;
  for (int i = 0; i < d->nhidden; i++) mc.hidden[i] = d->hidden[i];
  mc.act = (lt_act)d->activation;
  mc.init = (lt_init)d->init;
  int local = lt_local_batch(d->batch_size, ctx->rank, ctx->size);
  mc.max_batch = local > 256 ? local : 256; /* 256-row chunks for evaluation */
  mc.pad_ranks = ctx->size;
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &r->model));
  lt_model_init(r->model, ctx->seed, mc.init);

  lt_optim_cfg oc;
  lt_optim_cfg_default(&oc);
  oc.kind = (lt_opt_kind)d->optim_kind;
  oc.lr = d->lr;
  oc.momentum = d->momentum;
  oc.nesterov = d->nesterov;
  oc.weight_decay = d->weight_decay;
  oc.beta1 = d->beta1;
  oc.beta2 = d->beta2;
  oc.eps = d->eps;
  oc.sched = (lt_sched_kind)d->schedule;
  oc.warmup_steps = d->warmup_steps;
  oc.step_size = d->step_size;
  oc.gamma = d->gamma;
  oc.min_lr = d->min_lr;
  LT_CHECK(ctx, lt_batcher_create(ctx, r->train, d->batch_size, &r->batcher));
  long total = r->batcher->steps_per_epoch * d->epochs;
  if (d->max_steps > 0 && d->max_steps < total) total = d->max_steps;
  oc.total_steps = total;
  if (oc.sched == LT_SCHED_COSINE && total <= oc.warmup_steps)
    LT_ERROR(ctx, LT_ERR_DECK,
             "[optim] warmup_steps = %ld must be below the run's %ld steps for the cosine schedule",
             oc.warmup_steps, total);
  LT_CHECK(ctx, lt_trainer_create(ctx, r->model, &oc, (lt_dist_mode)d->dist, &r->trainer));
  r->trainer->sh.coll = (lt_coll)d->collective;
  LT_CHECK(ctx, apply_layer_lr(ctx, d, r->model, r->trainer->opt));
  r->total_steps = total;
  return LT_OK;
}

static lt_status setup_outdir(lt_ctx *ctx, train_run *r) {
  if (ctx->rank != 0) return LT_OK;
  LT_CHECK(ctx, make_dirs(ctx, r->deck.out));
  char path[LT_DECK_STR + 16];
  snprintf(path, sizeof(path), "%s/deck.ini", r->deck.out);
  LT_CHECK(ctx, write_text(ctx, path, r->deck_text));
  return LT_OK;
}

/* Collective: metrics.h5 in the run directory, buffering one epoch of steps. */
static lt_status setup_metrics(lt_ctx *ctx, train_run *r, const lt_blas_info *blas) {
  char path[LT_DECK_STR + 16];
  snprintf(path, sizeof(path), "%s/metrics.h5", r->deck.out);
  lt_metrics_info mi = {.deck_text = r->deck_text,
                        .blis_kernels = blas->arch,
                        .blis_threads = blas->threads,
                        .seed = ctx->seed};
  LT_CHECK(ctx, lt_metrics_open(ctx, path, &mi, -1, -1, r->batcher->steps_per_epoch, &r->metrics));
  return LT_OK;
}

static void log_setup(const lt_ctx *ctx, const train_run *r, const lt_blas_info *blas) {
  const lt_model *m = r->model;
  lt_log(ctx, LT_LOG_INFO, "lethe %s (git %s): %d rank(s)\n", LETHE_VERSION, LETHE_GIT_REV,
         ctx->size);
  lt_blas_log(ctx, blas);
  lt_log(ctx, LT_LOG_INFO, "data   %s: %ld train / %ld test samples, %d features, %d classes\n",
         r->deck.data_path, r->train->n_global, r->test->n_global, r->train->d,
         r->train->num_classes);
  char arch[256];
  size_t o = (size_t)snprintf(arch, sizeof(arch), "%d", m->in_dim);
  for (int l = 0; l < m->nlayers && o < sizeof(arch); l++)
    o += (size_t)snprintf(arch + o, sizeof(arch) - o, "-%d", m->layer[l].out);
  lt_log(ctx, LT_LOG_INFO, "model  MLP %s (%s), %zu parameters\n", arch,
         lt_act_name(m->layer[0].act), m->n);
  lt_log(ctx, LT_LOG_INFO,
         "train  %d epochs x %ld steps, global batch %d (%d per rank at most), %s\n",
         r->deck.epochs, r->batcher->steps_per_epoch, r->deck.batch_size,
         lt_local_batch(r->deck.batch_size, 0, ctx->size),
         r->deck.dist == LT_DIST_SHARDED ? "sharded state (reduce-scatter + allgather)"
                                         : "allreduce");
  lt_log(ctx, LT_LOG_INFO, "output %s\n", r->deck.out);
}

static lt_status train_loop(lt_ctx *ctx, train_run *r, const lt_blas_info *blas) {
  const lt_deck *d = &r->deck;
  lt_batcher *b = r->batcher;
  progress prog = {.mode = d->progress == 0 ? auto_progress(ctx) : d->progress};
  long total = r->total_steps, step_all = 0, train_rows = 0;
  double train_time = 0.0, acc = NAN, loss = NAN, rate = 0.0;
  double run_start = lt_wtime();
  for (int e = 0; e < d->epochs && step_all < total; e++) {
    lt_batcher_epoch(b, e);
    double ep_start = lt_wtime(), ep_loss = 0.0;
    long ep_correct = 0, ep_rows = 0;
    for (long s = 0; s < b->steps_per_epoch && step_all < total; s++) {
      double t0 = lt_wtime();
      int rows = lt_batcher_next(b);
      double lr = lt_optim_current_lr(r->trainer->opt);
      lt_step_stats stt;
      LT_CHECK(ctx, lt_trainer_step(r->trainer, b->xb, b->yb, rows, d->batch_size, NULL, &stt));
      double dt = lt_wtime() - t0;
      if (!isfinite(stt.loss))
        LT_ERROR(ctx, LT_ERR_NUM,
                 "training diverged: loss is %g at epoch %d step %ld (try a smaller [optim] lr "
                 "than %g)",
                 stt.loss, e + 1, s + 1, d->lr);
      LT_CHECK(ctx, lt_metrics_step(r->metrics, stt.loss, lr, dt));
      step_all++;
      train_time += dt;
      train_rows += stt.rows;
      ep_loss += stt.loss * (double)stt.rows;
      ep_correct += stt.correct;
      ep_rows += stt.rows;
      rate = (double)train_rows / train_time;
      double eta = (double)(total - step_all) * (train_time / (double)step_all);
      progress_show(ctx, &prog, 0, e + 1, d->epochs, s + 1, b->steps_per_epoch,
                    ep_loss / (double)ep_rows, rate, eta);
    }
    progress_clear(ctx, &prog);
    double ep_time = lt_wtime() - ep_start;
    int last = (e + 1 == d->epochs) || step_all >= total;
    double eacc = NAN, eloss = NAN;
    if (last || (d->eval_every > 0 && (e + 1) % d->eval_every == 0)) {
      lt_timer_start(ctx, "evaluate");
      LT_CHECK(ctx, lt_evaluate(ctx, r->model, r->test, NULL, &eacc, &eloss));
      lt_timer_stop(ctx, "evaluate");
      acc = eacc;
      loss = eloss;
    }
    double rows = (double)(ep_rows ? ep_rows : 1);
    double row[LT_EP_NCOLS] = {[LT_EP_TRAIN_LOSS] = ep_loss / rows,
                               [LT_EP_TRAIN_ACC] = (double)ep_correct / rows,
                               [LT_EP_TEST_LOSS] = eloss,
                               [LT_EP_TEST_ACC] = eacc,
                               [LT_EP_SAMPLES_PER_S] = (double)ep_rows / ep_time,
                               [LT_EP_TIME] = ep_time};
    lt_log(ctx, LT_LOG_INFO,
           "epoch %3d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.0f samples/s  %.1f s\n",
           e + 1, row[LT_EP_TRAIN_LOSS], row[LT_EP_TRAIN_ACC], eloss, eacc,
           row[LT_EP_SAMPLES_PER_S], ep_time);
    LT_CHECK(ctx, lt_metrics_epoch(r->metrics, row));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "test_acc", acc));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "test_loss", loss));
    LT_CHECK(ctx, lt_metrics_summary(r->metrics, "samples_per_s", rate));
    lt_timer_start(ctx, "metrics");
    LT_CHECK(ctx, lt_metrics_flush(r->metrics));
    lt_timer_stop(ctx, "metrics");
  }
  double wall = lt_wtime() - run_start;
  char w[32];
  fmt_duration(w, sizeof(w), wall);
  lt_log(ctx, LT_LOG_INFO,
         "done   test accuracy %.4f  test loss %.4f  training throughput %.0f samples/s "
         "(%d rank(s) x %d thread(s))  wall %s\n",
         acc, loss, rate, ctx->size, blas->threads, w);
  return LT_OK;
}

lt_status lt_cmd_train(lt_ctx *ctx, const lt_blas_info *blas, int argc, char **argv) {
  train_run *r = calloc(1, sizeof(*r));
  if (!r) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  int profile = 0;
  lt_status st = setup_deck(ctx, r, argc, argv, &profile);
  st = lt_agree(ctx, st);
  if (st == LT_OK) st = lt_agree(ctx, setup_data(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, setup_model(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, setup_outdir(ctx, r));
  if (st == LT_OK) st = setup_metrics(ctx, r, blas); /* agrees inside */
  if (st == LT_OK) {
    log_setup(ctx, r, blas);
    st = train_loop(ctx, r, blas);
  }
  if (st == LT_OK && profile) st = lt_timer_report(ctx, ctx->log);
  run_destroy(r);
  free(r);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}
