/* Softmax cross-entropy (fused, stable) and argmax over optionally masked classes. */
#include <math.h>

#include "lethe/model.h"

static inline int take(const uint8_t *mask, int c) { return !mask || mask[c]; }

/* Index of the largest unmasked logit of one row (first on ties); -1 if all masked. */
static int row_argmax(const float *row, const uint8_t *mask, int C) {
  int best = -1;
  for (int c = 0; c < C; c++)
    if (take(mask, c) && (best < 0 || row[c] > row[best])) best = c;
  return best;
}

/* dlogits[B, C], logits[B, C], y[B], mask[C] or NULL */
double lt_softmax_xent(float *dlogits, long *correct, const float *logits, const int32_t *y,
                       const uint8_t *mask, int B, int C, float scale) {
  double total = 0.0;
  long ok = 0;
  for (int i = 0; i < B; i++) {
    const float *row = logits + (size_t)i * (size_t)C;
    int am = row_argmax(row, mask, C);
    if (am == y[i]) ok++;
    float mx = am >= 0 ? row[am] : 0.0f;
    double sum = 0.0;
    for (int c = 0; c < C; c++)
      if (take(mask, c)) sum += (double)expf(row[c] - mx);
    double lse = (double)mx + log(sum);
    total += lse - (double)row[y[i]];
    if (dlogits) {
      float *d = dlogits + (size_t)i * (size_t)C;
      float inv = (float)(1.0 / sum);
      for (int c = 0; c < C; c++) d[c] = take(mask, c) ? scale * expf(row[c] - mx) * inv : 0.0f;
      d[y[i]] -= scale;
    }
  }
  if (correct) *correct = ok;
  return total;
}

/* out[B], logits[B, C], mask[C] or NULL */
void lt_argmax_rows(int32_t *out, const float *logits, const uint8_t *mask, int B, int C) {
  for (int i = 0; i < B; i++) out[i] = row_argmax(logits + (size_t)i * (size_t)C, mask, C);
}
