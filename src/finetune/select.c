/* Class subsets (relabelled) and seeded class-balanced training subsets. */
#include <stdlib.h>
#include <string.h>

#include "lethe/finetune.h"

/* An empty dataset of n rows shaped like src (num_classes K). Freed by the caller. */
static lt_status new_like(lt_ctx *ctx, const lt_dataset *src, int n, int K, lt_dataset **out) {
  *out = NULL;
  lt_dataset *ds = NULL;
  LT_CALLOC(ctx, ds, 1);
  *out = ds;
  LT_CALLOC(ctx, ds->x, (size_t)(n > 0 ? n : 1) * (size_t)src->d);
  LT_CALLOC(ctx, ds->y, n > 0 ? n : 1);
  LT_CALLOC(ctx, ds->index, n > 0 ? n : 1);
  ds->n = n;
  ds->d = src->d;
  ds->num_classes = K;
  ds->c = src->c;
  ds->h = src->h;
  ds->w = src->w;
  snprintf(ds->name, sizeof(ds->name), "%.50s subset", src->name);
  return LT_OK;
}

/* Rows of src whose class is selected (map[y] >= 0), relabelled map[y]. Collective
 * (n_global is summed). */
static lt_status filter_classes(lt_ctx *ctx, const lt_dataset *src, const int *map, int K,
                                lt_dataset **out) {
  int n = 0;
  for (int i = 0; i < src->n; i++) n += map[src->y[i]] >= 0;
  lt_status st = new_like(ctx, src, n, K, out);
  if (st == LT_OK) {
    lt_dataset *ds = *out;
    const size_t d = (size_t)src->d;
    int k = 0;
    for (int i = 0; i < src->n; i++) {
      if (map[src->y[i]] < 0) continue;
      memcpy(ds->x + (size_t)k * d, src->x + (size_t)i * d, d * sizeof(float));
      ds->y[k] = map[src->y[i]];
      ds->index[k] = src->index[i];
      k++;
    }
  }
  long nl = st == LT_OK ? n : 0, tot = 0;
  LT_CHECK_MPI(ctx, MPI_Allreduce(&nl, &tot, 1, MPI_LONG, MPI_SUM, ctx->comm));
  if (*out) (*out)->n_global = tot;
  return lt_agree(ctx, st);
}

/* Every rank's (global index, label) pairs: label_of[g] for g < N (-1: unseen). */
static lt_status gather_labels(lt_ctx *ctx, const lt_dataset *ds, int32_t *label_of, long N,
                               int **counts, int **displs, int64_t **pairs) {
  const int P = ctx->size;
  LT_CALLOC(ctx, *counts, P);
  LT_CALLOC(ctx, *displs, P);
  int mine = 2 * ds->n;
  LT_CHECK_MPI(ctx, MPI_Allgather(&mine, 1, MPI_INT, *counts, 1, MPI_INT, ctx->comm));
  long tot = 0;
  for (int r = 0; r < P; r++) {
    (*displs)[r] = (int)tot;
    tot += (*counts)[r];
  }
  int64_t *loc = NULL;
  LT_CALLOC(ctx, loc, mine > 0 ? mine : 1);
  LT_CALLOC(ctx, *pairs, tot > 0 ? tot : 1);
  for (int i = 0; i < ds->n; i++) {
    loc[2 * i] = ds->index[i];
    loc[2 * i + 1] = ds->y[i];
  }
  int rc = MPI_Allgatherv(loc, mine, MPI_INT64_T, *pairs, *counts, *displs, MPI_INT64_T,
                          ctx->comm);
  lt_free(loc);
  if (rc != MPI_SUCCESS) LT_ERROR(ctx, LT_ERR_MPI, "MPI_Allgatherv of the labels failed");
  for (long g = 0; g < N; g++) label_of[g] = -1;
  for (long k = 0; k < tot / 2; k++) {
    int64_t g = (*pairs)[2 * k];
    if (g < 0 || g >= N)
      LT_ERROR(ctx, LT_ERR_INTERNAL, "sample index %lld outside the %ld samples of %s",
               (long long)g, N, ds->name);
    label_of[g] = (int32_t)(*pairs)[2 * k + 1];
  }
  return LT_OK;
}

