/* lethe data: continual-learning scenarios (split, permuted, rotated, joint)
 * built from a rank's strided shards; see include/lethe/scenario.h.
 *
 * Construction is local but for one lt_agree (validation and allocation
 * failures) and one allreduce (the tasks' global sizes). Validation depends only
 * on the configuration and the datasets' metadata, identical on every rank, so
 * an invalid configuration fails on every rank with its own message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lethe/scenario.h"

/* Each task's permutation owns 2^40 outputs of the scenario stream (a shuffle
 * of d < 2^31 features draws about d); block 0 is the class-order shuffle. */
#define TASK_SHIFT 40

static const char *const kind_names[LT_SCEN_KIND_COUNT] = {"joint", "split", "permuted",
                                                            "rotated"};

const char *lt_scenario_kind_name(lt_scenario_kind k) {
  return k >= 0 && k < LT_SCEN_KIND_COUNT ? kind_names[k] : "unknown";
}

const char *lt_cl_setting_name(lt_cl_setting s) {
  switch (s) {
    case LT_CL_CLASS_IL: return "class-IL";
    case LT_CL_TASK_IL: return "task-IL";
    case LT_CL_DOMAIN_IL: return "domain-IL";
  }
  return "unknown";
}

void lt_scenario_cfg_default(lt_scenario_cfg *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->kind = LT_SCEN_JOINT;
  cfg->num_tasks = 1;
}

/* ---------------------------------------------------------------- kernels */

void lt_scenario_permutation(uint32_t *perm, int d, uint64_t seed, int task, int identity) {
  for (int j = 0; j < d; j++) perm[j] = (uint32_t)j;
  if (identity) return;
  lt_rng r;
  lt_rng_seed(&r, seed, 0, LT_RNG_DATA); /* rank 0's stream on every rank */
  lt_rng_jump(&r, ((uint64_t)task + 1) << TASK_SHIFT);
  lt_rng_shuffle_u32(&r, perm, (size_t)d);
}

/* cos and sin of an angle in degrees; exact for multiples of 90 degrees (so that
 * quarter turns move pixels without interpolation). */
static void cos_sin_deg(double degrees, double *c, double *s) {
  double a = fmod(degrees, 360.0);
  if (a < 0) a += 360.0;
  if (a == 0.0) {
    *c = 1.0, *s = 0.0;
  } else if (a == 90.0) {
    *c = 0.0, *s = 1.0;
  } else if (a == 180.0) {
    *c = -1.0, *s = 0.0;
  } else if (a == 270.0) {
    *c = 0.0, *s = -1.0;
  } else {
    const double rad = a * (3.14159265358979323846 / 180.0);
    *c = cos(rad), *s = sin(rad);
  }
}

/* in[i][j], or fill outside [0, h) x [0, w) */
static inline double pixel(const float *in, int h, int w, long i, long j, float fill) {
  return (i >= 0 && i < h && j >= 0 && j < w) ? (double)in[i * w + j] : (double)fill;
}

void lt_rotate_bilinear(float *out, const float *in, int h, int w, double degrees, float fill) {
  double c, s;
  cos_sin_deg(degrees, &c, &s);
  const double cy = 0.5 * (h - 1), cx = 0.5 * (w - 1);
  for (int i = 0; i < h; i++) {
    const double v = cy - i;
    for (int j = 0; j < w; j++) {
      const double u = j - cx;
      const double js = cx + c * u + s * v, is = cy + s * u - c * v; /* source point */
      const double fj = floor(js), fi = floor(is);
      if (!(fi > -2.0 && fi < h && fj > -2.0 && fj < w)) { /* all 4 neighbours outside */
        out[(size_t)i * w + j] = fill;
        continue;
      }
      const long i0 = (long)fi, j0 = (long)fj;
      const double ty = is - fi, tx = js - fj;
      const double top = (1.0 - tx) * pixel(in, h, w, i0, j0, fill) +
                         tx * pixel(in, h, w, i0, j0 + 1, fill);
      const double bot = (1.0 - tx) * pixel(in, h, w, i0 + 1, j0, fill) +
                         tx * pixel(in, h, w, i0 + 1, j0 + 1, fill);
      out[(size_t)i * w + j] = (float)((1.0 - ty) * top + ty * bot);
    }
  }
}

/* ---------------------------------------------------------------- validation */

