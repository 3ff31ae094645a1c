/* Snapshots with parallel HDF5: a registry of state, collective writes of the
 * owned slices, atomic publication, validated and resharding reads. */
#include "lethe/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lethe/h5io.h"

#define FORMAT_VERSION 1
#define MAX_ENTRIES 64
#define MAX_RNG 8
#define ENTRY_PATH 128
#define RNG_NAME 32
#define FILE_PATH 1024

typedef struct {
  char path[ENTRY_PATH];
  int sharded;        /* 1: float32 [n] owned slice; 0: replicated array */
  int per_rank;       /* 1: this rank's row of a [P, max count] array */
  int params;         /* 1: the replicated theta (allgathered after a read) */
  lt_ckpt_type type;  /* replicated */
  void *data;         /* sharded: owned slice [hi - lo]; replicated: [count] */
  size_t count;
} entry;

struct lt_ckpt {
  lt_ctx *ctx;
  lt_shard sh;
  lt_ckpt_info info;
  lt_ckpt_layer *layers;
  int nlayers;
  entry e[MAX_ENTRIES];
  int ne;
  char rng_name[MAX_RNG][RNG_NAME];
  lt_rng *rng[MAX_RNG];
  int nrng;
  float *theta; /* full replicated buffer [n_pad] or NULL */
};

/* ------------------------------------------------------------ small helpers */

uint64_t lt_fnv1a64(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* Elements of the owned range that lie in the real vector [0, n). */
static size_t owned_count(const lt_shard *sh) {
  if (sh->lo >= sh->n) return 0;
  return (sh->hi < sh->n ? sh->hi : sh->n) - sh->lo;
}

static hid_t native_type(lt_ckpt_type t) {
  switch (t) {
  case LT_CKPT_F32: return H5T_NATIVE_FLOAT;
  case LT_CKPT_F64: return H5T_NATIVE_DOUBLE;
  case LT_CKPT_I64: return H5T_NATIVE_INT64;
  case LT_CKPT_U64: return H5T_NATIVE_UINT64;
  case LT_CKPT_I32: return H5T_NATIVE_INT32;
  }
  return H5T_NATIVE_FLOAT;
}

static hid_t file_type(lt_ckpt_type t) {
  switch (t) {
  case LT_CKPT_F32: return H5T_IEEE_F32LE;
  case LT_CKPT_F64: return H5T_IEEE_F64LE;
  case LT_CKPT_I64: return H5T_STD_I64LE;
  case LT_CKPT_U64: return H5T_STD_U64LE;
  case LT_CKPT_I32: return H5T_STD_I32LE;
  }
  return H5T_IEEE_F32LE;
}

static size_t type_size(lt_ckpt_type t) { return t == LT_CKPT_F32 || t == LT_CKPT_I32 ? 4 : 8; }

static lt_status fsync_path(lt_ctx *ctx, const char *path, int dir) {
  int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) LT_ERROR(ctx, LT_ERR_IO, "cannot open '%s' to sync it: %s", path, strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) LT_ERROR(ctx, LT_ERR_IO, "cannot sync '%s': %s", path, strerror(err));
  return LT_OK;
}

/* Rank 0's status and message become every rank's (collective): an error that
 * rank 0 alone detected is reported by all ranks with the same text. */
static lt_status share_rank0(lt_ctx *ctx, lt_status st) {
  struct {
    int code;
    char msg[LT_ERRMSG];
  } m;
  memset(&m, 0, sizeof(m));
  if (ctx->rank == 0) {
    m.code = (int)st;
    if (st != LT_OK) snprintf(m.msg, sizeof(m.msg), "%s", ctx->errmsg);
  }
  if (MPI_Bcast(&m, (int)sizeof(m), MPI_BYTE, 0, ctx->comm) != MPI_SUCCESS)
    LT_ERROR(ctx, LT_ERR_MPI, "MPI_Bcast of the checkpoint status failed");
  if (m.code != LT_OK && ctx->rank != 0)
    return lt_error_set(ctx, (lt_status)m.code, __FILE__, __LINE__, __func__, "%s", m.msg);
  return (lt_status)m.code;
}

/* ------------------------------------------------------------ registry */

lt_status lt_ckpt_create(lt_ctx *ctx, const lt_shard *sh, const lt_ckpt_info *info,
                         lt_ckpt **out) {
  *out = NULL;
  lt_ckpt *ck = NULL;
  LT_CALLOC(ctx, ck, 1);
  ck->ctx = ctx;
  ck->sh = *sh;
  if (info) ck->info = *info;
  *out = ck;
  return LT_OK;
}

void lt_ckpt_destroy(lt_ckpt **pck) {
  if (!pck || !*pck) return;
  lt_free((*pck)->layers);
  lt_free(*pck);
  *pck = NULL;
}

lt_status lt_ckpt_set_layout(lt_ckpt *ck, const lt_ckpt_layer *layers, int nlayers) {
  lt_ctx *ctx = ck->ctx;
  if (nlayers < 0) LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: %d layers", nlayers);
  LT_FREE(ck->layers);
  LT_CALLOC(ctx, ck->layers, nlayers > 0 ? nlayers : 1);
  if (nlayers > 0) memcpy(ck->layers, layers, (size_t)nlayers * sizeof(*layers));
  ck->nlayers = nlayers;
  return LT_OK;
}

int lt_ckpt_model_layout(const lt_model *m, lt_ckpt_layer *out, int max) {
  int n = m->nlayers < max ? m->nlayers : max;
  for (int l = 0; l < n; l++) {
    const lt_layer *L = &m->layer[l];
    memset(&out[l], 0, sizeof(out[l]));
    snprintf(out[l].name, sizeof(out[l].name), "%s", L->name);
    snprintf(out[l].kind, sizeof(out[l].kind), "%s", L->kind ? L->kind : "dense");
    out[l].offset = (int64_t)L->w_off;
    out[l].rows = L->out;
    out[l].cols = L->in;
  }
  return n;
}

static lt_status add_entry(lt_ckpt *ck, const char *path, int sharded, lt_ckpt_type type,
                           void *data, size_t count, entry **added) {
  lt_ctx *ctx = ck->ctx;
  if (!path || path[0] != '/' || strlen(path) >= ENTRY_PATH)
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: '%s' is not an absolute HDF5 path of at most %d bytes",
             path ? path : "(null)", ENTRY_PATH - 1);
  if (!data && (sharded ? owned_count(&ck->sh) > 0 : count > 0))
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: no data for '%s'", path);
  for (int i = 0; i < ck->ne; i++)
    if (strcmp(ck->e[i].path, path) == 0)
      LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: '%s' registered twice", path);
  if (ck->ne >= MAX_ENTRIES)
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: more than %d entries ('%s')", MAX_ENTRIES, path);
  entry *e = &ck->e[ck->ne++];
  memset(e, 0, sizeof(*e));
  snprintf(e->path, sizeof(e->path), "%s", path);
  e->sharded = sharded;
  e->type = sharded ? LT_CKPT_F32 : type;
  e->data = data;
  e->count = count;
  if (added) *added = e;
  return LT_OK;
}

