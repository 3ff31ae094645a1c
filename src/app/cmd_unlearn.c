/* lethe unlearn: a trained snapshot -> forget set -> SSD (a grid of alpha, lambda
 * with the importances computed once) and the baselines -> evaluation, the
 * /unlearn group of RUN_DIR/metrics.h5 and the SSD model as a snapshot. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "lethe/checkpoint.h"
#include "lethe/cl.h"
#include "lethe/data.h"
#include "lethe/deck.h"
#include "lethe/h5io.h"
#include "lethe/metrics.h"
#include "lethe/model.h"
#include "lethe/trainer.h"
#include "lethe/unlearn.h"
#include "train_setup.h"

void lt_usage_unlearn(FILE *out) {
  fprintf(out,
          "usage: lethe unlearn DECK.ini --from CKPT [--set section.key=value ...]\n"
          "\n"
          "Makes the model of snapshot CKPT (a snapshot file, a ckpt directory or a run\n"
          "directory: its ckpt/LATEST), trained with DECK.ini, forget the [unlearn] forget\n"
          "set with Selective Synaptic Dampening, runs the baselines (retrain from scratch\n"
          "on the retain set with the deck's training settings, fine-tune, NegGrad) and\n"
          "evaluates each: test, retain and forget accuracy, membership-inference score and\n"
          "wall time. Writes OUT/deck.ini, OUT/metrics.h5 (group /unlearn) and the SSD\n"
          "model as the snapshot OUT/ckpt/step-N.h5 (OUT = [unlearn] out, default\n"
          "RUN_OUT/unlearn), which `lethe train DECK --resume OUT --set run.out=OUT` and\n"
          "`lethe report OUT` accept. I_D is stored beside CKPT (CKPT.importance.h5) and\n"
          "reused by later requests. CKPT itself is never written.\n"
          "Options:\n"
          "  --from CKPT               the trained snapshot (required)\n"
          "  --set section.key=value   override a deck key (repeatable)\n"
          "\n"
          "[unlearn] keys are listed by `lethe train --help`.\n");
}

enum { M_ORIGINAL = 0, M_SSD, M_RETRAIN, M_FINETUNE, M_NEGGRAD, M_COUNT };
static const char *const method_name[M_COUNT] = {"original", "ssd", "retrain", "finetune",
                                                  "neggrad"};
enum { C_TEST = 0, C_RETAIN, C_FORGET, C_MIA, C_AUC, C_WALL, C_SELECTED, C_NCOL };
static const char *const col_name[C_NCOL] = {"test_acc", "retain_acc", "forget_acc", "mia",
                                             "mia_auc", "wall_time", "selected"};

#define MAX_GRID (LT_DECK_MAXLIST * LT_DECK_MAXLIST)

typedef struct {
  lt_deck deck;
  char deck_text[16384];
  const char *from;
  char out[LT_DECK_STR + 16];
  char ckpt_path[1024];   /* the resolved snapshot */
  char imp_path[1100];
  lt_data_opts dopts;
  lt_dataset *train, *test;
  lt_dataset *forget, *retain;     /* D_f, D_r (training samples) */
  lt_dataset *test_r, *test_f;     /* evaluation sets of retained / forgotten data */
  long n_forget;
  lt_model *model;
  lt_trainer *trainer;             /* the deck's optimizer: its state travels in the snapshot */
  lt_strategy *strat;              /* plain training's (none): its cursor travels in snapshots */
  lt_ckpt *ck;
  lt_ckpt_cursor cur;
  uint64_t theta_hash;
  float *theta0;                   /* [n_pad] the trained parameters */
  float *I_D, *I_Df;               /* [slice] owned importances */
  int run[M_COUNT];                /* methods run */
  double res[M_COUNT][C_NCOL];
  int ngrid;
  double grid_alpha[MAX_GRID], grid_lambda[MAX_GRID], grid[MAX_GRID][C_NCOL];
  double id_seconds, id_load_seconds, idf_seconds;
  int id_reused;
} unlearn_run;

static void run_destroy(unlearn_run *r) {
  lt_ckpt_destroy(&r->ck);
  lt_strategy_destroy(&r->strat);
  lt_trainer_destroy(&r->trainer);
  lt_model_destroy(&r->model);
  lt_dataset_destroy(&r->train);
  lt_dataset_destroy(&r->test);
  lt_dataset_destroy(&r->forget);
  lt_dataset_destroy(&r->retain);
  lt_dataset_destroy(&r->test_r);
  lt_dataset_destroy(&r->test_f);
  LT_FREE(r->theta0);
  LT_FREE(r->I_D);
  LT_FREE(r->I_Df);
}