static lt_status validate(lt_ctx *ctx, const lt_scenario_cfg *cfg, const lt_dataset *tr,
                          const lt_dataset *te) {
  if (!cfg || !tr || !te)
    LT_ERROR(ctx, LT_ERR_ARG, "scenario: missing %s", !cfg ? "configuration" : "dataset");
  if (cfg->kind < 0 || cfg->kind >= LT_SCEN_KIND_COUNT)
    LT_ERROR(ctx, LT_ERR_ARG,
             "scenario: kind %d is unknown; allowed are joint, split, permuted, rotated",
             (int)cfg->kind);
  const char *kn = lt_scenario_kind_name(cfg->kind);
  const int K = tr->num_classes, T = cfg->num_tasks;
  if (tr->d != te->d || tr->num_classes != te->num_classes)
    LT_ERROR(ctx, LT_ERR_ARG,
             "scenario: train '%s' has %d features and %d classes but test '%s' has %d and %d",
             tr->name, tr->d, tr->num_classes, te->name, te->d, te->num_classes);
  if (T < 1)
    LT_ERROR(ctx, LT_ERR_ARG, "scenario %s: num_tasks = %d; at least 1 task is needed", kn, T);
  /* options of another kind would be silently ignored: reject them */
  const int split = cfg->kind == LT_SCEN_SPLIT;
  const struct {
    int set, allowed;
    const char *what, *kinds;
  } opts[] = {
      {cfg->task_il != 0, split, "task_il (task-incremental)", "split"},
      {cfg->class_order != NULL || cfg->class_order_len != 0, split, "class_order", "split"},
      {cfg->shuffle_classes != 0, split, "shuffle_classes", "split"},
      {cfg->first_identity != 0, cfg->kind == LT_SCEN_PERMUTED, "first_identity", "permuted"},
      {cfg->angles != NULL || cfg->num_angles != 0, cfg->kind == LT_SCEN_ROTATED, "angles",
       "rotated"},
      {cfg->fill != 0.0f, cfg->kind == LT_SCEN_ROTATED, "fill", "rotated"},
      {cfg->joint != 0, cfg->kind != LT_SCEN_JOINT, "joint (union of the tasks)",
       "split, permuted and rotated"},
  };
  for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
    if (opts[k].set && !opts[k].allowed)
      LT_ERROR(ctx, LT_ERR_ARG, "scenario %s: option %s applies only to %s scenarios", kn,
               opts[k].what, opts[k].kinds);

  switch (cfg->kind) {
    case LT_SCEN_JOINT:
      if (T != 1)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "scenario joint: num_tasks = %d; joint training is one task (num_tasks = 1)", T);
      break;
    case LT_SCEN_SPLIT:
      if (T > K || K % T != 0)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "scenario split: num_tasks = %d does not divide num_classes = %d of '%s'; "
                 "every task takes num_classes / num_tasks classes (allowed: the divisors of %d)",
                 T, K, tr->name, K);
      if (cfg->class_order) {
        if (cfg->shuffle_classes)
          LT_ERROR(ctx, LT_ERR_ARG,
                   "scenario split: give either class_order or shuffle_classes, not both");
        if (cfg->class_order_len != K)
          LT_ERROR(ctx, LT_ERR_ARG,
                   "scenario split: class_order has %d entries; it must list all num_classes = "
                   "%d classes once", cfg->class_order_len, K);
        uint8_t *seen = NULL;
        LT_CALLOC(ctx, seen, K);
        for (int k = 0; k < K; k++) {
          int c = cfg->class_order[k];
          if (c < 0 || c >= K || seen[c]) {
            lt_free(seen);
            LT_ERROR(ctx, LT_ERR_ARG,
                     "scenario split: class_order[%d] = %d %s; class_order must be a "
                     "permutation of 0..%d", k, c, c < 0 || c >= K ? "is out of range" :
                     "repeats an earlier entry", K - 1);
          }
          seen[c] = 1;
        }
        lt_free(seen);
      } else if (cfg->class_order_len != 0) {
        LT_ERROR(ctx, LT_ERR_ARG, "scenario split: class_order_len = %d without a class_order",
                 cfg->class_order_len);
      }
      break;
    case LT_SCEN_PERMUTED:
      break; /* T >= 1 checked above */
    case LT_SCEN_ROTATED:
      if (tr->h <= 0 || tr->w <= 0)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "scenario rotated needs images: '%s' has flat features [N, %d] (no image "
                 "shape); the file's x must be [N, H, W] or [N, C, H, W]", tr->name, tr->d);
      if ((long)tr->c * tr->h * tr->w != tr->d || te->h != tr->h || te->w != tr->w ||
          te->c != tr->c)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "scenario rotated needs images: '%s' has %d features per sample with image "
                 "shape %d x %d x %d (train) and %d x %d x %d (test); the file's x must be "
                 "[N, H, W] or [N, C, H, W]", tr->name, tr->d, tr->c, tr->h, tr->w, te->c, te->h,
                 te->w);
      if (!cfg->angles || cfg->num_angles != T)
        LT_ERROR(ctx, LT_ERR_ARG,
                 "scenario rotated: %d angle(s) given for num_tasks = %d; give exactly one "
                 "angle (degrees) per task", cfg->angles ? cfg->num_angles : 0, T);
      for (int t = 0; t < T; t++)
        if (!isfinite(cfg->angles[t]))
          LT_ERROR(ctx, LT_ERR_ARG, "scenario rotated: angle %d is %g; angles must be finite", t,
                   cfg->angles[t]);
      break;
    default:
      break;
  }
  if (cfg->kind == LT_SCEN_ROTATED && !isfinite(cfg->fill))
    LT_ERROR(ctx, LT_ERR_ARG, "scenario rotated: fill = %g must be finite", (double)cfg->fill);
  return LT_OK;
}

