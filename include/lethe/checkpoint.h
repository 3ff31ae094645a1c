/* lethe checkpoint: snapshots of a run (DESIGN §5), exact restart, resharding.
 *
 * One HDF5 file per snapshot, DIR/step-%08ld.h5 (global step), written
 * collectively with the MPI-IO driver:
 *
 *   /model/theta     float32 [n]   each owner writes its slice [lo, min(hi, n)) (hyperslab,
 *                                  collective transfer); the real n, no padding
 *   /model/layout    compound [L]  {name, kind, offset, rows, cols} per layer
 *   /optim/<name>    float32 [n]   sharded optimizer state, same layout
 *   /strategy/...    anything a later module registers (lt_ckpt_add_*)
 *   /cursor          group: attributes task, epoch, step, global_step, samples,
 *                    optim_steps, epoch_loss_sum, epoch_correct, epoch_rows,
 *                    epoch_time, train_time, test_acc, test_loss;
 *                    /cursor/rng uint64 [P, 2 k]: every rank's k streams as (key, counter),
 *                    names in its attribute "streams"
 *   root attributes  lethe_checkpoint (format version), deck, lethe_version,
 *                    git_revision, ranks, blis_kernels, blis_threads, created,
 *                    params (n), theta_fnv1a, state_fnv1a (hex), sharded_state (the
 *                    sharded datasets in hash order, comma-separated)
 *
 * A snapshot is written as step-<8-digit step>.h5.tmp; after every rank has closed it,
 * rank 0 fsyncs it, renames it, fsyncs the directory, then replaces DIR/LATEST
 * (text: the file name) the same way (LATEST.tmp, fsync, rename, fsync dir) and
 * removes the oldest snapshots beyond `keep`. A crash at any point leaves the
 * previous snapshot and LATEST intact.
 *
 * Restart: every rank reads its own slice of each sharded vector for ITS owned
 * range, so a snapshot written at P ranks reads at any other rank count
 * (resharding); per-rank RNG streams are restored only at the same rank count.
 * Before any collective read, rank 0 alone checks the file (HDF5 signature,
 * truncation, lethe format, layer table, dataset shapes) and all ranks agree:
 * a bad file is an error on every rank with the same message, never a hang.
 *
 * Hashes (64-bit FNV-1a, printed by lethe train so runs can be compared):
 *   theta hash  FNV-1a over the bytes of theta[0, n) (little-endian float32);
 *               independent of the rank count.
 *   state hash  each rank hashes its owned slices [lo, min(hi, n)) of every
 *               sharded vector in registration order (theta first, then the
 *               optimizer's states, then later registrations); the P per-rank
 *               hashes are gathered and hashed, as 8 little-endian bytes each, in
 *               rank order. Equal at equal rank counts for equal state.
 *
 * Fault injection (tests): LETHE_FAULT_CKPT_SLEEP=SECONDS makes every rank sleep
 * after writing its data and before closing the snapshot file.
 */
#ifndef LETHE_CHECKPOINT_H
#define LETHE_CHECKPOINT_H

#include "lethe/core.h"
#include "lethe/dist.h"
#include "lethe/model.h"
#include "lethe/optim.h"

#define LT_FNV1A64_INIT 0xcbf29ce484222325ULL
/* FNV-1a (64 bit) of n bytes, continuing from h (LT_FNV1A64_INIT to start). */
uint64_t lt_fnv1a64(uint64_t h, const void *p, size_t n);

#define LT_CKPT_KIND 16

typedef struct {
  char name[LT_LAYER_NAME];
  char kind[LT_CKPT_KIND]; /* "dense": W [rows, cols] at offset, then bias [rows] */
  int64_t offset, rows, cols;
} lt_ckpt_layer;

/* Where the run stands: enough to continue bit for bit (with the registered state). */
typedef struct {
  long task;          /* continual-learning task (0 while runs have one task) */
  long epoch;         /* epoch of the next step = epochs completed */
  long step;          /* steps already taken in that epoch */
  long global_step;   /* steps taken in all */
  long samples;       /* training samples seen in all */
  long optim_steps;   /* the optimizer's step counter */
  double epoch_loss_sum; /* the epoch so far: sum of (mean batch loss * rows) */
  long epoch_correct, epoch_rows;
  double epoch_time;  /* seconds of the epoch so far */
  double train_time;  /* seconds spent in training steps in all */
  double test_acc, test_loss; /* last evaluation (NaN: none yet) */
} lt_ckpt_cursor;

typedef struct {
  const char *deck_text;    /* the resolved deck (root attribute "deck") */
  const char *blis_kernels; /* kernel set BLIS runs */
  int blis_threads;
} lt_ckpt_info;

/* What a write or read did. */
typedef struct {
  char path[1024];     /* the snapshot file */
  uint64_t theta_hash, state_hash;
  double bytes;        /* size of the file */
  double io_seconds;   /* write: create .. LATEST replaced; read: open .. last byte */
  double hash_seconds; /* hashing theta and the state */
  int file_ranks;      /* read: ranks that wrote the file */
  int per_rank_restored; /* read: per-rank arrays were restored (same rank count) */
} lt_ckpt_report;