/* ------------------------------------------------------------ set-up */

static lt_status parse_args(lt_ctx *ctx, unlearn_run *r, int argc, char **argv) {
  const char *deck_path = NULL;
  char **sets = calloc((size_t)argc + 1, sizeof(char *));
  if (!sets) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  int nsets = 0;
  lt_status st = LT_OK;
  for (int i = 1; i < argc && st == LT_OK; i++) {
    if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
      sets[nsets++] = argv[++i];
    } else if (strncmp(argv[i], "--set=", 6) == 0) {
      sets[nsets++] = argv[i] + 6;
    } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc && !r->from) {
      r->from = argv[++i];
    } else if (strncmp(argv[i], "--from=", 7) == 0 && !r->from) {
      r->from = argv[i] + 7;
    } else if (argv[i][0] == '-') {
      st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                        "unknown, repeated or incomplete option '%s' (see `lethe unlearn --help`)",
                        argv[i]);
    } else if (!deck_path) {
      deck_path = argv[i];
    } else {
      st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                        "more than one deck given ('%s' and '%s')", deck_path, argv[i]);
    }
  }
  if (st == LT_OK && !deck_path)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "no input deck given (usage: lethe unlearn DECK.ini --from CKPT)");
  if (st == LT_OK && (!r->from || !*r->from))
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "--from CKPT is required: the trained snapshot (file, ckpt directory or run "
                      "directory) to unlearn from");
  if (st == LT_OK) st = lt_deck_load(ctx, deck_path, nsets, sets, &r->deck);
  free(sets);
  LT_CHECK(ctx, st);
  const lt_deck *d = &r->deck;
  if (d->scen_kind != 0 || d->cl_penalty || d->cl_replay || d->refresh)
    LT_ERROR(ctx, LT_ERR_DECK, "%s: lethe unlearn takes a model trained without [scenario], [cl] "
             "or [refresh] (plain training)", d->path);
  if (d->ul_nalpha < 1 || d->ul_nlambda < 1)
    LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] alpha and lambda need at least one value each");
  char b[LT_DECK_STR];
  snprintf(b, sizeof(b), "%s", d->ul_baselines);
  for (char *save = NULL, *tok = strtok_r(b, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    int found = 0;
    for (int m = M_RETRAIN; m < M_COUNT; m++)
      if (strcmp(tok, method_name[m]) == 0) r->run[m] = found = 1;
    if (!found)
      LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] baselines: unknown baseline '%s'; allowed: retrain, "
               "finetune, neggrad (comma-separated, or empty)", tok);
  }
  r->run[M_ORIGINAL] = r->run[M_SSD] = 1;
  if (d->ul_out[0])
    snprintf(r->out, sizeof(r->out), "%s", d->ul_out);
  else
    snprintf(r->out, sizeof(r->out), "%s/unlearn", d->out);
  lt_deck_text(d, r->deck_text, sizeof(r->deck_text));
  ctx->log_level = (lt_log_level)d->log_level;
  ctx->seed = (uint64_t)d->seed;
  lt_rng_seed(&ctx->rng, ctx->seed, (uint64_t)ctx->rank, LT_RNG_USER);
  return LT_OK;
}

/* Rows of ds whose label is (want = 1) or is not (want = 0) one of the classes. */
static lt_status class_subset(lt_ctx *ctx, const lt_dataset *ds, const int *classes, int nc,
                              uint8_t want, lt_dataset **out) {
  uint8_t *sel = NULL;
  LT_CALLOC(ctx, sel, ds->n);
  for (int i = 0; i < ds->n; i++)
    for (int c = 0; c < nc; c++) sel[i] |= ds->y[i] == classes[c];
  lt_status st = lt_dataset_subset(ctx, ds, sel, want, out);
  lt_free(sel);
  LT_CHECK(ctx, st);
  return LT_OK;
}