/* ---------------------------------------------------------------- building */

static lt_status new_dataset(lt_ctx *ctx, const lt_dataset *src, int n, int task,
                             lt_dataset **out) {
  *out = NULL;
  lt_dataset *ds = NULL;
  LT_CALLOC(ctx, ds, 1);
  *out = ds; /* freed by the caller's cleanup on failure */
  LT_CALLOC(ctx, ds->x, (size_t)n * (size_t)src->d);
  LT_CALLOC(ctx, ds->y, n);
  LT_CALLOC(ctx, ds->index, n);
  ds->n = n;
  ds->n_global = 0; /* summed at the end of create */
  ds->d = src->d;
  ds->num_classes = src->num_classes;
  ds->c = src->c;
  ds->h = src->h;
  ds->w = src->w;
  const char *sep = src->name[0] ? " " : "";
  if (task >= 0)
    snprintf(ds->name, sizeof(ds->name), "%.40s%stask %d", src->name, sep, task);
  else
    snprintf(ds->name, sizeof(ds->name), "%.40s%sjoint", src->name, sep);
  return LT_OK;
}

/* Row k of dst from row i of src, transformed for the task. */
static void copy_row(lt_dataset *dst, int k, const lt_dataset *src, int i, const lt_task *tk,
                     lt_scenario_kind kind, float fill) {
  const size_t d = (size_t)src->d;
  float *o = dst->x + (size_t)k * d;
  const float *x = src->x + (size_t)i * d;
  if (kind == LT_SCEN_PERMUTED) {
    for (size_t j = 0; j < d; j++) o[j] = x[tk->perm[j]];
  } else if (kind == LT_SCEN_ROTATED) {
    const size_t plane = (size_t)src->h * (size_t)src->w;
    for (int ch = 0; ch < src->c; ch++)
      lt_rotate_bilinear(o + ch * plane, x + ch * plane, src->h, src->w, tk->angle, fill);
  } else {
    memcpy(o, x, d * sizeof(float));
  }
  dst->y[k] = src->y[i];
  dst->index[k] = src->index[i];
}

/* Task t's rows of src (split: labels in the task, else all rows), transformed. */
static lt_status build_split_of(lt_ctx *ctx, const lt_scenario *sc, const int *task_of,
                                const lt_dataset *src, int t, float fill, lt_dataset **out) {
  int n = 0;
  for (int i = 0; i < src->n; i++) n += !task_of || task_of[src->y[i]] == t;
  LT_CHECK(ctx, new_dataset(ctx, src, n, t, out));
  int k = 0;
  for (int i = 0; i < src->n; i++)
    if (!task_of || task_of[src->y[i]] == t) copy_row(*out, k++, src, i, &sc->tasks[t], sc->kind,
                                                      fill);
  return LT_OK;
}

static lt_status build_joint(lt_ctx *ctx, lt_scenario *sc, const lt_dataset *train) {
  long n = 0;
  for (int t = 0; t < sc->num_tasks; t++) n += sc->tasks[t].train->n;
  if (n > 0x7fffffffL)
    LT_ERROR(ctx, LT_ERR_ARG,
             "scenario %s: the union of the %d tasks holds %ld rows on rank %d; at most %d",
             lt_scenario_kind_name(sc->kind), sc->num_tasks, n, ctx->rank, 0x7fffffff);
  LT_CHECK(ctx, new_dataset(ctx, train, (int)n, -1, &sc->joint_train));
  lt_dataset *j = sc->joint_train;
  const size_t d = (size_t)train->d;
  long k = 0;
  for (int t = 0; t < sc->num_tasks; t++) {
    const lt_dataset *s = sc->tasks[t].train;
    memcpy(j->x + (size_t)k * d, s->x, (size_t)s->n * d * sizeof(float));
    memcpy(j->y + k, s->y, (size_t)s->n * sizeof(*s->y));
    memcpy(j->index + k, s->index, (size_t)s->n * sizeof(*s->index));
    k += s->n;
  }
  return LT_OK;
}

