/* lethe fisher DECK --from CKPT: K-FAC spectra, the diagonal Fisher and how well
 * the diagonal and Kronecker approximations match the exact Fisher of a random
 * block of weights, per dense layer, into an HDF5 file (issue 5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "lethe/data.h"
#include "lethe/deck.h"
#include "lethe/dist.h"
#include "lethe/fisher.h"
#include "lethe/h5io.h"
#include "lethe/kfac.h"
#include "lethe/pdense.h"

void lt_usage_fisher(FILE *out) {
  fprintf(out,
          "usage: lethe fisher DECK.ini --from RUN_DIR|CKPT_DIR|SNAPSHOT.h5 [--out FILE.h5]\n"
          "                    [--samples N] [--set section.key=value ...]\n"
          "\n"
          "At the parameters of the snapshot (a run directory's ckpt/LATEST, a checkpoint\n"
          "directory's LATEST, or a snapshot file), over the first N samples (default 10000,\n"
          "0: all) of the training split of [data] path (as stored: no scenario transform),\n"
          "with the deck's [model], [data] scaling and [cl] fisher (empirical or sampled),\n"
          "fisher_batch, kfac_block and kfac_block_sample, write per dense layer:\n"
          "  /fisher/<layer>/eig_A, eig_G    eigenvalues (ascending) of the K-FAC factors\n"
          "                                 A [(in+1)^2] and G [out^2] (ScaLAPACK pdsyevd)\n"
          "  /fisher/<layer>/diag_W, diag_b  the diagonal Fisher of W [out*in] and b [out]\n"
          "  /fisher/<layer>/block_rows, block_cols   the random block (column in = bias)\n"
          "  /fisher/<layer>/block_exact, block_kfac  its exact Fisher and G (x) A, [S*S]\n"
          "  attributes err_diag, err_kfac: ||F - diag F||_F / ||F||_F, ||F - G (x) A||_F / ||F||_F\n"
          "into FILE.h5 (default: <run.out>/fisher.h5; an existing file is an error).\n"
          "Plot: /usr/bin/python3 analysis/plot_fisher_spectra.py FILE.h5 [OUT.png]\n");
}

typedef struct {
  const char *deck_path, *from, *out;
  long samples;
  char **sets;
  int nsets;
} fisher_args;

static lt_status parse(lt_ctx *ctx, int argc, char **argv, fisher_args *a) {
  a->samples = 10000;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--set") == 0 && v) {
      a->sets[a->nsets++] = argv[++i];
    } else if (strcmp(argv[i], "--from") == 0 && v) {
      a->from = argv[++i];
    } else if (strcmp(argv[i], "--out") == 0 && v) {
      a->out = argv[++i];
    } else if (strcmp(argv[i], "--samples") == 0 && v) {
      char *end = NULL;
      a->samples = strtol(argv[++i], &end, 10);
      if (!*argv[i] || *end || a->samples < 0)
        LT_ERROR(ctx, LT_ERR_ARG, "--samples '%s': must be an integer >= 0", argv[i]);
    } else if (argv[i][0] == '-') {
      LT_ERROR(ctx, LT_ERR_ARG, "unknown option or missing value '%s' (see `lethe fisher --help`)",
               argv[i]);
    } else if (!a->deck_path) {
      a->deck_path = argv[i];
    } else {
      LT_ERROR(ctx, LT_ERR_ARG, "more than one deck given ('%s' and '%s')", a->deck_path, argv[i]);
    }
  }
  if (!a->deck_path) LT_ERROR(ctx, LT_ERR_ARG, "no input deck given (usage: lethe fisher DECK.ini --from CKPT)");
  if (!a->from) LT_ERROR(ctx, LT_ERR_ARG, "--from RUN_DIR|CKPT_DIR|SNAPSHOT.h5 is required");
  return LT_OK;
}

/* The snapshot file of `from`: a file, DIR/LATEST or DIR/ckpt/LATEST. */
static lt_status resolve(lt_ctx *ctx, const char *from, char *path, size_t len) {
  struct stat st;
  if (stat(from, &st) != 0) LT_ERROR(ctx, LT_ERR_IO, "--from '%s': no such file or directory", from);
  if (!S_ISDIR(st.st_mode)) {
    snprintf(path, len, "%s", from);
    return LT_OK;
  }
  const char *sub[2] = {"", "/ckpt"};
  for (int k = 0; k < 2; k++) {
    char latest[4096], name[512] = {0};
    snprintf(latest, sizeof(latest), "%s%s/LATEST", from, sub[k]);
    FILE *f = fopen(latest, "r");
    if (!f) continue;
    int ok = fgets(name, sizeof(name), f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    if (ok && name[0]) {
      snprintf(path, len, "%s%s/%s", from, sub[k], name);
      return LT_OK;
    }
  }
  LT_ERROR(ctx, LT_ERR_IO, "--from '%s': a directory without LATEST or ckpt/LATEST", from);
}

/* theta[0..n) from /model/theta of the snapshot (every rank reads it). */
static lt_status read_theta(lt_ctx *ctx, const char *path, lt_model *m) {
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = LT_OK;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = -1, sp = -1;
  hsize_t dims[1] = {0};
  float *buf = NULL;
  if (f < 0) LT_FAIL_DONE(ctx, st, LT_ERR_IO, "%s: cannot open as HDF5", path);
  d = H5Dopen2(f, "/model/theta", H5P_DEFAULT);
  if (d < 0) LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s: no /model/theta (not a lethe snapshot?)", path);
  sp = H5Dget_space(d);
  if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, dims, NULL) != 1 ||
      dims[0] < m->n)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "%s: /model/theta has %llu values, the deck's model has %zu parameters", path,
                 (unsigned long long)dims[0], m->n);
  if (lt_calloc_aligned((void **)&buf, (size_t)dims[0], sizeof(float)) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading %s", path);
  if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_H5, "%s: cannot read /model/theta", path);
  for (size_t i = m->n; i < (size_t)dims[0]; i++)
    if (buf[i] != 0.0f)
      LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                   "%s: /model/theta has %llu values and value %zu is not padding: the deck's "
                   "model (%zu parameters) is not the snapshot's",
                   path, (unsigned long long)dims[0], i, m->n);
  memcpy(m->theta, buf, m->n * sizeof(float));
