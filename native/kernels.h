// The kernel list and the kernel table. RG_KERNELS is the one list of kernels: each entry names the C++ kernel
// and the JS export (the names of KERNEL_NAMES in src/kernels/validate.ts), describes the JS arguments (a spec
// string, read by native/addon.cc, which checks and converts arguments from it: no per-kernel glue code), and
// gives the C++ signature after the leading `int nth` (thread count). The KernelTable's members and each
// instruction set's table (kernels_impl.h) are generated from it, so a kernel is added with one line here and
// one in KERNEL_NAMES, plus its code in kernels_impl.h.
//
// Spec tokens, space-separated, in JS argument order (the C++ parameters follow the same order):
//   #M            a dimension: an integer in [0, 2^31-1]; C++ i64
//   #len=pos0+M   a derived dimension (not an argument): the sum of two dimensions
//   @x[M,K]       an array of at least M·K elements (overflow-checked): Float32Array for float* / const float*,
//                 Int32Array for const int32_t*
//   ?bias[N]      the same, or null / undefined (C++ nullptr)
//   %w[N,K]       a weight: a Float32Array (f32) or a handle {dtype, data[, scales]} of any WeightDtype, its
//                 storage checked against [N,K] (q8_0 / q4_0: K a multiple of 32, N·K/32 scales; q4_0: N·K/2
//                 bytes of data); C++ const WeightRef*
//   eps           a scalar: a number for float / double, any value (truthiness) for bool
//   $rope         no argument: the calling context's RoPE table cache (RopeCache*)
//   !check(a,b)   a check: channels(N,C), heads(H,G,D), even(D) run once the dimensions are read;
//                 ids(ids,T,V), targets(targets,N,V), scores(M,H,len) once the arrays are
//   ~M,N          nothing to do (no kernel call) when any of these dimensions is 0
// Arguments arrive at the kernels validated (types, each dimension in [0, 2^31-1], array lengths against
// overflow-checked products, ids, targets), and calls that write nothing never arrive.
#pragma once
#include <stdint.h>

