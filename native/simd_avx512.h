// Vector primitives for AVX-512 (16 floats). Included inside the rg_avx512 namespace by kernels_avx512.cc,
// which is compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma.
// All kernels in kernels_impl.h are written against this small set of primitives.

#define RG_HAVE_FMA 1
constexpr int W = 16;
typedef __m512 V;

// GEMM micro-tile: MR rows × NV vectors. 14×2 uses 28 of the 32 zmm registers for accumulators.
constexpr int GEMM_MR = 14;
constexpr int GEMM_NV = 2;
// Small-M linear: accumulators per x row (kernels_impl.h, linear_row), and x rows per pass over a W row
// (6: 24 accumulators + 4 weight vectors of the 32 zmm registers).
constexpr int LIN_ACC = 4;
constexpr int LIN_GROUP = 6;
// Decode attention: value accumulators a pass over several query rows may keep in registers (kernels_impl.h values_col).
constexpr int ATT_ACC = 24;
// linear on panels (kernels_impl.h, linear_panels): accumulators a pass may keep, and x rows per pass (6: 2 chains × 6
// rows × a panel's 2 vectors = 24 accumulators + 2 weight vectors + a broadcast of the 32 zmm registers).
constexpr int PANEL_ACC = 24;
constexpr int PANEL_MR = 6;

static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vset1(float a) { return _mm512_set1_ps(a); }
static inline V vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, V a) { _mm512_storeu_ps(p, a); }
static inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
// First n (0 <= n <= W) lanes from p, zero elsewhere; never touches memory past p[n-1].
static inline V vload_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
static inline void vstore_n(float* p, V a, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), a); }
static inline V vkeep_n(V a, int n) { return _mm512_maskz_mov_ps(tail_mask(n), a); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
static inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
static inline V vmin(V a, V b) { return _mm512_min_ps(a, b); }
static inline V vsqrt(V a) { return _mm512_sqrt_ps(a); }
// a·b + c (fused)
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
// c − a·b (fused)
static inline V vfnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
// Horizontal sum in a fixed tree order (256+256, 128+128, ...): deterministic.
static inline float vhsum(V a) {
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}
static inline float vhmax(V a) { return _mm512_reduce_max_ps(a); }
// r[i] = vhsum(a[i]) for the W vectors a[0..W), each lane by vhsum's own tree (bit for bit), in one transposed
// reduction: 16 → 8 → 4 → 2 → 1 vectors of partial sums (~3 operations per key instead of ~8 for a vhsum each).
#define RG_HAVE_VTSUM 1
static inline V vtsum(const V* a) {
  V u[8], w[4];
  for (int i = 0; i < 8; ++i)  // [x(q0+q2), x(q1+q3), y(..), y(..)]: each vector's lanes k + k+8 (vhsum's 256+256)
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit lane L of w[i]: a[4i + L]'s four sums (vhsum's 128+128)
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xDD));
  const V s0 = _mm512_add_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));  // movehl
  const V s1 = _mm512_add_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
  const V r = _mm512_add_ps(_mm512_shuffle_ps(s0, s1, 0x44), _mm512_shuffle_ps(s0, s1, 0xEE));  // movehdup
  // r[4L + e] holds a[4e + L]'s sum
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}
// Σ of the lanes squared, in float64 (8+8 lanes).
static inline void vsq_acc_f64(V a, __m512d* lo, __m512d* hi) {
  __m512d l = _mm512_maskz_cvtps_pd(0xff, _mm512_castps512_ps256(a));
  __m512d h = _mm512_maskz_cvtps_pd(0xff, _mm512_extractf32x8_ps(a, 1));
  *lo = _mm512_fmadd_pd(l, l, *lo);
  *hi = _mm512_fmadd_pd(h, h, *hi);
}
typedef __m512d VD2;
// lo += lanes 0..7, hi += lanes 8..15, in float64
static inline void vacc_f64(V a, __m512d* lo, __m512d* hi) {
  *lo = _mm512_add_pd(*lo, _mm512_maskz_cvtps_pd(0xff, _mm512_castps512_ps256(a)));
  *hi = _mm512_add_pd(*hi, _mm512_maskz_cvtps_pd(0xff, _mm512_extractf32x8_ps(a, 1)));
}
static inline VD2 vd_zero() { return _mm512_setzero_pd(); }
static inline double vd_hsum(VD2 a) {
  __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_maskz_extractf64x4_pd(0xff, a, 1));
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

// exp(x), Cephes single-precision polynomial (about 1 ulp); 2^n applied with scalef so that large negative
// inputs underflow gradually to 0 instead of wrapping.
static inline V vexp(V x) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.7228f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  V p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  V r2 = _mm512_mul_ps(r, r);
  V y = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

// In-register transpose of a 16×16 block: r[i] lane j ↔ r[j] lane i (GEMM packing).
static inline void vtranspose(V r[16]) {
  V t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    t[4 * c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    t[4 * c + 1] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    t[4 * c + 2] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[4 * c + 3] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[4 * c], t[4 * c + 2], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[4 * c], t[4 * c + 2], 0xDD);
    r[c + 4] = _mm512_shuffle_f32x4(t[4 * c + 1], t[4 * c + 3], 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(t[4 * c + 1], t[4 * c + 3], 0xDD);
  }
}

// Misaligned streams without split loads: a vector starting `s` floats past a 64-byte boundary is built
// from the two aligned vectors around it with one two-source permute. Same values as an unaligned load.
constexpr bool HAVE_COMBINE = true;
typedef __m512i VIdx;
static inline int misalign(const float* p) { return static_cast<int>((reinterpret_cast<uintptr_t>(p) & 63) >> 2); }
static inline VIdx combine_index(int s) {
  return _mm512_add_epi32(_mm512_set1_epi32(s),
                          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
// lanes s..W-1 of lo, then lanes 0..s-1 of hi
static inline V vcombine(V lo, V hi, VIdx idx) { return _mm512_permutex2var_ps(lo, idx, hi); }

// An asm statement, not _mm_prefetch: GCC 12 deleted the builtin's prefetches from the small-M rows once they were
// inlined into their callers (the W stream then ran without them, ~10% slower from DRAM).
static inline void prefetch_l1(const void* p) { __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p))); }

// Weight storage to float32, W values from p, exact (kernels.h's WeightRef): f16 with vcvtph2ps, bf16 as the high
// half of a float32, int8 sign-extended then converted. f16_to_f32 widens one float16 (a q8_0 scale).
static inline V vload_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline V vload_bf16(const uint16_t* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
static inline V vload_i8(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

// q8_0 weights × int8 activations (linear_q8_int): ggml's Q8_0 × Q8_0 dot on 256-bit vectors, shared with simd_avx2.h.
#include "simd_x86_q8.h"
