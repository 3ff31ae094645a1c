/* Forget sets: whole classes, sub-classes (/train/group), seeded random samples;
 * subsets of a shard; the group labels of a shard. */
#include <hdf5.h>
#include <string.h>

#include "lethe/h5io.h"
#include "lethe/unlearn.h"

const char *lt_forget_kind_name(lt_forget_kind k) {
  switch (k) {
  case LT_FORGET_CLASS: return "class";
  case LT_FORGET_SUBCLASS: return "subclass";
  case LT_FORGET_RANDOM: return "random";
  }
  return "unknown";
}

static int in_list(int v, const int *list, int n) {
  for (int i = 0; i < n; i++)
    if (list[i] == v) return 1;
  return 0;
}

/* Local checks of the configuration against the data (same result on every rank). */
static lt_status check_cfg(lt_ctx *ctx, const lt_forget_cfg *cfg, const lt_dataset *train,
                           int have_groups) {
  int K = train->num_classes;
  if (cfg->kind == LT_FORGET_CLASS || cfg->kind == LT_FORGET_SUBCLASS) {
    if (cfg->nclasses < 1)
      LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] classes is empty: forget = %s needs at least one "
               "class in 0..%d", lt_forget_kind_name(cfg->kind), K - 1);
    for (int i = 0; i < cfg->nclasses; i++)
      if (cfg->classes[i] < 0 || cfg->classes[i] >= K)
        LT_ERROR(ctx, LT_ERR_DECK,
                 "[unlearn] classes: class %d does not exist; the dataset '%s' has classes 0..%d",
                 cfg->classes[i], train->name, K - 1);
  }
  if (cfg->kind == LT_FORGET_SUBCLASS) {
    if (cfg->ngroups < 1)
      LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] groups is empty: forget = subclass needs the "
               "/train/group values to forget");
    if (!have_groups)
      LT_ERROR(ctx, LT_ERR_DATA, "[unlearn] forget = subclass: the dataset '%s' has no "
               "/train/group (sub-class labels)", train->name);
  }
  if (cfg->kind == LT_FORGET_RANDOM) {
    if (cfg->count < 0 || cfg->count >= train->n_global)
      LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] count = %ld: allowed 1..%ld (the training set has "
               "%ld samples; 0 uses fraction)", cfg->count, train->n_global - 1, train->n_global);
    if (cfg->count == 0 && !(cfg->fraction > 0 && cfg->fraction < 1))
      LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] fraction = %g: allowed (0, 1)", cfg->fraction);
  }
  return LT_OK;
}

