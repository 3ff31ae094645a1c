/* lethe unlearn: forget sets, Selective Synaptic Dampening (Foster et al., AAAI
 * 2024), the NegGrad / fine-tune baselines and the membership-inference attack.
 *
 * Forget set D_f: whole classes, a sub-class (samples of given classes whose
 * /train/group value is in a list) or random training samples (an exact count,
 * chosen by a seeded permutation of the global sample indices, so the set does
 * not depend on the rank count). The retain set D_r is the rest.
 *
 * SSD importances, one value per parameter, on the owned slice only:
 *   batch_mean (the authors' code): I = 1/K sum_k gbar_k .* gbar_k, gbar_k the
 *     gradient of the mean cross-entropy (true labels) over global batch k. The
 *     batches are consecutive runs of `batch` samples of a global order of the
 *     set: by_class sorts by (label, global index), as the authors' unshuffled,
 *     class-sorted loader; shuffled is a seeded permutation of the global indices.
 *     A batch is the same set of samples at any rank count (each rank contributes
 *     the rows of its shard that belong to it), so I depends on the rank count
 *     only through float rounding.
 *   empirical / sampled: the per-sample diagonal Fisher of lt_fisher_diag.
 * Selection and dampening (all parameters, biases included):
 *   selected where I_Df > alpha I_D;  theta *= min(lambda I_D / I_Df, 1) there.
 * Since I_D contains D_f, I_Df / I_D <= about N / N_f: alpha at or above that
 * selects (almost) nothing.
 *
 * Membership inference (the SSD authors' evaluation): feature = entropy of the
 * softmax output; a logistic regression with balanced class weights learns
 * retain-set training samples (member, 1) against test samples (non-member, 0);
 * the score is the fraction of forget samples it predicts to be members.
 */
#ifndef LETHE_UNLEARN_H
#define LETHE_UNLEARN_H

#include "lethe/core.h"
#include "lethe/data.h"
#include "lethe/dist.h"
#include "lethe/model.h"
#include "lethe/trainer.h"

typedef enum { LT_FORGET_CLASS = 0, LT_FORGET_SUBCLASS, LT_FORGET_RANDOM } lt_forget_kind;
typedef enum { LT_IMP_BATCH_MEAN = 0, LT_IMP_EMPIRICAL, LT_IMP_SAMPLED } lt_importance_kind;
typedef enum { LT_IMP_BY_CLASS = 0, LT_IMP_SHUFFLED } lt_imp_batching;

const char *lt_forget_kind_name(lt_forget_kind k);
const char *lt_importance_name(lt_importance_kind k);
const char *lt_imp_batching_name(lt_imp_batching b);

/* ------------------------------------------------------------ forget set */

typedef struct {
  lt_forget_kind kind;
  const int *classes; /* class, subclass */
  int nclasses;
  const int *groups;  /* subclass */
  int ngroups;
  double fraction;    /* random, when count == 0 */
  long count;         /* random: exact number (> 0 wins over fraction) */
  uint64_t seed;      /* random */
} lt_forget_cfg;

/* Marks forget[i] = 1 for the local rows i of train (its strided shard; uses
 * train->index and train->y) that belong to D_f, 0 otherwise; group[train->n] is
 * the rows' /train/group values (NULL unless subclass). *n_forget gets the global
 * size of D_f. Collective. Errors on every rank, naming the value: a class outside
 * [0, num_classes), a subclass without groups or without a /train/group, a
 * fraction/count giving no sample or every sample, an empty forget set (e.g. a
 * group that no sample of the classes has) or a forget set holding every sample. */
LT_WUR lt_status lt_forget_select(lt_ctx *ctx, const lt_forget_cfg *cfg, const lt_dataset *train,
                                  const int32_t *group, uint8_t *forget, long *n_forget);

/* The /<split>/group values of the local rows of ds (strided shard, ds->index),
 * read from the dataset file path; *group = NULL (no error) when the file has no
 * /<split>/group. Free with lt_free. Collective. */
LT_WUR lt_status lt_read_groups(lt_ctx *ctx, const char *path, const char *split,
                                const lt_dataset *ds, int32_t **group);

/* ------------------------------------------------------------ SSD */

/* Importances of ds at the model's theta into I_owned[sh->slice] (padding 0).
 * batch_mean uses batching and global_batch (>= 1; seed for shuffled); the
 * per-sample kinds use lt_fisher_diag with global_batch as chunk size (sampled
 * labels from the stream (ctx->seed, rank, LT_RNG_FISHER)). An empty ds gives 0.
 * Collective. */
