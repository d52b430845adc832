// Portable "vector" of 8 floats in plain C++ for the scalar fallback (any CPU; compilers may auto-vectorize
// the fixed-size loops with the baseline ISA). Included inside the rg_scalar namespace. No fused multiply-add:
// the file is compiled with -ffp-contract=off like the others, so results are the same on every compiler.

constexpr int W = 8;
struct V {
  float v[W];
};

constexpr int GEMM_MR = 4;
constexpr int GEMM_NV = 2;
// Small-M linear: accumulators per x row (kernels_impl.h, linear_row), and x rows per pass over a W row (all 8:
// the scalar path is the portable fallback, not a speed path).
constexpr int LIN_ACC = 4;
constexpr int LIN_GROUP = 8;
// Decode attention: value accumulators a pass over several query rows may keep in registers (kernels_impl.h values_col).
constexpr int ATT_ACC = 8;
// linear on panels (kernels_impl.h, linear_panels): accumulators a pass may keep, and x rows per pass.
constexpr int PANEL_ACC = 8;
constexpr int PANEL_MR = 2;

#define RG_VMAP1(expr)              \
  V r;                              \
  for (int i = 0; i < W; ++i) r.v[i] = (expr); \
  return r

static inline V vzero() { RG_VMAP1(0.0f); }
static inline V vset1(float a) { RG_VMAP1(a); }
static inline V vload(const float* p) { RG_VMAP1(p[i]); }
static inline void vstore(float* p, V a) {
  for (int i = 0; i < W; ++i) p[i] = a.v[i];
}
static inline V vload_n(const float* p, int n) { RG_VMAP1(i < n ? p[i] : 0.0f); }
static inline void vstore_n(float* p, V a, int n) {
  for (int i = 0; i < n; ++i) p[i] = a.v[i];
}
static inline V vkeep_n(V a, int n) { RG_VMAP1(i < n ? a.v[i] : 0.0f); }
static inline V vadd(V a, V b) { RG_VMAP1(a.v[i] + b.v[i]); }
static inline V vsub(V a, V b) { RG_VMAP1(a.v[i] - b.v[i]); }
static inline V vmul(V a, V b) { RG_VMAP1(a.v[i] * b.v[i]); }
static inline V vdiv(V a, V b) { RG_VMAP1(a.v[i] / b.v[i]); }
static inline V vmax(V a, V b) { RG_VMAP1(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }
static inline V vmin(V a, V b) { RG_VMAP1(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
static inline V vsqrt(V a) { RG_VMAP1(sqrtf(a.v[i])); }
// Not fused on this path: a·b rounded, then + c.
static inline V vfma(V a, V b, V c) { RG_VMAP1(a.v[i] * b.v[i] + c.v[i]); }
static inline V vfnma(V a, V b, V c) { RG_VMAP1(c.v[i] - a.v[i] * b.v[i]); }
static inline V vexp(V a) { RG_VMAP1(expf(a.v[i])); }
#undef RG_VMAP1

// Fixed pairwise order, like the SIMD paths.
static inline float vhsum(V a) {
  float s4[4], s2[2];
  for (int i = 0; i < 4; ++i) s4[i] = a.v[i] + a.v[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}
static inline float vhmax(V a) {
  float m = a.v[0];
  for (int i = 1; i < W; ++i) m = a.v[i] > m ? a.v[i] : m;
  return m;
}
struct VD2 {
  double v[W / 2];
};
static inline VD2 vd_zero() {
  VD2 r;
  for (int i = 0; i < W / 2; ++i) r.v[i] = 0.0;
  return r;
}
static inline void vsq_acc_f64(V a, VD2* lo, VD2* hi) {
  for (int i = 0; i < W / 2; ++i) {
    double l = a.v[i], h = a.v[i + W / 2];
    lo->v[i] += l * l;
    hi->v[i] += h * h;
  }
}
static inline void vacc_f64(V a, VD2* lo, VD2* hi) {
  for (int i = 0; i < W / 2; ++i) {
    lo->v[i] += a.v[i];
    hi->v[i] += a.v[i + W / 2];
  }
}
static inline double vd_hsum(VD2 a) { return (a.v[0] + a.v[2]) + (a.v[1] + a.v[3]); }

static inline void vtranspose(V r[W]) {
  for (int i = 0; i < W; ++i)
    for (int j = i + 1; j < W; ++j) {
      float t = r[i].v[j];
      r[i].v[j] = r[j].v[i];
      r[j].v[i] = t;
    }
}

// No cheap two-source permute here: misaligned streams use plain unaligned loads (see simd_avx512.h).
constexpr bool HAVE_COMBINE = false;
typedef int VIdx;
static inline int misalign(const float*) { return 0; }
static inline VIdx combine_index(int s) { return s; }
static inline V vcombine(V lo, V, VIdx) { return lo; }

static inline void prefetch_l1(const void* p) { __builtin_prefetch(p, 0, 3); }

// Weight storage to float32, exact (kernels.h's WeightRef), as the F16C / shift / sign-extend of the SIMD paths.
static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {  // zero or subnormal: m·2^-24, exact (a normal float32)
    const float f = static_cast<float>(m) * 5.9604644775390625e-8f;
    memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (e == 31) {  // inf, or NaN made quiet (as vcvtph2ps does)
    bits = sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0u);
  } else {
    bits = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
static inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
#define RG_VMAP1(expr)              \
  V r;                              \
  for (int i = 0; i < W; ++i) r.v[i] = (expr); \
  return r
static inline V vload_f16(const uint16_t* p) { RG_VMAP1(f16_to_f32(p[i])); }
static inline V vload_bf16(const uint16_t* p) { RG_VMAP1(bf16_to_f32(p[i])); }
static inline V vload_i8(const int8_t* p) { RG_VMAP1(static_cast<float>(p[i])); }
#undef RG_VMAP1