lt_status lt_forget_select(lt_ctx *ctx, const lt_forget_cfg *cfg, const lt_dataset *train,
                           const int32_t *group, uint8_t *forget, long *n_forget) {
  int have = group != NULL;
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &have, 1, MPI_INT, MPI_MIN, ctx->comm));
  LT_CHECK(ctx, lt_agree(ctx, check_cfg(ctx, cfg, train, have)));
  long N = train->n_global;
  lt_status st = LT_OK;
  if (cfg->kind == LT_FORGET_RANDOM) {
    long cnt = cfg->count > 0 ? cfg->count : (long)(cfg->fraction * (double)N + 0.5);
    if (cnt < 1) cnt = 1;
    if (cnt >= N) cnt = N - 1;
    /* the first cnt entries of a seeded permutation of 0..N-1: the same on every rank */
    uint32_t *perm = NULL;
    uint8_t *chosen = NULL;
    if (lt_calloc_aligned((void **)&perm, (size_t)N, sizeof(*perm)) != 0 ||
        lt_calloc_aligned((void **)&chosen, (size_t)N, 1) != 0)
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "out of memory choosing %ld of %ld samples", cnt, N);
    if (st == LT_OK) {
      for (long i = 0; i < N; i++) perm[i] = (uint32_t)i;
      lt_rng r;
      lt_rng_seed(&r, cfg->seed, 0, LT_RNG_USER + 6);
      lt_rng_shuffle_u32(&r, perm, (size_t)N);
      for (long i = 0; i < cnt; i++) chosen[perm[i]] = 1;
      for (int i = 0; i < train->n; i++) forget[i] = chosen[train->index[i]];
    }
    lt_free(perm);
    lt_free(chosen);
  } else {
    for (int i = 0; i < train->n; i++) {
      int f = in_list(train->y[i], cfg->classes, cfg->nclasses);
      if (f && cfg->kind == LT_FORGET_SUBCLASS) f = in_list(group[i], cfg->groups, cfg->ngroups);
      forget[i] = (uint8_t)f;
    }
  }
  LT_CHECK(ctx, lt_agree(ctx, st));
  long nf = 0;
  for (int i = 0; i < train->n; i++) nf += forget[i];
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &nf, 1, MPI_LONG, MPI_SUM, ctx->comm));
  *n_forget = nf;
  if (nf == 0) {
    char what[256] = "";
    if (cfg->kind == LT_FORGET_SUBCLASS) {
      size_t o = 0;
      for (int i = 0; i < cfg->ngroups && o < sizeof(what); i++)
        o += (size_t)snprintf(what + o, sizeof(what) - o, "%s%d", i ? "," : "", cfg->groups[i]);
    }
    LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] the forget set is empty: %s%s%s",
             cfg->kind == LT_FORGET_SUBCLASS ? "no training sample of the classes has a group in "
                                             : "no training sample matches the forget request",
             what, cfg->kind == LT_FORGET_SUBCLASS ? " ([unlearn] groups)" : "");
  }
  if (nf >= N)
    LT_ERROR(ctx, LT_ERR_DECK, "[unlearn] the forget set holds all %ld training samples: nothing "
             "would be retained", N);
  return LT_OK;
}

/* Rank-local: read the whole /<split>/group of the file (serial HDF5). */
static lt_status read_all_groups(lt_ctx *ctx, const char *path, const char *split, long N,
                                 int32_t **all, int *exists) {
  *all = NULL;
  *exists = 0;
  char p[64];
  snprintf(p, sizeof(p), "/%s/group", split);
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = LT_OK;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5I_INVALID_HID, s = H5I_INVALID_HID;
  if (f < 0) LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot open the dataset file '%s'", path);
  char g[64];
  snprintf(g, sizeof(g), "/%s", split);
  if (H5Lexists(f, g, H5P_DEFAULT) <= 0 || H5Lexists(f, p, H5P_DEFAULT) <= 0) goto done;
  d = H5Dopen2(f, p, H5P_DEFAULT);
  s = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
  hsize_t dims[2] = {0, 0};
  if (s < 0 || H5Sget_simple_extent_ndims(s) != 1 || H5Sget_simple_extent_dims(s, dims, NULL) != 1 ||
      (long)dims[0] != N)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s: %s must be a 1-D integer array of %ld values (one "
                 "per sample of /%s/y)", path, p, N, split);
  if (lt_calloc_aligned((void **)all, (size_t)N, sizeof(int32_t)) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading %s", p);
  if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, *all) < 0) {
    char m[256];
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s: cannot read %s as integers: %s", path, p,
                 lt_h5_msg(m, sizeof(m)));
  }
  *exists = 1;
done:
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  lt_h5_quiet_off(&q);
  if (st != LT_OK) LT_FREE(*all);
  return st;
}

lt_status lt_read_groups(lt_ctx *ctx, const char *path, const char *split, const lt_dataset *ds,
                         int32_t **group) {
  *group = NULL;
  int32_t *all = NULL;
  int exists = 0;
  lt_status st = read_all_groups(ctx, path, split, ds->n_global, &all, &exists);
  if (st == LT_OK && exists) {
    if (lt_calloc_aligned((void **)group, (size_t)ds->n, sizeof(int32_t)) != 0)
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
    else
      for (int i = 0; i < ds->n; i++) (*group)[i] = all[ds->index[i]];
  }
  lt_free(all);
  st = lt_agree(ctx, st);
  if (st != LT_OK) {
    LT_FREE(*group);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  return LT_OK;
}
