// Kernel helpers compiled once, for the baseline instruction set, and shared by every kernel table: the RoPE
// angle tables and AdamW's bias correction. Both use float64 libm calls (pow, cos, sin), so every instruction
// set gets the same bits as the reference backend's Math.pow / Math.cos / Math.sin rounded to float32.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"

namespace rg {

int linear_prefetch_bytes = 4096;
int linear_small_max_rows = 24;

namespace {

constexpr i64 kRopeCacheMax = 1 << 20;     // positions cached; others get per-call rows
constexpr i64 kRopeCacheFloats = 1 << 26;  // and at most this many floats per table (256 MB)

[[noreturn]] void out_of_memory(size_t bytes) {
  fprintf(stderr, "recyclegpt native kernels: out of memory allocating %zu bytes\n", bytes);
  abort();
}

template <class T>
T* grow(T* p, i64 n) {
  void* q = realloc(p, static_cast<size_t>(n > 0 ? n : 1) * sizeof(T));
  if (!q) out_of_memory(static_cast<size_t>(n) * sizeof(T));
  return static_cast<T*>(q);
}

void rope_fill(double theta, i64 D, double pos, float* c, float* s) {
  const i64 half = D / 2;
  for (i64 i = 0; i < half; ++i) {
    const double angle = pos * pow(theta, static_cast<double>(-2 * i) / static_cast<double>(D));
    c[i] = static_cast<float>(cos(angle));
    s[i] = static_cast<float>(sin(angle));
  }
}

}  // namespace

void rope_tables(RopeCache* t, double theta, i64 D, i64 R, const int32_t* pos, const float** cosTab,
                 const float** sinTab, const int32_t** rows) {
  const i64 half = D / 2;
  i64 maxPos = 0;
  bool cacheable = true;
  for (i64 r = 0; r < R; ++r) {
    if (pos[r] < 0 || pos[r] >= kRopeCacheMax) cacheable = false;
    else if (pos[r] > maxPos) maxPos = pos[r];
  }
  // The cached table is bounded too (x bounds R·H·D, not positions × half); beyond it, per-call rows.
  if ((maxPos + 1) * half > kRopeCacheFloats) cacheable = false;
  if (!cacheable) {  // unusual positions: one table row per call row (R·half ≤ the size of x)
    if (R * half > t->tmpcap) {
      t->tmpc = grow(t->tmpc, R * half), t->tmps = grow(t->tmps, R * half);
      t->tmpcap = R * half;
    }
    if (R > t->tmpidxcap) t->tmpidx = grow(t->tmpidx, R), t->tmpidxcap = R;
    for (i64 r = 0; r < R; ++r) {
      rope_fill(theta, D, pos[r], t->tmpc + r * half, t->tmps + r * half);
      t->tmpidx[r] = static_cast<int32_t>(r);
    }
    *cosTab = t->tmpc, *sinTab = t->tmps, *rows = t->tmpidx;
    return;
  }
  if (t->theta != theta || t->D != D) t->theta = theta, t->D = D, t->rows = 0;
  if (maxPos >= t->rows) {
    i64 n = maxPos + 1 > 2 * t->rows ? maxPos + 1 : 2 * t->rows;
    if (n > kRopeCacheMax) n = kRopeCacheMax;
    if (n * half > kRopeCacheFloats) n = maxPos + 1;
    t->cosv = grow(t->cosv, n * half), t->sinv = grow(t->sinv, n * half);
    for (i64 p = t->rows; p < n; ++p)
      rope_fill(theta, D, static_cast<double>(p), t->cosv + p * half, t->sinv + p * half);
    t->rows = n;
  }
  *cosTab = t->cosv, *sinTab = t->sinv, *rows = pos;
}

void rope_cache_free(RopeCache* t) {
  free(t->cosv), free(t->sinv), free(t->tmpc), free(t->tmps), free(t->tmpidx);
  *t = RopeCache{};
}

void adam_bias_correction(double beta1, double beta2, double step, float* bc1, float* bc2) {
  *bc1 = static_cast<float>(1.0 - pow(beta1, step));
  *bc2 = static_cast<float>(1.0 - pow(beta2, step));
}

}  // namespace rg