lt_status lt_ckpt_add_params(lt_ckpt *ck, float *theta) {
  entry *e = NULL;
  LT_CHECK(ck->ctx, add_entry(ck, "/model/theta", 1, LT_CKPT_F32, theta ? theta + ck->sh.lo : NULL,
                              0, &e));
  e->params = 1;
  ck->theta = theta;
  return LT_OK;
}

lt_status lt_ckpt_add_sharded(lt_ckpt *ck, const char *path, float *owned) {
  LT_CHECK(ck->ctx, add_entry(ck, path, 1, LT_CKPT_F32, owned, 0, NULL));
  return LT_OK;
}

lt_status lt_ckpt_add_optim(lt_ckpt *ck, lt_optim *opt) {
  size_t lo, hi;
  lt_optim_range(opt, &lo, &hi);
  if (lo != ck->sh.lo || hi != ck->sh.hi)
    LT_ERROR(ck->ctx, LT_ERR_ARG,
             "checkpoint: the optimizer owns [%zu, %zu) but the layout's owned range is [%zu, %zu)",
             lo, hi, ck->sh.lo, ck->sh.hi);
  for (int i = 0; i < lt_optim_nstate(opt); i++) {
    char path[ENTRY_PATH];
    snprintf(path, sizeof(path), "/optim/%s", lt_optim_state_name(opt, i));
    LT_CHECK(ck->ctx, lt_ckpt_add_sharded(ck, path, lt_optim_state(opt, i)));
  }
  return LT_OK;
}

lt_status lt_ckpt_add_replicated(lt_ckpt *ck, const char *path, lt_ckpt_type type, void *data,
                                 size_t count) {
  if ((int)type < 0 || type > LT_CKPT_I32)
    LT_ERROR(ck->ctx, LT_ERR_ARG, "checkpoint: unknown type %d for '%s'", (int)type, path);
  LT_CHECK(ck->ctx, add_entry(ck, path, 0, type, data, count, NULL));
  return LT_OK;
}

lt_status lt_ckpt_add_per_rank(lt_ckpt *ck, const char *path, lt_ckpt_type type, void *data,
                               size_t count) {
  entry *e = NULL;
  if ((int)type < 0 || type > LT_CKPT_I32)
    LT_ERROR(ck->ctx, LT_ERR_ARG, "checkpoint: unknown type %d for '%s'", (int)type, path);
  LT_CHECK(ck->ctx, add_entry(ck, path, 0, type, data, count, &e));
  e->per_rank = 1;
  return LT_OK;
}

lt_status lt_ckpt_add_rng(lt_ckpt *ck, const char *name, lt_rng *r) {
  lt_ctx *ctx = ck->ctx;
  if (!name || !*name || strlen(name) >= RNG_NAME || strchr(name, ',') || !r)
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: bad RNG stream name '%s' (1-%d characters, no comma)",
             name ? name : "(null)", RNG_NAME - 1);
  if (ck->nrng >= MAX_RNG) LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: more than %d RNG streams", MAX_RNG);
  snprintf(ck->rng_name[ck->nrng], RNG_NAME, "%s", name);
  ck->rng[ck->nrng++] = r;
  return LT_OK;
}

/* The paths of the sharded entries in registration order, comma-separated (the
 * order of the state hash). */
static void sharded_names(const lt_ckpt *ck, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (int i = 0; i < ck->ne && o < len; i++)
    if (ck->e[i].sharded) o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "", ck->e[i].path);
}

static void rng_names(const lt_ckpt *ck, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (int i = 0; i < ck->nrng && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", ck->rng_name[i]);
}

/* ------------------------------------------------------------ hashes */

lt_status lt_ckpt_hash(lt_ckpt *ck, uint64_t *theta_hash, uint64_t *state_hash) {
  lt_ctx *ctx = ck->ctx;
  size_t cnt = owned_count(&ck->sh);
  *theta_hash = ck->theta ? lt_fnv1a64(LT_FNV1A64_INIT, ck->theta, ck->sh.n * sizeof(float))
                          : LT_FNV1A64_INIT;
  uint64_t mine = LT_FNV1A64_INIT;
  for (int i = 0; i < ck->ne; i++) {
    const entry *e = &ck->e[i];
    if (e->sharded) mine = lt_fnv1a64(mine, e->data, cnt * sizeof(float));
    if (e->per_rank) mine = lt_fnv1a64(mine, e->data, e->count * type_size(e->type));
  }
  uint64_t *all = NULL;
  LT_CALLOC(ctx, all, ctx->size);
  int rc = MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, ctx->comm);
  *state_hash = lt_fnv1a64(LT_FNV1A64_INIT, all, (size_t)ctx->size * sizeof(uint64_t));
  lt_free(all);
  if (rc != MPI_SUCCESS) LT_ERROR(ctx, LT_ERR_MPI, "MPI_Allgather of the state hashes failed");
  return LT_OK;
}

/* ------------------------------------------------------------ HDF5 pieces */

static hid_t layout_mem_type(void) {
  hid_t sname = H5Tcopy(H5T_C_S1), skind = H5Tcopy(H5T_C_S1);
  H5Tset_size(sname, LT_LAYER_NAME);
  H5Tset_size(skind, LT_CKPT_KIND);
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(lt_ckpt_layer));
  H5Tinsert(t, "name", HOFFSET(lt_ckpt_layer, name), sname);
  H5Tinsert(t, "kind", HOFFSET(lt_ckpt_layer, kind), skind);
  H5Tinsert(t, "offset", HOFFSET(lt_ckpt_layer, offset), H5T_NATIVE_INT64);
  H5Tinsert(t, "rows", HOFFSET(lt_ckpt_layer, rows), H5T_NATIVE_INT64);
  H5Tinsert(t, "cols", HOFFSET(lt_ckpt_layer, cols), H5T_NATIVE_INT64);
  H5Tclose(sname);
  H5Tclose(skind);
  return t;
}

static hid_t dxpl_collective(void) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  return dxpl;
}

/* Create dataset `path` of shape dims (rank 1 or 2) and write the block
 * [start, start + count) from buf (count[0] == 0: this rank writes nothing).
 * Collective. */
static lt_status write_block(lt_ctx *ctx, hid_t f, const char *path, hid_t ftype, hid_t mtype,
                             int rank, const hsize_t *dims, const hsize_t *start,
                             const hsize_t *count, const void *buf) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER); /* every element is written */
  hid_t fs = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(f, path, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  hsize_t n = count[0] * (rank == 2 ? count[1] : 1);
  hid_t ms = H5Screate_simple(1, n ? &n : (hsize_t[]){1}, NULL);
  if (n) {
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  } else {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
  }
  hid_t dxpl = dxpl_collective();
  herr_t e = ds < 0 ? -1 : H5Dwrite(ds, mtype, ms, fs, dxpl, buf);
  H5Pclose(dxpl);
  H5Sclose(ms);
  H5Sclose(fs);
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  if (ds < 0 || e < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_H5, "cannot write %s: %s", path, lt_h5_msg(m, sizeof(m)));
  }
  return LT_OK;
}

