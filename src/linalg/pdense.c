/* Distributed dense algebra with ScaLAPACK/BLACS (see pdense.h). Debian's
 * ScaLAPACK ships no C header: the prototypes used are declared here, with the
 * hidden length arguments gfortran passes for CHARACTER arguments. */
#include "lethe/pdense.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <blis.h>

/* BLACS C interface */
extern void Cblacs_pinfo(int *mypnum, int *nprocs);
extern int Csys2blacs_handle(MPI_Comm comm);
extern void Cfree_blacs_system_handle(int handle);
extern void Cblacs_gridinit(int *ictxt, const char *order, int nprow, int npcol);
extern void Cblacs_gridinfo(int ictxt, int *nprow, int *npcol, int *myrow, int *mycol);
extern void Cblacs_gridexit(int ictxt);
/* ScaLAPACK (Fortran) */
extern int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
                   const int *nprocs);
extern void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
                      const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
                      int *info);
extern void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
                     const int *desca, int *info, size_t);
extern void pdpotri_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
                     const int *desca, int *info, size_t);
extern void pdpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
                     const int *ia, const int *ja, const int *desca, double *b, const int *ib,
                     const int *jb, const int *descb, int *info, size_t);
extern void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia,
                     const int *ja, const int *desca, double *w, double *z, const int *iz,
                     const int *jz, const int *descz, double *work, const int *lwork, int *iwork,
                     const int *liwork, int *info, size_t, size_t);

void lt_pgrid_shape(int P, int *nprow, int *npcol) {
  int r = 1;
  for (int d = 1; d * d <= P; d++)
    if (P % d == 0) r = d;
  *nprow = r;
  *npcol = P / r;
}

lt_status lt_pgrid_create(lt_ctx *ctx, int nprow, int npcol, lt_pgrid **out) {
  *out = NULL;
  if (nprow == 0 && npcol == 0) lt_pgrid_shape(ctx->size, &nprow, &npcol);
  if (nprow < 1 || npcol < 1 || nprow * npcol > ctx->size)
    LT_ERROR(ctx, LT_ERR_ARG, "pdense: a %d x %d process grid does not fit %d rank(s)", nprow,
             npcol, ctx->size);
  lt_pgrid *g = NULL;
  LT_CALLOC(ctx, g, 1);
  g->ctx = ctx;
  int me = 0, np = 0;
  Cblacs_pinfo(&me, &np); /* initialises BLACS once per process */
  g->sys = Csys2blacs_handle(ctx->comm);
  g->ictxt = g->sys;
  Cblacs_gridinit(&g->ictxt, "Row", nprow, npcol); /* the first nprow * npcol ranks */
  g->nprow = nprow;
  g->npcol = npcol;
  g->in_grid = ctx->rank < nprow * npcol;
  g->myrow = g->mycol = -1;
  if (g->in_grid) {
    int pr, pc;
    Cblacs_gridinfo(g->ictxt, &pr, &pc, &g->myrow, &g->mycol);
    if (pr != nprow || pc != npcol || g->myrow != ctx->rank / npcol ||
        g->mycol != ctx->rank % npcol) {
      lt_pgrid_destroy(&g);
      LT_ERROR(ctx, LT_ERR_INTERNAL, "pdense: BLACS made a %d x %d grid (asked %d x %d)", pr,
               pc, nprow, npcol);
    }
  } else {
    g->ictxt = -1;
  }
  *out = g;
  return LT_OK;
}

void lt_pgrid_destroy(lt_pgrid **pg) {
  if (!pg || !*pg) return;
  lt_pgrid *g = *pg;
  if (g->ictxt >= 0) Cblacs_gridexit(g->ictxt);
  Cfree_blacs_system_handle(g->sys);
  lt_free(g);
  *pg = NULL;
}

