/* Selective Synaptic Dampening: importances on the owned slice, selection and
 * dampening, and the stored I_D beside a checkpoint. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lethe/fisher.h"
#include "lethe/h5io.h"
#include "lethe/unlearn.h"

const char *lt_importance_name(lt_importance_kind k) {
  switch (k) {
  case LT_IMP_BATCH_MEAN: return "batch_mean";
  case LT_IMP_EMPIRICAL: return "empirical";
  case LT_IMP_SAMPLED: return "sampled";
  }
  return "unknown";
}

const char *lt_imp_batching_name(lt_imp_batching b) {
  return b == LT_IMP_BY_CLASS ? "by_class" : (b == LT_IMP_SHUFFLED ? "shuffled" : "unknown");
}

/* ------------------------------------------------------------ importances */

typedef struct {
  int64_t idx;   /* global sample index */
  int32_t lab;   /* label (by_class order) */
  int32_t batch; /* batch of the sample (filled after ordering) */
} sample_key;

static int by_label_index(const void *a, const void *b) {
  const sample_key *x = a, *y = b;
  if (x->lab != y->lab) return x->lab < y->lab ? -1 : 1;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

static int by_index(const void *a, const void *b) {
  const sample_key *x = a, *y = b;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

typedef struct {
  int32_t batch;
  int row;
} local_key;

static int by_batch_row(const void *a, const void *b) {
  const local_key *x = a, *y = b;
  if (x->batch != y->batch) return x->batch < y->batch ? -1 : 1;
  return (x->row > y->row) - (x->row < y->row);
}

/* The batch of every local row: every rank gathers all (index, label) pairs of
 * the set, orders them the same way and cuts the order into batches of B.
 * lk[n] gets the local rows sorted by batch; *K the number of batches; sizes
 * (allocated, [K]) the global rows of each batch. */
static lt_status assign_batches(lt_ctx *ctx, const lt_dataset *ds, lt_imp_batching batching, int B,
                                uint64_t seed, local_key *lk, long *K, long **sizes) {
  int P = ctx->size, n = ds->n;
  int *counts = NULL, *displs = NULL;
  sample_key *mine = NULL, *all = NULL;
  lt_status st = LT_OK;
  *sizes = NULL;
  if (lt_calloc_aligned((void **)&counts, (size_t)P, sizeof(int)) != 0 ||
      lt_calloc_aligned((void **)&displs, (size_t)P, sizeof(int)) != 0 ||
      lt_calloc_aligned((void **)&mine, (size_t)n, sizeof(*mine)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st != LT_OK) goto done;
  if (MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, ctx->comm) != MPI_SUCCESS)
    LT_FAIL_DONE(ctx, st, LT_ERR_MPI, "MPI_Allgather of the set sizes failed");
  long M = 0;
  for (int r = 0; r < P; r++) {
    displs[r] = (int)(M * (long)sizeof(sample_key));
    M += counts[r];
    counts[r] *= (int)sizeof(sample_key);
  }
  for (int i = 0; i < n; i++) mine[i] = (sample_key){.idx = ds->index[i], .lab = ds->y[i]};
  if (lt_calloc_aligned((void **)&all, (size_t)M, sizeof(*all)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory ordering %ld samples", M);
  st = lt_agree(ctx, st);
  if (st != LT_OK) goto done;
  if (MPI_Allgatherv(mine, n * (int)sizeof(sample_key), MPI_BYTE, all, counts, displs, MPI_BYTE,
                     ctx->comm) != MPI_SUCCESS)
    LT_FAIL_DONE(ctx, st, LT_ERR_MPI, "MPI_Allgatherv of the sample keys failed");
  if (batching == LT_IMP_BY_CLASS) {
    qsort(all, (size_t)M, sizeof(*all), by_label_index);
  } else {
    qsort(all, (size_t)M, sizeof(*all), by_index);
    lt_rng r;
    lt_rng_seed(&r, seed, 0, LT_RNG_USER + 7);
    for (long i = M - 1; i > 0; i--) { /* Fisher-Yates on the keys */
      long j = (long)lt_rng_below(&r, (uint64_t)i + 1);
      sample_key t = all[i];
      all[i] = all[j];
      all[j] = t;
    }
  }
  *K = (M + B - 1) / B;
  if (lt_calloc_aligned((void **)sizes, (size_t)*K, sizeof(long)) != 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory");
  for (long p = 0; p < M; p++) {
    all[p].batch = (int32_t)(p / B);
    (*sizes)[p / B]++;
  }
  qsort(all, (size_t)M, sizeof(*all), by_index);
  for (int i = 0; i < n; i++) {
    sample_key key = {.idx = ds->index[i]};
    const sample_key *hit = bsearch(&key, all, (size_t)M, sizeof(*all), by_index);
    if (!hit)
      LT_FAIL_DONE(ctx, st, LT_ERR_INTERNAL, "sample %lld lost in the batch order",
                   (long long)ds->index[i]);
    lk[i] = (local_key){.batch = hit->batch, .row = i};
  }
  qsort(lk, (size_t)n, sizeof(*lk), by_batch_row);
done:
  lt_free(counts);
  lt_free(displs);
  lt_free(mine);
  lt_free(all);
  if (st != LT_OK) LT_FREE(*sizes);
  return st;
}

/* Batches whose local gradients are reduced in one collective: a few MB of
 * them (each synchronisation of the ranks costs far more than its bytes when the
 * cores are shared), at most a quarter of the batches (so that small sets still
 * take several groups). */
static long group_size(size_t n_pad, long K) {
  long g = (long)((size_t)(4u << 20) / (n_pad ? n_pad : 1));
  if (g > 32) g = 32;
  if (g > K / 4) g = K / 4;
  return g < 1 ? 1 : g;
}

/* I_owned = 1/K sum_k (reduced gbar_k)^2 over the global batches. The local
 * gradients of a group of G batches are packed rank-block by rank-block,
 * [q][k][j] = gbar_k[q slice + j], so that one reduce-scatter of G n_pad floats
 * hands every owner its slice of all G batch sums. */
static lt_status importance_batch_mean(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                       const lt_dataset *ds, lt_imp_batching batching, int B,
                                       uint64_t seed, float *I_owned) {
  local_key *lk = NULL;
  long K = 0, *sizes = NULL;
  float *g = NULL, *packed = NULL, *gown = NULL, *xb = NULL;
  int32_t *yb = NULL;
  lt_status st = LT_OK;
  int mb = m->max_batch, P = ctx->size;
  if (lt_calloc_aligned((void **)&lk, (size_t)ds->n, sizeof(*lk)) != 0 ||
      lt_calloc_aligned((void **)&xb, (size_t)mb * (size_t)ds->d, sizeof(*xb)) != 0 ||
      lt_calloc_aligned((void **)&yb, (size_t)mb, sizeof(*yb)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st == LT_OK) st = assign_batches(ctx, ds, batching, B, seed, lk, &K, &sizes);
  if (st != LT_OK) goto done;
  long G = group_size(m->n_pad, K);
  if (lt_calloc_aligned((void **)&g, (size_t)G * m->n_pad, sizeof(*g)) != 0 ||
      lt_calloc_aligned((void **)&packed, (size_t)G * m->n_pad, sizeof(*packed)) != 0 ||
      lt_calloc_aligned((void **)&gown, (size_t)G * sh->slice, sizeof(*gown)) != 0)
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory for the importances (%ld x %zu floats)", G, m->n_pad);
  st = lt_agree(ctx, st);
  if (st != LT_OK) goto done;
  memset(I_owned, 0, sh->slice * sizeof(*I_owned));
  float *dl = m->dz[m->nlayers];
  int pos = 0; /* next entry of lk */
  for (long k0 = 0; k0 < K; k0 += G) {
    long Ge = K - k0 < G ? K - k0 : G;
    for (long k = k0; k < k0 + Ge; k++) {
      float *gk = g + (size_t)(k - k0) * m->n_pad;
      int first = pos;
      while (pos < ds->n && lk[pos].batch == k) pos++;
      float scale = (float)(1.0 / (double)sizes[k]);
      if (pos == first) memset(gk, 0, m->n_pad * sizeof(*gk));
      for (int c = first; c < pos; c += mb) {
        int b = pos - c < mb ? pos - c : mb;
        for (int j = 0; j < b; j++) {
          int row = lk[c + j].row;
          memcpy(xb + (size_t)j * (size_t)ds->d, ds->x + (size_t)row * (size_t)ds->d,
                 (size_t)ds->d * sizeof(float));
          yb[j] = ds->y[row];
        }
        const float *logits = lt_model_forward(m, xb, b);
        (void)lt_softmax_xent(dl, NULL, logits, yb, NULL, b, m->out_dim, scale);
        lt_model_backward(m, dl, b, gk, c == first ? 0.0f : 1.0f);
      }
    }
    for (int q = 0; q < P; q++)
      for (long k = 0; k < Ge; k++)
        memcpy(packed + ((size_t)q * (size_t)Ge + (size_t)k) * sh->slice,
               g + (size_t)k * m->n_pad + (size_t)q * sh->slice, sh->slice * sizeof(float));
    lt_shard grp = *sh; /* the ring uses slice, rank and size */
    grp.slice = (size_t)Ge * sh->slice;
    grp.n_pad = grp.n = (size_t)Ge * sh->n_pad;
    grp.lo = (size_t)sh->rank * grp.slice;
    grp.hi = grp.lo + grp.slice;
    st = lt_dist_reduce_grad(ctx, &grp, LT_DIST_SHARDED, packed, gown);
    if (st != LT_OK) {
      st = lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
      goto done;
    }
    for (long k = 0; k < Ge; k++) {
      const float *o = gown + (size_t)k * sh->slice;
      for (size_t j = 0; j < sh->slice; j++) I_owned[j] += o[j] * o[j];
    }
  }
  if (K > 0) {
    float s = (float)(1.0 / (double)K);
    for (size_t j = 0; j < sh->slice; j++) I_owned[j] *= s;
  }
  for (size_t j = 0; j < sh->slice; j++) /* padding */
    if (sh->lo + j >= sh->n) I_owned[j] = 0.0f;
done:
  lt_free(lk);
  lt_free(sizes);
  lt_free(g);
  lt_free(packed);
  lt_free(gown);
  lt_free(xb);
  lt_free(yb);
  return st;
}

lt_status lt_ssd_importance(lt_ctx *ctx, lt_model *m, const lt_shard *sh, const lt_dataset *ds,
                            lt_importance_kind kind, lt_imp_batching batching, int global_batch,
                            uint64_t seed, float *I_owned) {
  lt_status st = LT_OK;
  if (global_batch < 1)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "importance: batch %d, must be >= 1", global_batch);
  else if ((unsigned)kind > (unsigned)LT_IMP_SAMPLED || (unsigned)batching > LT_IMP_SHUFFLED)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "importance: kind %d / batching %d unknown", (int)kind, (int)batching);
  else if (ds->d != m->in_dim)
    st = lt_error_set(ctx, LT_ERR_ARG, __FILE__, __LINE__, __func__,
                      "importance: dataset '%s' has %d features, the model takes %d", ds->name,
                      ds->d, m->in_dim);
  LT_CHECK(ctx, lt_agree(ctx, st));
  if (kind == LT_IMP_BATCH_MEAN) {
    LT_CHECK(ctx, importance_batch_mean(ctx, m, sh, ds, batching, global_batch, seed, I_owned));
  } else {
    int gb = global_batch < ctx->size ? ctx->size : global_batch;
    LT_CHECK(ctx, lt_fisher_diag(ctx, m, sh, ds,
                                 kind == LT_IMP_SAMPLED ? LT_FISHER_SAMPLED : LT_FISHER_EMPIRICAL,
                                 gb, 0, I_owned));
  }
  return LT_OK;
}

long lt_ssd_dampen(float *theta, const float *I_D, const float *I_Df, size_t n, double alpha,
                   double lambda) {
  long sel = 0;
  for (size_t i = 0; i < n; i++) {
    double d = I_D[i], f = I_Df[i];
    if (!(f > alpha * d)) continue;
    double w = lambda * d / f; /* f > 0 here: alpha d >= 0 */
    if (w > 1.0) w = 1.0;
    theta[i] = (float)((double)theta[i] * w);
    sel++;
  }
  return sel;
}

/* ------------------------------------------------------------ stored I_D */

#define IMP_DSET "/importance/I_D"

/* The owned block [lo, min(hi, n)) as a hyperslab of the [n] dataspace fs; ms the
 * matching memory space (a selection of none when the block is empty). */
static void owned_block(const lt_shard *sh, hid_t fs, hid_t *ms) {
  hsize_t start = sh->lo, cnt = sh->lo >= sh->n ? 0 : (sh->hi < sh->n ? sh->hi : sh->n) - sh->lo;
  hsize_t one = cnt ? cnt : 1;
  *ms = H5Screate_simple(1, &one, NULL);
  if (cnt) {
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
  } else {
    H5Sselect_none(fs);
    H5Sselect_none(*ms);
  }
}

lt_status lt_importance_write(lt_ctx *ctx, const lt_shard *sh, const char *path,
                              const lt_importance_meta *meta, const float *I_owned) {
  char tmp[1100], hash[32];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)meta->theta_hash);
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = LT_OK;
  hid_t fapl = lt_h5_fapl_mpio(ctx);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    char m[256];
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                      "cannot create the importance file '%s': %s", tmp, lt_h5_msg(m, sizeof(m)));
  } else {
    lt_status s[8] = {
        lt_h5_attr_str(ctx, f, "lethe_importance", "I_D"),
        lt_h5_attr_str(ctx, f, "theta_fnv1a", hash),
        lt_h5_attr_i64(ctx, f, "params", (int64_t)sh->n),
        lt_h5_attr_str(ctx, f, "layout", meta->layout),
        lt_h5_attr_str(ctx, f, "importance", lt_importance_name(meta->kind)),
        lt_h5_attr_str(ctx, f, "batching", lt_imp_batching_name(meta->batching)),
        lt_h5_attr_i64(ctx, f, "batch_size", meta->batch),
        lt_h5_attr_f64(ctx, f, "seconds", meta->seconds)};
    for (int i = 0; i < 8 && st == LT_OK; i++) st = s[i];
    hsize_t dims = sh->n;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t fs = H5Screate_simple(1, &dims, NULL), ms;
    hid_t d = H5Dcreate2(f, IMP_DSET, H5T_IEEE_F32LE, fs, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    owned_block(sh, fs, &ms);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    herr_t e = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, dxpl, I_owned);
    H5Pclose(dxpl);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Pclose(lcpl);
    if (d >= 0) H5Dclose(d);
    if ((d < 0 || e < 0) && st == LT_OK) {
      char m[256];
      st = lt_error_set(ctx, LT_ERR_H5, __FILE__, __LINE__, __func__,
                        "cannot write %s in '%s': %s", IMP_DSET, tmp, lt_h5_msg(m, sizeof(m)));
    }
    if (H5Fclose(f) < 0 && st == LT_OK)
      st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot close '%s'", tmp);
  }
  lt_h5_quiet_off(&q);
  LT_CHECK(ctx, lt_agree(ctx, st));
  if (ctx->rank == 0 && rename(tmp, path) != 0)
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot rename '%s' to '%s': %s",
                      tmp, path, strerror(errno));
  LT_CHECK(ctx, lt_agree(ctx, st));
  return LT_OK;
}

