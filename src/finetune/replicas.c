/* Many seeds at once: the world split into groups, one replica per group at a
 * time, results gathered into /finetune of the run's metrics.h5. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/finetune.h"
#include "lethe/h5io.h"

lt_ft_summary lt_ft_summarize(const double *acc, const int *diverged, int n, double threshold) {
  lt_ft_summary s = {.mean = NAN, .std = NAN, .min = NAN, .max = NAN, .threshold = threshold,
                     .n = n};
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    int bad = diverged[i] || !isfinite(acc[i]);
    s.diverged += diverged[i] != 0;
    s.failed += bad || acc[i] < threshold;
    if (bad) continue;
    if (s.finite == 0 || acc[i] < s.min) s.min = acc[i];
    if (s.finite == 0 || acc[i] > s.max) s.max = acc[i];
    sum += acc[i];
    s.finite++;
  }
  if (s.finite > 0) s.mean = sum / s.finite;
  if (s.finite > 1) {
    double ss = 0.0;
    for (int i = 0; i < n; i++)
      if (!diverged[i] && isfinite(acc[i])) ss += (acc[i] - s.mean) * (acc[i] - s.mean);
    s.std = sqrt(ss / (s.finite - 1));
  }
  return s;
}

/* ------------------------------------------------------------ curves of one replica */

#define NCURVES 3
static const char *const curve_path[NCURVES] = {"/train/loss", "/epoch/test_acc",
                                                "/epoch/train_loss"};
static const char *const curve_name[NCURVES] = {"train_loss", "epoch_test_acc",
                                                "epoch_train_loss"};

/* Serial read of a 1-D float64 dataset (absent: length 0). */
static lt_status read_curve(lt_ctx *ctx, hid_t f, const char *file, const char *path, double **v,
                            long *n) {
  *v = NULL;
  *n = 0;
  if (H5Lexists(f, "/train", H5P_DEFAULT) <= 0 || H5Lexists(f, "/epoch", H5P_DEFAULT) <= 0 ||
      H5Lexists(f, path, H5P_DEFAULT) <= 0)
    return LT_OK;
  hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
  hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
  hsize_t dim = 0;
  int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
           H5Sget_simple_extent_dims(sp, &dim, NULL) == 1;
  if (ok && lt_calloc_aligned((void **)v, dim ? (size_t)dim : 1, sizeof(double)) == 0)
    ok = dim == 0 || H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *v) >= 0;
  else
    ok = 0;
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  if (!ok) {
    LT_FREE(*v);
    LT_ERROR(ctx, LT_ERR_DATA, "%s: cannot read %s of a replica", file, path);
  }
  *n = (long)dim;
  return LT_OK;
}

static lt_status read_curves(lt_ctx *ctx, const char *dir, double **v, long *n) {
  char file[1200];
  if (snprintf(file, sizeof(file), "%s/metrics.h5", dir) >= (int)sizeof(file))
    LT_ERROR(ctx, LT_ERR_ARG, "run directory '%s': path too long", dir);
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
  lt_status st = LT_OK;
  if (f < 0)
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                      "cannot open the replica's metrics '%s'", file);
  for (int c = 0; c < NCURVES && st == LT_OK; c++)
    st = read_curve(ctx, f, file, curve_path[c], &v[c], &n[c]);
  if (f >= 0) H5Fclose(f);
  lt_h5_quiet_off(&q);
  return st;
}

/* ------------------------------------------------------------ output */

static lt_status write_nd(lt_ctx *ctx, hid_t f, const char *path, hid_t type, int rank,
                          const hsize_t *dims, const void *buf) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(f, path, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  H5Pclose(lcpl);
  if (e < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_H5, "cannot write %s: %s", path, lt_h5_msg(m, sizeof(m)));
  }
  return LT_OK;
}

typedef struct {
  int S;
  int64_t *seeds, *diverged, *failed;
  double *acc, *loss;
  long len[NCURVES];  /* longest curve over the replicas */
  double *curve[NCURVES]; /* [S, len] */
} gathered;

