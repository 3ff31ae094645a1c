/* Counter-based RNG: output k of a stream is a strong 64-bit mix of key + k * golden.
 * This is SplitMix64 with an explicit counter, so streams are O(1) to save,
 * restore and jump; the key hashes (seed, rank, purpose) so streams differ. */
#include <math.h>

#include "lethe/core.h"

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

#define GOLDEN 0x9e3779b97f4a7c15ULL

void lt_rng_seed(lt_rng *r, uint64_t seed, uint64_t rank, uint64_t purpose) {
  uint64_t k = mix64(seed + GOLDEN);
  k = mix64(k ^ (rank + 0x632be59bd9b4e019ULL));
  k = mix64(k ^ (purpose * 0xd1b54a32d192ed03ULL));
  r->key = k;
  r->ctr = 0;
}

uint64_t lt_rng_u64(lt_rng *r) {
  uint64_t k = r->ctr++;
  return mix64(r->key + (k + 1) * GOLDEN);
}

double lt_rng_uniform(lt_rng *r) { return (double)(lt_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t lt_rng_below(lt_rng *r, uint64_t n) {
  /* Lemire's multiply-shift with rejection: unbiased */
  uint64_t x = lt_rng_u64(r);
  __uint128_t m = (__uint128_t)x * n;
  uint64_t lo = (uint64_t)m;
  if (lo < n) {
    uint64_t t = -n % n;
    while (lo < t) {
      x = lt_rng_u64(r);
      m = (__uint128_t)x * n;
      lo = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

double lt_rng_normal(lt_rng *r) {
  /* Box-Muller; one output per call keeps the stream position simple (2 draws) */
  double u1 = 1.0 - lt_rng_uniform(r); /* (0, 1] */
  double u2 = lt_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void lt_rng_jump(lt_rng *r, uint64_t n) { r->ctr += n; }

void lt_rng_shuffle_u32(lt_rng *r, uint32_t *a, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)lt_rng_below(r, i);
    uint32_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}