lt_status lt_pmat_create(lt_pgrid *g, int m, int n, int nb, lt_pmat **out) {
  lt_ctx *ctx = g->ctx;
  *out = NULL;
  if (m < 1 || n < 1 || nb < 1)
    LT_ERROR(ctx, LT_ERR_ARG, "pdense: matrix %d x %d with block size %d (all must be >= 1)", m,
             n, nb);
  lt_pmat *pm = NULL;
  LT_CALLOC(ctx, pm, 1);
  pm->g = g;
  pm->m = m;
  pm->n = n;
  pm->nb = nb;
  lt_status st = LT_OK;
  if (g->in_grid) {
    int zero = 0, info = 0;
    pm->mloc = numroc_(&m, &nb, &g->myrow, &zero, &g->nprow);
    pm->nloc = numroc_(&n, &nb, &g->mycol, &zero, &g->npcol);
    pm->lld = pm->mloc > 1 ? pm->mloc : 1;
    descinit_(pm->desc, &m, &n, &nb, &nb, &zero, &zero, &g->ictxt, &pm->lld, &info);
    if (info != 0)
      st = lt_error_set(ctx, LT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                        "pdense: descinit failed (info %d) for %d x %d, nb %d", info, m, n, nb);
    else if (lt_calloc_aligned((void **)&pm->a, (size_t)pm->lld * (size_t)(pm->nloc + 1),
                               sizeof(double)) != 0)
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "pdense: out of memory for the local part of a %d x %d matrix", m, n);
  } else {
    pm->desc[1] = -1;
  }
  st = lt_agree(ctx, st);
  if (st != LT_OK) {
    lt_pmat_destroy(&pm);
    return lt_error_trace(ctx, st, __FILE__, __LINE__, __func__);
  }
  *out = pm;
  return LT_OK;
}

void lt_pmat_destroy(lt_pmat **ppm) {
  if (!ppm || !*ppm) return;
  lt_free((*ppm)->a);
  lt_free(*ppm);
  *ppm = NULL;
}

/* local index -> global index along one dimension */
static int l2g(int l, int nb, int me, int np) { return ((l / nb) * np + me) * nb + l % nb; }

double *lt_pmat_at(lt_pmat *pm, int i, int j) {
  const lt_pgrid *g = pm->g;
  if (!g->in_grid || i < 0 || j < 0 || i >= pm->m || j >= pm->n) return NULL;
  int nb = pm->nb;
  if ((i / nb) % g->nprow != g->myrow || (j / nb) % g->npcol != g->mycol) return NULL;
  int li = (i / (nb * g->nprow)) * nb + i % nb, lj = (j / (nb * g->npcol)) * nb + j % nb;
  return pm->a + (size_t)lj * (size_t)pm->lld + (size_t)li;
}

void lt_pmat_set_full(lt_pmat *pm, const double *full, int ldf) {
  const lt_pgrid *g = pm->g;
  if (!g->in_grid) return;
  for (int lj = 0; lj < pm->nloc; lj++) {
    int j = l2g(lj, pm->nb, g->mycol, g->npcol);
    double *col = pm->a + (size_t)lj * (size_t)pm->lld;
    for (int li = 0; li < pm->mloc; li++)
      col[li] = full[(size_t)j * (size_t)ldf + (size_t)l2g(li, pm->nb, g->myrow, g->nprow)];
  }
}

lt_status lt_pmat_get_full(lt_pmat *pm, double *full, int lower_sym) {
  const lt_pgrid *g = pm->g;
  lt_ctx *ctx = g->ctx;
  size_t m = (size_t)pm->m;
  memset(full, 0, m * (size_t)pm->n * sizeof(double));
  if (g->in_grid)
    for (int lj = 0; lj < pm->nloc; lj++) {
      size_t j = (size_t)l2g(lj, pm->nb, g->mycol, g->npcol);
      const double *col = pm->a + (size_t)lj * (size_t)pm->lld;
      for (int li = 0; li < pm->mloc; li++)
        full[j * m + (size_t)l2g(li, pm->nb, g->myrow, g->nprow)] = col[li];
    }
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, full, (int)(m * (size_t)pm->n), MPI_DOUBLE,
                                  MPI_SUM, ctx->comm));
  if (lower_sym)
    for (size_t j = 1; j < (size_t)pm->n; j++)
      for (size_t i = 0; i < j && i < m; i++)
        full[j * m + i] = lower_sym == 2 ? 0.0 : full[i * m + j]; /* (i, j) <- (j, i) */
  return LT_OK;
}