static lt_status write_results(lt_ctx *ctx, const lt_ft_replicas_cfg *cfg, const gathered *g,
                               const lt_ft_summary *s, double chance, int groups, int rpg) {
  char path[1200];
  if (snprintf(path, sizeof(path), "%s/metrics.h5", cfg->out) >= (int)sizeof(path))
    LT_ERROR(ctx, LT_ERR_ARG, "[run] out = '%s': path too long", cfg->out);
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  lt_status st = LT_OK;
  hid_t grp = -1;
  hsize_t S = (hsize_t)g->S;
  if (f < 0) {
    char m[256];
    LT_FAIL_DONE(ctx, st, LT_ERR_IO, "cannot create '%s': %s", path, lt_h5_msg(m, sizeof(m)));
  }
  LT_CHECK_DONE(ctx, st, lt_h5_attr_provenance(ctx, f, cfg->deck_text, cfg->blis_kernels,
                                               cfg->blis_threads));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, f, "test_acc", s->mean));
  LT_CHECK_DONE(ctx, st, write_nd(ctx, f, "/finetune/seeds", H5T_NATIVE_INT64, 1, &S, g->seeds));
  LT_CHECK_DONE(ctx, st, write_nd(ctx, f, "/finetune/acc", H5T_NATIVE_DOUBLE, 1, &S, g->acc));
  LT_CHECK_DONE(ctx, st, write_nd(ctx, f, "/finetune/test_loss", H5T_NATIVE_DOUBLE, 1, &S, g->loss));
  LT_CHECK_DONE(ctx, st, write_nd(ctx, f, "/finetune/diverged", H5T_NATIVE_INT64, 1, &S,
                                  g->diverged));
  LT_CHECK_DONE(ctx, st, write_nd(ctx, f, "/finetune/failed", H5T_NATIVE_INT64, 1, &S, g->failed));
  for (int c = 0; c < NCURVES; c++) {
    char p[64];
    snprintf(p, sizeof(p), "/finetune/%s", curve_name[c]);
    hsize_t dims[2] = {S, (hsize_t)g->len[c]};
    LT_CHECK_DONE(ctx, st, write_nd(ctx, f, p, H5T_NATIVE_DOUBLE, 2, dims, g->curve[c]));
  }
  grp = H5Gopen2(f, "/finetune", H5P_DEFAULT);
  if (grp < 0) LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot open /finetune in '%s'", path);
  const struct {
    const char *name;
    double v;
  } fa[] = {{"mean", s->mean}, {"std", s->std}, {"min", s->min}, {"max", s->max},
            {"threshold", s->threshold}, {"chance", chance}};
  for (size_t i = 0; i < sizeof(fa) / sizeof(fa[0]); i++)
    LT_CHECK_DONE(ctx, st, lt_h5_attr_f64(ctx, grp, fa[i].name, fa[i].v));
  const struct {
    const char *name;
    int64_t v;
  } ia[] = {{"failed", s->failed}, {"diverged", s->diverged}, {"n_seeds", s->n},
            {"groups", groups}, {"ranks_per_group", rpg}};
  for (size_t i = 0; i < sizeof(ia) / sizeof(ia[0]); i++)
    LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, grp, ia[i].name, ia[i].v));
done:
  if (grp >= 0) H5Gclose(grp);
  if (f >= 0 && H5Fclose(f) < 0 && st == LT_OK)
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot close '%s'", path);
  lt_h5_quiet_off(&q);
  return st;
}

/* ------------------------------------------------------------ the driver */

typedef struct {
  double *acc, *loss, *div, *ncls; /* [S] each, this rank's contributions (0 elsewhere) */
  double *v[NCURVES];              /* [S] curves of this rank's replicas (group rank 0) */
  long n[NCURVES];
} owned;