namespace rg {

typedef int64_t i64;

// RoPE's cos/sin tables for one context (native/kernels_common.cc): pos·theta^(−2i/D) in float64, rounded to
// float32, cached for positions 0..rows-1 of the last (theta, D); plus scratch rows for positions outside it.
struct RopeCache {
  double theta;
  i64 D, rows;
  float *cosv, *sinv;  // [rows, D/2]
  float *tmpc, *tmps;  // [tmpcap] scratch for uncached positions
  int32_t* tmpidx;     // [tmpcap / (D/2)] row indices into tmpc / tmps
  i64 tmpcap, tmpidxcap;
};

// Points *cosTab / *sinTab at tables with one row per entry of *rows (rows[r] is pos[r] when cached, else r).
// Single-threaded per cache (a context belongs to one JS thread). Aborts when memory runs out (as kernels do).
void rope_tables(RopeCache* cache, double theta, i64 D, i64 R, const int32_t* pos, const float** cosTab,
                 const float** sinTab, const int32_t** rows);
void rope_cache_free(RopeCache* cache);

// A weight as stored (src/kernels/backend.ts's Weight handle; codes as src/kernels/wasm.ts's DTYPE_CODE). Kernels
// convert it to float32 in registers, exactly: f16 / bf16 bits widen losslessly, q8_0's d·q (float16 d, int8 q) has
// at most 11 + 8 significant bits and q4_0's d·(q − 8) (q in 0..15) at most 11 + 4, so both are exact in float32
// too. A row's result therefore equals the f32 kernel's on the dequantized weights, bit for bit wherever both take
// the same path.
//
// kWF16Panels / kWBF16Panels hold the values of f16 / bf16 in the layout of the outer-product kernel (kernels_impl.h,
// linear_panels): W [N, K] as ceil(N/32) panels of kPanelCols = 32 rows of W, each stored column by column, [K][32]
// (element (n, k) at (n/32)·32·K + 32·k + n % 32; the last panel zero-padded), so that a panel's 32 weights of one
// k fill one 64-byte line. Copies made in memory for the products (src/kernels/panels.ts), never in model files.
// kWQ8Panels holds q8_0's quants in the same layout (int8, [ceil(N/32)][K][32]) and its float16 scales as
// [ceil(N/32)][K/32][32] (block b of the panel's 32 rows side by side); K a multiple of 32.
enum WeightDtype : int32_t {
  kWF32 = 0,
  kWF16 = 1,
  kWBF16 = 2,
  kWQ8_0 = 3,
  kWQ4_0 = 4,
  kWF16Panels = 5,
  kWBF16Panels = 6,
  kWQ8Panels = 7,
};
constexpr i64 kQ8Block = 32;    // q8_0: weights per scale, consecutive along K
constexpr i64 kQ4Block = 32;    // q4_0: the same blocks, stored in 16 bytes (kernels/quant.ts)
constexpr i64 kPanelCols = 32;  // f16 / bf16 panels: rows of W per panel
struct WeightRef {
  WeightDtype dtype;
  // float / uint16_t bits / int8_t quants, row-major [rows, cols]; q4_0: uint8_t [rows, cols/2], block b of row n
  // the 16 bytes from (n·cols + 32·b)/2, byte j holding weight j (low nibble) and weight j + 16 (high nibble);
  // panels: uint16_t bits [ceil(rows/32), cols, 32] (above); q8_0 panels: int8_t quants in that layout
  const void* data;
  const uint16_t* scales;  // q8_0 / q4_0: float16 bits of d, [rows, cols/32]; q8_0 panels: [ceil(rows/32), cols/32, 32]
};

// The small-M linear's software prefetch distance in bytes ahead in each thread's W stream (f32, f16, bf16, q8_0 and
// q4_0 rows alike), into L1 (0: none, the hardware prefetcher alone). Process-wide, as it is a property of the CPU:
// 4096 until the addon sets it at load from the L1 data cache's size (native/addon.cc cpu_linear_prefetch_bytes), and
// a context's setLinearPrefetch changes it (benchmarks). The loads, and so the results, are the same at any distance.
extern int linear_prefetch_bytes;

// The most x rows a linear on f16 / bf16 / q8_0 / q4_0 weights takes through the small-M product (groups of 8 per W
// chunk) before the dequantize-and-GEMM path (f32 weights: half as many, at least 8, the decoding calls). A 12-token
// prompt's prefill took 0.55x the GEMM's time this way, a 24-token one 0.94x (f16, Zen 5, 2 threads).
// Process-wide; a context's setLinearSmallMaxRows changes it (benchmarks compare).
extern int linear_small_max_rows;

// AdamW's bias corrections 1 − beta^step, computed in float64 once for every instruction set, rounded to float32.
void adam_bias_correction(double beta1, double beta2, double step, float* bc1, float* bc2);

// clang-format off
#define RG_KERNELS(X)                                                                                              \
  X(gemm, "gemm", "#M #N #K @a[M,K] transA @b[K,N] transB @c[M,N] accumulate ~M,N",                              \
    void, (i64, i64, i64, const float*, bool, const float*, bool, float*, bool))                                   \
  X(linear, "linear", "#M #N #K @x[M,K] %w[N,K] ?bias[N] @y[M,N] ~M,N",                                          \
    void, (i64, i64, i64, const float*, const WeightRef*, const float*, float*))                                   \
  X(bias_backward, "biasBackward", "#M #N @dy[M,N] @db[N]", void, (i64, i64, const float*, float*))               \
  X(embedding_forward, "embeddingForward", "#T #C #V @ids[T] %table[V,C] @out[T,C] !ids(ids,T,V) ~T,C",          \
    void, (i64, i64, i64, const int32_t*, const WeightRef*, float*))                                               \
  X(embedding_backward, "embeddingBackward", "#T #C #V @ids[T] @dout[T,C] @dtable[V,C] !ids(ids,T,V) ~T,C",      \
    void, (i64, i64, i64, const int32_t*, const float*, float*))                                                   \
  X(layernorm_forward, "layerNormForward",                                                                         \
    "#N #C !channels(N,C) @x[N,C] @w[C] @b[C] eps @out[N,C] @mean[N] @rstd[N] ~N",                               \
    void, (i64, i64, const float*, const float*, const float*, float, float*, float*, float*))                     \
  X(layernorm_backward, "layerNormBackward",                                                                       \
    "#N #C !channels(N,C) @dout[N,C] @x[N,C] @w[C] @mean[N] @rstd[N] @dx[N,C] @dw[C] @db[C] ~C",                 \
    void, (i64, i64, const float*, const float*, const float*, const float*, const float*, float*, float*, float*)) \
  X(rmsnorm_forward, "rmsNormForward", "#N #C !channels(N,C) @x[N,C] @w[C] eps @out[N,C] @rstd[N] ~N",           \
    void, (i64, i64, const float*, const float*, float, float*, float*))                                           \
  X(rmsnorm_backward, "rmsNormBackward",                                                                           \
    "#N #C !channels(N,C) @dout[N,C] @x[N,C] @w[C] @rstd[N] @dx[N,C] @dw[C] ~C",                                 \
    void, (i64, i64, const float*, const float*, const float*, const float*, float*, float*))                      \
  X(gelu_forward, "geluForward", "#n @x[n] @out[n]", void, (i64, const float*, float*))                           \
  X(gelu_backward, "geluBackward", "#n @x[n] @dout[n] @dx[n]", void, (i64, const float*, const float*, float*))   \
  X(swiglu_forward, "swigluForward", "#n @gate[n] @up[n] @out[n]",                                               \
    void, (i64, const float*, const float*, float*))                                                               \
  X(swiglu_backward, "swigluBackward", "#n @gate[n] @up[n] @dout[n] @dgate[n] @dup[n]",                          \
    void, (i64, const float*, const float*, const float*, float*, float*))                                         \
  X(rope, "rope", "#R #H #D !even(D) @x[R,H,D] @pos[R] theta inverse $rope ~R,H,D",                              \
    void, (i64, i64, i64, float*, const int32_t*, double, bool, RopeCache*))                                       \
  X(attention_forward, "attentionForward",                                                                         \
    "#B #T #H #G #D !heads(H,G,D) @q[B,T,H,D] @k[B,T,G,D] @v[B,T,G,D] @out[B,T,H,D] @probs[B,H,T,T] ~B,T,H",    \
    void, (i64, i64, i64, i64, i64, const float*, const float*, const float*, float*, float*))                     \
  X(attention_backward, "attentionBackward",                                                                       \
    "#B #T #H #G #D !heads(H,G,D) @q[B,T,H,D] @k[B,T,G,D] @v[B,T,G,D] @probs[B,H,T,T] @dout[B,T,H,D] "          \
    "@dq[B,T,H,D] @dk[B,T,G,D] @dv[B,T,G,D] ~B,T,H",                                                             \
    void, (i64, i64, i64, i64, i64, const float*, const float*, const float*, const float*, const float*,          \
           float*, float*, float*))                                                                                \
  X(attention_decode, "attentionDecode",                                                                           \
    "#M #H #G #D @q[M,H,D] @kCache[len,G,D] @vCache[len,G,D] #pos0 @out[M,H,D] #len=pos0+M !heads(H,G,D) "        \
    "!scores(M,H,len) ~M,H",                                                                                       \
    void, (i64, i64, i64, i64, const float*, const float*, const float*, i64, float*))                             \
  X(cross_entropy_forward, "crossEntropyForward",                                                                  \
    "#N #V @logits[N,V] @targets[N] @losses[N] !targets(targets,N,V)",                                           \
    double, (i64, i64, const float*, const int32_t*, float*))                                                      \
  X(cross_entropy_backward, "crossEntropyBackward",                                                                \
    "#N #V @logits[N,V] @targets[N] scale @dlogits[N,V] !targets(targets,N,V)",                                  \
    void, (i64, i64, const float*, const int32_t*, float, float*))                                                 \
  X(adamw, "adamw", "#n @param[n] @grad[n] @m[n] @v[n] lr beta1 beta2 eps weightDecay step",                     \
    void, (i64, float*, const float*, float*, float*, double, double, double, double, double, double))             \
  X(add, "add", "#n @a[n] @b[n] @out[n]", void, (i64, const float*, const float*, float*))                        \
  X(axpy, "axpy", "#n alpha @x[n] @y[n]", void, (i64, float, const float*, float*))                               \
  X(scale, "scale", "#n @x[n] alpha", void, (i64, float*, float))                                                 \
  X(sum_squares, "sumSquares", "#n @x[n]", double, (i64, const float*))
// clang-format on

// Appends the parameters of a parenthesized list after `int nth`: RG_WITH_NTH((a, b)) is (int nth, a, b).
#define RG_WITH_NTH(...) (int nth, RG_UNPAREN __VA_ARGS__)
#define RG_UNPAREN(...) __VA_ARGS__

struct KernelTable {
  const char* name;
  int simd_width;  // floats per vector register
#define RG_MEMBER(c, js, spec, Ret, Params) Ret(*c) RG_WITH_NTH(Params);
  RG_KERNELS(RG_MEMBER)
#undef RG_MEMBER
  // Streaming read of n floats (the bandwidth benchmark, not a kernel): returns their sum so the read stays.
  double (*read_sum)(int nth, i64 n, const float* x);
  // The FMA peak probe (not a kernel): `iters` rounds of independent FMA chains in registers on each of nth threads;
  // returns the flops done. rg::fma_peak times it.
  double (*fma_chains)(int nth, i64 iters);
};

// Size in bytes of this CPU's level-1 data, level-2 or level-3 cache (native/probe.cc: sysfs, else sysconf, else
// a common size); the GEMM blocking reads it.
i64 cache_bytes(int level);
// GFLOP/s of `k`'s FMA probe on nth threads, one run of about `seconds` (native/probe.cc).
double fma_peak(const KernelTable* k, int nth, double seconds);

const KernelTable* table_scalar();
#if defined(RG_X86)
const KernelTable* table_avx2();
const KernelTable* table_avx512();
#endif

}  // namespace rg