/* Class order, task classes and masks, permutations and angles, then the data. */
static lt_status build(lt_ctx *ctx, const lt_scenario_cfg *cfg, const lt_dataset *train,
                       const lt_dataset *test, lt_scenario *sc) {
  const int K = sc->num_classes, T = sc->num_tasks, split = sc->kind == LT_SCEN_SPLIT;
  LT_CALLOC(ctx, sc->class_order, K);
  for (int k = 0; k < K; k++) sc->class_order[k] = cfg->class_order ? cfg->class_order[k] : k;
  if (split && cfg->shuffle_classes) {
    uint32_t *o = NULL;
    LT_CALLOC(ctx, o, K);
    for (int k = 0; k < K; k++) o[k] = (uint32_t)k;
    lt_rng r;
    lt_rng_seed(&r, cfg->seed, 0, LT_RNG_DATA); /* block 0 of the scenario stream */
    lt_rng_shuffle_u32(&r, o, (size_t)K);
    for (int k = 0; k < K; k++) sc->class_order[k] = (int)o[k];
    lt_free(o);
  }
  int *task_of = NULL; /* split: class -> task */
  if (split) {
    LT_CALLOC(ctx, task_of, K);
    for (int k = 0; k < K; k++) task_of[sc->class_order[k]] = k / (K / T);
  }
  lt_status st = LT_OK;
  for (int t = 0; t < T && st == LT_OK; t++) {
    lt_task *tk = &sc->tasks[t];
    const int nc = split ? K / T : K;
    tk->num_task_classes = nc;
    if (lt_calloc_aligned((void **)&tk->classes, (size_t)nc, sizeof(int)) ||
        lt_calloc_aligned((void **)&tk->mask, (size_t)K, sizeof(uint8_t))) {
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "out of memory for the classes of task %d", t);
      break;
    }
    for (int k = 0; k < nc; k++) {
      tk->classes[k] = sc->class_order[split ? t * nc + k : k];
      tk->mask[tk->classes[k]] = 1;
    }
    if (sc->kind == LT_SCEN_PERMUTED) {
      if (lt_calloc_aligned((void **)&tk->perm, (size_t)sc->d, sizeof(uint32_t))) {
        st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                          "out of memory for the permutation of task %d (%d features)", t, sc->d);
        break;
      }
      lt_scenario_permutation(tk->perm, sc->d, cfg->seed, t, t == 0 && cfg->first_identity);
    }
    if (sc->kind == LT_SCEN_ROTATED) tk->angle = cfg->angles[t];
    st = build_split_of(ctx, sc, task_of, train, t, cfg->fill, &tk->train);
    if (st == LT_OK) st = build_split_of(ctx, sc, task_of, test, t, cfg->fill, &tk->test);
  }
  lt_free(task_of);
  if (st == LT_OK && cfg->joint) st = build_joint(ctx, sc, train);
  return st;
}