LT_WUR lt_status lt_ssd_importance(lt_ctx *ctx, lt_model *m, const lt_shard *sh,
                                   const lt_dataset *ds, lt_importance_kind kind,
                                   lt_imp_batching batching, int global_batch, uint64_t seed,
                                   float *I_owned);

/* Selection and dampening of n values of theta (an owned slice): where
 * I_Df[i] > alpha I_D[i], theta[i] *= min(lambda I_D[i] / I_Df[i], 1) (computed in
 * double). Returns the number of selected parameters (local). Not collective. */
long lt_ssd_dampen(float *theta, const float *I_D, const float *I_Df, size_t n, double alpha,
                   double lambda);

/* Stored I_D beside a checkpoint. The file holds /importance/I_D float32 [n]
 * (each rank writes its owned slice, collectively) and root attributes
 * theta_fnv1a (hex: the hash of the model it was computed for), params, layout
 * (e.g. "784-400-400-10"), importance, batching, batch_size, seconds (the time
 * it took). Written as PATH.tmp and renamed. */
typedef struct {
  uint64_t theta_hash;
  char layout[128];
  lt_importance_kind kind;
  lt_imp_batching batching;
  int batch;
  double seconds;
} lt_importance_meta;

LT_WUR lt_status lt_importance_write(lt_ctx *ctx, const lt_shard *sh, const char *path,
                                     const lt_importance_meta *meta, const float *I_owned);
/* Reads the owned slice. Rank 0 checks the file first (all ranks agree): an error
 * naming the file when it is not an importance file, holds another parameter
 * count, was computed for another model (its theta hash or layout differs from
 * want's) or with other settings (kind, batching, batch). *exists = 0 (no error)
 * when the file does not exist. want->seconds is set to the stored time. */
LT_WUR lt_status lt_importance_read(lt_ctx *ctx, const lt_shard *sh, const char *path,
                                    lt_importance_meta *want, float *I_owned, int *exists);

/* ------------------------------------------------------------ baselines */

/* `steps` steps of gradient ascent on the mean CE of batches of ds (the
 * trainer's optimizer: plain SGD for NegGrad), cycling through epochs of a
 * batcher. Collective. */
LT_WUR lt_status lt_unlearn_neggrad(lt_ctx *ctx, lt_trainer *t, const lt_dataset *ds,
                                    int global_batch, long steps);

/* `epochs` epochs of ordinary training on ds with the trainer's optimizer:
 * the training loop shared by retrain and fine-tune. Collective. */
LT_WUR lt_status lt_unlearn_train_epochs(lt_ctx *ctx, lt_trainer *t, const lt_dataset *ds,
                                         int global_batch, int epochs);

/* ------------------------------------------------------------ MIA */

/* Entropy -sum p log p of the softmax of each of the B rows of logits [B, C]
 * (0 log 0 = 0), in double. */
void lt_softmax_entropy(double *h, const float *logits, int B, int C);

/* Logistic regression on one feature: minimise
 *   sum_i s_i log(1 + exp(-t_i (w x_i + b))) + w^2 / (2 C),   t_i = 2 y_i - 1,
 * with balanced weights s_i = n / (2 n_{y_i}) (balanced = 1) or s_i = 1, by
 * Newton's method with a backtracking line search, in double. C <= 0 means no
 * penalty. sklearn's LogisticRegression(class_weight="balanced", C=1,
 * multi_class="multinomial") on two classes is this with C = 2 (its penalty
 * (|w_0|^2 + |w_1|^2) / 2 is |w_1 - w_0|^2 / 4 at the optimum). Errors when a
 * class is empty or the iteration does not converge. */
LT_WUR lt_status lt_logreg_fit(lt_ctx *ctx, const double *x, const uint8_t *y, long n, int balanced,
                               double C, double *w, double *b);

/* Area under the ROC curve of score s for labels y (ties count one half). */
double lt_auc(const double *s, const uint8_t *y, long n);

typedef struct {
  double score; /* fraction of the forget set predicted member */
  double auc;   /* the attack's AUC on its own training data (members vs non-members) */
  double w, b;  /* the fitted regression */
} lt_mia_result;

/* The attack on the model at its theta: entropies of retain (members), test
 * (non-members) and forget; fit on all ranks' retain and test entropies
 * (gathered to every rank; the same fit everywhere), score on the forget set.
 * Collective. */
LT_WUR lt_status lt_mia(lt_ctx *ctx, lt_model *m, const lt_dataset *retain, const lt_dataset *test,
                        const lt_dataset *forget, lt_mia_result *res);

#define LT_MIA_C 2.0 /* sklearn's C = 1 in its multinomial form: see lt_logreg_fit */

#endif