/* Read the block [start, start + count) of dataset `path` into buf. Collective. */
static lt_status read_block(lt_ctx *ctx, hid_t f, const char *path, hid_t mtype, int rank,
                            const hsize_t *start, const hsize_t *count, void *buf) {
  hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
  hid_t fs = ds < 0 ? -1 : H5Dget_space(ds);
  hsize_t n = count[0] * (rank == 2 ? count[1] : 1);
  hid_t ms = H5Screate_simple(1, n ? &n : (hsize_t[]){1}, NULL);
  herr_t e = fs < 0 ? -1 : 0;
  if (fs >= 0) {
    if (n) {
      e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    } else {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
  }
  hid_t dxpl = dxpl_collective();
  if (e >= 0) e = H5Dread(ds, mtype, ms, fs, dxpl, buf);
  H5Pclose(dxpl);
  H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (ds >= 0) H5Dclose(ds);
  if (e < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_H5, "cannot read %s: %s", path, lt_h5_msg(m, sizeof(m)));
  }
  return LT_OK;
}

static void hex64(char *buf, uint64_t v) { snprintf(buf, 17, "%016llx", (unsigned long long)v); }

/* ------------------------------------------------------------ write */

static const char *const cursor_i64[] = {"task", "epoch", "step", "global_step", "samples",
                                         "optim_steps", "epoch_correct", "epoch_rows"};
static const char *const cursor_f64[] = {"epoch_loss_sum", "epoch_time", "train_time", "test_acc",
                                         "test_loss"};
#define N_I64 (sizeof(cursor_i64) / sizeof(cursor_i64[0]))
#define N_F64 (sizeof(cursor_f64) / sizeof(cursor_f64[0]))

static void cursor_pack(const lt_ckpt_cursor *c, int64_t *iv, double *fv) {
  int64_t i[N_I64] = {c->task, c->epoch, c->step, c->global_step, c->samples, c->optim_steps,
                      c->epoch_correct, c->epoch_rows};
  double f[N_F64] = {c->epoch_loss_sum, c->epoch_time, c->train_time, c->test_acc, c->test_loss};
  memcpy(iv, i, sizeof(i));
  memcpy(fv, f, sizeof(f));
}

static void cursor_unpack(lt_ckpt_cursor *c, const int64_t *i, const double *f) {
  *c = (lt_ckpt_cursor){.task = i[0], .epoch = i[1], .step = i[2], .global_step = i[3],
                        .samples = i[4], .optim_steps = i[5], .epoch_correct = i[6],
                        .epoch_rows = i[7], .epoch_loss_sum = f[0], .epoch_time = f[1],
                        .train_time = f[2], .test_acc = f[3], .test_loss = f[4]};
}

static lt_status write_attrs(lt_ckpt *ck, hid_t f, const char *created, uint64_t th,
                             uint64_t sh) {
  lt_ctx *ctx = ck->ctx;
  char h[2][17];
  hex64(h[0], th);
  hex64(h[1], sh);
  LT_CHECK(ctx, lt_h5_attr_i64(ctx, f, "lethe_checkpoint", FORMAT_VERSION));
  LT_CHECK(ctx, lt_h5_attr_provenance(ctx, f, ck->info.deck_text, ck->info.blis_kernels,
                                      ck->info.blis_threads));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, f, "created", created));
  LT_CHECK(ctx, lt_h5_attr_i64(ctx, f, "params", (int64_t)ck->sh.n));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, f, "theta_fnv1a", h[0]));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, f, "state_fnv1a", h[1]));
  char names[MAX_ENTRIES * ENTRY_PATH];
  sharded_names(ck, names, sizeof(names));
  LT_CHECK(ctx, lt_h5_attr_str(ctx, f, "sharded_state", names));
  return LT_OK;
}

static lt_status write_cursor(lt_ckpt *ck, hid_t f, const lt_ckpt_cursor *cur) {
  lt_ctx *ctx = ck->ctx;
  hid_t g = H5Gcreate2(f, "/cursor", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) LT_ERROR(ctx, LT_ERR_H5, "cannot create /cursor");
  int64_t iv[N_I64];
  double fv[N_F64];
  cursor_pack(cur, iv, fv);
  lt_status st = LT_OK;
  for (size_t i = 0; i < N_I64 && st == LT_OK; i++) st = lt_h5_attr_i64(ctx, g, cursor_i64[i], iv[i]);
  for (size_t i = 0; i < N_F64 && st == LT_OK; i++) st = lt_h5_attr_f64(ctx, g, cursor_f64[i], fv[i]);
  char names[MAX_RNG * RNG_NAME];
  rng_names(ck, names, sizeof(names));
  if (st == LT_OK) st = lt_h5_attr_str(ctx, g, "streams", names);
  H5Gclose(g);
  LT_CHECK(ctx, st);
  if (ck->nrng == 0) return LT_OK;
  uint64_t row[2 * MAX_RNG];
  for (int i = 0; i < ck->nrng; i++) {
    row[2 * i] = ck->rng[i]->key;
    row[2 * i + 1] = ck->rng[i]->ctr;
  }
  hsize_t dims[2] = {(hsize_t)ctx->size, (hsize_t)(2 * ck->nrng)};
  hsize_t start[2] = {(hsize_t)ctx->rank, 0}, count[2] = {1, dims[1]};
  LT_CHECK(ctx, write_block(ctx, f, "/cursor/rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, dims, start,
                            count, row));
  return LT_OK;
}