/* Run this group's seeds in turn. */
static lt_status run_group(lt_ctx *world, const lt_ft_replicas_cfg *cfg, MPI_Comm gcomm,
                           int color, int G, lt_ft_replica_fn fn, void *user, owned *o,
                           double **curves, long *lens) {
  for (int i = color; i < cfg->nseeds; i += G) {
    long seed = cfg->seeds[i];
    lt_ctx *g = NULL;
    LT_CHECK(world, lt_ctx_create(gcomm, (uint64_t)seed, &g));
    g->log = world->log;
    g->log_level = color == 0 ? world->log_level : LT_LOG_QUIET;
    char dir[1100];
    if (snprintf(dir, sizeof(dir), "%s/seed-%ld", cfg->out, seed) >= (int)sizeof(dir)) {
      lt_ctx_destroy(&g);
      LT_ERROR(world, LT_ERR_ARG, "[run] out = '%s': path too long", cfg->out);
    }
    lt_ft_result res = {.acc = NAN, .loss = NAN};
    lt_status st = fn(g, seed, dir, user, &res);
    if (st == LT_OK && g->rank == 0) {
      double *v[NCURVES] = {0};
      long n[NCURVES] = {0};
      st = read_curves(g, dir, v, n);
      for (int c = 0; c < NCURVES; c++) {
        curves[(size_t)i * NCURVES + (size_t)c] = v[c];
        lens[(size_t)i * NCURVES + (size_t)c] = n[c];
      }
    }
    if (st == LT_OK && g->rank == 0) {
      o->acc[i] = res.acc;
      o->loss[i] = res.loss;
      o->div[i] = res.diverged;
      o->ncls[i] = res.num_classes;
    }
    if (st != LT_OK) { /* the group's error becomes this rank's */
      lt_status e = lt_error_set(world, st, __FILE__, __LINE__, __func__, "replica seed %ld: %s",
                                 seed, g->errmsg);
      lt_ctx_destroy(&g);
      return e;
    }
    lt_ctx_destroy(&g);
  }
  return LT_OK;
}

