/* dist: reduce-scatter (ring and MPI), allreduce mode and allgather against
 * sums computed directly. Values are small integers, so float sums are exact
 * in any order and the comparison is exact. */
#include <string.h>

#include "lethe/dist.h"
#include "testutil.h"

static float contrib(int rank, size_t i) { return (float)((int)((i * 7 + (size_t)rank * 13) % 101) - 50); }

static void check_reduce(lt_ctx *ctx, lt_dist_mode mode, lt_coll coll, size_t n) {
  size_t n_pad = (n + 16 * (size_t)ctx->size - 1) / (16 * (size_t)ctx->size) * 16 * (size_t)ctx->size;
  lt_shard sh;
  assert_int_equal(lt_shard_init(ctx, n, n_pad, &sh), LT_OK);
  sh.coll = coll;
  assert_int_equal(sh.slice * (size_t)ctx->size, n_pad);
  assert_int_equal(sh.lo, sh.slice * (size_t)ctx->rank);
  float *full = NULL, *owned = NULL;
  assert_int_equal(lt_calloc_aligned((void **)&full, n_pad, sizeof(float)), 0);
  assert_int_equal(lt_calloc_aligned((void **)&owned, sh.slice, sizeof(float)), 0);
  for (size_t i = 0; i < n_pad; i++) full[i] = contrib(ctx->rank, i);
  assert_int_equal(lt_dist_reduce_grad(ctx, &sh, mode, full, owned), LT_OK);
  for (size_t j = 0; j < sh.slice; j++) {
    double want = 0;
    for (int r = 0; r < ctx->size; r++) want += contrib(r, sh.lo + j);
    if ((double)owned[j] != want)
      fail_msg("rank %d mode %d coll %d: owned[%zu] = %g, want %g", ctx->rank, mode, coll, j,
               (double)owned[j], want);
  }
  /* allgather replicates every owner's slice */
  for (size_t i = 0; i < n_pad; i++) full[i] = -1.0f;
  for (size_t j = 0; j < sh.slice; j++) full[sh.lo + j] = (float)(sh.lo + j);
  assert_int_equal(lt_dist_allgather(ctx, &sh, full), LT_OK);
  for (size_t i = 0; i < n_pad; i++)
    if (full[i] != (float)i) fail_msg("allgather: full[%zu] = %g", i, (double)full[i]);
  lt_free(full);
  lt_free(owned);
}

static void test_reduce_all_modes(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  size_t sizes[] = {1, 17, 1000, 65536 + 3};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    check_reduce(ctx, LT_DIST_SHARDED, LT_COLL_RING, sizes[k]);
    check_reduce(ctx, LT_DIST_SHARDED, LT_COLL_MPI, sizes[k]);
    check_reduce(ctx, LT_DIST_ALLREDUCE, LT_COLL_RING, sizes[k]);
  }
  lt_ctx_destroy(&ctx);
}

static void test_bad_padding(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_shard sh;
  if (ctx->size > 1) {
    assert_int_equal(lt_shard_init(ctx, 10, 16 * (size_t)ctx->size + 1, &sh), LT_ERR_INTERNAL);
    assert_non_null(strstr(ctx->errmsg, "does not split"));
  }
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reduce_all_modes),
    cmocka_unit_test(test_bad_padding),
};
LT_TEST_MPI_MAIN("dist", tests)