done:
  lt_free(buf);
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  lt_h5_quiet_off(&q);
  return st;
}

/* sorted k distinct indices of [0, n) */
static void pick(lt_rng *r, int *out, int k, int n, int *scratch) {
  for (int i = 0; i < n; i++) scratch[i] = i;
  for (int i = 0; i < k; i++) {
    int j = i + (int)lt_rng_below(r, (uint64_t)(n - i));
    int t = scratch[i];
    scratch[i] = scratch[j];
    scratch[j] = t;
  }
  for (int i = 0; i < k; i++) out[i] = scratch[i];
  for (int i = 1; i < k; i++) /* insertion sort */
    for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
      int t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
}

typedef struct {
  double *eA, *eG, *dW, *db, *exact, *kron;
  double rows[512], cols[512];
  int nr, nc;
  double err_diag, err_kfac;
} layer_out;

static lt_status write_file(lt_ctx *ctx, const char *path, const lt_model *m, layer_out *lo,
                            const char *deck_text, long samples, const char *mode) {
  if (ctx->rank != 0) return LT_OK;
  lt_status st = LT_OK;
  hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) LT_ERROR(ctx, LT_ERR_IO, "cannot create '%s'", path);
  LT_CHECK_DONE(ctx, st, lt_h5_attr_provenance(ctx, f, deck_text, NULL, 1));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_i64(ctx, f, "samples", samples));
  LT_CHECK_DONE(ctx, st, lt_h5_attr_str(ctx, f, "fisher", mode));
  for (int l = 0; l < m->nlayers; l++) {
    const lt_layer *ly = &m->layer[l];
    layer_out *o = &lo[l];
    int da = ly->in + 1, S = o->nr * o->nc;
    char p[128];
#define W1(dsname, v, n)                                                          \
  do {                                                                            \
    snprintf(p, sizeof(p), "/fisher/%s/%s", ly->name, dsname);                    \
    LT_CHECK_DONE(ctx, st, lt_h5_write_f64(ctx, f, p, v, (size_t)(n)));           \
  } while (0)
    W1("eig_A", o->eA, da);
    W1("eig_G", o->eG, ly->out);
    W1("diag_W", o->dW, (size_t)ly->out * ly->in);
    W1("diag_b", o->db, ly->out);
    W1("block_rows", o->rows, o->nr);
    W1("block_cols", o->cols, o->nc);
    W1("block_exact", o->exact, (size_t)S * S);
    W1("block_kfac", o->kron, (size_t)S * S);
#undef W1
    snprintf(p, sizeof(p), "/fisher/%s", ly->name);
    hid_t g = H5Gopen2(f, p, H5P_DEFAULT);
    if (g < 0) LT_FAIL_DONE(ctx, st, LT_ERR_H5, "cannot open group '%s' of '%s'", p, path);
    st = lt_h5_attr_f64(ctx, g, "err_diag", o->err_diag);
    if (st == LT_OK) st = lt_h5_attr_f64(ctx, g, "err_kfac", o->err_kfac);
    if (st == LT_OK) st = lt_h5_attr_i64(ctx, g, "in", ly->in);
    if (st == LT_OK) st = lt_h5_attr_i64(ctx, g, "out", ly->out);
    H5Gclose(g);
    if (st != LT_OK) goto done;
  }