static lt_status setup_data(lt_ctx *ctx, unlearn_run *r) {
  const lt_deck *d = &r->deck;
  r->dopts = (lt_data_opts){.scale = d->data_scale, .standardize = d->data_standardize};
  if (d->data_valid > 0)
    LT_ERROR(ctx, LT_ERR_DECK, "[data] valid = %ld: a validation hold-out is for lethe train; "
             "lethe unlearn measures on the whole training and test splits (set it to 0)",
             d->data_valid);
  LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "train", &r->dopts, &r->train));
  LT_CHECK(ctx, lt_dataset_load(ctx, d->data_path, "test", &r->dopts, &r->test));
  int32_t *group = NULL;
  if (d->ul_forget == LT_FORGET_SUBCLASS)
    LT_CHECK(ctx, lt_read_groups(ctx, d->data_path, "train", r->train, &group));
  lt_forget_cfg fc = {.kind = (lt_forget_kind)d->ul_forget, .classes = d->ul_classes,
                      .nclasses = d->ul_nclasses, .groups = d->ul_groups,
                      .ngroups = d->ul_ngroups, .fraction = d->ul_fraction,
                      .count = d->ul_count, .seed = ctx->seed};
  uint8_t *forget = NULL;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&forget, (size_t)r->train->n, 1) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st == LT_OK) st = lt_forget_select(ctx, &fc, r->train, group, forget, &r->n_forget);
  if (st == LT_OK) st = lt_dataset_subset(ctx, r->train, forget, 1, &r->forget);
  if (st == LT_OK) st = lt_dataset_subset(ctx, r->train, forget, 0, &r->retain);
  lt_free(forget);
  lt_free(group);
  LT_CHECK(ctx, st);
  /* whole classes: the test samples of the retained and forgotten classes; otherwise the
   * whole test split and the forget samples themselves */
  if (d->ul_forget == LT_FORGET_CLASS) {
    LT_CHECK(ctx, class_subset(ctx, r->test, d->ul_classes, d->ul_nclasses, 0, &r->test_r));
    LT_CHECK(ctx, class_subset(ctx, r->test, d->ul_classes, d->ul_nclasses, 1, &r->test_f));
  } else {
    uint8_t *all = NULL;
    LT_CALLOC(ctx, all, r->test->n);
    st = lt_dataset_subset(ctx, r->test, all, 0, &r->test_r);
    lt_free(all);
    LT_CHECK(ctx, st);
    uint8_t *fall = NULL;
    LT_CALLOC(ctx, fall, r->forget->n);
    st = lt_dataset_subset(ctx, r->forget, fall, 0, &r->test_f);
    lt_free(fall);
    LT_CHECK(ctx, st);
  }
  int B = d->ul_batch;
  if (B < ctx->size || d->batch_size < ctx->size)
    LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] batch_size = %d and [optim] batch_size = %d must be at "
             "least the %d ranks", B, d->batch_size, ctx->size);
  return LT_OK;
}

/* Model and the deck's optimizer; the snapshot registry as lethe train has it
 * (theta, the optimizer's state, the ctx stream) and the trained state read. */
static lt_status setup_model(lt_ctx *ctx, unlearn_run *r, const lt_blas_info *blas) {
  const lt_deck *d = &r->deck;
  lt_model_cfg mc;
  lt_app_model_cfg(ctx, d, r->train->d, r->train->num_classes, &mc);
  if (mc.max_batch < d->ul_batch) mc.max_batch = d->ul_batch;
  LT_CHECK(ctx, lt_model_create(ctx, &mc, &r->model));
  lt_optim_cfg oc;
  lt_app_optim_cfg(d, &oc);
  oc.total_steps = 1 + oc.warmup_steps; /* only its state is used: read and written back */
  LT_CHECK(ctx, lt_trainer_create(ctx, r->model, &oc, (lt_dist_mode)d->dist, &r->trainer));
  r->trainer->sh.coll = (lt_coll)d->collective;
  LT_CHECK(ctx, lt_app_ckpt_create(ctx, r->model, r->trainer, r->deck_text, blas, &r->ck));
  lt_cl_cfg cc;
  lt_cl_cfg_default(&cc);
  LT_CHECK(ctx, lt_strategy_create(ctx, &cc, r->trainer, r->model->out_dim, &r->strat));
  LT_CHECK(ctx, lt_strategy_ckpt_add(r->strat, r->ck, 1));
  lt_ckpt_report rep;
  LT_CHECK(ctx, lt_ckpt_read(r->ck, r->from, &r->cur, &rep));
  LT_CHECK(ctx, lt_strategy_ckpt_restore(r->strat, rep.per_rank_restored));
  lt_optim_set_steps(r->trainer->opt, r->cur.optim_steps);
  snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s", rep.path);
  r->theta_hash = rep.theta_hash;
  LT_CALLOC(ctx, r->theta0, r->model->n_pad);
  memcpy(r->theta0, r->model->theta, r->model->n_pad * sizeof(float));
  LT_CALLOC(ctx, r->I_D, r->trainer->sh.slice);
  LT_CALLOC(ctx, r->I_Df, r->trainer->sh.slice);
  if (d->ul_importance_file[0])
    snprintf(r->imp_path, sizeof(r->imp_path), "%s", d->ul_importance_file);
  else
    snprintf(r->imp_path, sizeof(r->imp_path), "%s.importance.h5", r->ckpt_path);
  return LT_OK;
}

