// Vector primitives for AVX2 + FMA (8 floats). Included inside the rg_avx2 namespace by kernels_avx2.cc,
// which is compiled with -mavx2 -mfma.

#define RG_HAVE_FMA 1
constexpr int W = 8;
typedef __m256 V;

// GEMM micro-tile: 6 rows × 2 vectors = 12 accumulators of the 16 ymm registers.
constexpr int GEMM_MR = 6;
constexpr int GEMM_NV = 2;
// Small-M linear: accumulators per x row (kernels_impl.h, linear_row), and x rows per pass over a W row: 3 rows keep
// 12 accumulators + 4 weight vectors in the 16 ymm registers; at M = 4 they spilled (1.28x the M = 1 time for f32,
// 1.43x for f16, where 2 passes of 2 rows cost ~1.1x).
constexpr int LIN_ACC = 4;
constexpr int LIN_GROUP = 3;
// Decode attention: value accumulators a pass over several query rows may keep in registers (kernels_impl.h values_col).
constexpr int ATT_ACC = 10;
// linear on panels (kernels_impl.h, linear_panels): accumulators a pass may keep, and x rows per pass (one row:
// 2 chains × a panel's 4 vectors = 8 accumulators + 4 weight vectors; 3 rows: 2 × 3 × 2 vectors = 12 + 2, of the 16
// ymm registers with a broadcast). One row on 2 vectors a pass ran 1.12x the row-major kernel's time from DRAM; on the
// whole panel 0.76x (M = 2, 3, 4: 0.94, 0.93, 0.73x; recycle-large's 65 products, 2 threads, Zen 5).
constexpr int PANEL_ACC = 12;
constexpr int PANEL_MR = 3;

static inline V vzero() { return _mm256_setzero_ps(); }
static inline V vset1(float a) { return _mm256_set1_ps(a); }
static inline V vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, V a) { _mm256_storeu_ps(p, a); }
static inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// First n (0 <= n <= W) lanes from p, zero elsewhere; masked lanes are not read.
static inline V vload_n(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
static inline void vstore_n(float* p, V a, int n) { _mm256_maskstore_ps(p, tail_mask(n), a); }
static inline V vkeep_n(V a, int n) { return _mm256_and_ps(a, _mm256_castsi256_ps(tail_mask(n))); }
static inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
static inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
static inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
static inline V vsqrt(V a) { return _mm256_sqrt_ps(a); }
static inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline V vfnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
static inline float vhsum(V a) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}
// r[i] = vhsum(a[i]) for the W vectors a[0..W), each lane by vhsum's own tree (bit for bit), in one transposed
// reduction: 8 → 4 → 2 → 1 vectors of partial sums.
#define RG_HAVE_VTSUM 1
static inline V vtsum(const V* a) {
  V u[4];
  for (int i = 0; i < 4; ++i)  // 128-bit lane 0: a[2i]'s lo + hi, lane 1: a[2i+1]'s (vhsum's 128+128)
    u[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
  const V s0 = _mm256_add_ps(_mm256_unpacklo_ps(u[0], u[1]), _mm256_unpackhi_ps(u[0], u[1]));  // movehl
  const V s1 = _mm256_add_ps(_mm256_unpacklo_ps(u[2], u[3]), _mm256_unpackhi_ps(u[2], u[3]));
  const V r = _mm256_add_ps(_mm256_shuffle_ps(s0, s1, 0x44), _mm256_shuffle_ps(s0, s1, 0xEE));  // movehdup
  return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));  // r = a0 a2 a4 a6 a1 a3 a5 a7
}
static inline float vhmax(V a) {
  __m128 s4 = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  __m128 s2 = _mm_max_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_max_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}
typedef __m256d VD2;
static inline VD2 vd_zero() { return _mm256_setzero_pd(); }
static inline void vsq_acc_f64(V a, VD2* lo, VD2* hi) {
  __m256d l = _mm256_cvtps_pd(_mm256_castps256_ps128(a));
  __m256d h = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
  *lo = _mm256_fmadd_pd(l, l, *lo);
  *hi = _mm256_fmadd_pd(h, h, *hi);
}
static inline void vacc_f64(V a, VD2* lo, VD2* hi) {
  *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
  *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
}
static inline double vd_hsum(VD2 a) {
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

// exp(x), Cephes polynomial; inputs are clamped to [-87.3, 88] so that 2^n can be built from exponent bits
// (below -87.3 gives ~1e-38 instead of a denormal or 0).
static inline V vexp(V x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365478515625f));
  V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  V p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  V r2 = _mm256_mul_ps(r, r);
  V y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n in [-126, 127] after the clamps: 2^n = (n + 127) << 23
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// In-register transpose of an 8×8 block (GEMM packing).
static inline void vtranspose(V r[8]) {
  V t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // u[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// No cheap two-source permute here: misaligned streams use plain unaligned loads (see simd_avx512.h).
constexpr bool HAVE_COMBINE = false;
typedef int VIdx;
static inline int misalign(const float*) { return 0; }
static inline VIdx combine_index(int s) { return s; }
static inline V vcombine(V lo, V, VIdx) { return lo; }

// An asm statement, not _mm_prefetch: GCC 12 deleted the builtin's prefetches from the small-M rows once they were
// inlined into their callers (the W stream then ran without them, ~10% slower from DRAM).
static inline void prefetch_l1(const void* p) { __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p))); }

// Weight storage to float32, W values from p, exact (kernels.h's WeightRef): f16 with F16C, bf16 as the high half
// of a float32, int8 sign-extended then converted. f16_to_f32 widens one float16 (a q8_0 scale).
static inline V vload_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline V vload_bf16(const uint16_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
static inline V vload_i8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

// q8_0 weights × int8 activations (linear_q8_int): ggml's Q8_0 × Q8_0 dot, shared with simd_avx512.h.
#include "simd_x86_q8.h"