lt_status lt_scenario_create(lt_ctx *ctx, const lt_scenario_cfg *cfg, const lt_dataset *train,
                             const lt_dataset *test, lt_scenario **out) {
  *out = NULL;
  lt_scenario *sc = NULL;
  /* validation gives the same answer on every rank; the agreement below also
   * covers allocation failures, which are local */
  lt_status st = validate(ctx, cfg, train, test);
  if (st == LT_OK && (lt_calloc_aligned((void **)&sc, 1, sizeof(*sc)) ||
                      lt_calloc_aligned((void **)&sc->tasks, (size_t)cfg->num_tasks,
                                        sizeof(lt_task))))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                      "out of memory for a scenario of %d tasks", cfg->num_tasks);
  if (st == LT_OK) {
    sc->kind = cfg->kind;
    sc->setting = cfg->kind == LT_SCEN_SPLIT ? (cfg->task_il ? LT_CL_TASK_IL : LT_CL_CLASS_IL)
                  : cfg->kind == LT_SCEN_JOINT ? LT_CL_CLASS_IL
                                               : LT_CL_DOMAIN_IL;
    sc->num_tasks = cfg->num_tasks;
    sc->num_classes = train->num_classes;
    sc->d = train->d;
    st = build(ctx, cfg, train, test, sc);
  }
  /* global sizes: one allreduce of [train_0, test_0, train_1, ..., joint] */
  long *n = NULL;
  const int T = st == LT_OK ? cfg->num_tasks : 0, cnt = 2 * T + 1;
  if (st == LT_OK && lt_calloc_aligned((void **)&n, (size_t)cnt, sizeof(long)))
    st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__, "out of memory");
  st = lt_agree(ctx, st);
  if (st == LT_OK) {
    for (int t = 0; t < T; t++) {
      n[2 * t] = sc->tasks[t].train->n;
      n[2 * t + 1] = sc->tasks[t].test->n;
    }
    n[2 * T] = sc->joint_train ? sc->joint_train->n : 0;
    if (MPI_Allreduce(MPI_IN_PLACE, n, cnt, MPI_LONG, MPI_SUM, ctx->comm) != MPI_SUCCESS)
      st = lt_error_set(ctx, LT_ERR_MPI, __FILE__, __LINE__, __func__,
                        "MPI_Allreduce of the scenario's task sizes failed");
  }
  if (st == LT_OK) {
    for (int t = 0; t < T; t++) {
      sc->tasks[t].train->n_global = n[2 * t];
      sc->tasks[t].test->n_global = n[2 * t + 1];
    }
    if (sc->joint_train) sc->joint_train->n_global = n[2 * T];
  }
  lt_free(n);
  if (st != LT_OK) {
    lt_scenario_destroy(&sc);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  *out = sc;
  return LT_OK;
}

void lt_scenario_destroy(lt_scenario **psc) {
  if (!psc || !*psc) return;
  lt_scenario *sc = *psc;
  if (sc->tasks)
    for (int t = 0; t < sc->num_tasks; t++) {
      lt_task *tk = &sc->tasks[t];
      lt_dataset_destroy(&tk->train);
      lt_dataset_destroy(&tk->test);
      lt_free(tk->mask);
      lt_free(tk->classes);
      lt_free(tk->perm);
    }
  lt_dataset_destroy(&sc->joint_train);
  lt_free(sc->tasks);
  lt_free(sc->class_order);
  lt_free(sc);
  *psc = NULL;
}

const uint8_t *lt_scenario_train_mask(const lt_scenario *sc, int t) {
  if (!sc || t < 0 || t >= sc->num_tasks || sc->setting != LT_CL_TASK_IL) return NULL;
  return sc->tasks[t].mask;
}

lt_status lt_scenario_check_batch(lt_ctx *ctx, const lt_scenario *sc, int global_batch) {
  const int P = ctx->size, T = sc->num_tasks, cnt = T + 1;
  if (global_batch < P)
    LT_ERROR(ctx, LT_ERR_ARG,
             "global batch size %d is smaller than the number of ranks %d: every rank needs at "
             "least one row per step", global_batch, P);
  const int lb = lt_local_batch(global_batch, ctx->rank, P);
  struct {
    int steps, rank;
  } *s = NULL;
  LT_CALLOC(ctx, s, cnt);
  for (int t = 0; t < cnt; t++) {
    const lt_dataset *ds = t < T ? sc->tasks[t].train : sc->joint_train;
    s[t].steps = ds ? ds->n / lb : 1; /* no joint set: never the shortest */
    s[t].rank = ctx->rank;
  }
  if (MPI_Allreduce(MPI_IN_PLACE, s, cnt, MPI_2INT, MPI_MINLOC, ctx->comm) != MPI_SUCCESS) {
    lt_free(s);
    LT_ERROR(ctx, LT_ERR_MPI, "MPI_Allreduce of the scenario's steps per epoch failed");
  }
  for (int t = 0; t < cnt; t++) {
    if (s[t].steps >= 1) continue;
    const lt_dataset *ds = t < T ? sc->tasks[t].train : sc->joint_train;
    const int r = s[t].rank;
    char what[32];
    if (t < T)
      snprintf(what, sizeof(what), "task %d", t);
    else
      snprintf(what, sizeof(what), "the joint training set");
    lt_free(s);
    LT_ERROR(ctx, LT_ERR_ARG,
             "scenario %s: %s has %ld training samples over %d ranks, too few for the global "
             "batch size %d: rank %d holds fewer than its local batch of %d rows",
             lt_scenario_kind_name(sc->kind), what, ds->n_global, P, global_batch, r,
             lt_local_batch(global_batch, r, P));
  }
  lt_free(s);
  return LT_OK;
}