/* Sleep for LETHE_FAULT_CKPT_SLEEP seconds (fault injection for tests). */
static void fault_sleep(void) {
  const char *s = getenv("LETHE_FAULT_CKPT_SLEEP");
  double t = s ? strtod(s, NULL) : 0.0;
  if (!(t > 0)) return;
  struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Collective: the whole file. Every rank runs the same sequence of collective
 * HDF5 calls whatever fails (the first error is kept), so no rank is left
 * waiting in a collective that the others skipped. */
static lt_status write_file(lt_ckpt *ck, const char *path, const lt_ckpt_cursor *cur,
                            const char *created, uint64_t th, uint64_t sh) {
  lt_ctx *ctx = ck->ctx;
  hid_t fapl = lt_h5_fapl_mpio(ctx);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_IO, "cannot create snapshot '%s': %s", path, lt_h5_msg(m, sizeof(m)));
  }
  lt_status st = write_attrs(ck, f, created, th, sh);
  lt_status s2;
  { /* layer table: rank 0 writes it */
    hid_t mt = layout_mem_type(), ft = H5Tcopy(mt);
    H5Tpack(ft);
    hsize_t dims[1] = {(hsize_t)ck->nlayers}, start[1] = {0};
    hsize_t count[1] = {ctx->rank == 0 ? (hsize_t)ck->nlayers : 0};
    s2 = write_block(ctx, f, "/model/layout", ft, mt, 1, dims, start, count, ck->layers);
    if (st == LT_OK) st = s2;
    H5Tclose(ft);
    H5Tclose(mt);
  }
  for (int i = 0; i < ck->ne; i++) {
    const entry *e = &ck->e[i];
    if (e->per_rank) { /* [P, max count], row r from rank r */
      unsigned long long mine = e->count, most = 0;
      if (MPI_Allreduce(&mine, &most, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, ctx->comm) != MPI_SUCCESS &&
          st == LT_OK)
        st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
      hsize_t dims2[2] = {(hsize_t)ctx->size, (hsize_t)most};
      hsize_t start2[2] = {(hsize_t)ctx->rank, 0}, count2[2] = {1, (hsize_t)e->count};
      s2 = write_block(ctx, f, e->path, file_type(e->type), native_type(e->type), 2, dims2, start2,
                       count2, e->data);
      if (st == LT_OK) st = s2;
      continue;
    }
    hsize_t dims[1], start[1], count[1];
    if (e->sharded) {
      dims[0] = ck->sh.n;
      start[0] = ck->sh.lo;
      count[0] = owned_count(&ck->sh);
    } else {
      dims[0] = e->count;
      start[0] = 0;
      count[0] = ctx->rank == 0 ? e->count : 0;
    }
    s2 = write_block(ctx, f, e->path, file_type(e->type), native_type(e->type), 1, dims, start,
                     count, e->data);
    if (st == LT_OK) st = s2;
  }
  s2 = write_cursor(ck, f, cur);
  if (st == LT_OK) st = s2;
  fault_sleep();
  /* the MPI-IO driver syncs (MPI_File_sync) on an explicit flush */
  if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 && st == LT_OK) {
    char m[256];
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot flush '%s': %s", path,
                      lt_h5_msg(m, sizeof(m)));
  }
  if (H5Fclose(f) < 0 && st == LT_OK) {
    char m[256];
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot close '%s': %s", path,
                      lt_h5_msg(m, sizeof(m)));
  }
  return st;
}

/* "step-00001234.h5" -> 1234; -1 for any other name. tmp: accept the ".h5.tmp" form instead. */
static long snapshot_step(const char *name, int tmp) {
  if (strncmp(name, "step-", 5) != 0) return -1;
  const char *p = name + 5;
  long v = 0;
  int digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 18) {
    v = v * 10 + (*p - '0');
    p++;
    digits++;
  }
  if (digits < 8) return -1;
  return strcmp(p, tmp ? ".h5.tmp" : ".h5") == 0 ? v : -1;
}

static int cmp_desc(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? 1 : (x > y ? -1 : 0);
}

/* Rank 0: remove snapshots with a step <= step beyond the `keep` newest, and
 * leftovers of interrupted writes. */
static lt_status prune(lt_ctx *ctx, const char *dir, long keep, long step) {
  DIR *d = opendir(dir);
  if (!d) LT_ERROR(ctx, LT_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
  long *steps = NULL;
  size_t n = 0, cap = 0;
  lt_status st = LT_OK;
  char path[FILE_PATH + 64];
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (snapshot_step(de->d_name, 1) >= 0) { /* an interrupted write */
      snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
      (void)unlink(path);
      continue;
    }
    long s = snapshot_step(de->d_name, 0);
    if (s < 0 || s > step || keep <= 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      long *grown = realloc(steps, cap * sizeof(long));
      if (!grown) {
        st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
        break;
      }
      steps = grown;
    }
    steps[n++] = s;
  }
  closedir(d);
  if (st == LT_OK && keep > 0 && n > (size_t)keep) {
    qsort(steps, n, sizeof(long), cmp_desc);
    for (size_t i = (size_t)keep; i < n; i++) {
      snprintf(path, sizeof(path), "%s/step-%08ld.h5", dir, steps[i]);
      if (unlink(path) != 0 && errno != ENOENT) {
        st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__,
                          "cannot remove old snapshot '%s': %s", path, strerror(errno));
        break;
      }
    }
  }
  free(steps);
  return st;
}

/* Rank 0, after every rank closed the file: make it the newest complete snapshot. */
static lt_status publish(lt_ctx *ctx, const char *dir, const char *tmp, const char *final,
                         const char *name, long keep, long step, double *bytes) {
  LT_CHECK(ctx, fsync_path(ctx, tmp, 0));
  if (rename(tmp, final) != 0)
    LT_ERROR(ctx, LT_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
  LT_CHECK(ctx, fsync_path(ctx, dir, 1));
  char latest[FILE_PATH + 16], latest_tmp[FILE_PATH + 16];
  snprintf(latest, sizeof(latest), "%s/LATEST", dir);
  snprintf(latest_tmp, sizeof(latest_tmp), "%s/LATEST.tmp", dir);
  int fd = open(latest_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0664);
  if (fd < 0) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", latest_tmp, strerror(errno));
  char line[FILE_PATH];
  int len = snprintf(line, sizeof(line), "%s\n", name);
  int ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) LT_ERROR(ctx, LT_ERR_IO, "cannot write '%s': %s", latest_tmp, strerror(err));
  if (rename(latest_tmp, latest) != 0)
    LT_ERROR(ctx, LT_ERR_IO, "cannot rename '%s' to '%s': %s", latest_tmp, latest, strerror(errno));
  LT_CHECK(ctx, fsync_path(ctx, dir, 1));
  struct stat sb;
  *bytes = stat(final, &sb) == 0 ? (double)sb.st_size : 0.0;
  LT_CHECK(ctx, prune(ctx, dir, keep, step));
  return LT_OK;
}