/* Rank 0: the output directory; refuses one whose ckpt/ is the snapshot's own
 * directory (the unlearned snapshot could replace the original there). */
static lt_status setup_outdir(lt_ctx *ctx, unlearn_run *r) {
  if (ctx->rank != 0) return LT_OK;
  LT_CHECK(ctx, lt_make_dirs(ctx, r->out, "output directory", "[unlearn] out"));
  char ck[LT_DECK_STR + 32], a[PATH_MAX], b[PATH_MAX];
  snprintf(ck, sizeof(ck), "%s/ckpt", r->out);
  char src[1024];
  snprintf(src, sizeof(src), "%s", r->ckpt_path);
  char *slash = strrchr(src, '/');
  if (slash) *slash = '\0'; else snprintf(src, sizeof(src), ".");
  if (realpath(ck, a) && realpath(src, b) && strcmp(a, b) == 0)
    LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] out = '%s' would put the unlearned snapshot beside the "
             "original '%s' (in %s): choose another output directory", r->out, r->ckpt_path, a);
  char path[LT_DECK_STR + 32];
  snprintf(path, sizeof(path), "%s/deck.ini", r->out);
  FILE *f = fopen(path, "w");
  if (!f || fputs(r->deck_text, f) < 0 || fclose(f) != 0)
    LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
  return LT_OK;
}

/* ------------------------------------------------------------ evaluation */

static lt_status evaluate(lt_ctx *ctx, unlearn_run *r, double *row) {
  double loss;
  LT_CHECK(ctx, lt_evaluate(ctx, r->model, r->test, NULL, &row[C_TEST], &loss));
  LT_CHECK(ctx, lt_evaluate(ctx, r->model, r->test_r, NULL, &row[C_RETAIN], &loss));
  LT_CHECK(ctx, lt_evaluate(ctx, r->model, r->test_f, NULL, &row[C_FORGET], &loss));
  lt_mia_result mia;
  LT_CHECK(ctx, lt_mia(ctx, r->model, r->retain, r->test, r->forget, &mia));
  row[C_MIA] = mia.score;
  row[C_AUC] = mia.auc;
  return LT_OK;
}

static void restore_theta(unlearn_run *r) {
  memcpy(r->model->theta, r->theta0, r->model->n_pad * sizeof(float));
}

/* ------------------------------------------------------------ SSD */

static lt_status importances(lt_ctx *ctx, unlearn_run *r) {
  const lt_deck *d = &r->deck;
  const lt_model *m = r->model;
  const lt_shard *sh = &r->trainer->sh;
  lt_importance_meta meta = {.theta_hash = r->theta_hash,
                             .kind = (lt_importance_kind)d->ul_importance,
                             .batching = (lt_imp_batching)d->ul_batching,
                             .batch = d->ul_batch};
  size_t o = (size_t)snprintf(meta.layout, sizeof(meta.layout), "%d", m->in_dim);
  for (int l = 0; l < m->nlayers && o < sizeof(meta.layout); l++)
    o += (size_t)snprintf(meta.layout + o, sizeof(meta.layout) - o, "-%d", m->layer[l].out);
  int exists = 0;
  double t0 = lt_wtime();
  if (d->ul_reuse_importance)
    LT_CHECK(ctx, lt_importance_read(ctx, sh, r->imp_path, &meta, r->I_D, &exists));
  if (exists) {
    r->id_reused = 1;
    r->id_load_seconds = lt_wtime() - t0;
    r->id_seconds = meta.seconds;
    lt_log(ctx, LT_LOG_INFO, "I_D    reused from %s (computed in %.2f s when stored; loaded in "
           "%.3f s)\n", r->imp_path, r->id_seconds, r->id_load_seconds);
  } else {
    LT_CHECK_MPI(ctx, MPI_Barrier(ctx->comm));
    t0 = lt_wtime();
    LT_CHECK(ctx, lt_ssd_importance(ctx, r->model, sh, r->train, meta.kind, meta.batching,
                                    d->ul_batch, ctx->seed, r->I_D));
    r->id_seconds = lt_wtime() - t0;
    meta.seconds = r->id_seconds;
    LT_CHECK(ctx, lt_importance_write(ctx, sh, r->imp_path, &meta, r->I_D));
    lt_log(ctx, LT_LOG_INFO, "I_D    computed over the %ld training samples in %.2f s and stored "
           "in %s (later requests reuse it)\n", r->train->n_global, r->id_seconds, r->imp_path);
  }
  LT_CHECK_MPI(ctx, MPI_Barrier(ctx->comm));
  t0 = lt_wtime();
  LT_CHECK(ctx, lt_ssd_importance(ctx, r->model, sh, r->forget, meta.kind, meta.batching,
                                  d->ul_batch, ctx->seed + 1, r->I_Df));
  r->idf_seconds = lt_wtime() - t0;
  lt_log(ctx, LT_LOG_INFO, "I_Df   computed over the %ld forget samples in %.3f s\n",
         r->n_forget, r->idf_seconds);
  return LT_OK;
}

