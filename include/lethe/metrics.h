/* lethe metrics: the run's metrics.h5, written collectively with parallel HDF5.
 *
 *   /train/loss, /train/lr, /train/step_time   float64 [steps]     (extendible)
 *   /ranks/step_time                           float64 [P, steps]  each rank writes its row
 *   /epoch/<column>                            float64 [epochs]    (extendible)
 *   root attributes: provenance (deck, lethe_version, git_revision, ranks,
 *                    blis_kernels, blis_threads, created, seed) and summaries
 *
 * Rows are buffered in memory (no allocation per step) and written by
 * lt_metrics_flush, which opens the file with the MPI-IO driver, extends and
 * writes every dataset, sets the summary attributes and closes it again: between
 * flushes the file is closed and consistent, so h5py or h5dump can read it while
 * the run goes on.
 */
#ifndef LETHE_METRICS_H
#define LETHE_METRICS_H

#include "lethe/core.h"

/* Per-epoch columns, in this order under /epoch. */
enum {
  LT_EP_TRAIN_LOSS = 0,
  LT_EP_TRAIN_ACC,
  LT_EP_TEST_LOSS,
  LT_EP_TEST_ACC,
  LT_EP_SAMPLES_PER_S,
  LT_EP_TIME,
  LT_EP_FLOPS, /* cumulative training FLOPs at the epoch's end (lt_grow_step_flops) */
  LT_EP_NCOLS
};

typedef struct {
  const char *deck_text;
  const char *blis_kernels;
  int blis_threads;
  uint64_t seed;
} lt_metrics_info;

typedef struct lt_metrics lt_metrics;

/* Collective. Creates path (replacing any file there) when keep_steps < 0.
 * Otherwise (resume) reopens it and cuts every series back to keep_steps steps
 * and keep_epochs epochs, so rows written after the snapshot being resumed are
 * dropped; a file with another rank count gets a fresh /ranks/step_time whose
 * earlier rows are NaN. max_buffered is the most steps between two flushes. */
LT_WUR lt_status lt_metrics_open(lt_ctx *ctx, const char *path, const lt_metrics_info *info,
                                 long keep_steps, long keep_epochs, long max_buffered,
                                 lt_metrics **m);
/* Collective: flushes, then frees. Accepts NULL. */
LT_WUR lt_status lt_metrics_close(lt_metrics **m);

/* Buffer one step: the global loss and lr (same on every rank) and this rank's
 * step time. Not collective. Error when max_buffered steps are pending. */
LT_WUR lt_status lt_metrics_step(lt_metrics *m, double loss, double lr, double step_time);
/* Buffer one epoch row of LT_EP_NCOLS values (same on every rank). */
LT_WUR lt_status lt_metrics_epoch(lt_metrics *m, const double *row);
/* Set (at the next flush) a root summary attribute (same value on every rank). */
LT_WUR lt_status lt_metrics_summary(lt_metrics *m, const char *name, double value);

/* Continual-learning summary of an accuracy matrix R [T, T] (row i: accuracies on
 * every task after training task i) with k >= 1 tasks trained so far (rows 0..k-1
 * valid) and b [T] the untrained model's accuracies (may be NULL: FWT is NaN):
 *   ACC = mean_{j<k} R[k-1][j]
 *   BWT = mean_{j<k-1} (R[k-1][j] - R[j][j])                 (NaN when k = 1)
 *   FWT = mean_{1<=j<k} (R[j-1][j] - b[j])                   (NaN when k = 1)
 *   forgetting = mean_{j<k-1} (max_{l<k-1} R[l][j] - R[k-1][j])   (Chaudhry et al. 2018)
 * With k = T these are the definitions of the issue (1-based there). */
typedef struct {
  double acc, bwt, fwt, forgetting;
} lt_cl_summary;
lt_cl_summary lt_cl_summarize(int T, int k, const double *R, const double *b);

/* Record the CL matrices for the next flush: /cl/acc [T,T], /cl/acc_task_il [T,T]
 * (R_til may be NULL), /cl/acc_init [T] (b may be NULL), and /cl attributes ACC,
 * BWT, FWT, forgetting (and ACC_task_il, BWT_task_il, forgetting_task_il) over the
 * k tasks trained so far. Rows >= k are written as NaN. Same values on every rank. */
LT_WUR lt_status lt_metrics_cl(lt_metrics *m, int T, int k, const double *R, const double *R_til,
                               const double *b);

/* Record a fixed float64 dataset path [n] (e.g. "/grow/phase_flops"), written (or
 * overwritten) at every flush from v, which must stay valid until lt_metrics_close
 * (same values on every rank; at most 8 such datasets; path under 64 characters). */
LT_WUR lt_status lt_metrics_fixed(lt_metrics *m, const char *path, const double *v, int n);

/* Collective: write everything buffered, update attributes, close the file. */
LT_WUR lt_status lt_metrics_flush(lt_metrics *m);

long lt_metrics_steps(const lt_metrics *m);  /* steps in the file + buffered */
long lt_metrics_epochs(const lt_metrics *m);

#endif