void lt_pmat_add_diag(lt_pmat *pm, double v) {
  int n = pm->m < pm->n ? pm->m : pm->n;
  for (int i = 0; i < n; i++) {
    double *x = lt_pmat_at(pm, i, i);
    if (x) *x += v;
  }
}

/* Agree on a ScaLAPACK info code over ctx->comm (outside the grid: 0). */
static lt_status agree_info(lt_ctx *ctx, const char *what, int n, int info) {
  int worst[2] = {info < 0 ? -info : 0, info > 0 ? info : 0};
  LT_CHECK_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, worst, 2, MPI_INT, MPI_MAX, ctx->comm));
  if (worst[0])
    LT_ERROR(ctx, LT_ERR_INTERNAL, "pdense: %s of a %d x %d matrix: argument %d illegal", what,
             n, n, worst[0]);
  if (worst[1])
    LT_ERROR(ctx, LT_ERR_NUM,
             "pdense: %s of a %d x %d matrix failed at column %d (info %d): not positive "
             "definite or not converged; raise the damping",
             what, n, n, worst[1], worst[1]);
  return LT_OK;
}

static lt_status check_square(lt_ctx *ctx, const lt_pmat *A, const char *what) {
  if (A->m != A->n)
    LT_ERROR(ctx, LT_ERR_ARG, "pdense: %s needs a square matrix, got %d x %d", what, A->m, A->n);
  return LT_OK;
}

lt_status lt_pchol(lt_pmat *A) {
  lt_ctx *ctx = A->g->ctx;
  LT_CHECK(ctx, check_square(ctx, A, "Cholesky"));
  int one = 1, info = 0;
  if (A->g->in_grid) pdpotrf_("L", &A->n, A->a, &one, &one, A->desc, &info, 1);
  LT_CHECK(ctx, agree_info(ctx, "Cholesky (pdpotrf)", A->n, info));
  return LT_OK;
}

lt_status lt_pinv_spd(lt_pmat *A) {
  lt_ctx *ctx = A->g->ctx;
  LT_CHECK(ctx, lt_pchol(A));
  int one = 1, info = 0;
  if (A->g->in_grid) pdpotri_("L", &A->n, A->a, &one, &one, A->desc, &info, 1);
  LT_CHECK(ctx, agree_info(ctx, "inverse (pdpotri)", A->n, info));
  return LT_OK;
}

lt_status lt_psolve_chol(const lt_pmat *L, lt_pmat *B) {
  lt_ctx *ctx = L->g->ctx;
  LT_CHECK(ctx, check_square(ctx, L, "solve"));
  if (B->g != L->g || B->m != L->n || B->nb != L->nb)
    LT_ERROR(ctx, LT_ERR_ARG,
             "pdense: solve with a %d x %d factor (nb %d) and %d x %d right-hand sides (nb %d): "
             "rows, block size and grid must match",
             L->m, L->n, L->nb, B->m, B->n, B->nb);
  int one = 1, info = 0;
  if (L->g->in_grid)
    pdpotrs_("L", &L->n, &B->n, L->a, &one, &one, L->desc, B->a, &one, &one, B->desc, &info, 1);
  LT_CHECK(ctx, agree_info(ctx, "solve (pdpotrs)", L->n, info));
  return LT_OK;
}