lt_status lt_ckpt_write(lt_ckpt *ck, const char *dir, long keep, const lt_ckpt_cursor *cur,
                        lt_ckpt_report *rep) {
  lt_ctx *ctx = ck->ctx;
  if (strlen(dir) + 32 >= FILE_PATH)
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint directory name too long: '%s'", dir);
  if (cur->global_step < 0)
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint: negative global step %ld", cur->global_step);
  lt_status made = ctx->rank == 0 ? lt_make_dirs(ctx, dir, "checkpoint directory", NULL) : LT_OK;
  LT_CHECK(ctx, lt_agree(ctx, made));

  double t0 = lt_wtime();
  uint64_t th, sh;
  LT_CHECK(ctx, lt_ckpt_hash(ck, &th, &sh));
  double t_hash = lt_wtime() - t0;

  char created[64] = "";
  if (ctx->rank == 0) {
    time_t now = time(NULL);
    struct tm tmv;
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
  }
  LT_CHECK_MPI(ctx, MPI_Bcast(created, sizeof(created), MPI_CHAR, 0, ctx->comm));
  char name[64], final[FILE_PATH], tmp[FILE_PATH + 8];
  snprintf(name, sizeof(name), "step-%08ld.h5", cur->global_step);
  if (snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final))
    LT_ERROR(ctx, LT_ERR_ARG, "checkpoint directory name too long: '%s'", dir);
  snprintf(tmp, sizeof(tmp), "%s.tmp", final);

  double t1 = lt_wtime();
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = lt_agree(ctx, write_file(ck, tmp, cur, created, th, sh));
  lt_h5_quiet_off(&q);
  if (st != LT_OK) {
    if (ctx->rank == 0) (void)unlink(tmp);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  double bytes = 0.0;
  st = ctx->rank == 0 ? publish(ctx, dir, tmp, final, name, keep, cur->global_step, &bytes) : LT_OK;
  LT_CHECK(ctx, share_rank0(ctx, st));
  LT_CHECK_MPI(ctx, MPI_Bcast(&bytes, 1, MPI_DOUBLE, 0, ctx->comm));
  if (rep) {
    memset(rep, 0, sizeof(*rep));
    snprintf(rep->path, sizeof(rep->path), "%s", final);
    rep->theta_hash = th;
    rep->state_hash = sh;
    rep->bytes = bytes;
    rep->io_seconds = lt_wtime() - t1;
    rep->hash_seconds = t_hash;
    rep->file_ranks = ctx->size;
  }
  return LT_OK;
}

/* ------------------------------------------------------------ read */

/* What rank 0 learns from the file before the collective read. */
typedef struct {
  char path[FILE_PATH];
  int64_t iv[N_I64];
  double fv[N_F64];
  int file_ranks;
  int rng_ok; /* the file's streams match the registered ones at this rank count */
  uint64_t theta_hash, state_hash;
} header;

/* Rank 0: the snapshot file named by `from` (a file, a checkpoint dir, a run dir);
 * what names the option in messages ("--resume", "[finetune] from"). */
static lt_status resolve(lt_ctx *ctx, const char *what, const char *from, char *path, size_t len) {
  struct stat sb;
  if (!from || !*from) LT_ERROR(ctx, LT_ERR_ARG, "%s: no snapshot or run directory given", what);
  if (stat(from, &sb) != 0)
    LT_ERROR(ctx, LT_ERR_IO, "%s '%s': %s", what, from, strerror(errno));
  if (!S_ISDIR(sb.st_mode)) {
    snprintf(path, len, "%s", from);
    return LT_OK;
  }
  char latest[FILE_PATH + 32], dir[FILE_PATH + 16];
  snprintf(dir, sizeof(dir), "%s", from);
  snprintf(latest, sizeof(latest), "%s/LATEST", dir);
  if (access(latest, F_OK) != 0) {
    snprintf(dir, sizeof(dir), "%s/ckpt", from);
    snprintf(latest, sizeof(latest), "%s/LATEST", dir);
  }
  FILE *f = fopen(latest, "r");
  if (!f)
    LT_ERROR(ctx, LT_ERR_IO,
             "%s '%s': no snapshot there (neither %s/LATEST nor %s/ckpt/LATEST exists)", what,
             from, from, from);
  char name[FILE_PATH] = "";
  char *got = fgets(name, sizeof(name), f);
  fclose(f);
  name[strcspn(name, "\r\n")] = '\0';
  if (!got || snapshot_step(name, 0) < 0)
    LT_ERROR(ctx, LT_ERR_DATA, "%s: expected the name of a snapshot (step-NNNNNNNN.h5), found '%s'",
             latest, name);
  if (snprintf(path, len, "%s/%s", dir, name) >= (int)len)
    LT_ERROR(ctx, LT_ERR_ARG, "%s '%s': path too long", what, from);
  return LT_OK;
}

static lt_status attr_read(lt_ctx *ctx, hid_t obj, const char *path, const char *file,
                           const char *name, hid_t mtype, void *v) {
  hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
  herr_t e = a < 0 ? -1 : H5Aread(a, mtype, v);
  char m[256] = "no such attribute";
  /* the message before the next call clears HDF5's error stack */
  if (a >= 0 && e < 0) lt_h5_msg(m, sizeof(m));
  if (a >= 0) H5Aclose(a);
  if (e < 0)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': cannot read attribute '%s' of %s: %s", file, name,
             path, m);
  return LT_OK;
}

static lt_status attr_read_str(lt_ctx *ctx, hid_t obj, const char *path, const char *file,
                               const char *name, char *buf, size_t len) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  /* HDF5 does not convert between character sets: read in the attribute's own */
  hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
  hid_t at = a < 0 ? -1 : H5Aget_type(a);
  if (at >= 0 && H5Tget_class(at) == H5T_STRING) H5Tset_cset(t, H5Tget_cset(at));
  if (at >= 0) H5Tclose(at);
  if (a >= 0) H5Aclose(a);
  char *s = NULL;
  lt_status st = attr_read(ctx, obj, path, file, name, t, &s);
  H5Tclose(t);
  LT_CHECK(ctx, st);
  snprintf(buf, len, "%s", s ? s : "");
  H5free_memory(s);
  return LT_OK;
}

static int link_exists(hid_t f, const char *path) {
  return H5Lexists(f, path, H5P_DEFAULT) > 0; /* < 0 also when a parent group is missing */
}

/* Dataset `path` of rank 1 or 2 with the expected type class and size (size 0:
 * any) and dims (want NULL: any); its dims go to got (may be NULL). */
static lt_status check_dataset(lt_ctx *ctx, hid_t f, const char *file, const char *path,
                               H5T_class_t cls, size_t size, int rank, const hsize_t *want,
                               hsize_t *got) {
  if (!link_exists(f, path)) LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' lacks %s", file, path);
  hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
  if (ds < 0) LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': %s is not a dataset", file, path);
  hid_t t = H5Dget_type(ds), fs = H5Dget_space(ds);
  int r = H5Sget_simple_extent_ndims(fs);
  hsize_t dims[2] = {0, 0};
  if (r >= 1 && r <= 2) H5Sget_simple_extent_dims(fs, dims, NULL);
  int type_ok = H5Tget_class(t) == cls && (size == 0 || H5Tget_size(t) == size);
  H5Tclose(t);
  H5Sclose(fs);
  H5Dclose(ds);
  if (!type_ok || r != rank)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': %s has the wrong type or rank (expected %d-D %s)",
             file, path, rank,
             cls == H5T_FLOAT ? (size == 4 ? "float32" : "float64")
                              : (cls == H5T_INTEGER ? "64-bit integers" : "compound"));
  for (int i = 0; i < rank; i++)
    if (want && dims[i] != want[i])
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': %s has %llu %s, expected %llu", file, path,
               (unsigned long long)dims[i], i ? "columns" : "elements", (unsigned long long)want[i]);
  if (got) memcpy(got, dims, (size_t)rank * sizeof(hsize_t));
  return LT_OK;
}