lt_status lt_ft_run_replicas(lt_ctx *ctx, const lt_ft_replicas_cfg *cfg, lt_ft_replica_fn fn,
                             void *user, lt_ft_summary *sum) {
  const int P = ctx->size, S = cfg->nseeds;
  if (S < 1) LT_ERROR(ctx, LT_ERR_ARG, "[run] seeds: no seeds");
  int rpg = cfg->ranks_per_group > 0 ? cfg->ranks_per_group : (P / S > 1 ? P / S : 1);
  if (rpg > P)
    LT_ERROR(ctx, LT_ERR_ARG, "[run] ranks_per_seed = %d exceeds the %d MPI ranks", rpg, P);
  const int G = P / rpg;
  int color = ctx->rank < G * rpg ? ctx->rank / rpg : MPI_UNDEFINED;
  lt_log(ctx, LT_LOG_INFO,
         "seeds  %d replicas on %d group(s) of %d rank(s) (%d idle rank(s)), each group its seeds "
         "in turn; results in %s/metrics.h5 /finetune\n",
         S, G, rpg, P - G * rpg, cfg->out);
  MPI_Comm gcomm = MPI_COMM_NULL;
  LT_CHECK_MPI(ctx, MPI_Comm_split(ctx->comm, color, ctx->rank, &gcomm));

  owned o = {0};
  double **curves = NULL;
  long *lens = NULL;
  gathered g = {.S = S};
  lt_status st = LT_OK;
  if (lt_calloc_aligned((void **)&o.acc, (size_t)S * 4, sizeof(double)) ||
      lt_calloc_aligned((void **)&curves, (size_t)S * NCURVES, sizeof(double *)) ||
      lt_calloc_aligned((void **)&lens, (size_t)S * NCURVES, sizeof(long)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  if (st == LT_OK) {
    o.loss = o.acc + S;
    o.div = o.acc + 2 * S;
    o.ncls = o.acc + 3 * S;
    if (color != MPI_UNDEFINED)
      st = run_group(ctx, cfg, gcomm, color, G, fn, user, &o, curves, lens);
  }
  if (gcomm != MPI_COMM_NULL) MPI_Comm_free(&gcomm);
  st = lt_agree(ctx, st);

  /* gather: only the owning group's rank 0 contributes non-zero values */
  double *res = NULL;
  if (st == LT_OK && lt_calloc_aligned((void **)&res, (size_t)S * 4, sizeof(double)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st == LT_OK && MPI_Allreduce(o.acc, res, 4 * S, MPI_DOUBLE, MPI_SUM, ctx->comm) != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
  long maxlen[NCURVES] = {0};
  for (int i = 0; i < S; i++)
    for (int c = 0; c < NCURVES; c++)
      if (lens[i * NCURVES + c] > maxlen[c]) maxlen[c] = lens[i * NCURVES + c];
  if (st == LT_OK &&
      MPI_Allreduce(MPI_IN_PLACE, maxlen, NCURVES, MPI_LONG, MPI_MAX, ctx->comm) != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
  for (int c = 0; c < NCURVES && st == LT_OK; c++) {
    g.len[c] = maxlen[c];
    size_t cnt = (size_t)S * (size_t)(maxlen[c] > 0 ? maxlen[c] : 1);
    double *mine = NULL;
    if (lt_calloc_aligned((void **)&mine, cnt, sizeof(double)) ||
        lt_calloc_aligned((void **)&g.curve[c], cnt, sizeof(double))) {
      lt_free(mine);
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
    }
    for (int i = 0; i < S && st == LT_OK; i++) {
      const double *v = curves[i * NCURVES + c];
      long n = lens[i * NCURVES + c];
      if (!v) continue;
      for (long k = 0; k < maxlen[c]; k++) mine[(size_t)i * (size_t)maxlen[c] + (size_t)k] =
                                               k < n ? v[k] : NAN;
    }
    st = lt_agree(ctx, st);
    if (st == LT_OK && MPI_Reduce(mine, g.curve[c], (int)cnt, MPI_DOUBLE, MPI_SUM, 0, ctx->comm) !=
                           MPI_SUCCESS)
      st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Reduce failed");
    lt_free(mine);
  }

  lt_ft_summary s = {0};
  double chance = NAN;
  if (st == LT_OK) {
    int *dv = NULL;
    if (lt_calloc_aligned((void **)&dv, (size_t)S, sizeof(int)) ||
        lt_calloc_aligned((void **)&g.seeds, (size_t)S * 3, sizeof(int64_t)) ||
        lt_calloc_aligned((void **)&g.acc, (size_t)S * 2, sizeof(double)))
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
    int K = 0;
    for (int i = 0; i < S && st == LT_OK; i++) {
      if (res[3 * S + i] > K) K = (int)res[3 * S + i];
      dv[i] = res[2 * S + i] != 0.0;
    }
    if (st == LT_OK) {
      chance = K > 0 ? 1.0 / K : NAN;
      double thr = cfg->fail_below >= 0 ? cfg->fail_below : chance + 0.1;
      s = lt_ft_summarize(res, dv, S, thr);
      g.diverged = g.seeds + S;
      g.failed = g.seeds + 2 * S;
      g.loss = g.acc + S;
      for (int i = 0; i < S; i++) {
        g.seeds[i] = cfg->seeds[i];
        g.acc[i] = res[i];
        g.loss[i] = res[S + i];
        g.diverged[i] = dv[i];
        g.failed[i] = dv[i] || !isfinite(res[i]) || res[i] < thr;
      }
    }
    lt_free(dv);
    st = lt_agree(ctx, st);
  }
  if (st == LT_OK && ctx->rank == 0) st = write_results(ctx, cfg, &g, &s, chance, G, rpg);
  st = lt_agree(ctx, st);
  if (st == LT_OK) {
    for (int i = 0; i < S; i++)
      lt_log(ctx, LT_LOG_INFO, "seed   %-6ld test accuracy %.4f  test loss %.4f%s%s\n",
             cfg->seeds[i], res[i], res[S + i], res[2 * S + i] != 0.0 ? "  diverged" : "",
             g.failed[i] ? "  failed" : "");
    lt_log(ctx, LT_LOG_INFO,
           "seeds  accuracy mean %.4f std %.4f min %.4f max %.4f over %d finite of %d; failed "
           "%d (below %.4f; chance %.4f), diverged %d\n",
           s.mean, s.std, s.min, s.max, s.finite, s.n, s.failed, s.threshold, chance, s.diverged);
    if (sum) *sum = s;
  }
  for (int i = 0; curves && i < S * NCURVES; i++) lt_free(curves[i]);
  lt_free(curves);
  lt_free(lens);
  lt_free(o.acc);
  lt_free(res);
  for (int c = 0; c < NCURVES; c++) lt_free(g.curve[c]);
  lt_free(g.seeds);
  lt_free(g.acc);
  LT_CHECK(ctx, st);
  return LT_OK;
}