lt_status lt_peigvals(lt_pmat *A, double *w) {
  lt_pgrid *g = A->g;
  lt_ctx *ctx = g->ctx;
  LT_CHECK(ctx, check_square(ctx, A, "eigenvalues"));
  lt_pmat *Z = NULL;
  LT_CHECK(ctx, lt_pmat_create(g, A->n, A->n, A->nb, &Z));
  int one = 1, info = 0, lwork = -1, liwork = -1, iq = 0;
  double wq = 0.0, *work = NULL;
  int *iwork = NULL;
  lt_status st = LT_OK;
  if (g->in_grid) { /* workspace query, then the run */
    pdsyevd_("V", "L", &A->n, A->a, &one, &one, A->desc, w, Z->a, &one, &one, Z->desc, &wq,
             &lwork, &iq, &liwork, &info, 1, 1);
    /* Debian's ScaLAPACK 2.2 under-reports the workspace of pdsyevd's back-transform
     * (PDORMTR then complains about argument 16, LWORK): take the larger of the query
     * and the documented minimum, doubled, plus PDORMTR's own (NP + NQ + NB) NB */
    int zero = 0, nb = A->nb;
    int np = numroc_(&A->n, &nb, &g->myrow, &zero, &g->nprow);
    int nq = numroc_(&A->n, &nb, &g->mycol, &zero, &g->npcol);
    long tri = 3L * A->n + (long)nb * ((np + 1) > 3 ? (np + 1) : 3);
    long docmin = 1L + 6L * A->n + 2L * np * nq;
    docmin = (docmin > tri ? docmin : tri) + 2L * A->n;
    long want = (long)wq > docmin ? (long)wq : docmin;
    want = 2 * want + (long)(np + nq + nb) * nb;
    lwork = want > INT32_MAX ? INT32_MAX : (int)want;
    liwork = iq > 7 * A->n + 8 * g->npcol + 2 ? iq : 7 * A->n + 8 * g->npcol + 2;
    if (info == 0 && (lt_calloc_aligned((void **)&work, (size_t)lwork, sizeof(double)) != 0 ||
                      lt_calloc_aligned((void **)&iwork, (size_t)liwork, sizeof(int)) != 0))
      st = lt_error_set(ctx, LT_ERR_MEM, __FILE__, __LINE__, __func__,
                        "pdense: out of memory for pdsyevd's workspace (%d doubles)", lwork);
  }
  st = lt_agree(ctx, st);
  if (st == LT_OK) {
    if (g->in_grid && info == 0)
      pdsyevd_("V", "L", &A->n, A->a, &one, &one, A->desc, w, Z->a, &one, &one, Z->desc, work,
               &lwork, iwork, &liwork, &info, 1, 1);
    st = agree_info(ctx, "eigen-decomposition (pdsyevd)", A->n, info);
  }
  lt_free(work);
  lt_free(iwork);
  lt_pmat_destroy(&Z);
  LT_CHECK(ctx, st);
  /* rank 0 is always in the grid; ranks outside receive w from it */
  LT_CHECK_MPI(ctx, MPI_Bcast(w, A->n, MPI_DOUBLE, 0, ctx->comm));
  return LT_OK;
}

/* ---------------------------------------------------------------- BLIS, double */

void lt_dgemm(int ta, int tb, int m, int n, int k, double alpha, const double *A, int lda,
              const double *B, int ldb, double beta, double *C, int ldc) {
  if (m <= 0 || n <= 0) return;
  bli_dgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            (dim_t)m, (dim_t)n, (dim_t)k, &alpha, (double *)A, (inc_t)lda, 1, (double *)B,
            (inc_t)ldb, 1, &beta, C, (inc_t)ldc, 1);
}

void lt_dsyrk_lower_t(int n, int k, double alpha, const double *X, int ldx, double *C, int ldc) {
  if (n <= 0 || k <= 0) return;
  double beta = 1.0;
  /* C += alpha op(X) op(X)^T with op(X) = X^T [n, k] */
  bli_dsyrk(BLIS_LOWER, BLIS_TRANSPOSE, (dim_t)n, (dim_t)k, &alpha, (double *)X, (inc_t)ldx, 1,
            &beta, C, (inc_t)ldc, 1);
}

void lt_dsym_from_lower(double *C, int n, int ldc) {
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) C[(size_t)i * ldc + j] = C[(size_t)j * ldc + i];
}