/* Compare the file's layer table with the registered one; name the first difference. */
static lt_status compare_layout(lt_ckpt *ck, const char *file, const lt_ckpt_layer *fl, int nf) {
  lt_ctx *ctx = ck->ctx;
  const char *pre = "does not match the deck's model";
  int n = nf < ck->nlayers ? nf : ck->nlayers;
  for (int l = 0; l < n; l++) {
    const lt_ckpt_layer *a = &fl[l], *b = &ck->layers[l];
    if (strncmp(a->name, b->name, LT_LAYER_NAME) != 0)
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' %s: layer %d is '%.32s' in the snapshot but '%s' in "
               "the model", file, pre, l + 1, a->name, b->name);
    if (strncmp(a->kind, b->kind, LT_CKPT_KIND) != 0)
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' %s: layer '%s': kind '%.16s' in the snapshot, '%s' "
               "in the model", file, pre, b->name, a->kind, b->kind);
    if (a->rows != b->rows || a->cols != b->cols)
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' %s: layer '%s': shape %lldx%lld in the snapshot, "
               "%lldx%lld in the model", file, pre, b->name, (long long)a->rows,
               (long long)a->cols, (long long)b->rows, (long long)b->cols);
    if (a->offset != b->offset)
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' %s: layer '%s': offset %lld in the snapshot, %lld in "
               "the model", file, pre, b->name, (long long)a->offset, (long long)b->offset);
  }
  if (nf != ck->nlayers)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' %s: %d layers in the snapshot, %d in the model (first "
             "unmatched layer '%.32s' of the %s)", file, pre, nf, ck->nlayers,
             nf > ck->nlayers ? fl[n].name : ck->layers[n].name,
             nf > ck->nlayers ? "snapshot" : "model");
  return LT_OK;
}

static lt_status read_layout(lt_ckpt *ck, hid_t f, const char *file) {
  lt_ctx *ctx = ck->ctx;
  hsize_t nrows = 0;
  LT_CHECK(ctx, check_dataset(ctx, f, file, "/model/layout", H5T_COMPOUND, 0, 1, NULL, &nrows));
  hid_t ds = H5Dopen2(f, "/model/layout", H5P_DEFAULT);
  hsize_t nf = nrows;
  lt_ckpt_layer *fl = NULL;
  if (nf > 1 << 20 ||
      lt_calloc_aligned((void **)&fl, (size_t)(nf > 0 ? nf : 1), sizeof(*fl))) {
    H5Dclose(ds);
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': unreadable /model/layout", file);
  }
  hid_t mt = layout_mem_type();
  herr_t e = nf > 0 ? H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, fl) : 0;
  H5Tclose(mt);
  H5Dclose(ds);
  lt_status st = e < 0 ? lt_error_set(ctx, LT_ERR_DATA, __FILE__, __LINE__, __func__,
                                      "snapshot '%s': /model/layout is not a layer table "
                                      "(name, kind, offset, rows, cols)", file)
                       : compare_layout(ck, file, fl, (int)nf);
  lt_free(fl);
  LT_CHECK(ctx, st);
  return LT_OK;
}

static lt_status parse_hex(lt_ctx *ctx, const char *file, const char *name, const char *s,
                           uint64_t *v) {
  char *end = NULL;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 16);
  if (errno || end == s || *end || strlen(s) != 16)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': attribute %s = '%s' is not a 64-bit hex hash", file,
             name, s);
  *v = (uint64_t)x;
  return LT_OK;
}

/* Rank 0, serial HDF5 (no collective): everything that could make ranks diverge. */
static lt_status inspect_open(lt_ckpt *ck, hid_t f, header *h) {
  lt_ctx *ctx = ck->ctx;
  const char *file = h->path;
  if (H5Aexists(f, "lethe_checkpoint") <= 0)
    LT_ERROR(ctx, LT_ERR_DATA,
             "'%s' is an HDF5 file but not a lethe snapshot (no root attribute 'lethe_checkpoint')",
             file);
  int64_t version = 0, ranks = 0, params = 0;
  LT_CHECK(ctx, attr_read(ctx, f, "/", file, "lethe_checkpoint", H5T_NATIVE_INT64, &version));
  if (version != FORMAT_VERSION)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' has format version %lld; this lethe reads version %d",
             file, (long long)version, FORMAT_VERSION);
  LT_CHECK(ctx, attr_read(ctx, f, "/", file, "ranks", H5T_NATIVE_INT64, &ranks));
  LT_CHECK(ctx, attr_read(ctx, f, "/", file, "params", H5T_NATIVE_INT64, &params));
  if (ranks < 1 || ranks > 1 << 24)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': attribute ranks = %lld is not a rank count", file,
             (long long)ranks);
  h->file_ranks = (int)ranks;
  char hs[64];
  LT_CHECK(ctx, attr_read_str(ctx, f, "/", file, "theta_fnv1a", hs, sizeof(hs)));
  LT_CHECK(ctx, parse_hex(ctx, file, "theta_fnv1a", hs, &h->theta_hash));
  LT_CHECK(ctx, attr_read_str(ctx, f, "/", file, "state_fnv1a", hs, sizeof(hs)));
  LT_CHECK(ctx, parse_hex(ctx, file, "state_fnv1a", hs, &h->state_hash));

  LT_CHECK(ctx, read_layout(ck, f, file));
  if ((size_t)params != ck->sh.n)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' holds %lld parameters, the model has %zu", file,
             (long long)params, ck->sh.n);
  for (int i = 0; i < ck->ne; i++) {
    const entry *e = &ck->e[i];
    hsize_t want = e->sharded ? (hsize_t)ck->sh.n : (hsize_t)e->count;
    H5T_class_t cls = e->type == LT_CKPT_F32 || e->type == LT_CKPT_F64 ? H5T_FLOAT : H5T_INTEGER;
    if (e->per_rank) { /* read only at the same rank count: [P, >= this rank's count] */
      if (h->file_ranks != ctx->size) continue;
      hsize_t got[2];
      LT_CHECK(ctx, check_dataset(ctx, f, file, e->path, cls, type_size(e->type), 2, NULL, got));
      if (got[0] != (hsize_t)ctx->size || got[1] < e->count)
        LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': %s is [%llu, %llu], expected [%d, >= %zu]",
                 file, e->path, (unsigned long long)got[0], (unsigned long long)got[1], ctx->size,
                 e->count);
      continue;
    }
    if (!link_exists(f, e->path) && strncmp(e->path, "/optim/", 7) == 0)
      LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' lacks %s, which the deck's optimizer keeps (was "
               "the snapshot written with another [optim] kind or momentum?)", file, e->path);
    LT_CHECK(ctx, check_dataset(ctx, f, file, e->path, cls, type_size(e->type), 1, &want, NULL));
  }
  char fnames[MAX_ENTRIES * ENTRY_PATH], mynames[MAX_ENTRIES * ENTRY_PATH];
  LT_CHECK(ctx, attr_read_str(ctx, f, "/", file, "sharded_state", fnames, sizeof(fnames)));
  sharded_names(ck, mynames, sizeof(mynames));
  if (strcmp(fnames, mynames) != 0)
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' holds the sharded state %s, but this run keeps %s "
             "(another [optim] kind or momentum?)", file, fnames, mynames);
  if (!link_exists(f, "/cursor"))
    LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s' lacks /cursor", file);
  hid_t g = H5Gopen2(f, "/cursor", H5P_DEFAULT);
  if (g < 0) LT_ERROR(ctx, LT_ERR_DATA, "snapshot '%s': /cursor is not a group", file);
  lt_status st = LT_OK;
  for (size_t i = 0; i < N_I64 && st == LT_OK; i++)
    st = attr_read(ctx, g, "/cursor", file, cursor_i64[i], H5T_NATIVE_INT64, &h->iv[i]);
  for (size_t i = 0; i < N_F64 && st == LT_OK; i++)
    st = attr_read(ctx, g, "/cursor", file, cursor_f64[i], H5T_NATIVE_DOUBLE, &h->fv[i]);
  char names[MAX_RNG * RNG_NAME + 64] = "", mine[MAX_RNG * RNG_NAME];
  if (st == LT_OK) st = attr_read_str(ctx, g, "/cursor", file, "streams", names, sizeof(names));
  H5Gclose(g);
  LT_CHECK(ctx, st);
  rng_names(ck, mine, sizeof(mine));
  h->rng_ok = ck->nrng > 0 && h->file_ranks == ctx->size && strcmp(names, mine) == 0;
  if (h->rng_ok) {
    hsize_t want[2] = {(hsize_t)ctx->size, (hsize_t)(2 * ck->nrng)};
    LT_CHECK(ctx, check_dataset(ctx, f, file, "/cursor/rng", H5T_INTEGER, 8, 2, want, NULL));
  }
  return LT_OK;
}