/* keep[g] = 1 for the seeded n samples of every selected class (every rank the
 * same; a class with fewer samples is an error on every rank). */
static lt_status choose(lt_ctx *ctx, const lt_ft_data_cfg *cfg, const int *classes, int nc,
                        const int32_t *label_of, long N, uint8_t *keep, const char *name) {
  uint32_t *list = NULL;
  LT_CALLOC(ctx, list, N > 0 ? N : 1);
  lt_rng r;
  lt_rng_seed(&r, cfg->seed, 0, LT_RNG_FT_SUBSET);
  lt_status st = LT_OK;
  for (int i = 0; i < nc && st == LT_OK; i++) {
    size_t cnt = 0;
    for (long g = 0; g < N; g++)
      if (label_of[g] == classes[i]) list[cnt++] = (uint32_t)g;
    if ((long)cnt < cfg->samples_per_class) {
      st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                        "[finetune] samples_per_class = %ld: class %d of %s has only %zu training "
                        "samples", cfg->samples_per_class, classes[i], name, cnt);
      break;
    }
    lt_rng_shuffle_u32(&r, list, cnt);
    for (long k = 0; k < cfg->samples_per_class; k++) keep[list[k]] = 1;
  }
  lt_free(list);
  return st;
}

/* The kept samples (keep[g]) gathered from every rank, in global-index order, dealt
 * round robin: this rank's are kept samples rank, rank + P, ... */
static lt_status deal(lt_ctx *ctx, const lt_dataset *src, const uint8_t *keep, long N, int K,
                      lt_dataset **out) {
  const int P = ctx->size;
  const size_t d = (size_t)src->d;
  long S = 0;
  long *pos = NULL; /* pos[g]: place of sample g among the kept ones */
  LT_CALLOC(ctx, pos, N > 0 ? N : 1);
  for (long g = 0; g < N; g++) pos[g] = keep[g] ? S++ : -1;
  int mine = 0;
  for (int i = 0; i < src->n; i++) mine += keep[src->index[i]];
  int *cnt = NULL, *dsp = NULL;
  float *xl = NULL, *xall = NULL;
  int64_t *gl = NULL, *gall = NULL;
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&cnt, (size_t)P, sizeof(int)) ||
      lt_calloc_aligned((void **)&dsp, (size_t)P, sizeof(int)) ||
      lt_calloc_aligned((void **)&xl, (size_t)(mine ? mine : 1) * d, sizeof(float)) ||
      lt_calloc_aligned((void **)&gl, (size_t)(mine ? mine : 1), sizeof(int64_t)) ||
      lt_calloc_aligned((void **)&xall, (size_t)(S ? S : 1) * d, sizeof(float)) ||
      lt_calloc_aligned((void **)&gall, (size_t)(S ? S : 1), sizeof(int64_t)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory gathering the %ld-sample subset", S);
  /* every rank takes part in the collectives below whatever failed */
  int k = 0;
  for (int i = 0; st == LT_OK && i < src->n; i++) {
    if (!keep[src->index[i]]) continue;
    memcpy(xl + (size_t)k * d, src->x + (size_t)i * d, d * sizeof(float));
    gl[k++] = src->index[i];
  }
  st = lt_agree(ctx, st);
  int rc = MPI_SUCCESS;
  if (st == LT_OK) rc = MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, ctx->comm);
  if (st == LT_OK && rc == MPI_SUCCESS) {
    for (int r = 0, o = 0; r < P; r++) {
      dsp[r] = o;
      o += cnt[r];
    }
    rc = MPI_Allgatherv(gl, mine, MPI_INT64_T, gall, cnt, dsp, MPI_INT64_T, ctx->comm);
    for (int r = 0; r < P; r++) { /* rows of d floats: count and place in floats */
      cnt[r] *= (int)d;
      dsp[r] *= (int)d;
    }
    if (rc == MPI_SUCCESS)
      rc = MPI_Allgatherv(xl, mine * (int)d, MPI_FLOAT, xall, cnt, dsp, MPI_FLOAT, ctx->comm);
  }
  if (st == LT_OK && rc != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__,
                      "MPI_Allgatherv of the subset failed");
  int n = (int)(S / P + (ctx->rank < S % P));
  if (st == LT_OK) st = new_like(ctx, src, n, K, out);
  for (long j = 0; st == LT_OK && j < S; j++) { /* received row j is sample gall[j] */
    long p = pos[gall[j]];
    if (p % P != ctx->rank) continue;
    long row = p / P;
    memcpy((*out)->x + (size_t)row * d, xall + (size_t)j * d, d * sizeof(float));
    (*out)->index[row] = gall[j];
  }
  lt_free(xall);
  lt_free(gall);
  lt_free(xl);
  lt_free(gl);
  lt_free(cnt);
  lt_free(dsp);
  lt_free(pos);
  LT_CHECK(ctx, st);
  (*out)->n_global = S;
  return LT_OK;
}