/* theta0 dampened with (alpha, lambda) on the owned slice, then allgathered;
 * *selected over all ranks, *seconds the time taken. Collective. */
static lt_status dampen(lt_ctx *ctx, unlearn_run *r, double alpha, double lambda,
                        double *selected, double *seconds) {
  const lt_shard *sh = &r->trainer->sh;
  restore_theta(r);
  double t0 = lt_wtime();
  long sel = lt_ssd_dampen(r->model->theta + sh->lo, r->I_D, r->I_Df, sh->slice, alpha, lambda);
  LT_CHECK(ctx, lt_dist_allgather(ctx, sh, r->model->theta));
  *seconds = lt_wtime() - t0;
  double s = (double)sel;
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, ctx->comm));
  *selected = s;
  return LT_OK;
}

static lt_status ssd_grid(lt_ctx *ctx, unlearn_run *r) {
  const lt_deck *d = &r->deck;
  double bound = (double)r->train->n_global / (double)r->n_forget;
  for (int i = 0; i < d->ul_nalpha; i++)
    if (d->ul_alpha[i] >= bound)
      lt_log(ctx, LT_LOG_INFO,
             "WARNING: [unlearn] alpha = %g is at or above the achievable ratio N/N_f = %ld/%ld = "
             "%.2f: I_D contains the forget set, so I_Df/I_D cannot exceed about N/N_f and SSD "
             "selects (almost) nothing. Use alpha below %.2f.\n",
             d->ul_alpha[i], r->train->n_global, r->n_forget, bound, bound);
  r->ngrid = 0;
  for (int i = 0; i < d->ul_nalpha; i++)
    for (int j = 0; j < d->ul_nlambda; j++) {
      int g = r->ngrid++;
      double *row = r->grid[g];
      r->grid_alpha[g] = d->ul_alpha[i];
      r->grid_lambda[g] = d->ul_lambda[j];
      LT_CHECK(ctx, dampen(ctx, r, d->ul_alpha[i], d->ul_lambda[j], &row[C_SELECTED],
                           &row[C_WALL]));
      LT_CHECK(ctx, evaluate(ctx, r, row));
      if (r->ngrid > 1 || d->ul_nalpha * d->ul_nlambda > 1)
        lt_log(ctx, LT_LOG_INFO, "grid   alpha %-8g lambda %-8g selected %9.0f (%.3f%%)  test %.4f "
               " D_r %.4f  D_f %.4f  MIA %.4f\n", r->grid_alpha[g], r->grid_lambda[g],
               row[C_SELECTED], 100.0 * row[C_SELECTED] / (double)r->model->n, row[C_TEST],
               row[C_RETAIN], row[C_FORGET], row[C_MIA]);
    }
  /* the first point is "ssd": its model is the one saved */
  memcpy(r->res[M_SSD], r->grid[0], sizeof(r->grid[0]));
  double sel, sec;
  LT_CHECK(ctx, dampen(ctx, r, r->grid_alpha[0], r->grid_lambda[0], &sel, &sec));
  r->res[M_SSD][C_WALL] = r->idf_seconds + r->grid[0][C_WALL] +
                          (r->id_reused ? r->id_load_seconds : 0.0);
  return LT_OK;
}