typedef enum { LT_CKPT_F32 = 0, LT_CKPT_F64, LT_CKPT_I64, LT_CKPT_U64, LT_CKPT_I32 } lt_ckpt_type;

typedef struct lt_ckpt lt_ckpt;

/* A registry of what a snapshot holds, for the flat layout sh (n, lo, hi).
 * sh and info are copied (info's strings must outlive the registry). */
LT_WUR lt_status lt_ckpt_create(lt_ctx *ctx, const lt_shard *sh, const lt_ckpt_info *info,
                                lt_ckpt **ck);
void lt_ckpt_destroy(lt_ckpt **ck);

/* The layer table written to /model/layout and compared on read. */
LT_WUR lt_status lt_ckpt_set_layout(lt_ckpt *ck, const lt_ckpt_layer *layers, int nlayers);
/* The layer table of a model (one row per layer: W [out, in] at w_off); returns
 * the number of rows written (at most max). */
int lt_ckpt_model_layout(const lt_model *m, lt_ckpt_layer *out, int max);

/* /model/theta from the replicated buffer theta[n_pad]: the owner's slice is
 * written; on read each rank reads its slice and the buffer is allgathered
 * (padding set to zero). Registered first, it leads the state hash. */
LT_WUR lt_status lt_ckpt_add_params(lt_ckpt *ck, float *theta);
/* A sharded float32 vector of the layout: owned[hi - lo] is this rank's slice. path
 * is absolute, e.g. "/optim/exp_avg" or "/strategy/ewc/fisher". */
LT_WUR lt_status lt_ckpt_add_sharded(lt_ckpt *ck, const char *path, float *owned);
/* Every lt_optim_state of opt as /optim/<lt_optim_state_name> (the step counter
 * travels in the cursor). */
LT_WUR lt_status lt_ckpt_add_optim(lt_ckpt *ck, lt_optim *opt);
/* A replicated array of count values (same on every rank): rank 0 writes it,
 * every rank reads it; a different count in the file is an error. */
LT_WUR lt_status lt_ckpt_add_replicated(lt_ckpt *ck, const char *path, lt_ckpt_type type,
                                        void *data, size_t count);
/* A per-rank array of count values (count may differ between ranks, e.g. a
 * sharded replay buffer): written as [P, max count] with rank r's values in row r,
 * hashed into the state hash, and restored only at the same rank count (see
 * lt_ckpt_report.per_rank_restored); at another rank count it is left as it is. */
LT_WUR lt_status lt_ckpt_add_per_rank(lt_ckpt *ck, const char *path, lt_ckpt_type type,
                                      void *data, size_t count);
/* A per-rank RNG stream saved in /cursor/rng; restored at the same rank count only. */
LT_WUR lt_status lt_ckpt_add_rng(lt_ckpt *ck, const char *name, lt_rng *r);

/* Collective: write DIR/step-%08ld.h5 (cur->global_step), replace DIR/LATEST and
 * keep the `keep` newest snapshots with a step <= this one (keep = 0: all;
 * snapshots with a later step, from an abandoned timeline, are left alone).
 * Creates DIR. rep may be NULL. */
LT_WUR lt_status lt_ckpt_write(lt_ckpt *ck, const char *dir, long keep, const lt_ckpt_cursor *cur,
                               lt_ckpt_report *rep);

/* Collective: restore the registered state and *cur from `from`: a snapshot file,
 * a checkpoint directory (its LATEST) or a run directory (its ckpt/LATEST).
 * Refuses (same message on every rank, naming the file) a missing, non-HDF5,
 * truncated or foreign file, a layer table that differs from the registered one
 * (naming the first differing layer and what differs) and missing or misshapen
 * datasets. Verifies theta (and, at the same rank count, the state) against the
 * hashes stored in the file. rep may be NULL. */
LT_WUR lt_status lt_ckpt_read(lt_ckpt *ck, const char *from, lt_ckpt_cursor *cur,
                              lt_ckpt_report *rep);

/* The parameters of a snapshot alone, for fine-tuning: its layer table and theta. */
typedef struct {
  char path[1024];       /* the snapshot file `from` resolved to */
  lt_ckpt_layer *layers; /* [nlayers] */
  int nlayers;
  float *theta;          /* [n] */
  size_t n;
} lt_ckpt_params;

/* Collective: rank 0 reads the layer table and /model/theta of `from` (a snapshot
 * file, a checkpoint directory or a run directory, as lt_ckpt_read) with serial
 * HDF5 and checks theta against the file's theta_fnv1a; every rank gets a copy
 * (free with lt_ckpt_params_free). Errors (same text on every rank) start with
 * `what` (e.g. "[finetune] from") and name the file. */
LT_WUR lt_status lt_ckpt_read_params(lt_ctx *ctx, const char *from, const char *what,
                                     lt_ckpt_params *p);
void lt_ckpt_params_free(lt_ckpt_params *p);

/* Collective: the theta and state hashes of the registered state (see above). */
LT_WUR lt_status lt_ckpt_hash(lt_ckpt *ck, uint64_t *theta_hash, uint64_t *state_hash);

#endif