static lt_status attr_text(lt_ctx *ctx, hid_t f, const char *file, const char *name, char *buf,
                           size_t len) {
  buf[0] = '\0';
  if (H5Aexists(f, name) <= 0)
    LT_ERROR(ctx, LT_ERR_DATA, "importance file '%s' lacks the attribute %s", file, name);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Aget_type(a);
  lt_status st = LT_OK;
  if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
    char *s = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 does not convert between character sets */
    if (H5Aread(a, mt, &s) >= 0 && s) {
      snprintf(buf, len, "%s", s);
      H5free_memory(s);
    } else {
      st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                        "importance file '%s': cannot read attribute %s", file, name);
    }
    H5Tclose(mt);
  } else {
    int64_t v = 0;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0)
      snprintf(buf, len, "%lld", (long long)v);
    else
      st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                        "importance file '%s': cannot read attribute %s", file, name);
  }
  H5Tclose(t);
  H5Aclose(a);
  return st;
}

/* Rank 0 alone: the file's attributes and shape against want. */
static lt_status inspect(lt_ctx *ctx, const lt_shard *sh, const char *path,
                         lt_importance_meta *want) {
  if (H5Fis_hdf5(path) <= 0)
    LT_ERROR(ctx, LT_ERR_DATA, "importance file '%s' is not an HDF5 file; delete it or set "
             "[unlearn] reuse_importance = false to compute I_D again", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) LT_ERROR(ctx, LT_ERR_DATA, "cannot open the importance file '%s'", path);
  lt_status st = LT_OK;
  char v[8][160];
  const char *names[] = {"lethe_importance", "theta_fnv1a", "params", "layout",
                         "importance", "batching", "batch_size", "seconds"};
  for (int i = 0; i < 7 && st == LT_OK; i++)
    st = attr_text(ctx, f, path, names[i], v[i], sizeof(v[i]));
  if (st == LT_OK && H5Aexists(f, "seconds") > 0) {
    hid_t a = H5Aopen(f, "seconds", H5P_DEFAULT);
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &want->seconds) < 0) want->seconds = NAN;
    H5Aclose(a);
  }
  char hash[32];
  snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)want->theta_hash);
  char nb[32];
  snprintf(nb, sizeof(nb), "%zu", sh->n);
  char bb[32];
  snprintf(bb, sizeof(bb), "%d", want->batch);
  if (st == LT_OK && strcmp(v[0], "I_D") != 0)
    st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                      "'%s' is not a lethe importance file", path);
  if (st == LT_OK && (strcmp(v[1], hash) != 0 || strcmp(v[2], nb) != 0 ||
                      strcmp(v[3], want->layout) != 0))
    st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                      "stored I_D '%s' belongs to another model: it was computed for MLP %s with "
                      "%s parameters and theta hash %s, the checkpoint holds MLP %s with %s "
                      "parameters and theta hash %s. Delete it, point [unlearn] importance_file "
                      "elsewhere, or set [unlearn] reuse_importance = false to replace it",
                      path, v[3], v[2], v[1], want->layout, nb, hash);
  if (st == LT_OK && (strcmp(v[4], lt_importance_name(want->kind)) != 0 ||
                      strcmp(v[5], lt_imp_batching_name(want->batching)) != 0 ||
                      strcmp(v[6], bb) != 0))
    st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                      "stored I_D '%s' was computed with importance = %s, batching = %s, "
                      "batch_size = %s; the deck asks for %s, %s, %d. Set [unlearn] "
                      "reuse_importance = false to replace it, or another importance_file",
                      path, v[4], v[5], v[6], lt_importance_name(want->kind),
                      lt_imp_batching_name(want->batching), want->batch);
  if (st == LT_OK) {
    hid_t d = H5Lexists(f, "/importance", H5P_DEFAULT) > 0 &&
                      H5Lexists(f, IMP_DSET, H5P_DEFAULT) > 0
                  ? H5Dopen2(f, IMP_DSET, H5P_DEFAULT)
                  : H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    hid_t s = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    if (s < 0 || H5Sget_simple_extent_ndims(s) != 1 || H5Sget_simple_extent_dims(s, dims, NULL) != 1 ||
        dims[0] != (hsize_t)sh->n)
      st = lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                        "importance file '%s': %s missing or not [%zu] (truncated file?)", path,
                        IMP_DSET, sh->n);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
  }
  H5Fclose(f);
  return st;
}