static lt_status save_ssd(lt_ctx *ctx, unlearn_run *r) {
  char dir[LT_DECK_STR + 32];
  snprintf(dir, sizeof(dir), "%s/ckpt", r->out);
  lt_ckpt_cursor c = r->cur;
  c.test_acc = r->res[M_SSD][C_TEST];
  double acc, loss;
  LT_CHECK(ctx, lt_evaluate(ctx, r->model, r->test, NULL, &acc, &loss));
  c.test_loss = loss;
  lt_ckpt_report rep;
  lt_strategy_ckpt_prepare(r->strat);
  LT_CHECK(ctx, lt_ckpt_write(r->ck, dir, 0, &c, &rep));
  lt_log(ctx, LT_LOG_INFO, "ckpt   %s: the SSD model (alpha %g, lambda %g)  theta %016llx\n",
         rep.path, r->grid_alpha[0], r->grid_lambda[0], (unsigned long long)rep.theta_hash);
  return LT_OK;
}

/* ------------------------------------------------------------ baselines */

/* A trainer over the model with the deck's optimizer, lr and schedule replaced
 * as given (lr <= 0: the deck's settings and schedule over total steps). */
static lt_status baseline_trainer(lt_ctx *ctx, unlearn_run *r, double lr, int plain_sgd,
                                  long total, lt_trainer **t) {
  const lt_deck *d = &r->deck;
  lt_optim_cfg oc;
  lt_app_optim_cfg(d, &oc);
  oc.total_steps = total;
  if (lr > 0) {
    oc.lr = lr;
    oc.sched = LT_SCHED_CONSTANT;
    oc.warmup_steps = 0;
  }
  if (plain_sgd) {
    oc.kind = LT_OPT_SGD;
    oc.momentum = 0.0;
    oc.nesterov = 0;
    oc.weight_decay = 0.0;
  }
  LT_CHECK(ctx, lt_trainer_create(ctx, r->model, &oc, (lt_dist_mode)d->dist, t));
  (*t)->sh.coll = (lt_coll)d->collective;
  LT_CHECK(ctx, lt_app_apply_layer_lr(ctx, d, r->model, (*t)->opt));
  return LT_OK;
}

static lt_status baseline(lt_ctx *ctx, unlearn_run *r, int method) {
  const lt_deck *d = &r->deck;
  lt_trainer *t = NULL;
  lt_status st = LT_OK;
  LT_CHECK_MPI(ctx, MPI_Barrier(ctx->comm));
  double t0 = lt_wtime();
  if (method == M_RETRAIN) { /* from scratch, the deck's training settings, on D_r */
    lt_model_init(r->model, ctx->seed, (lt_init)d->init);
    int Bl = lt_local_batch(d->batch_size, ctx->rank, ctx->size);
    long steps = Bl > 0 ? r->retain->n / Bl : 0;
    LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &steps, 1, MPI_LONG, MPI_MIN, ctx->comm));
    st = baseline_trainer(ctx, r, 0.0, 0, steps * d->epochs, &t);
    if (st == LT_OK) st = lt_unlearn_train_epochs(ctx, t, r->retain, d->batch_size, d->epochs);
  } else if (method == M_FINETUNE) {
    restore_theta(r);
    st = baseline_trainer(ctx, r, d->ul_finetune_lr, 0, 1, &t);
    if (st == LT_OK)
      st = lt_unlearn_train_epochs(ctx, t, r->retain, d->ul_batch, d->ul_finetune_epochs);
  } else {
    restore_theta(r);
    st = baseline_trainer(ctx, r, d->ul_neggrad_lr, 1, 1, &t);
    if (st == LT_OK) st = lt_unlearn_neggrad(ctx, t, r->forget, d->ul_batch, d->ul_neggrad_steps);
  }
  lt_trainer_destroy(&t);
  LT_CHECK(ctx, st);
  r->res[method][C_WALL] = lt_wtime() - t0;
  LT_CHECK(ctx, evaluate(ctx, r, r->res[method]));
  r->res[method][C_SELECTED] = NAN;
  lt_log(ctx, LT_LOG_INFO, "%-7s done in %.2f s\n", method_name[method], r->res[method][C_WALL]);
  return LT_OK;
}

/* ------------------------------------------------------------ output */