lt_status lt_ft_select(lt_ctx *ctx, const lt_ft_data_cfg *cfg, lt_dataset **train,
                       lt_dataset **test) {
  const lt_dataset *tr = *train;
  const int K = tr->num_classes;
  if (!cfg->classes && cfg->samples_per_class <= 0) return LT_OK;
  if (K > LT_FT_MAX_CLASSES)
    LT_ERROR(ctx, LT_ERR_DATA, "%s has %d classes; [finetune] handles at most %d", tr->name, K,
             LT_FT_MAX_CLASSES);
  int map[LT_FT_MAX_CLASSES], classes[LT_FT_MAX_CLASSES];
  int nc = cfg->classes ? cfg->nclasses : K;
  for (int c = 0; c < K; c++) map[c] = cfg->classes ? -1 : c;
  for (int i = 0; i < nc; i++) {
    int c = cfg->classes ? cfg->classes[i] : i;
    if (c < 0 || c >= K)
      LT_ERROR(ctx, LT_ERR_ARG, "[finetune] classes: class %d is out of range; %s has classes 0..%d",
               c, tr->name, K - 1);
    if (map[c] >= 0 && cfg->classes)
      LT_ERROR(ctx, LT_ERR_ARG, "[finetune] classes: class %d is given twice", c);
    map[c] = i;
    classes[i] = c;
  }
  if (nc < 2) LT_ERROR(ctx, LT_ERR_ARG, "[finetune] classes: at least 2 classes, got %d", nc);

  lt_dataset *nte = NULL, *ntr = NULL;
  lt_status st = filter_classes(ctx, *test, map, nc, &nte);
  if (st == LT_OK && cfg->samples_per_class <= 0) st = filter_classes(ctx, tr, map, nc, &ntr);
  if (st == LT_OK && cfg->samples_per_class > 0) {
    long N = tr->n_global;
    int32_t *label_of = NULL;
    uint8_t *keep = NULL;
    int *counts = NULL, *displs = NULL;
    int64_t *pairs = NULL;
    if (lt_calloc_aligned((void **)&label_of, (size_t)N, sizeof(int32_t)) ||
        lt_calloc_aligned((void **)&keep, (size_t)N, 1))
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "out of memory for the labels of %ld samples", N);
    st = lt_agree(ctx, st);
    if (st == LT_OK) st = lt_agree(ctx, gather_labels(ctx, tr, label_of, N, &counts, &displs,
                                                      &pairs));
    if (st == LT_OK) st = choose(ctx, cfg, classes, nc, label_of, N, keep, tr->name);
    if (st == LT_OK) st = deal(ctx, tr, keep, N, nc, &ntr);
    if (st == LT_OK) /* labels of the dealt rows */
      for (int i = 0; i < ntr->n; i++) ntr->y[i] = map[label_of[ntr->index[i]]];
    lt_free(label_of);
    lt_free(keep);
    lt_free(counts);
    lt_free(displs);
    lt_free(pairs);
  }
  if (st != LT_OK) {
    lt_dataset_destroy(&nte);
    lt_dataset_destroy(&ntr);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  lt_dataset_destroy(train);
  lt_dataset_destroy(test);
  *train = ntr;
  *test = nte;
  return LT_OK;
}