lt_status lt_importance_read(lt_ctx *ctx, const lt_shard *sh, const char *path,
                             lt_importance_meta *want, float *I_owned, int *exists) {
  int ex = ctx->rank == 0 && access(path, F_OK) == 0;
  LT_CHECK_MPI(ctx, MPI_Bcast(&ex, 1, MPI_INT, 0, ctx->comm));
  *exists = ex;
  if (!ex) return LT_OK;
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = ctx->rank == 0 ? inspect(ctx, sh, path, want) : LT_OK;
  lt_h5_quiet_off(&q);
  /* rank 0's verdict and message reach every rank */
  int code = (int)st;
  LT_CHECK_MPI(ctx, MPI_Bcast(&code, 1, MPI_INT, 0, ctx->comm));
  char msg[LT_ERRMSG];
  snprintf(msg, sizeof(msg), "%s", ctx->rank == 0 ? ctx->errmsg : "");
  if (code != LT_OK) {
    LT_CHECK_MPI(ctx, MPI_Bcast(msg, (int)sizeof(msg), MPI_CHAR, 0, ctx->comm));
    if (ctx->rank != 0) LT_ERROR(ctx, (lt_status)code, "%s", msg);
    return lt_error_trace(ctx, (lt_status)code, __FILE__, __LINE__, __func__);
  }
  LT_CHECK_MPI(ctx, MPI_Bcast(&want->seconds, 1, MPI_DOUBLE, 0, ctx->comm));
  lt_h5_quiet_on(&q);
  hid_t fapl = lt_h5_fapl_mpio(ctx);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                      "cannot open the importance file '%s'", path);
  } else {
    hid_t d = H5Dopen2(f, IMP_DSET, H5P_DEFAULT);
    hid_t fs = d >= 0 ? H5Dget_space(d) : H5Screate_simple(1, (hsize_t[]){sh->n}, NULL), ms;
    owned_block(sh, fs, &ms);
    memset(I_owned, 0, sh->slice * sizeof(*I_owned));
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    herr_t e = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, dxpl, I_owned);
    H5Pclose(dxpl);
    H5Sclose(ms);
    H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    if (e < 0)
      st = lt_error_set(ctx, LT_ERR_H5, __FILE__, __LINE__, __func__,
                        "cannot read %s from '%s'", IMP_DSET, path);
  }
  lt_h5_quiet_off(&q);
  LT_CHECK(ctx, lt_agree(ctx, st));
  return LT_OK;
}