static lt_status write_unlearn_group(lt_ctx *ctx, unlearn_run *r, const char *path) {
  if (ctx->rank != 0) return LT_OK;
  const lt_deck *d = &r->deck;
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = LT_OK;
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5I_INVALID_HID;
  if (f < 0) LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot open '%s' to add /unlearn", path);
  char methods[128] = "";
  double col[M_COUNT];
  size_t o = 0;
  int nm = 0;
  for (int m = 0; m < M_COUNT; m++)
    if (r->run[m]) o += (size_t)snprintf(methods + o, sizeof(methods) - o, "%s%s", nm++ ? "," : "",
                                         method_name[m]);
  for (int c = 0; c < C_NCOL; c++) {
    int k = 0;
    for (int m = 0; m < M_COUNT; m++)
      if (r->run[m]) col[k++] = r->res[m][c];
    char p[64];
    snprintf(p, sizeof(p), "/unlearn/%s", col_name[c]);
    LT_CHECK_DONE(ctx, st, lt_h5_write_f64(ctx, f, p, col, (size_t)nm));
  }
  double gv[MAX_GRID];
  for (int c = 0; c < C_NCOL; c++) {
    for (int i = 0; i < r->ngrid; i++) gv[i] = r->grid[i][c];
    char p[64];
    snprintf(p, sizeof(p), "/unlearn/grid/%s", col_name[c]);
    LT_CHECK_DONE(ctx, st, lt_h5_write_f64(ctx, f, p, gv, (size_t)r->ngrid));
  }
  LT_CHECK_DONE(ctx, st, lt_h5_write_f64(ctx, f, "/unlearn/grid/alpha", r->grid_alpha,
                                         (size_t)r->ngrid));
  LT_CHECK_DONE(ctx, st, lt_h5_write_f64(ctx, f, "/unlearn/grid/lambda", r->grid_lambda,
                                         (size_t)r->ngrid));
  g = H5Gopen2(f, "/unlearn", H5P_DEFAULT);
  if (g < 0) LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot open /unlearn in '%s'", path);
  char classes[256] = "";
  o = 0;
  for (int i = 0; i < d->ul_nclasses && o < sizeof(classes); i++)
    o += (size_t)snprintf(classes + o, sizeof(classes) - o, "%s%d", i ? "," : "", d->ul_classes[i]);
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "methods", methods));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "forget", lt_forget_kind_name(d->ul_forget)));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "classes", classes));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, g, "n_forget", r->n_forget));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, g, "n_train", r->train->n_global));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, g, "params", (int64_t)r->model->n));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "ratio_bound",
                                        (double)r->train->n_global / (double)r->n_forget));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "importance",
                                        lt_importance_name(d->ul_importance)));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "batching", lt_imp_batching_name(d->ul_batching)));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, g, "batch_size", d->ul_batch));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "alpha", r->grid_alpha[0]));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "lambda", r->grid_lambda[0]));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, g, "id_reused", r->id_reused));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "id_seconds", r->id_seconds));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "id_load_seconds", r->id_load_seconds));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, g, "idf_seconds", r->idf_seconds));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "checkpoint", r->ckpt_path));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, g, "importance_file", r->imp_path));
done:
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  lt_h5_quiet_off(&q);
  return st;
}

static lt_status write_metrics(lt_ctx *ctx, unlearn_run *r, const lt_blas_info *blas) {
  char path[LT_DECK_STR + 32];
  snprintf(path, sizeof(path), "%s/metrics.h5", r->out);
  lt_metrics_info mi = {.deck_text = r->deck_text, .blis_kernels = blas->arch,
                        .blis_threads = blas->threads, .seed = ctx->seed};
  lt_metrics *mt = NULL;
  LT_CHECK(ctx, lt_metrics_open(ctx, path, &mi, -1, -1, 1, &mt));
  lt_status st = lt_metrics_summary(mt, "test_acc", r->res[M_SSD][C_TEST]);
  lt_status s2 = lt_metrics_close(&mt);
  LT_CHECK(ctx, st);
  LT_CHECK(ctx, s2);
  LT_CHECK(ctx, lt_agree(ctx, write_unlearn_group(ctx, r, path)));
  return LT_OK;
}

