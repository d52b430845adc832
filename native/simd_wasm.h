// Vector primitives for WebAssembly SIMD128 (4 floats). Included inside the rg_wasm namespace by
// native/wasm/kernels_wasm.cc, which is compiled with clang --target=wasm32 -msimd128.
//
// SIMD128 has no fused multiply-add (relaxed-simd's is not deterministic across engines), so vfma rounds twice,
// as the scalar path does; max / min follow the scalar path's `a > b ? a : b` (NaN and ±0 included) instead of
// f32x4.max's NaN propagation. Half-precision and int8 weights widen in integer lanes, exactly (kernels.h).
#include <wasm_simd128.h>

constexpr int W = 4;
typedef v128_t V;

// GEMM micro-tile: 4 rows × 2 vectors = 8 accumulators, leaving room in the 16 xmm registers that engines map
// v128 values to (some are reserved as scratch).
constexpr int GEMM_MR = 4;
constexpr int GEMM_NV = 2;
// Small-M linear (kernels_impl.h, linear_row): 2 accumulators per x row, not the native 4. With 4, M = 2 keeps
// 8 accumulators + 4 weight vectors + x loads live, which spills in 16 registers (a 2-row call took 1.33x a 1-row one).
constexpr int LIN_ACC = 2;
#define RG_ROW_INLINE  // row functions stay functions here (kernels_impl.h)
// x rows per pass over a W row (kernels_impl.h): all 8 rows in one pass, as measured when LIN_ACC was chosen.
constexpr int LIN_GROUP = 8;
// Decode attention: value accumulators a pass over several query rows may keep in registers (kernels_impl.h values_col).
constexpr int ATT_ACC = 10;
// linear on panels (kernels_impl.h, linear_panels): accumulators a pass may keep (as AVX2: 16 registers), and x
// rows per pass.
constexpr int PANEL_ACC = 12;
constexpr int PANEL_MR = 3;

static inline V vzero() { return wasm_f32x4_splat(0.0f); }
static inline V vset1(float a) { return wasm_f32x4_splat(a); }
static inline V vload(const float* p) { return wasm_v128_load(p); }
static inline void vstore(float* p, V a) { wasm_v128_store(p, a); }
// First n (0 <= n <= W) lanes from p, zero elsewhere; lanes past n are not read (they may lie past memory's end).
static inline V vload_n(const float* p, int n) {
  if (n >= W) return wasm_v128_load(p);
  float t[W] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < n; ++i) t[i] = p[i];
  return wasm_v128_load(t);
}
static inline void vstore_n(float* p, V a, int n) {
  if (n >= W) {
    wasm_v128_store(p, a);
    return;
  }
  float t[W];
  wasm_v128_store(t, a);
  for (int i = 0; i < n; ++i) p[i] = t[i];
}
static inline V vkeep_n(V a, int n) {
  const V lane = wasm_i32x4_make(0, 1, 2, 3);
  return wasm_v128_and(a, wasm_i32x4_gt(wasm_i32x4_splat(n), lane));
}
static inline V vadd(V a, V b) { return wasm_f32x4_add(a, b); }
static inline V vsub(V a, V b) { return wasm_f32x4_sub(a, b); }
static inline V vmul(V a, V b) { return wasm_f32x4_mul(a, b); }
static inline V vdiv(V a, V b) { return wasm_f32x4_div(a, b); }
static inline V vmax(V a, V b) { return wasm_v128_bitselect(a, b, wasm_f32x4_gt(a, b)); }
static inline V vmin(V a, V b) { return wasm_v128_bitselect(a, b, wasm_f32x4_lt(a, b)); }
static inline V vsqrt(V a) { return wasm_f32x4_sqrt(a); }
// Not fused on this path: a·b rounded, then + c.
static inline V vfma(V a, V b, V c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }
static inline V vfnma(V a, V b, V c) { return wasm_f32x4_sub(c, wasm_f32x4_mul(a, b)); }

// Fixed pairwise order: (lane0 + lane2) + (lane1 + lane3).
static inline float vhsum(V a) {
  const V s2 = wasm_f32x4_add(a, wasm_i32x4_shuffle(a, a, 2, 3, 2, 3));
  return wasm_f32x4_extract_lane(s2, 0) + wasm_f32x4_extract_lane(s2, 1);
}
static inline float vhmax(V a) {
  float m = wasm_f32x4_extract_lane(a, 0);
  const float l1 = wasm_f32x4_extract_lane(a, 1), l2 = wasm_f32x4_extract_lane(a, 2),
              l3 = wasm_f32x4_extract_lane(a, 3);
  m = l1 > m ? l1 : m;
  m = l2 > m ? l2 : m;
  return l3 > m ? l3 : m;
}

