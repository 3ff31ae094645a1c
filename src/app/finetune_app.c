/* [finetune] and [run] seeds: deck keys to the finetune module. */
#include "finetune_app.h"

#include <math.h>
#include <string.h>

lt_status lt_app_ft_data(lt_ctx *ctx, const lt_deck *d, lt_dataset **train, lt_dataset **test) {
  if (d->ft_nclasses == 0 && d->ft_samples_per_class == 0) return LT_OK;
  if (d->scen_kind != 0)
    LT_ERROR(ctx, LT_ERR_DECK,
             "[finetune] classes and samples_per_class select the data of a plain run; they "
             "cannot be combined with a [scenario] (kind = none)");
  lt_ft_data_cfg c = {.classes = d->ft_nclasses ? d->ft_classes : NULL,
                      .nclasses = d->ft_nclasses,
                      .samples_per_class = d->ft_samples_per_class,
                      .seed = ctx->seed};
  LT_CHECK(ctx, lt_ft_select(ctx, &c, train, test));
  lt_log(ctx, LT_LOG_INFO, "subset %d classes, %ld training / %ld test samples%s\n",
         (*train)->num_classes, (*train)->n_global, (*test)->n_global,
         d->ft_samples_per_class ? " (seeded, class-balanced)" : "");
  return LT_OK;
}

lt_status lt_app_ft_model(lt_ctx *ctx, const lt_deck *d, lt_model *m, lt_optim *opt) {
  lt_ft_cfg c = {.from = d->ft_from,
                 .freeze_bottom = d->ft_freeze_bottom,
                 .llrd = d->ft_llrd,
                 .reinit_top = d->ft_reinit_top};
  if (!*c.from && !c.freeze_bottom && c.llrd == 1.0 && !c.reinit_top) return LT_OK;
  lt_ft_report rep;
  LT_CHECK(ctx, lt_ft_load(ctx, &c, m, &rep));
  LT_CHECK(ctx, lt_ft_apply_lr(ctx, &c, m, opt));
  if (*c.from)
    lt_log(ctx, LT_LOG_INFO,
           "from   %s: %d layer(s) loaded, %d kept at their initialisation%s; freeze_bottom %d, "
           "llrd %g, reinit_top %d\n",
           rep.path, rep.loaded, rep.reinit, rep.head_reinit ? " (the head's shape differs)" : "",
           c.freeze_bottom, c.llrd, c.reinit_top);
  return LT_OK;
}

lt_status lt_app_ft_replicas(lt_ctx *ctx, const lt_deck *d, const char *deck_text,
                             const lt_blas_info *blas, const char *resume, lt_ft_replica_fn fn,
                             void *user) {
  if (resume)
    LT_ERROR(ctx, LT_ERR_ARG,
             "--resume is not supported with [run] seeds (rerun the replicas, or resume one "
             "replica's run directory RUN_DIR/seed-S with a deck without seeds)");
  long seeds[1 << 10];
  int n = d->nseeds;
  if (n == 1) {
    if (d->seeds[0] < 1 || d->seeds[0] > (int)(sizeof(seeds) / sizeof(seeds[0])))
      LT_ERROR(ctx, LT_ERR_DECK, "[run] seeds = %d: a count of replicas in [1, %zu] (or a list "
               "of two or more seeds)", d->seeds[0], sizeof(seeds) / sizeof(seeds[0]));
    n = d->seeds[0];
    for (int i = 0; i < n; i++) seeds[i] = d->seed + i;
  } else {
    for (int i = 0; i < n; i++) {
      seeds[i] = d->seeds[i];
      for (int j = 0; j < i; j++)
        if (seeds[j] == seeds[i])
          LT_ERROR(ctx, LT_ERR_DECK, "[run] seeds: seed %ld is given twice", seeds[i]);
    }
  }
  lt_ft_replicas_cfg c = {.seeds = seeds,
                          .nseeds = n,
                          .ranks_per_group = d->ranks_per_seed,
                          .out = d->out,
                          .fail_below = d->ft_fail_below,
                          .deck_text = deck_text,
                          .blis_kernels = blas->arch,
                          .blis_threads = blas->threads};
  LT_CHECK(ctx, lt_ft_run_replicas(ctx, &c, fn, user, NULL));
  return LT_OK;
}