static void print_table(const lt_ctx *ctx, const unlearn_run *r) {
  const lt_deck *d = &r->deck;
  double rt = r->run[M_RETRAIN] ? r->res[M_RETRAIN][C_WALL] : NAN;
  lt_log(ctx, LT_LOG_INFO,
         "\nunlearn %s forgetting (%ld of %ld training samples); SSD alpha %g lambda %g, "
         "importance %s%s%s, batch %d\n",
         lt_forget_kind_name(d->ul_forget), r->n_forget, r->train->n_global, r->grid_alpha[0],
         r->grid_lambda[0], lt_importance_name(d->ul_importance),
         d->ul_importance == LT_IMP_BATCH_MEAN ? " " : "",
         d->ul_importance == LT_IMP_BATCH_MEAN ? lt_imp_batching_name(d->ul_batching) : "",
         d->ul_batch);
  lt_log(ctx, LT_LOG_INFO, "%-9s %8s %8s %8s %7s %10s %9s %11s\n", "method", "test", "D_r",
         "D_f", "MIA", "MIA AUC", "wall s", "retrain/x");
  for (int m = 0; m < M_COUNT; m++) {
    if (!r->run[m]) continue;
    const double *v = r->res[m];
    char wall[32] = "", ratio[32] = "";
    if (m != M_ORIGINAL) {
      snprintf(wall, sizeof(wall), "%.3f", v[C_WALL]);
      if (isfinite(rt) && m != M_RETRAIN) snprintf(ratio, sizeof(ratio), "%.1f", rt / v[C_WALL]);
    }
    lt_log(ctx, LT_LOG_INFO, "%-9s %8.4f %8.4f %8.4f %7.4f %10.4f %9s %11s\n", method_name[m],
           v[C_TEST], v[C_RETAIN], v[C_FORGET], v[C_MIA], v[C_AUC], wall, ratio);
  }
  double with_id = r->res[M_SSD][C_WALL] + r->id_seconds;
  lt_log(ctx, LT_LOG_INFO,
         "ssd    wall %.3f s = I_Df %.3f s + dampening %.4f s%s; I_D %s %.2f s; SSD including "
         "I_D %.2f s",
         r->res[M_SSD][C_WALL], r->idf_seconds, r->grid[0][C_WALL],
         r->id_reused ? " + loading the stored I_D" : "",
         r->id_reused ? "(stored, reused) took" : "(computed now) took", r->id_seconds, with_id);
  if (isfinite(rt))
    lt_log(ctx, LT_LOG_INFO, "; retrain/SSD %.1fx with the stored I_D, %.1fx including I_D\n",
           rt / r->res[M_SSD][C_WALL], rt / with_id);
  else
    lt_log(ctx, LT_LOG_INFO, "\n");
  lt_log(ctx, LT_LOG_INFO, "selected %.0f of %zu parameters (%.3f%%); output %s\n",
         r->res[M_SSD][C_SELECTED], r->model->n,
         100.0 * r->res[M_SSD][C_SELECTED] / (double)r->model->n, r->out);
}

/* ------------------------------------------------------------ the command */

static lt_status unlearn_main(lt_ctx *ctx, unlearn_run *r, const lt_blas_info *blas) {
  lt_log(ctx, LT_LOG_INFO, "lethe %s (git %s): unlearn, %d rank(s)\n", LETHE_VERSION,
         LETHE_GIT_REV, ctx->size);
  lt_blas_log(ctx, blas);
  lt_log(ctx, LT_LOG_INFO, "from   %s (test accuracy %.4f at its epoch %ld)\n", r->ckpt_path,
         r->cur.test_acc, r->cur.epoch);
  lt_log(ctx, LT_LOG_INFO, "forget %s: %ld of %ld training samples; retain %ld\n",
         lt_forget_kind_name(r->deck.ul_forget), r->n_forget, r->train->n_global,
         r->retain->n_global);
  LT_CHECK(ctx, evaluate(ctx, r, r->res[M_ORIGINAL]));
  r->res[M_ORIGINAL][C_WALL] = r->res[M_ORIGINAL][C_SELECTED] = NAN;
  LT_CHECK(ctx, importances(ctx, r));
  LT_CHECK(ctx, ssd_grid(ctx, r));
  LT_CHECK(ctx, save_ssd(ctx, r));
  for (int m = M_RETRAIN; m < M_COUNT; m++)
    if (r->run[m]) LT_CHECK(ctx, baseline(ctx, r, m));
  LT_CHECK(ctx, write_metrics(ctx, r, blas));
  print_table(ctx, r);
  return LT_OK;
}

lt_status lt_cmd_unlearn(lt_ctx *ctx, int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    if (ctx->rank == 0) lt_usage_unlearn(stdout);
    return LT_OK;
  }
  lt_blas_info blas_info;
  lt_blas_setup(&blas_info);
  const lt_blas_info *blas = &blas_info;
  unlearn_run *r = calloc(1, sizeof(*r));
  if (!r) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  lt_status st = lt_agree(ctx, parse_args(ctx, r, argc, argv));
  if (st == LT_OK) st = lt_agree(ctx, setup_data(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, setup_model(ctx, r, blas)); /* reads agree inside */
  if (st == LT_OK) st = lt_agree(ctx, setup_outdir(ctx, r));
  if (st == LT_OK) st = lt_agree(ctx, unlearn_main(ctx, r, blas));
  run_destroy(r);
  free(r);
  if (st != LT_OK) return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  return LT_OK;
}