// Float64 accumulation of W floats: lanes 0-1 into lo, 2-3 into hi.
typedef v128_t VD2;
static inline VD2 vd_zero() { return wasm_f64x2_splat(0.0); }
static inline void vsq_acc_f64(V a, VD2* lo, VD2* hi) {
  const VD2 l = wasm_f64x2_promote_low_f32x4(a);
  const VD2 h = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 2, 3));
  *lo = wasm_f64x2_add(*lo, wasm_f64x2_mul(l, l));
  *hi = wasm_f64x2_add(*hi, wasm_f64x2_mul(h, h));
}
static inline void vacc_f64(V a, VD2* lo, VD2* hi) {
  *lo = wasm_f64x2_add(*lo, wasm_f64x2_promote_low_f32x4(a));
  *hi = wasm_f64x2_add(*hi, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 2, 3)));
}
static inline double vd_hsum(VD2 a) { return wasm_f64x2_extract_lane(a, 0) + wasm_f64x2_extract_lane(a, 1); }

// exp(x), the Cephes polynomial of simd_avx2.h with separate multiplies and adds; inputs clamped to [-87.3, 88] so
// that 2^n can be built from exponent bits.
static inline V vexp(V x) {
  x = wasm_f32x4_min(x, wasm_f32x4_splat(88.0f));
  x = wasm_f32x4_max(x, wasm_f32x4_splat(-87.3365478515625f));
  const V n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  V r = vfnma(n, wasm_f32x4_splat(0.693359375f), x);
  r = vfnma(n, wasm_f32x4_splat(-2.12194440e-4f), r);
  V p = wasm_f32x4_splat(1.9875691500e-4f);
  p = vfma(p, r, wasm_f32x4_splat(1.3981999507e-3f));
  p = vfma(p, r, wasm_f32x4_splat(8.3334519073e-3f));
  p = vfma(p, r, wasm_f32x4_splat(4.1665795894e-2f));
  p = vfma(p, r, wasm_f32x4_splat(1.6666665459e-1f));
  p = vfma(p, r, wasm_f32x4_splat(5.0000001201e-1f));
  const V y = vfma(p, wasm_f32x4_mul(r, r), wasm_f32x4_add(r, wasm_f32x4_splat(1.0f)));
  const V e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(y, e);
}

// In-register transpose of a 4×4 block (GEMM packing).
static inline void vtranspose(V r[W]) {
  const V t0 = wasm_i32x4_shuffle(r[0], r[1], 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r[0], r[1], 2, 6, 3, 7);
  const V t2 = wasm_i32x4_shuffle(r[2], r[3], 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r[2], r[3], 2, 6, 3, 7);
  r[0] = wasm_i64x2_shuffle(t0, t2, 0, 2);
  r[1] = wasm_i64x2_shuffle(t0, t2, 1, 3);
  r[2] = wasm_i64x2_shuffle(t1, t3, 0, 2);
  r[3] = wasm_i64x2_shuffle(t1, t3, 1, 3);
}

// No cheap two-source permute worth it here: misaligned streams use plain unaligned loads (see simd_avx512.h).
constexpr bool HAVE_COMBINE = false;
typedef int VIdx;
static inline int misalign(const float*) { return 0; }
static inline VIdx combine_index(int s) { return s; }
static inline V vcombine(V lo, V, VIdx) { return lo; }

static inline void prefetch_l1(const void*) {}  // WebAssembly has no prefetch

// Weight storage to float32, exact (kernels.h's WeightRef), with the results of simd_scalar.h's conversions.
// float16: its exponent and mantissa bits moved into float32 position (two shifts) are the value times 2^-112,
// subnormals included, so one exact multiply by 2^112 rescales them; Inf / NaN (65536 or more after it) get the top
// exponent, NaN made quiet as vcvtph2ps does; the sign moves up by two shifts.
static inline V f16_lanes_to_f32(V h) {
  const V two16 = wasm_f32x4_splat(65536.0f);
  const V scaled = wasm_f32x4_mul(wasm_u32x4_shr(wasm_i32x4_shl(h, 17), 4), wasm_f32x4_splat(5.192296858534828e+33f));
  const V special = wasm_v128_or(wasm_v128_and(wasm_f32x4_ge(scaled, two16), wasm_i32x4_splat(0x7f800000)),
                                 wasm_v128_and(wasm_f32x4_gt(scaled, two16), wasm_i32x4_splat(0x400000)));
  return wasm_v128_or(wasm_v128_or(scaled, special), wasm_i32x4_shl(wasm_u32x4_shr(h, 15), 31));
}
static inline V vload_f16(const uint16_t* p) { return f16_lanes_to_f32(wasm_u32x4_load16x4(p)); }
static inline V vload_bf16(const uint16_t* p) { return wasm_i32x4_shl(wasm_u32x4_load16x4(p), 16); }
static inline V vload_i8(const int8_t* p) {
  const V b = wasm_v128_load32_zero(p);
  return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(b)));
}
static inline float f16_to_f32(uint16_t h) { return wasm_f32x4_extract_lane(f16_lanes_to_f32(wasm_i32x4_splat(h)), 0); }