static lt_status inspect(lt_ckpt *ck, const char *from, header *h) {
  lt_ctx *ctx = ck->ctx;
  LT_CHECK(ctx, resolve(ctx, "--resume", from, h->path, sizeof(h->path)));
  const char *file = h->path;
  struct stat sb;
  if (stat(file, &sb) != 0) LT_ERROR(ctx, LT_ERR_IO, "snapshot '%s': %s", file, strerror(errno));
  if (!S_ISREG(sb.st_mode)) LT_ERROR(ctx, LT_ERR_IO, "snapshot '%s' is not a regular file", file);
  if (access(file, R_OK) != 0)
    LT_ERROR(ctx, LT_ERR_IO, "snapshot '%s': %s", file, strerror(errno));
  if (H5Fis_hdf5(file) <= 0)
    LT_ERROR(ctx, LT_ERR_DATA, "'%s' is not an HDF5 file (so not a lethe snapshot)", file);
  hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_DATA, "cannot open snapshot '%s': %s (truncated or damaged file?)", file,
             lt_h5_msg(m, sizeof(m)));
  }
  lt_status st = inspect_open(ck, f, h);
  H5Fclose(f);
  LT_CHECK(ctx, st);
  return LT_OK;
}

/* Collective, after rank 0's inspection passed: every rank reads its part. Same
 * sequence of collective calls on every rank whatever fails. */
static lt_status read_file(lt_ckpt *ck, const header *h) {
  lt_ctx *ctx = ck->ctx;
  hid_t fapl = lt_h5_fapl_mpio(ctx);
  hid_t f = H5Fopen(h->path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_IO, "cannot open snapshot '%s': %s", h->path, lt_h5_msg(m, sizeof(m)));
  }
  lt_status st = LT_OK, s2;
  size_t cnt = owned_count(&ck->sh), own = ck->sh.hi - ck->sh.lo;
  for (int i = 0; i < ck->ne; i++) {
    entry *e = &ck->e[i];
    if (e->per_rank) {
      if (h->file_ranks != ctx->size) continue;
      hsize_t start2[2] = {(hsize_t)ctx->rank, 0}, count2[2] = {1, (hsize_t)e->count};
      s2 = read_block(ctx, f, e->path, native_type(e->type), 2, start2, count2, e->data);
      if (st == LT_OK) st = s2;
      continue;
    }
    hsize_t start[1] = {e->sharded ? ck->sh.lo : 0};
    hsize_t count[1] = {e->sharded ? cnt : e->count};
    s2 = read_block(ctx, f, e->path, native_type(e->type), 1, start, count, e->data);
    if (st == LT_OK) st = s2;
    if (e->sharded && own > cnt) memset((float *)e->data + cnt, 0, (own - cnt) * sizeof(float));
  }
  if (h->rng_ok) {
    uint64_t row[2 * MAX_RNG];
    hsize_t start[2] = {(hsize_t)ctx->rank, 0}, count[2] = {1, (hsize_t)(2 * ck->nrng)};
    s2 = read_block(ctx, f, "/cursor/rng", H5T_NATIVE_UINT64, 2, start, count, row);
    if (st == LT_OK) st = s2;
    for (int i = 0; i < ck->nrng && s2 == LT_OK; i++) {
      ck->rng[i]->key = row[2 * i];
      ck->rng[i]->ctr = row[2 * i + 1];
    }
  }
  if (H5Fclose(f) < 0 && st == LT_OK) {
    char m[256];
    st = lt_error_set(ctx, LT_ERR_IO, __FILE__, __LINE__, __func__, "cannot close '%s': %s", h->path,
                      lt_h5_msg(m, sizeof(m)));
  }
  return st;
}

