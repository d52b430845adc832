// q8_0 / q4_0 weights × int8 activations (kernels_impl.h, linear_q8_int): ggml's Q8_0 × Q8_0 and Q4_0 × Q8_0 dots on
// 256-bit integer vectors, written once for simd_avx2.h and simd_avx512.h (the AVX-512 path runs it on AVX2's 256-bit
// vectors, which every AVX-512 CPU has: one vector is one block of 32 int8 weights; a q4_0 block is unpacked to one
// by wb_load_q4, vb_dot_q4 below). Included inside the ISA's namespace by those headers, after <immintrin.h>, in
// units compiled with at least -mavx2 -mfma.
// vb_quantize turns 32 floats into int8 q = round-to-nearest-even(x / d), d = amax/127 (ggml's activation rounding);
// a non-finite block gives d = NaN, so its products are NaN as the float path's would be non-finite. vb_dot is the
// integer dot of one weight block with one activation block, as 8 int32 lane sums converted to float (exact: each
// is at most 4·128·127 in magnitude). The weights enter as |w| (unsigned) and the activations take w's sign, so
// maddubs' u8·s8 pairs never saturate (|pair| <= 2·128·127 < 2^15, activations in [-127, 127], w = -128 included).
#define RG_HAVE_I8DOT 1
#define RG_I8DOT_Q8_0 1       // q8_0 takes the int8 dot too (kernels_impl.h)
typedef int8_t XQ;            // x quants as vb_quantize stores them
constexpr bool kQ4C8 = true;  // vb_dot_q4 takes each x block's vb_c8 lanes
typedef __m256 VB;  // 8 float lanes of block partial sums
struct WB {         // one weight block, loaded once for all activation rows
  __m256i aw, w;
};
static inline WB wb_load(const int8_t* p) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return WB{_mm256_abs_epi8(w), w};
}
// q4_0: one block's 16 bytes (weight j in byte j's low nibble, j + 16 in its high one) as 32 unsigned quants q in
// 0..15, in weight order (low nibbles in the lower 128-bit lane, high nibbles in the upper one): the bytes loaded into
// both lanes, the upper lane shifted right by 4, masked. vb_dot_q4 takes its dot with an activation block as
// Σ q·x − 8·Σ x per lane (c8: vb_c8 of the block), which is Σ (q − 8)·x exactly: the same lane sums as vb_dot of the
// signed values q − 8, in fewer operations (no abs / sign; maddubs' u8·s8 pairs are at most 2·15·127 < 2^15).
static inline WB wb_load_q4(const uint8_t* p) {
  const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i q = _mm256_and_si256(_mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
  return WB{q, q};
}
static inline VB vb_dot_q4(const WB& w, const int8_t* x, const int32_t* c8) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(w.aw, xv), _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c8))));
}
// 8 times each lane's sum of one activation block (the 8 int32 lanes of vb_dot_q4, 4 activations each) into c8.
static inline void vb_c8(const int8_t* x, int32_t* c8) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), xv), _mm256_set1_epi16(1));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c8), s);
}
static inline VB vb_dot(const WB& w, const int8_t* x) {
  const __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), w.w);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w.aw, sx), _mm256_set1_epi16(1)));
}
static inline VB vb_zero() { return _mm256_setzero_ps(); }
static inline VB vb_fma(float d, VB s, VB acc) { return _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc); }
static inline float vb_hsum2(VB a, VB b) {
  const __m256 s = _mm256_add_ps(a, b);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
static inline float vb_quantize(const float* x, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, v[i]), _mm256_set1_ps(3.402823466e38f), _CMP_NLE_UQ));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  const float am = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
  if (_mm256_movemask_ps(bad) != 0) {  // NaN or ±inf in the block
    memset(q, 0, 32);
    return __builtin_nanf("");
  }
  const float d = am / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i r[4];
  for (int i = 0; i < 4; ++i)
    r[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  // packs work per 128-bit lane: pack, then put the four 8-value groups back in order
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return d;
}