// The int8 dot of kernels_impl.h's linear_q8_int (simd_x86_q8.h's primitives), on SIMD128's i32x4.dot_i16x8_s: q8_0
// and q4_0 weights take it at M ≤ 8 (ggml's Q8_0 × Q8_0 and Q4_0 × Q8_0; q8_0's int8 quants and q4_0's nibbles as the
// int8 values q − 8, each widened to int16). x is quantized per block of 32 as on x86 (d = amax/127, q =
// round-to-nearest-even(x·(1/d)), a non-finite block giving d = NaN, so its products are NaN) and stored as int16,
// clamped to [-127, 127]. Only a block whose 1/d overflows to inf (amax below ~3.7e-37; a subnormal d otherwise still
// gives |x·(1/d)| < 127.5) has quants past 127: its nonzero values give ±32767 (trunc_sat, then the narrowing), which
// the clamp makes ±127, and its zeros 0 (0·inf is NaN, which trunc_sat makes 0); x86 packs all of them to -128
// (cvtps_epi32 of ±inf or NaN is INT_MIN). A block's dot is 4 int32 lanes, each the sum of 8 products w·q (|w| ≤ 128,
// |q| ≤ 127: |sum| ≤ 8·128·127 = 130048, far from int32's range and below 2^24, so it converts to float exactly;
// dot_i16x8_s's pairwise sums cannot wrap either). No fused multiply-add (see above): vb_fma rounds the product,
// then the sum.
#define RG_HAVE_I8DOT 1
#define RG_I8DOT_Q8_0 1  // q8_0 takes the int8 dot too (kernels_impl.h)
typedef int16_t XQ;
constexpr bool kQ4C8 = false;  // the signed values q − 8 are dotted directly: no per-block correction
typedef v128_t VB;             // 4 float lanes of block partial sums
struct WB {                    // one weight block as 32 int16 values, loaded once for all activation rows
  v128_t w[4];
};
static inline WB wb_from_i8(v128_t a, v128_t b) {  // weights 0..15 and 16..31 as int8
  return WB{{wasm_i16x8_extend_low_i8x16(a), wasm_i16x8_extend_high_i8x16(a), wasm_i16x8_extend_low_i8x16(b),
             wasm_i16x8_extend_high_i8x16(b)}};
}
static inline WB wb_load(const int8_t* p) { return wb_from_i8(wasm_v128_load(p), wasm_v128_load(p + 16)); }
// q4_0: one block's 16 bytes (weight j in byte j's low nibble, j + 16 in its high one) as the int8 values q − 8.
static inline WB wb_load_q4(const uint8_t* p) {
  const v128_t b = wasm_v128_load(p), eight = wasm_i8x16_splat(8);
  return wb_from_i8(wasm_i8x16_sub(wasm_v128_and(b, wasm_i8x16_splat(0x0F)), eight),
                    wasm_i8x16_sub(wasm_u8x16_shr(b, 4), eight));
}
static inline VB vb_dot(const WB& w, const int16_t* x) {
  v128_t s = wasm_i32x4_dot_i16x8(w.w[0], wasm_v128_load(x));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(w.w[1], wasm_v128_load(x + 8)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(w.w[2], wasm_v128_load(x + 16)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(w.w[3], wasm_v128_load(x + 24)));
  return wasm_f32x4_convert_i32x4(s);
}
static inline VB vb_dot_q4(const WB& w, const int16_t* x, const int32_t*) { return vb_dot(w, x); }
static inline void vb_c8(const int16_t*, int32_t*) {}  // not used (kQ4C8)
static inline VB vb_zero() { return wasm_f32x4_splat(0.0f); }
static inline VB vb_fma(float d, VB s, VB acc) { return wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_splat(d), s), acc); }
static inline float vb_hsum2(VB a, VB b) { return vhsum(wasm_f32x4_add(a, b)); }
static inline float vb_quantize(const float* x, int16_t* q) {
  const v128_t fmax = wasm_f32x4_splat(3.402823466e38f), mag = wasm_i32x4_splat(0x7fffffff);
  v128_t v[8], amax = wasm_f32x4_splat(0.0f), ok = wasm_i32x4_splat(-1);
  for (int i = 0; i < 8; ++i) {
    v[i] = wasm_v128_load(x + 4 * i);
    const v128_t a = wasm_v128_and(v[i], mag);
    ok = wasm_v128_and(ok, wasm_f32x4_le(a, fmax));  // false for NaN and ±inf
    amax = vmax(amax, a);
  }
  if (!wasm_i32x4_all_true(ok)) {  // NaN or ±inf in the block
    memset(q, 0, 32 * sizeof(int16_t));
    return __builtin_nanf("");
  }
  const float am = vhmax(amax);
  const float d = am / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const v128_t idv = wasm_f32x4_splat(id), q127 = wasm_i16x8_splat(127);
  for (int i = 0; i < 8; i += 2) {
    const v128_t r0 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(v[i], idv)));
    const v128_t r1 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(v[i + 1], idv)));
    const v128_t q16 = wasm_i16x8_narrow_i32x4(r0, r1);
    wasm_v128_store(q + 4 * i, wasm_i16x8_max(wasm_i16x8_min(q16, q127), wasm_i16x8_neg(q127)));
  }
  return d;
}