done:
  H5Fclose(f);
  return st;
}

/* Everything after the set-up: collective. */
static lt_status compute(lt_ctx *ctx, const lt_deck *d, lt_model *m, const lt_dataset *ds,
                         long samples, layer_out *lo) {
  int sampled = d->fisher_mode == LT_FISHER_SAMPLED;
  lt_kfac *k = NULL;
  LT_CHECK(ctx, lt_kfac_create(ctx, m, &k));
  lt_status st = lt_kfac_compute(ctx, m, ds, sampled, d->fisher_batch, samples, k);
  /* spectra */
  lt_pgrid *g = NULL;
  if (st == LT_OK) st = lt_pgrid_create(ctx, 0, 0, &g);
  for (int l = 0; l < m->nlayers && st == LT_OK; l++) {
    double *X[2] = {k->A[l], k->G[l]}, *w[2] = {lo[l].eA, lo[l].eG};
    int dims[2] = {k->da[l], k->dg[l]};
    for (int t = 0; t < 2 && st == LT_OK; t++) {
      lt_pmat *pm = NULL;
      st = lt_pmat_create(g, dims[t], dims[t], d->kfac_block, &pm);
      if (st == LT_OK) {
        lt_pmat_set_full(pm, X[t], dims[t]);
        st = lt_peigvals(pm, w[t]);
      }
      lt_pmat_destroy(&pm);
    }
  }
  lt_pgrid_destroy(&g);
  /* diagonal Fisher, gathered */
  lt_shard sh;
  float *full = NULL;
  if (st == LT_OK) st = lt_shard_init(ctx, m->n, m->n_pad, &sh);
  if (st == LT_OK && lt_calloc_aligned((void **)&full, m->n_pad, sizeof(float)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st == LT_OK)
    st = lt_fisher_diag(ctx, m, &sh, ds, (lt_fisher_mode)d->fisher_mode, d->fisher_batch, samples,
                        full + sh.lo);
  if (st == LT_OK) st = lt_dist_allgather(ctx, &sh, full);
  /* random blocks: the same on every rank (stream of seed, rank 0) */
  lt_rng r;
  lt_rng_seed(&r, ctx->seed, 0, LT_RNG_USER + 7);
  for (int l = 0; l < m->nlayers && st == LT_OK; l++) {
    const lt_layer *ly = &m->layer[l];
    layer_out *o = &lo[l];
    for (size_t i = 0; i < (size_t)ly->out * ly->in; i++) o->dW[i] = full[ly->w_off + i];
    for (int i = 0; i < ly->out; i++) o->db[i] = full[ly->b_off + i];
    int bs = d->kfac_block_sample, rows[512], cols[512], *scratch = NULL;
    o->nr = bs < ly->out ? bs : ly->out;
    o->nc = bs < ly->in + 1 ? bs : ly->in + 1;
    if (lt_calloc_aligned((void **)&scratch, (size_t)ly->in + ly->out + 2, sizeof(int)) != 0) {
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
      break;
    }
    pick(&r, rows, o->nr, ly->out, scratch);
    pick(&r, cols, o->nc, ly->in + 1, scratch);
    lt_free(scratch);
    for (int i = 0; i < o->nr; i++) o->rows[i] = rows[i];
    for (int j = 0; j < o->nc; j++) o->cols[j] = cols[j];
    st = lt_kfac_exact_block(ctx, m, ds, sampled, d->fisher_batch, samples, l, rows, o->nr, cols,
                             o->nc, o->exact);
    if (st != LT_OK) break;
    int S = o->nr * o->nc, da = ly->in + 1;
    double nf = 0.0, nd = 0.0, nk = 0.0;
    for (int p = 0; p < S; p++)
      for (int q = 0; q < S; q++) {
        int i = p / o->nc, j = p % o->nc, i2 = q / o->nc, j2 = q % o->nc;
        double kv = k->G[l][(size_t)rows[i] * ly->out + rows[i2]] *
                    k->A[l][(size_t)cols[j] * da + cols[j2]];
        double e = o->exact[(size_t)p * S + q];
        o->kron[(size_t)p * S + q] = kv;
        nf += e * e;
        nk += (e - kv) * (e - kv);
        if (p != q) nd += e * e;
      }
    o->err_diag = nf > 0 ? sqrt(nd / nf) : 0.0;
    o->err_kfac = nf > 0 ? sqrt(nk / nf) : 0.0;
  }
  lt_free(full);
  lt_kfac_destroy(&k);
  LT_CHECK(ctx, st);
  return LT_OK;
}

static void free_outputs(layer_out *lo, int n) {
  for (int l = 0; l < n; l++) {
    lt_free(lo[l].eA), lt_free(lo[l].eG), lt_free(lo[l].dW), lt_free(lo[l].db);
    lt_free(lo[l].exact), lt_free(lo[l].kron);
  }
}

lt_status lt_cmd_fisher(lt_ctx *ctx, const lt_blas_info *blas, int argc, char **argv) {
  fisher_args a = {0};
  a.sets = calloc((size_t)argc + 1, sizeof(char *));
  if (!a.sets) LT_ERROR(ctx, LT_ERR_MEM, "out of memory");
  static lt_deck d; /* large; one per process run of the command */
  lt_status st = parse(ctx, argc, argv, &a);
  if (st == LT_OK) st = lt_deck_load(ctx, a.deck_path, a.nsets, a.sets, &d);
  free(a.sets);
  LT_CHECK(ctx, st);
  ctx->log_level = (lt_log_level)d.log_level;
  ctx->seed = (uint64_t)d.seed;
  if (d.fisher_mode == LT_FISHER_BATCH_MEAN)
    LT_ERROR(ctx, LT_ERR_DECK, "[cl] fisher = batch_mean has no K-FAC factors: use empirical or sampled");
  char out[4096], snap[4096];
  if (a.out) snprintf(out, sizeof(out), "%s", a.out);
  else snprintf(out, sizeof(out), "%s/fisher.h5", d.out);
  struct stat sb;
  if (stat(out, &sb) == 0)
    LT_ERROR(ctx, LT_ERR_IO, "'%s' exists: lethe fisher overwrites nothing (give --out)", out);
  LT_CHECK(ctx, resolve(ctx, a.from, snap, sizeof(snap)));
  lt_blas_log(ctx, blas);

  lt_data_opts dopts = {.scale = d.data_scale, .standardize = d.data_standardize, .std = 0.0f};
  lt_dataset *ds = NULL;
  LT_CHECK(ctx, lt_dataset_load(ctx, d.data_path, "train", &dopts, &ds));
  lt_model_cfg mc = {0};
  mc.in_dim = ds->d;
  mc.out_dim = ds->num_classes;
  mc.nhidden = d.nhidden;
  for (int i = 0; i < d.nhidden; i++) mc.hidden[i] = d.hidden[i];
  mc.act = (lt_act)d.activation;
  mc.init = (lt_init)d.init;
  mc.max_batch = 256;
  int local = lt_local_batch(d.fisher_batch, ctx->rank, ctx->size);
  if (local > mc.max_batch) mc.max_batch = local;
  mc.pad_ranks = ctx->size;
  lt_model *m = NULL;
  st = lt_model_create(ctx, &mc, &m);
  if (st == LT_OK) st = lt_agree(ctx, read_theta(ctx, snap, m));
  layer_out lo[LT_MAX_LAYERS];
  memset(lo, 0, sizeof(lo));
  int nl = m ? m->nlayers : 0;
  for (int l = 0; l < nl && st == LT_OK; l++) {
    const lt_layer *ly = &m->layer[l];
    size_t S = (size_t)d.kfac_block_sample * d.kfac_block_sample;
    if (lt_calloc_aligned((void **)&lo[l].eA, (size_t)ly->in + 1, sizeof(double)) ||
        lt_calloc_aligned((void **)&lo[l].eG, (size_t)ly->out, sizeof(double)) ||
        lt_calloc_aligned((void **)&lo[l].dW, (size_t)ly->out * ly->in, sizeof(double)) ||
        lt_calloc_aligned((void **)&lo[l].db, (size_t)ly->out, sizeof(double)) ||
        lt_calloc_aligned((void **)&lo[l].exact, S * S, sizeof(double)) ||
        lt_calloc_aligned((void **)&lo[l].kron, S * S, sizeof(double)))
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  }
  if (m) st = lt_agree(ctx, st);
  if (st == LT_OK) {
    lt_log(ctx, LT_LOG_INFO, "fisher %s (%s labels), %ld samples of %s, snapshot %s\n",
           d.fisher_mode == LT_FISHER_SAMPLED ? "true Fisher" : "empirical Fisher",
           d.fisher_mode == LT_FISHER_SAMPLED ? "sampled" : "true", a.samples ? a.samples : ds->n_global,
           d.data_path, snap);
    st = compute(ctx, &d, m, ds, a.samples, lo);
  }
  if (st == LT_OK) {
    char deck_text[1 << 15];
    lt_deck_text(&d, deck_text, sizeof(deck_text));
    long used = a.samples && a.samples < ds->n_global ? a.samples : ds->n_global;
    st = lt_agree(ctx, write_file(ctx, out, m, lo, deck_text, used,
                                  d.fisher_mode == LT_FISHER_SAMPLED ? "sampled" : "empirical"));
  }
  if (st == LT_OK) {
    lt_log(ctx, LT_LOG_INFO, "| layer | A | G | max eig A | max eig G | block | err diag | err K-FAC |\n");
    for (int l = 0; l < nl; l++) {
      const lt_layer *ly = &m->layer[l];
      lt_log(ctx, LT_LOG_INFO, "| %s | %d | %d | %.4g | %.4g | %dx%d | %.3f | %.3f |\n", ly->name,
             ly->in + 1, ly->out, lo[l].eA[ly->in], lo[l].eG[ly->out - 1], lo[l].nr, lo[l].nc,
             lo[l].err_diag, lo[l].err_kfac);
    }
    lt_log(ctx, LT_LOG_INFO, "wrote %s\n", out);
  }
  free_outputs(lo, nl);
  lt_model_destroy(&m);
  lt_dataset_destroy(&ds);
  LT_CHECK(ctx, st);
  return LT_OK;
}
