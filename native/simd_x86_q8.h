// q8_0 weights × int8 activations (kernels_impl.h, linear_q8_int): ggml's Q8_0 × Q8_0 dot on 256-bit integer vectors,
// written once for simd_avx2.h and simd_avx512.h (the AVX-512 path runs it on AVX2's 256-bit vectors, which every
// AVX-512 CPU has: one vector is one block of 32 int8 weights). Included inside the ISA's namespace by those
// headers, after <immintrin.h>, in units compiled with at least -mavx2 -mfma.
// vb_quantize turns 32 floats into int8 q = round-to-nearest-even(x / d), d = amax/127 (ggml's activation rounding);
// a non-finite block gives d = NaN, so its products are NaN as the float path's would be non-finite. vb_dot is the
// integer dot of one weight block with one activation block, as 8 int32 lane sums converted to float (exact: each
// is at most 4·128·127 in magnitude). The weights enter as |w| (unsigned) and the activations take w's sign, so
// maddubs' u8·s8 pairs never saturate (|pair| <= 2·128·127 < 2^15, activations in [-127, 127], w = -128 included).
#define RG_HAVE_I8DOT 1
typedef __m256 VB;  // 8 float lanes of block partial sums
struct WB {         // one weight block, loaded once for all activation rows
  __m256i aw, w;
};
static inline WB wb_load(const int8_t* p) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return WB{_mm256_abs_epi8(w), w};
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