lt_status lt_ckpt_read(lt_ckpt *ck, const char *from, lt_ckpt_cursor *cur, lt_ckpt_report *rep) {
  lt_ctx *ctx = ck->ctx;
  header h;
  memset(&h, 0, sizeof(h));
  double t0 = lt_wtime();
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = ctx->rank == 0 ? inspect(ck, from, &h) : LT_OK;
  st = share_rank0(ctx, st);
  if (st == LT_OK && MPI_Bcast(&h, (int)sizeof(h), MPI_BYTE, 0, ctx->comm) != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Bcast failed");
  if (st == LT_OK) st = lt_agree(ctx, read_file(ck, &h));
  lt_h5_quiet_off(&q);
  LT_CHECK(ctx, st);
  if (ck->theta) LT_CHECK(ctx, lt_dist_allgather(ctx, &ck->sh, ck->theta));
  double t1 = lt_wtime();

  uint64_t th, sh;
  LT_CHECK(ctx, lt_ckpt_hash(ck, &th, &sh));
  if (ck->theta && th != h.theta_hash)
    LT_ERROR(ctx, LT_ERR_DATA,
             "snapshot '%s': theta hashes to %016llx, but the file records %016llx (damaged file)",
             h.path, (unsigned long long)th, (unsigned long long)h.theta_hash);
  if (h.file_ranks == ctx->size && sh != h.state_hash)
    LT_ERROR(ctx, LT_ERR_DATA,
             "snapshot '%s': the state hashes to %016llx, but the file records %016llx (damaged "
             "file, or registered state that differs from the writer's)",
             h.path, (unsigned long long)sh, (unsigned long long)h.state_hash);
  cursor_unpack(cur, h.iv, h.fv);
  if (rep) {
    memset(rep, 0, sizeof(*rep));
    snprintf(rep->path, sizeof(rep->path), "%s", h.path);
    rep->theta_hash = th;
    rep->state_hash = sh;
    struct stat sb;
    rep->bytes = stat(h.path, &sb) == 0 ? (double)sb.st_size : 0.0;
    rep->io_seconds = t1 - t0;
    rep->hash_seconds = lt_wtime() - t1;
    rep->file_ranks = h.file_ranks;
    rep->per_rank_restored = h.file_ranks == ctx->size;
  }
  return LT_OK;
}

/* ------------------------------------------------------------ parameters only (fine-tuning) */

/* Rank 0, serial HDF5: a snapshot's layer table and theta[n], theta checked against
 * the file's theta_fnv1a. */
static lt_status params_rank0(lt_ctx *ctx, const char *from, const char *what, char *path,
                              size_t len, lt_ckpt_layer **layers, int *nlayers, float **theta,
                              size_t *n) {
  LT_CHECK(ctx, resolve(ctx, what, from, path, len));
  if (H5Fis_hdf5(path) <= 0)
    LT_ERROR(ctx, LT_ERR_DATA, "%s: '%s' is not an HDF5 file (so not a lethe snapshot)", what,
             path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    char m[256];
    LT_ERROR(ctx, LT_ERR_DATA, "%s: cannot open snapshot '%s': %s", what, path,
             lt_h5_msg(m, sizeof(m)));
  }
  lt_status st = LT_OK;
  hid_t ds = -1, mt = -1;
  hsize_t nl = 0, nt = 0;
  char hs[64];
  uint64_t want = 0;
  if (H5Aexists(f, "lethe_checkpoint") <= 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "%s: '%s' is an HDF5 file but not a lethe snapshot", what,
                 path);
  LT_CHECK_DONE(ctx, st, check_dataset(ctx, f, path, "/model/layout", H5T_COMPOUND, 0, 1, NULL,
                                       &nl));
  LT_CHECK_DONE(ctx, st, check_dataset(ctx, f, path, "/model/theta", H5T_FLOAT, 4, 1, NULL, &nt));
  LT_CHECK_DONE(ctx, st, attr_read_str(ctx, f, "/", path, "theta_fnv1a", hs, sizeof(hs)));
  LT_CHECK_DONE(ctx, st, parse_hex(ctx, path, "theta_fnv1a", hs, &want));
  if (nl < 1 || nl > LT_MAX_LAYERS || nt < 1)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "snapshot '%s': %llu layers and %llu parameters", path,
                 (unsigned long long)nl, (unsigned long long)nt);
  if (lt_calloc_aligned((void **)layers, (size_t)nl, sizeof(**layers)) ||
      lt_calloc_aligned((void **)theta, (size_t)nt, sizeof(**theta)))
    LT_FAIL_DONE(ctx, st, LT_ERR_MEM, "out of memory reading the parameters of '%s'", path);
  mt = layout_mem_type();
  ds = H5Dopen2(f, "/model/layout", H5P_DEFAULT);
  if (ds < 0 || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *layers) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "snapshot '%s': unreadable /model/layout", path);
  H5Dclose(ds);
  ds = H5Dopen2(f, "/model/theta", H5P_DEFAULT);
  if (ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *theta) < 0)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA, "snapshot '%s': unreadable /model/theta", path);
  uint64_t h = lt_fnv1a64(LT_FNV1A64_INIT, *theta, (size_t)nt * sizeof(float));
  if (h != want)
    LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                 "snapshot '%s': theta hashes to %016llx, but the file records %016llx (damaged "
                 "file)", path, (unsigned long long)h, (unsigned long long)want);
  for (hsize_t l = 0; l < nl; l++) {
    const lt_ckpt_layer *L = &(*layers)[l];
    if (L->offset < 0 || L->rows < 1 || L->cols < 1 ||
        (hsize_t)(L->offset + L->rows * L->cols + L->rows) > nt)
      LT_FAIL_DONE(ctx, st, LT_ERR_DATA,
                   "snapshot '%s': layer '%.32s' (%lldx%lld at %lld) lies outside its %llu "
                   "parameters", path, L->name, (long long)L->rows, (long long)L->cols,
                   (long long)L->offset, (unsigned long long)nt);
  }
  *nlayers = (int)nl;
  *n = (size_t)nt;
done:
  if (ds >= 0) H5Dclose(ds);
  if (mt >= 0) H5Tclose(mt);
  H5Fclose(f);
  return st;
}

lt_status lt_ckpt_read_params(lt_ctx *ctx, const char *from, const char *what,
                              lt_ckpt_params *p) {
  memset(p, 0, sizeof(*p));
  lt_h5_quiet q;
  lt_h5_quiet_on(&q);
  lt_status st = ctx->rank == 0 ? params_rank0(ctx, from, what, p->path, sizeof(p->path),
                                               &p->layers, &p->nlayers, &p->theta, &p->n)
                                : LT_OK;
  lt_h5_quiet_off(&q);
  st = share_rank0(ctx, st);
  int64_t sizes[2] = {p->nlayers, (int64_t)p->n};
  if (st == LT_OK && MPI_Bcast(sizes, 2, MPI_INT64_T, 0, ctx->comm) != MPI_SUCCESS)
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Bcast failed");
  if (st == LT_OK && ctx->rank != 0) {
    p->nlayers = (int)sizes[0];
    p->n = (size_t)sizes[1];
    if (lt_calloc_aligned((void **)&p->layers, (size_t)p->nlayers, sizeof(*p->layers)) ||
        lt_calloc_aligned((void **)&p->theta, p->n, sizeof(*p->theta)))
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "out of memory for %zu pretrained parameters", p->n);
  }
  st = lt_agree(ctx, st);
  if (st == LT_OK &&
      (MPI_Bcast(p->path, (int)sizeof(p->path), MPI_CHAR, 0, ctx->comm) != MPI_SUCCESS ||
       MPI_Bcast(p->layers, p->nlayers * (int)sizeof(*p->layers), MPI_BYTE, 0, ctx->comm) !=
           MPI_SUCCESS ||
       MPI_Bcast(p->theta, (int)p->n, MPI_FLOAT, 0, ctx->comm) != MPI_SUCCESS))
    st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__,
                      "MPI_Bcast of the pretrained parameters failed");
  if (st != LT_OK) {
    lt_ckpt_params_free(p);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  return LT_OK;
}

void lt_ckpt_params_free(lt_ckpt_params *p) {
  if (!p) return;
  LT_FREE(p->layers);
  LT_FREE(p->theta);
  p->nlayers = 0;
  p->n = 0;
}
