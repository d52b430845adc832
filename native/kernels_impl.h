// Every kernel, written once against the vector primitives of simd_*.h (V, W, vload, vfma, vhsum, vexp, ...).
// This file is included inside a per-ISA namespace (rg_avx512, rg_avx2, rg_scalar) by kernels_<isa>.cc, each
// compiled for its instruction set; kernels.h's table is filled at the end.
//
// Rules that keep results reproducible:
// - The files are compiled with -ffp-contract=off: a multiply-add is fused only where vfma says so.
// - Work is cut into chunks that threads take dynamically (rg::parallel_chunks). Every output element
//   belongs to one chunk and a chunk is computed the same way on any thread, with an accumulation order fixed
//   by the shapes only: results do not depend on the thread count or on scheduling. The order never depends
//   on M for `linear` / attention rows; chunks split rows or columns, never a sum.
// - No std:: templates here: an inline template instantiated in an AVX-512 unit could be picked by the linker
//   for all units and run on a CPU without AVX-512.
//
// Shape letters as in src/kernels/backend.ts.

static inline i64 imin(i64 a, i64 b) { return a < b ? a : b; }
static inline i64 imax(i64 a, i64 b) { return a > b ? a : b; }

// Kernels cannot throw (the ISA units build without exceptions) and a failed allocation leaves no sane result:
// say what happened, then stop.
[[noreturn]] static void out_of_memory(size_t bytes) {
  fprintf(stderr, "recyclegpt native kernels: out of memory allocating %zu bytes\n", bytes);
  abort();
}

static float* alloc_floats(i64 n) {
  void* q = nullptr;
  const size_t bytes = static_cast<size_t>(n + 16) * 4;
  if (posix_memalign(&q, 64, bytes) != 0) out_of_memory(bytes);
  return static_cast<float*>(q);
}

// A per-thread growable scratch buffer (64-byte aligned, never freed: threads live as long as the process).
struct Scratch {
  float* p;
  i64 cap;
  float* get(i64 n) {
    if (n > cap) {
      free(p);
      p = alloc_floats(n);
      cap = n;
    }
    return p;
  }
};
static thread_local Scratch tls_s0 = {nullptr, 0};
static thread_local Scratch tls_s1 = {nullptr, 0};
static thread_local Scratch tls_s2 = {nullptr, 0};

// How many threads a job of `work` flops deserves: about 100 kflop (~30 us) each at least.
static inline int threads_for(int nth, double work) {
  int use = nth;
  if (work < 1e5 * use) use = static_cast<int>(work / 1e5);
  return use < 1 ? 1 : use;
}

// body(c) for chunks c = 0..chunks-1, on up to nth threads (fewer for small work).
template <class F>
static inline void run_chunks(int nth, i64 chunks, double work, F& body) {
  rg::parallel_chunks(threads_for(nth, work), chunks, body);
}

// Chunk length for `n` items of `cost` flops: about 200 kflop per chunk, and at least 4 chunks per thread.
static inline i64 chunk_len(i64 n, double cost, int nth) {
  i64 len = static_cast<i64>(2e5 / (cost > 1 ? cost : 1));
  const i64 most = (n + 4 * nth - 1) / (4 * nth);
  if (len > most) len = most;
  return len < 1 ? 1 : len;
}

// Elementwise helper: body(i0, i1) over [0, n) in chunks of 16384 floats.
template <class F>
static inline void for_elems(int nth, i64 n, F body) {
  constexpr i64 CE = 16384;
  auto chunk = [&](i64 c) { body(c * CE, imin(n, (c + 1) * CE)); };
  run_chunks(nth, (n + CE - 1) / CE, static_cast<double>(n), chunk);
}

// Row helper: body(r0, r1) over [0, rows); `cost` ≈ flops per row.
template <class F>
static inline void for_rows(int nth, i64 rows, double cost, F body) {
  const i64 len = chunk_len(rows, cost, nth);
  auto chunk = [&](i64 c) { body(c * len, imin(rows, (c + 1) * len)); };
  run_chunks(nth, (rows + len - 1) / len, static_cast<double>(rows) * cost, chunk);
}

// Column helper for reductions over rows: body(c0, c1) over column ranges of 64 (each column summed over all
// rows, in row order, by one chunk). `rows` only sizes the work.
template <class F>
static inline void for_cols(int nth, i64 cols, i64 rows, F body) {
  constexpr i64 CC = 64;
  auto chunk = [&](i64 c) { body(c * CC, imin(cols, (c + 1) * CC)); };
  run_chunks(nth, (cols + CC - 1) / CC, static_cast<double>(cols) * rows, chunk);
}

#if !defined(RG_HAVE_VTSUM)
// r[i] = vhsum(a[i]) for the W vectors a[0..W) (attention scores, dot_keys); x86 has a transposed reduction of its own.
static inline V vtsum(const V* a) {
  alignas(16) float t[W];
  for (int i = 0; i < W; ++i) t[i] = vhsum(a[i]);
  return vload(t);
}
#endif

// Σ a[i]·b[i], one accumulator, fixed chunk order, masked tail: the order depends on n only.
static inline float dot(const float* a, const float* b, i64 n) {
  V acc = vzero();
  i64 i = 0;
  for (; i + W <= n; i += W) acc = vfma(vload(a + i), vload(b + i), acc);
  if (i < n) acc = vfma(vload_n(a + i, static_cast<int>(n - i)), vload_n(b + i, static_cast<int>(n - i)), acc);
  return vhsum(acc);
}

// acc[0..n) += p·v[0..n)
static inline void axpy_row(float* acc, float p, const float* v, i64 n) {
  V pv = vset1(p);
  i64 i = 0;
  for (; i + W <= n; i += W) vstore(acc + i, vfma(pv, vload(v + i), vload(acc + i)));
  if (i < n) {
    int r = static_cast<int>(n - i);
    vstore_n(acc + i, vfma(pv, vload_n(v + i, r), vload_n(acc + i, r)), r);
  }
}

// The GEMM (gemm, gemm_strided) and the FMA peak probe (fma_chains).
#include <type_traits>

#include "gemm_impl.h"

// ================================================================================================
// linear, small M (1..8, and groups of 8 up to linear_small_max_rows): the decode path. Each W row is loaded once and
// dotted with all M x rows while it is in registers, so W streams from memory once per call. The per-(m,n) arithmetic
// is identical for every M: LIN_ACC accumulators (4 here) take W-wide chunks of K in turn (chunk c → acc[c % LIN_ACC]),
// a masked chunk takes the tail, then y = hsum((acc0 + acc1) + (acc2 + acc3)) + bias. Threads split N into contiguous
// ranges. Four FMA chains instead of two: from DRAM (320..4096 × 320 weights, 1 and 2 threads) M = 2 took 1.12-1.20x
// the M = 1 time with two and 1.01-1.07x with four, which is what the 2-token full calls of recycle/verified decoding
// need (from L2 the ratio stayed ~1.25x). Past LIN_GROUP x rows (simd_*.h) the accumulators would spill: the rows go in
// passes over each W row instead (linear_row_passes), which chained drafts' full calls on up to 8 rows need. W rows are
// processed one at a time, so each thread reads W as a single sequential stream: interleaving 4 rows (4 short streams)
// was ~20% slower from DRAM on Zen 5, the hardware prefetcher prefers one stream.
// ================================================================================================
// LIN_ACC, the accumulators per x row, comes from the ISA's simd_*.h (4 above; 2 for SIMD128, whose 16 registers
// spill at M = 2 with 4). LIN_ACC is a power of two; the accumulators are summed pairwise (lin_acc_sum).
static_assert(LIN_ACC >= 1 && (LIN_ACC & (LIN_ACC - 1)) == 0, "LIN_ACC must be a power of two");
// The row functions are inlined into their row loops: a call per W row (frame set-up, vzeroupper) cost ~25% at
// K = 320 on x86 (1280 x 320 f16 from L2, M = 1). An ISA header may define RG_ROW_INLINE first: WebAssembly's
// keeps them as functions (its file stays ~50 KB smaller; its decode speed was the same within this machine's noise).
#ifndef RG_ROW_INLINE
#define RG_ROW_INLINE __attribute__((always_inline))
#endif

// hsum of the pairwise tree over acc[0..N) in column m: N = 4 gives (acc0 + acc1) + (acc2 + acc3), N = 2 acc0 + acc1.
template <int N, int M>
static inline V lin_acc_tree(const V (*acc)[M], int m) {
  if constexpr (N == 1) {
    return acc[0][m];
  } else {
    return vadd(lin_acc_tree<N / 2, M>(acc, m), lin_acc_tree<N / 2, M>(acc + N / 2, m));
  }
}
template <int M>
static inline float lin_acc_sum(const V (&acc)[LIN_ACC][M], int m) {
  return vhsum(lin_acc_tree<LIN_ACC, M>(acc, m));
}
// The accumulation steps of a small-M row, shared by linear_row (f32) and linear_row_dt (f16 / bf16 / q8_0), so that
// both keep one order of sums (the row-bit-identity contract): zero_rows clears the accumulators, fma_chunks adds
// the LIN_ACC chunks from element o (chunk a → acc[a]) for every x row, finish_chunks the rest of the row.
// Every accumulator index is a compile-time constant: one indexed by a run-time value (acc[c % LIN_ACC]) made GCC
// keep the whole array on the stack, zeroed, spilled and reloaded around each row (M = 4 over a 1280 x 320 f16
// matrix from L2 took 1.6x as long as with the accumulators in registers).
template <int M>
__attribute__((always_inline)) static inline void zero_rows(V (&acc)[LIN_ACC][M]) {
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 4
    for (int a = 0; a < LIN_ACC; ++a) acc[a][m] = vzero();
  }
}
template <int M>
__attribute__((always_inline)) static inline void fma_chunks(V (&acc)[LIN_ACC][M], const float* xs, i64 Kp, i64 o,
                                                             const V* wv) {
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 4
    for (int a = 0; a < LIN_ACC; ++a) acc[a][m] = vfma(vload(xs + m * Kp + o + a * W), wv[a], acc[a][m]);
  }
}
// The chunks after the last whole group of LIN_ACC: c0 (a multiple of LIN_ACC) .. nfull − 1, fewer than LIN_ACC,
// chunk c → acc[c % LIN_ACC] = acc[c − c0] (`wload(o)` loads W's chunk from element o, in order), then the masked
// tail chunk c = nfull, when K leaves one (`wtail(o)` loads its `tail` W values, zeros beyond), into acc[nfull − c0].
template <int A0, int M, class WLoad, class WTail>
__attribute__((always_inline)) static inline void finish_chunks(V (&acc)[LIN_ACC][M], i64 c0, i64 nfull, int tail,
                                                                WLoad& wload, WTail& wtail, const float* xs, i64 Kp) {
  if constexpr (A0 < LIN_ACC) {
    const i64 o = (c0 + A0) * W;
    if (c0 + A0 < nfull) {
      const V wv = wload(o);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) acc[A0][m] = vfma(vload(xs + m * Kp + o), wv, acc[A0][m]);
      finish_chunks<A0 + 1, M>(acc, c0, nfull, tail, wload, wtail, xs, Kp);
    } else if (tail) {
      const V wv = wtail(o);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) acc[A0][m] = vfma(vload_n(xs + m * Kp + o, tail), wv, acc[A0][m]);
    }
  }
}

// The end of a small-M row n, shared by linear_row (f32) and linear_row_dt (f16 / bf16 / q8_0): each x row's sum of
// the accumulators, plus the bias, into y[m, n].
template <int M>
__attribute__((always_inline)) static inline void store_rows(const V (&acc)[LIN_ACC][M], i64 n, i64 N,
                                                             const float* bias, float* y) {
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
    const float s = lin_acc_sum<M>(acc, m);
    y[m * N + n] = bias ? s + bias[n] : s;
  }
}


// x arrives as a JS typed array (16-byte aligned at best): linear_small copies it to xs with a row stride
// padded to 16 floats, so every x load is aligned. W rows are read with aligned loads too where the ISA has a
// cheap two-source permute (HAVE_COMBINE): a misaligned 64-byte load costs two cache accesses, and at M >= 2
// the loop is load-bound (M = 2 took 1.7x the M = 1 time with a 16-byte-aligned W or x, ~1.1x aligned).
// Modes (the loaded values, hence the sums, are identical in all of them):
//   LIN_PLAIN   plain loads (AVX2 / scalar, and the last row of W)
//   LIN_AHEAD   W row 64-byte aligned, M <= 4: each block is loaded one block before its use (M = 2 ran ~10%
//               faster from DRAM, M = 8 slower); this reads one block past the row, so never for W's last row
//   LIN_COMBINE W row misaligned: aligned blocks recombined with a permute; the last block read may extend
//               past the row, but never past the 64-byte block holding the row's last float (mapped memory)
enum LinMode { LIN_PLAIN, LIN_AHEAD, LIN_COMBINE };

template <int M, int MODE>
RG_ROW_INLINE static inline void linear_row(i64 n, i64 N, i64 K, i64 Kp, const float* xs, const float* w,
                                            const float* bias, float* y) {
  constexpr int A = LIN_ACC;
  V acc[A][M];
  zero_rows<M>(acc);
  const float* wr = w + n * K;
  const i64 pf = rg::linear_prefetch_bytes / 4;  // software prefetch distance in floats (kernels.h), 0 for none
  const int sh = MODE == LIN_COMBINE ? misalign(wr) : 0;
  const float* wa = wr - sh;  // the aligned block holding wr[0] (MODE != LIN_PLAIN)
  const VIdx idx = combine_index(sh);
  V prev = MODE == LIN_PLAIN ? vzero() : vload(wa);
  const i64 nfull = K / W;
  const int tail = static_cast<int>(K - nfull * W);
  i64 c = 0;
  for (; c + A <= nfull; c += A) {  // chunks c .. c+A-1 → acc[0 .. A-1]
    const i64 o = c * W;
    if (pf) {
#pragma GCC unroll 4
      for (int l = 0; l < A * W; l += 16) prefetch_l1(wr + o + pf + l);  // every 64-byte line
    }
    V wv[A];
    if (MODE == LIN_PLAIN) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) wv[a] = vload(wr + o + a * W);
    } else {
      V h[A];
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) h[a] = vload(wa + o + (a + 1) * W);
      wv[0] = MODE == LIN_AHEAD ? prev : vcombine(prev, h[0], idx);
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a) wv[a] = MODE == LIN_AHEAD ? h[a - 1] : vcombine(h[a - 1], h[a], idx);
      prev = h[A - 1];
    }
    fma_chunks<M>(acc, xs, Kp, o, wv);
  }
  auto wload = [&](i64 o) {  // fewer than A full chunks left, loaded in order
    V wv;
    if (MODE == LIN_PLAIN) {
      wv = vload(wr + o);
    } else if (MODE == LIN_AHEAD) {
      wv = prev;
      if (o + W < nfull * W) prev = vload(wa + o + W);
    } else {
      const V h = vload(wa + o + W);
      wv = vcombine(prev, h, idx);
      prev = h;
    }
    return wv;
  };
  auto wtail = [&](i64 o) { return vload_n(wr + o, tail); };
  finish_chunks<0, M>(acc, c, nfull, tail, wload, wtail, xs, Kp);
  store_rows<M>(acc, n, N, bias, y);
}

static thread_local Scratch tls_w = {nullptr, 0};

// Rows [n0, n1) of y for M x rows.
// M x rows in passes of at most LIN_GROUP (simd_*.h) over row n of W: each pass keeps LIN_ACC accumulators per x row
// and the W vectors in registers (more would spill to the stack), the row is re-read from L1 for the next pass, and
// the arithmetic of each (m, n) is the one-row pass's, so rows stay bit-identical for every M.
template <int M, int MODE>
RG_ROW_INLINE static inline void linear_row_passes(i64 n, i64 N, i64 K, i64 Kp, const float* xs, const float* w,
                                                   const float* bias, float* y) {
  if constexpr (M <= LIN_GROUP) {
    linear_row<M, MODE>(n, N, K, Kp, xs, w, bias, y);
  } else {
    linear_row<LIN_GROUP, MODE>(n, N, K, Kp, xs, w, bias, y);
    linear_row_passes<M - LIN_GROUP, MODE>(n, N, K, Kp, xs + LIN_GROUP * Kp, w, bias, y + LIN_GROUP * N);
  }
}

template <int M>
static void linear_small_rows(i64 n0, i64 n1, i64 N, i64 K, i64 Kp, const float* xs, const float* w,
                              const float* bias, float* y) {
  // K = 0 (y = bias): plain rows read nothing, while the aligned modes would load the block at w, which an empty
  // array need not have (a null pointer for an empty typed array crashed here).
  if (!HAVE_COMBINE || K == 0) {
    for (i64 n = n0; n < n1; ++n) linear_row_passes<M, LIN_PLAIN>(n, N, K, Kp, xs, w, bias, y);
    return;
  }
  if (M >= 5 && K % 16 == 0 && misalign(w) != 0) {
    // Many rows and a misaligned W: streaming it through the permutes ran at ~0.6x the aligned speed from
    // DRAM, so copy the chunk's rows to an aligned buffer (L2) first and run the aligned loop on the copy.
    const i64 rows = n1 - n0;
    float* wc = tls_w.get(rows * K);
    memcpy(wc, w + n0 * K, static_cast<size_t>(rows * K) * 4);
    const float* bc = bias ? bias + n0 : nullptr;
    for (i64 r = 0; r < rows; ++r) linear_row_passes<M, LIN_PLAIN>(r, N, K, Kp, xs, wc, bc, y + n0);
    return;
  }
  for (i64 n = n0; n < n1; ++n) {
    if (misalign(w + n * K) != 0) linear_row_passes<M, LIN_COMBINE>(n, N, K, Kp, xs, w, bias, y);
    else if (M <= 4 && n + 1 < N) linear_row_passes<M, LIN_AHEAD>(n, N, K, Kp, xs, w, bias, y);
    else linear_row_passes<M, LIN_PLAIN>(n, N, K, Kp, xs, w, bias, y);  // the last row: read nothing past W
  }
}

// Rows per chunk of a small-M product: ~256 KB of W as stored (long sequential streams, cheap to hand out), but at
// least 2 chunks per thread where the rows allow 8 a chunk. A 320 x 320 f16 matrix (200 KB) was one chunk, so one
// thread did it while the other waited: recycle-medium (2 threads, Zen 5) decoded 7-17% faster with 2 chunks per
// thread, and slower again with 8 (short streams).
static inline i64 small_chunk_len(int nth, i64 N, i64 row_bytes) {
  const i64 len = imax(8, 262144 / imax(row_bytes, 1));
  return imin(len, imax(8, (N + 2 * nth - 1) / (2 * nth)));
}

static thread_local Scratch tls_x = {nullptr, 0};

// Calls f(std::integral_constant<int, R>{}) for a run-time R of 1..8 (larger: 8), so each row kernel is compiled
// for its own number of x rows.
template <class F>
static inline void with_rows(i64 r, F&& f) {
  switch (imin(r, 8)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

// The small-M product's frame, shared by every weight dtype: x copied into rows padded to 16 floats, W cut into chunks
// of `len` rows handed to the threads (over N, never K: rows stay bit-identical for every M), and
// `rows(tag, n0, n1, Kp, xs, m0)` running the R-row kernel (tag: std::integral_constant<int, R>, R <= 8) for x rows
// m0 .. m0+R-1 (xs: their first) on W rows n0..n1. Past 8 x rows (up to linear_small_max_rows) each chunk takes
// them in groups of 8, its W rows read from memory by the first group and from L2 by the rest.
template <class Rows>
static void linear_small_chunks(int nth, i64 M, i64 N, i64 K, const float* x, i64 len, Rows rows) {
  const i64 Kp = (K + 15) / 16 * 16;
  float* xs = tls_x.get(M * Kp);  // the caller's buffer, read by all threads during this call
  for (i64 m = 0; m < M; ++m) memcpy(xs + m * Kp, x + m * K, static_cast<size_t>(K) * 4);
  auto chunk = [&](i64 c) {
    const i64 n0 = c * len, n1 = imin(N, n0 + len);
    for (i64 m0 = 0; m0 < M; m0 += 8)
      with_rows(M - m0, [&](auto tag) { rows(tag, n0, n1, Kp, xs + m0 * Kp, m0); });
  };
  // Memory-bound: ~1 flop per byte counts as work here, so a 768x768 layer (2.4 MB) uses both threads.
  run_chunks(nth, (N + len - 1) / len, 2.0 * static_cast<double>(M) * N * K, chunk);
}

static void linear_small(int nth, i64 M, i64 N, i64 K, const float* x, const float* w, const float* bias, float* y) {
  const i64 len = small_chunk_len(nth, N, 4 * K);
  linear_small_chunks(nth, M, N, K, x, len, [&](auto rows, i64 n0, i64 n1, i64 Kp, const float* xs, i64 m0) {
    linear_small_rows<decltype(rows)::value>(n0, n1, N, K, Kp, xs, w, bias, y + m0 * N);
  });
}

static void linear_f32(int nth, i64 M, i64 N, i64 K, const float* x, const float* w, const float* bias, float* y) {
  if (M == 0 || N == 0) return;
  // The GEMM on float32 W skips the dequantization the other dtypes' large path pays (an f32 copy of all of W), so it
  // takes over at about half their rows (f32 vs the GEMM on Zen 5, 2 threads: even at 14-16 rows; f16 at ~28).
  if (M <= imax(8, rg::linear_small_max_rows / 2)) {
    linear_small(nth, M, N, K, x, w, bias, y);
    return;
  }
  // Larger M: the GEMM with W as a transposed B; the bias pre-fills y and the product accumulates onto it.
  if (bias) {
    for (i64 m = 0; m < M; ++m) memcpy(y + m * N, bias, static_cast<size_t>(N) * 4);
  }
  gemm(nth, M, N, K, x, false, w, true, y, bias != nullptr);
}

// ================================================================================================
// linear for f16 / bf16 / q8_0 weights, read as stored and converted to float32 in registers (kernels.h's
// WeightRef: the conversions are exact). Small M: linear_row's arithmetic exactly, chunk c of W floats → acc[c % LIN_ACC],
// a masked tail chunk, the same final sums; only the loads differ. So each row is bit-identical for every M on this
// path, and equal, bit for bit, to linear_f32's on the dequantized weights (all linear_row modes load the same values).
// W rows are read as one sequential stream per thread (plain loads: the aligned-block tricks of the f32 path pay
// for 64-byte vectors of floats, less for 32 or 16 bytes of f16 / int8). q8_0 rows are whole 32-blocks and W
// divides 32: a chunk never straddles two scales.
// Large M: each chunk of W rows is dequantized into a thread's buffer (L2) and multiplied by the f32 GEMM, with no
// N·K float32 copy of W (the head has 50257 rows); the GEMM's sums do not depend on how C is cut, so these rows
// equal the f32 path's on the dequantized weights too.
// ================================================================================================

// Readers of one W row as float32 vectors: load(o) is elements o .. o+W-1 (o a multiple of W); load_chunks(o, wv)
// the LIN_ACC chunks from o (a multiple of LIN_ACC·W, which divides or is a multiple of 32), one(i) element i alone.
// f16 and bf16 rows: 16-bit storage widened by the ISA's vload_f16 / vload_bf16 (and one value by `one`).
static inline float bf16_one(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
template <V (*Load)(const uint16_t*), float (*One)(uint16_t)>
struct RowHalf {
  const uint16_t* p;
  static constexpr int kBytes = 2;
  V load(i64 o) const { return Load(p + o); }
  void load_chunks(i64 o, V* wv) const {
#pragma GCC unroll 4
    for (int a = 0; a < LIN_ACC; ++a) wv[a] = Load(p + o + a * W);
  }
  float one(i64 i) const { return One(p[i]); }
  const void* at(i64 o) const { return p + o; }
};
typedef RowHalf<vload_f16, f16_to_f32> RowF16;
typedef RowHalf<vload_bf16, bf16_one> RowBF16;
struct RowQ8 {
  const int8_t* q;
  const uint16_t* d;  // the row's scales
  static constexpr int kBytes = 1;
  V load(i64 o) const { return vmul(vset1(f16_to_f32(d[o / rg::kQ8Block])), vload_i8(q + o)); }
  void load_chunks(i64 o, V* wv) const {  // one scale per block, not per chunk (~1.3x faster from cache)
    constexpr int per = static_cast<int>(rg::kQ8Block) / W;  // chunks per block: 4 (8 floats) or 2 (16)
    const uint16_t* db = d + o / rg::kQ8Block;
    V dv = vzero();
#pragma GCC unroll 4
    for (int a = 0; a < LIN_ACC; ++a) {
      if (a % per == 0) dv = vset1(f16_to_f32(db[a / per]));
      wv[a] = vmul(dv, vload_i8(q + o + a * W));
    }
  }
  float one(i64 i) const { return f16_to_f32(d[i / rg::kQ8Block]) * static_cast<float>(q[i]); }
  const void* at(i64 o) const { return q + o; }
};

// A q8_0 row whose scales were widened to float32 beforehand (linear_small_rows_dt, once per chunk of rows): the same
// values as RowQ8 (d·q, exact), but a block's scale is one broadcast load instead of a float16 conversion in the loop
// (1 thread, 768×768 from L2/L3: ~1.3x faster at M = 1 and 2 on Zen 3).
struct RowQ8F {
  const int8_t* q;
  const float* d;  // the row's scales as float32
  static constexpr int kBytes = 1;
  V load(i64 o) const { return vmul(vset1(d[o / rg::kQ8Block]), vload_i8(q + o)); }
  void load_chunks(i64 o, V* wv) const {
    constexpr int per = static_cast<int>(rg::kQ8Block) / W;  // chunks per block
    const float* db = d + o / rg::kQ8Block;
#pragma GCC unroll 4
    for (int a = 0; a < LIN_ACC; ++a) wv[a] = vmul(vset1(db[a / per]), vload_i8(q + o + a * W));
  }
  float one(i64 i) const { return d[i / rg::kQ8Block] * static_cast<float>(q[i]); }
  const void* at(i64 o) const { return q + o; }
};

static inline RowF16 row_f16(const rg::WeightRef& w, i64 n, i64 K) {
  return RowF16{static_cast<const uint16_t*>(w.data) + n * K};
}
static inline RowBF16 row_bf16(const rg::WeightRef& w, i64 n, i64 K) {
  return RowBF16{static_cast<const uint16_t*>(w.data) + n * K};
}
static inline RowQ8 row_q8(const rg::WeightRef& w, i64 n, i64 K) {
  return RowQ8{static_cast<const int8_t*>(w.data) + n * K, w.scales + n * (K / rg::kQ8Block)};
}

// The first n (< W) elements from o, zero-padded (a row's tail; never reads past it).
template <class R>
static inline V load_tail(const R& r, i64 o, int n) {
  alignas(64) float t[W];
  for (int i = 0; i < W; ++i) t[i] = i < n ? r.one(o + i) : 0.0f;
  return vload(t);
}

// Row n of a weight [rows, K] as float32 into out[0..K).
template <class R>
static inline void dequant_into(const R& r, i64 K, float* out) {
  i64 o = 0;
  for (; o + W <= K; o += W) vstore(out + o, r.load(o));
  if (o < K) vstore_n(out + o, load_tail(r, o, static_cast<int>(K - o)), static_cast<int>(K - o));
}
// q4_0: row n's packed quants as int8 values q − 8 (in −8..7) into out[0..K), so that the q8_0 readers (RowQ8,
// RowQ8F) give its values d·(q − 8): a block's 16 bytes hold weights j (low nibble) and j + 16 (high nibble).
static inline const uint8_t* q4_row(const rg::WeightRef& w, i64 n, i64 K) {
  return static_cast<const uint8_t*>(w.data) + n * (K / 2);
}
static inline void unpack_q4(const uint8_t* __restrict__ p, i64 K, int8_t* __restrict__ out) {
  constexpr int H = static_cast<int>(rg::kQ4Block / 2);
  for (i64 o = 0; o < K; o += rg::kQ4Block, p += H) {  // two contiguous 16-byte loops: vectorized (restrict)
    for (int j = 0; j < H; ++j) out[o + j] = static_cast<int8_t>(static_cast<uint8_t>((p[j] & 0x0F) + 0xF8));
    for (int j = 0; j < H; ++j) out[o + H + j] = static_cast<int8_t>(static_cast<uint8_t>((p[j] >> 4) + 0xF8));
  }
}
static thread_local Scratch tls_q4 = {nullptr, 0};  // a q4_0 row unpacked to int8 (K bytes in a float scratch)
static inline int8_t* q4_scratch(i64 K) { return reinterpret_cast<int8_t*>(tls_q4.get((K + 3) / 4)); }

// Row n of panel-packed f16 / bf16 bits (kernels.h): column n % 32 of its panel, every 32nd value.
template <float (*One)(uint16_t)>
static inline void dequant_panel_row(const uint16_t* data, i64 n, i64 K, float* out) {
  const uint16_t* p = data + (n / rg::kPanelCols) * rg::kPanelCols * K + n % rg::kPanelCols;
  for (i64 k = 0; k < K; ++k) out[k] = One(p[k * rg::kPanelCols]);
}

// Row n of q8_0 panels (kernels.h): quant k at the panel's k-th 32 bytes, scale of block b at its b-th 32 scales.
static inline void dequant_q8_panel_row(const rg::WeightRef& w, i64 n, i64 K, float* out) {
  const i64 P = n / rg::kPanelCols, c = n % rg::kPanelCols, KB = K / rg::kQ8Block;
  const int8_t* q = static_cast<const int8_t*>(w.data) + P * rg::kPanelCols * K + c;
  const uint16_t* d = w.scales + P * rg::kPanelCols * KB + c;
  for (i64 k = 0; k < K; ++k)
    out[k] = f16_to_f32(d[(k / rg::kQ8Block) * rg::kPanelCols]) * static_cast<float>(q[k * rg::kPanelCols]);
}

static void dequant_row(const rg::WeightRef& w, i64 n, i64 K, float* out) {
  switch (w.dtype) {
    case rg::kWQ8Panels: dequant_q8_panel_row(w, n, K, out); break;
    case rg::kWF16Panels: dequant_panel_row<f16_to_f32>(static_cast<const uint16_t*>(w.data), n, K, out); break;
    case rg::kWBF16Panels: dequant_panel_row<bf16_one>(static_cast<const uint16_t*>(w.data), n, K, out); break;
    case rg::kWF16: dequant_into(row_f16(w, n, K), K, out); break;
    case rg::kWBF16: dequant_into(row_bf16(w, n, K), K, out); break;
    case rg::kWQ8_0: dequant_into(row_q8(w, n, K), K, out); break;
    case rg::kWQ4_0: {
      int8_t* q = q4_scratch(K);
      unpack_q4(q4_row(w, n, K), K, q);
      dequant_into(RowQ8{q, w.scales + n * (K / rg::kQ4Block)}, K, out);
      break;
    }
    default: memcpy(out, static_cast<const float*>(w.data) + n * K, static_cast<size_t>(K) * 4); break;
  }
}


template <int M, class R>
RG_ROW_INLINE static inline void linear_row_dt(i64 n, i64 N, i64 K, i64 Kp, const float* xs, const R& wr,
                                               const float* bias, float* y) {
  constexpr int A = LIN_ACC;
  V acc[A][M];
  zero_rows<M>(acc);
  const i64 nfull = K / W;
  const int tail = static_cast<int>(K - nfull * W);
  const i64 pf = rg::linear_prefetch_bytes;  // software prefetch distance in bytes (kernels.h), 0 for none
  i64 c = 0;
  for (; c + A <= nfull; c += A) {  // chunks c .. c+A-1 → acc[0 .. A-1]
    const i64 o = c * W;
    if (pf) {
#pragma GCC unroll 4
      for (int l = 0; l < A * W * R::kBytes; l += 64) prefetch_l1(static_cast<const char*>(wr.at(o)) + pf + l);
    }
    V wv[A];
    wr.load_chunks(o, wv);
    fma_chunks<M>(acc, xs, Kp, o, wv);
  }
  auto wload = [&](i64 o) { return wr.load(o); };
  auto wtail = [&](i64 o) { return load_tail(wr, o, tail); };
  finish_chunks<0, M>(acc, c, nfull, tail, wload, wtail, xs, Kp);
  store_rows<M>(acc, n, N, bias, y);
}

// linear_row_dt in passes of at most LIN_GROUP x rows (see linear_row_passes).
template <int M, class R>
RG_ROW_INLINE static inline void linear_row_dt_passes(i64 n, i64 N, i64 K, i64 Kp, const float* xs, const R& wr,
                                                      const float* bias, float* y) {
  if constexpr (M <= LIN_GROUP) {
    linear_row_dt<M>(n, N, K, Kp, xs, wr, bias, y);
  } else {
    linear_row_dt<LIN_GROUP>(n, N, K, Kp, xs, wr, bias, y);
    linear_row_dt_passes<M - LIN_GROUP>(n, N, K, Kp, xs + LIN_GROUP * Kp, wr, bias, y + LIN_GROUP * N);
  }
}

static thread_local Scratch tls_scales = {nullptr, 0};

template <int M>
static void linear_small_rows_dt(i64 n0, i64 n1, i64 N, i64 K, i64 Kp, const float* xs, const rg::WeightRef& w,
                                 const float* bias, float* y) {
  switch (w.dtype) {
    case rg::kWF16:
      for (i64 n = n0; n < n1; ++n) linear_row_dt_passes<M>(n, N, K, Kp, xs, row_f16(w, n, K), bias, y);
      break;
    case rg::kWBF16:
      for (i64 n = n0; n < n1; ++n) linear_row_dt_passes<M>(n, N, K, Kp, xs, row_bf16(w, n, K), bias, y);
      break;
    default: {  // q8_0 / q4_0: the chunk's scales widened to float32 once (RowQ8F)
      const i64 nb = K / rg::kQ8Block;
      float* ds = tls_scales.get((n1 - n0) * nb);
      dequant_into(RowF16{w.scales + n0 * nb}, (n1 - n0) * nb, ds);
      if (w.dtype == rg::kWQ4_0) {  // each row unpacked to int8 q − 8 first, then read as q8_0 (the same values)
        int8_t* q = q4_scratch(K);
        for (i64 n = n0; n < n1; ++n) {
          unpack_q4(q4_row(w, n, K), K, q);
          linear_row_dt_passes<M>(n, N, K, Kp, xs, RowQ8F{q, ds + (n - n0) * nb}, bias, y);
        }
        break;
      }
      const int8_t* q = static_cast<const int8_t*>(w.data);
      for (i64 n = n0; n < n1; ++n) linear_row_dt_passes<M>(n, N, K, Kp, xs, RowQ8F{q + n * K, ds + (n - n0) * nb}, bias, y);
      break;
    }
  }
}

static void linear_small_dt(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef& w, const float* bias,
                            float* y) {
  const i64 row_bytes = w.dtype == rg::kWQ8_0 ? K : w.dtype == rg::kWQ4_0 ? K / 2 : 2 * K;
  const i64 len = small_chunk_len(nth, N, row_bytes);
  linear_small_chunks(nth, M, N, K, x, len, [&](auto rows, i64 n0, i64 n1, i64 Kp, const float* xs, i64 m0) {
    linear_small_rows_dt<decltype(rows)::value>(n0, n1, N, K, Kp, xs, w, bias, y + m0 * N);
  });
}

#if defined(RG_HAVE_I8DOT)
// ================================================================================================
// q8_0, small M (up to linear_small_max_rows, as the float path), where the ISA has an int8 dot (simd_*.h
// RG_HAVE_I8DOT: AVX2, AVX-512, wasm SIMD128): ggml's Q8_0 × Q8_0. Each x row is quantized per block of 32
// (vb_quantize: int8 and a float32 scale dx), and each output is
//   y = Σ_b (dx_b · dw_b) · (Σ_{j in b} xq_j · wq_j)
// with the inner sums exact in integers and the outer one in float32 over 2 × 8 lanes (wasm: 2 × 4; block b →
// acc[b % 2]), then one horizontal sum. The float path above spends 3 vector operations per 8 weights converting int8
// to float32 (widen, convert, scale) before any multiply, and at 2 threads that, not memory, bounded it (768×768 from
// L3, 1 thread: ~12 GB/s at M = 1, ~9 at M = 2); here one integer multiply-add covers 32 weights.
// The result differs from the float path by the rounding of x to 8 bits (|error| <= Σ_b dx_b/2 · Σ_{j in b} |w_j|,
// the bound test/kernels-dtypes.test.ts checks against ref), as llama.cpp's Q8_0 does. Row independence holds: a row's
// quantization and sums depend on that row and K only, so each row is bit-identical for every M on the path (verified
// decoding), and results do not depend on the thread count. Paths without an int8 dot keep the exact float path.
// q4_0 weights take the same path (ggml's Q4_0 × Q8_0): a block's 16 bytes unpacked in registers to 32 quants
// (wb_load_q4) whose dot with x gives the same int32 lane sums of (q − 8)·x as a q8_0 block holding q − 8 would
// (vb_dot_q4; on x86 with each x block's 8·Σx per lane computed once a call, kQ4C8); the sums and their order are
// q8_0's. WebAssembly SIMD128 (simd_wasm.h) has the primitives too, through i16 dots (x's quants kept as int16): q8_0
// and q4_0 take this path there as on x86 (RG_I8DOT_Q8_0 says a path takes it for q8_0).
// ================================================================================================
static thread_local Scratch tls_xq = {nullptr, 0};
static thread_local Scratch tls_xd = {nullptr, 0};

// Weight blocks of the int8 dot, by dtype: kBytes stored bytes a block of 32 weights, load(p) one block, dot(w, x, c8,
// i) its lane sums with x block i at x (c8: the x blocks' vb_c8 lanes, which q4_0 needs; kC8 says whether to compute
// them, else c8 is null).
struct WQ8 {
  static constexpr i64 kBytes = rg::kQ8Block;
  static constexpr bool kC8 = false;
  static WB load(const uint8_t* p) { return wb_load(reinterpret_cast<const int8_t*>(p)); }
  static VB dot(const WB& w, const XQ* x, const int32_t*, i64) { return vb_dot(w, x); }
};
struct WQ4 {
  static constexpr i64 kBytes = rg::kQ4Block / 2;
  static constexpr bool kC8 = kQ4C8;
  static WB load(const uint8_t* p) { return wb_load_q4(p); }
  static VB dot(const WB& w, const XQ* x, const int32_t* c8, i64 i) {
    if constexpr (kC8) return vb_dot_q4(w, x, c8 + i * 8);
    return vb_dot_q4(w, x, nullptr);
  }
};

// Row n of y for M quantized x rows; block (m, b) is scaled by dx[m·nb + b] · dr[b] (the x block's and the W row's
// scales, multiplied here in registers: a scale vector stored per row and read back as scalars stalled each load on
// store forwarding); c8 the x blocks' vb_c8 lanes (8 a block, q4_0 only). Block b goes to acc[b % 2] (for every dtype
// and M); each iteration of the main loop takes one 64-byte line of W.
template <int M, class B>
__attribute__((always_inline)) static inline void q8i_block(VB (&acc)[2][M], int slot, i64 b, i64 nb, i64 K,
                                                            const XQ* xq, const int32_t* c8, const float* dx,
                                                            const float* dr, const uint8_t* wq) {
  const WB w = B::load(wq + b * B::kBytes);
  const float d = dr[b];
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
    const i64 i = m * nb + b;  // x block (m, b)
    const VB v = B::dot(w, xq + m * K + b * rg::kQ8Block, c8, i);
    if (slot == 0) acc[0][m] = vb_fma(dx[i] * d, v, acc[0][m]);
    else acc[1][m] = vb_fma(dx[i] * d, v, acc[1][m]);
  }
}
// The blocks after the last whole line: b0 (a multiple of L, so even) .. nb − 1, fewer than L, block b0 + H → acc[H % 2]
// (= acc[b % 2]), with compile-time accumulator indices (see finish_chunks).
template <int H, int M, class B>
__attribute__((always_inline)) static inline void q8i_rest(VB (&acc)[2][M], i64 b0, i64 nb, i64 K, const XQ* xq,
                                                           const int32_t* c8, const float* dx, const float* dr,
                                                           const uint8_t* wq) {
  if constexpr (H < static_cast<int>(64 / B::kBytes) - 1) {
    if (b0 + H >= nb) return;
    q8i_block<M, B>(acc, H % 2, b0 + H, nb, K, xq, c8, dx, dr, wq);
    q8i_rest<H + 1, M, B>(acc, b0, nb, K, xq, c8, dx, dr, wq);
  }
}

template <int M, class B>
RG_ROW_INLINE static inline void linear_row_q8i(i64 n, i64 N, i64 K, i64 nb, const XQ* xq, const int32_t* c8,
                                                const float* dx, const float* dr, const uint8_t* wq, const float* bias,
                                                float* y) {
  constexpr int L = static_cast<int>(64 / B::kBytes);  // blocks per line: 2 (q8_0) or 4 (q4_0)
  VB acc[2][M];
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) acc[0][m] = acc[1][m] = vb_zero();
  const i64 pf = rg::linear_prefetch_bytes;  // software prefetch distance in bytes (kernels.h), 0 for none
  i64 b = 0;
  for (; b + L <= nb; b += L) {
    if (pf) prefetch_l1(wq + b * B::kBytes + pf);
#pragma GCC unroll 4
    for (int h = 0; h < L; ++h) q8i_block<M, B>(acc, h % 2, b + h, nb, K, xq, c8, dx, dr, wq);
  }
  q8i_rest<0, M, B>(acc, b, nb, K, xq, c8, dx, dr, wq);
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
    const float s = vb_hsum2(acc[0][m], acc[1][m]);
    y[m * N + n] = bias ? s + bias[n] : s;
  }
}

static thread_local Scratch tls_c8 = {nullptr, 0};  // q4_0: the x blocks' vb_c8 lanes (int32 in a float scratch)

template <class B>
static void linear_q8_int(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef& w, const float* bias,
                          float* y) {
  const i64 nb = K / rg::kQ8Block;
  // x quantized once, on the calling thread, into buffers the chunks read (int8 quants in a float scratch's bytes)
  XQ* xq = reinterpret_cast<XQ*>(tls_xq.get((M * K * static_cast<i64>(sizeof(XQ)) + 3) / 4));
  float* dx = tls_xd.get(M * nb);
  for (i64 m = 0; m < M; ++m)
    for (i64 b = 0; b < nb; ++b) dx[m * nb + b] = vb_quantize(x + m * K + b * rg::kQ8Block, xq + m * K + b * rg::kQ8Block);
  int32_t* c8 = B::kC8 ? reinterpret_cast<int32_t*>(tls_c8.get(M * nb * 8)) : nullptr;
  if constexpr (B::kC8)
    for (i64 i = 0; i < M * nb; ++i) vb_c8(xq + i * rg::kQ8Block, c8 + i * 8);  // block i = m·nb + b at xq + m·K + 32·b
  const uint8_t* wq = static_cast<const uint8_t*>(w.data);
  const i64 row_bytes = nb * B::kBytes;
  const i64 len = small_chunk_len(nth, N, row_bytes);
  auto chunk = [&](i64 c) {
    const i64 n0 = c * len, n1 = imin(N, n0 + len);
    float* dw = tls_scales.get((n1 - n0) * nb);  // the chunk's weight scales widened once
    dequant_into(RowF16{w.scales + n0 * nb}, (n1 - n0) * nb, dw);
    for (i64 m0 = 0; m0 < M; m0 += 8) {  // groups of 8 x rows, as linear_small_chunks
      const XQ* xg = xq + m0 * K;
      const int32_t* cg = c8 ? c8 + m0 * nb * 8 : nullptr;
      const float* dg = dx + m0 * nb;
      float* yg = y + m0 * N;
      with_rows(M - m0, [&](auto tag) {
        constexpr int R = decltype(tag)::value;
        for (i64 n = n0; n < n1; ++n)
          linear_row_q8i<R, B>(n, N, K, nb, xg, cg, dg, dw + (n - n0) * nb, wq + n * row_bytes, bias, yg);
      });
    }
  };
  run_chunks(nth, (N + len - 1) / len, 2.0 * static_cast<double>(M) * N * K, chunk);
}
#endif

// M > 8: chunks of W rows dequantized to float32 (up to ~1 MB, a multiple of 16 rows, a multiple of nth chunks),
// each multiplied on its thread by the GEMM. Each chunk packs x again, so chunks are as large as L2 allows.
static void linear_large_dt(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef& w, const float* bias,
                            float* y) {
  const int use = threads_for(nth, 2.0 * static_cast<double>(M) * N * K / 40.0);  // as the GEMM: ≥ 4 Mflop each
  const i64 most = imax(16, 262144 / imax(K, 1) / 16 * 16);
  i64 chunks = (N + most - 1) / most;
  chunks = (chunks + use - 1) / use * use;
  const i64 len = imax(16, ((N + chunks - 1) / chunks + 15) / 16 * 16);
  auto chunk = [&](i64 c) {
    const i64 n0 = c * len, rows = imin(N, n0 + len) - n0;
    float* wc = tls_w.get(rows * K);
    for (i64 r = 0; r < rows; ++r) dequant_row(w, n0 + r, K, wc + r * K);
    if (bias) {  // as linear_f32: the bias pre-fills y and the product accumulates onto it
      for (i64 m = 0; m < M; ++m) memcpy(y + m * N + n0, bias + n0, static_cast<size_t>(rows) * 4);
    }
    gemm_strided(M, rows, K, x, K, 1, wc, 1, K, y + n0, N, bias != nullptr);
  };
  rg::parallel_chunks(use, (N + len - 1) / len, chunk);
}

// ================================================================================================
// linear on panel-packed f16 / bf16 weights (kernels.h kWF16Panels / kWBF16Panels): an outer product.
// For each k, a panel's 32 weights (one 64-byte line) are widened once and multiplied by x[m, k], broadcast, for
// every x row, into accumulators that are the outputs themselves: no horizontal sums, and no x row reloaded per
// weight vector (the row-major kernel above loads each x row once per W vector, so it is load-bound at M ≥ 2 and
// its extra rows show through the DRAM stream). Each output is PANEL_KP FMA chains over k (chain q takes the k with
// k ≡ q mod PANEL_KP), added in chain order at the end, then the bias: the same arithmetic for every M, chunking and
// thread count (threads take whole panels), so rows stay bit-identical for every M. The 65 products of recycle-large
// (42 MB f16) from DRAM, 2 threads, Zen 5 (AVX-512), against the row-major kernel at M = 1, two runs: M = 1 0.87-0.98x,
// 2 0.87-0.98x, 4 0.93-0.98x, 8 1.34-1.41x (row-major: 1, 1.04, 1.23-1.26, 2.14-2.37x).
// ================================================================================================
constexpr int PANEL_KP = 2;
constexpr int PANEL_VECS = static_cast<int>(rg::kPanelCols) / W;  // vectors in one k of a panel
static_assert(static_cast<int>(rg::kPanelCols) % W == 0, "a panel's k holds whole vectors");

// Vectors of a panel a pass over R x rows takes: as many as PANEL_ACC accumulators hold (KP·R·SB of them), a power of
// two dividing the panel's vectors (R = 1 on AVX2: the whole panel, 4 vectors; 3 rows: 2).
constexpr int panel_sb(int R) {
  int sb = PANEL_VECS;
  while (sb > 1 && PANEL_KP * R * sb > PANEL_ACC) sb /= 2;
  return sb;
}

// A panel pass's outputs out[r][j] (+ the bias) into rows 0..R−1 of y (row stride N), columns n0 + (j0 + j)·W..
// (only those < N).
template <int R, int SB>
static inline void store_panel_pass(const V (&out)[R][SB], int j0, const float* bias, float* y, i64 N, i64 n0) {
#pragma GCC unroll 8
  for (int j = 0; j < SB; ++j) {
    const i64 n = n0 + j0 * W + j * W;
    if (n >= N) break;
    const int cols = static_cast<int>(imin(W, N - n));
    const V b = bias ? (cols == W ? vload(bias + n) : vload_n(bias + n, cols)) : vzero();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V v = bias ? vadd(out[r][j], b) : out[r][j];
      if (cols == W) vstore(y + r * N + n, v);
      else vstore_n(y + r * N + n, v, cols);
    }
  }
}

// Rows 0..R−1 of x (row stride K) on the columns [j0·W, (j0 + panel_sb(R))·W) of one panel (`p`: the panel's [K][32]
// bits), into y columns n0 + j0·W.. (row stride N, only those < N). `stream`: the first pass over this panel, which
// prefetches its lines ahead (later passes find them in cache).
template <int R, V (*Load)(const uint16_t*)>
static inline void panel_pass(const uint16_t* p, i64 K, int j0, const float* x, const float* bias, float* y, i64 N,
                              i64 n0, bool stream) {
  constexpr int SB = panel_sb(R), KP = PANEL_KP, C = static_cast<int>(rg::kPanelCols);
  V acc[KP][R][SB];
#pragma GCC unroll 2
  for (int q = 0; q < KP; ++q) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < SB; ++j) acc[q][r][j] = vzero();
    }
  }
  const uint16_t* w = p + j0 * W;
  const i64 pf = stream ? rg::linear_prefetch_bytes : 0;
  auto step = [&](i64 k, int q) {
    V wv[SB];
#pragma GCC unroll 8
    for (int j = 0; j < SB; ++j) wv[j] = Load(w + k * C + j * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V xb = vset1(x[r * K + k]);
#pragma GCC unroll 8
      for (int j = 0; j < SB; ++j) acc[q][r][j] = vfma(xb, wv[j], acc[q][r][j]);
    }
  };
  i64 k = 0;
  for (; k + KP <= K; k += KP) {
    if (pf) {
#pragma GCC unroll 2
      for (int q = 0; q < KP; ++q) prefetch_l1(reinterpret_cast<const char*>(p + (k + q) * C) + pf);
    }
#pragma GCC unroll 2
    for (int q = 0; q < KP; ++q) step(k + q, q);
  }
  // the last K mod KP values of k, chain by chain (a constant chain index each: a run-time one would put the
  // accumulators on the stack)
#pragma GCC unroll 2
  for (int q = 0; q < KP - 1; ++q) {
    if (k + q < K) step(k + q, q);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < SB; ++j) {
#pragma GCC unroll 2
      for (int q = 1; q < KP; ++q) acc[0][r][j] = vadd(acc[0][r][j], acc[q][r][j]);  // the chains in order
    }
  }
  store_panel_pass<R, SB>(acc[0], j0, bias, y, N, n0);
}

// panel_pass for q8_0 panels (kernels.h kWQ8Panels): per block of 32 k, each output's partial sum of q·x over the
// block (one FMA chain in k order, from zero), then acc = fma(partial, d, acc) in block order, then the bias. The
// partials and the outputs together take as many accumulators as panel_pass's two chains (panel_sb). Half the bytes
// of f16 panels, x kept in float32: what verified's drafts read for the module and its head (model/module-dtype.ts,
// draft-head.ts; a module call on recycle-large 154 -> 101 us, 1 row, 2 threads, Xeon).
template <int R>
static inline void panel_pass_q8(const int8_t* p, const uint16_t* sc, i64 K, int j0, const float* x, const float* bias,
                                 float* y, i64 N, i64 n0, bool stream) {
  constexpr int SB = panel_sb(R), C = static_cast<int>(rg::kPanelCols), B = static_cast<int>(rg::kQ8Block);
  V acc[R][SB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < SB; ++j) acc[r][j] = vzero();
  }
  const int8_t* w = p + j0 * W;
  const uint16_t* s = sc + j0 * W;
  const i64 pf = stream ? rg::linear_prefetch_bytes : 0;
  for (i64 b0 = 0; b0 < K; b0 += B) {
    V part[R][SB];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < SB; ++j) part[r][j] = vzero();
    }
    if (pf) {  // the block's 32 k are 1 KB: 16 lines
      for (int l = 0; l < B * C; l += 64) prefetch_l1(reinterpret_cast<const char*>(p + b0 * C) + pf + l);
    }
#pragma GCC unroll 4
    for (i64 k = b0; k < b0 + B; ++k) {
      V wv[SB];
#pragma GCC unroll 8
      for (int j = 0; j < SB; ++j) wv[j] = vload_i8(w + k * C + j * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V xb = vset1(x[r * K + k]);
#pragma GCC unroll 8
        for (int j = 0; j < SB; ++j) part[r][j] = vfma(xb, wv[j], part[r][j]);
      }
    }
    V d[SB];
#pragma GCC unroll 8
    for (int j = 0; j < SB; ++j) d[j] = vload_f16(s + (b0 / B) * C + j * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < SB; ++j) acc[r][j] = vfma(part[r][j], d[j], acc[r][j]);
    }
  }
  store_panel_pass<R, SB>(acc, j0, bias, y, N, n0);
}

// Calls f(std::integral_constant<int, R>{}) for a run-time R of 1..PANEL_MR.
template <class F>
static inline void with_panel_rows(i64 r, F&& f) {
  switch (imin(r, PANEL_MR)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: if constexpr (PANEL_MR >= 2) f(std::integral_constant<int, 2>{}); break;
    case 3: if constexpr (PANEL_MR >= 3) f(std::integral_constant<int, 3>{}); break;
    case 4: if constexpr (PANEL_MR >= 4) f(std::integral_constant<int, 4>{}); break;
    case 5: if constexpr (PANEL_MR >= 5) f(std::integral_constant<int, 5>{}); break;
    default: if constexpr (PANEL_MR >= 6) f(std::integral_constant<int, 6>{}); break;
  }
}
static_assert(PANEL_MR >= 1 && PANEL_MR <= 6, "with_panel_rows handles 1..6 rows a pass");

// The most x rows a product on panels takes through linear_panels, past linear_small_max_rows too (prefill, eval): its
// passes over a panel in cache beat the GEMM on widened panels at 256, 512 and 1024 rows ([1280, 320], [320, 1280],
// [3072, 768]: 0.81-0.91x its time; a 256-token prefill of recycle-large 0.87x; 2 threads, Zen 5).
constexpr i64 PANEL_OUTER_MAX_ROWS = 1024;

// y[M, N] = x · Wᵀ + bias for panel-packed W, M ≤ PANEL_OUTER_MAX_ROWS: each panel in passes of
// up to PANEL_MR x rows and panel_sb vectors (the first pass streams it from memory, the rest re-read it from cache).
// pass(R, panel index, vector j0, first row, stream) runs one.
template <class Pass>
static void linear_panels_by(int nth, i64 M, i64 N, i64 K, Pass&& pass) {
  constexpr i64 C = rg::kPanelCols;
  const i64 P = (N + C - 1) / C;
  // One range of panels a thread, their sizes within one panel of each other (320 rows are 10 panels): a single
  // stream each. The 65 products of recycle-large at M = 1 took 0.89x the row-major kernel's time this way, 0.94x
  // with ranges of ~256 KB, 0.99-1.02x with two ranges a thread (2 threads, Zen 5).
  const i64 chunks = imin(P, nth);
  auto chunk = [&](i64 c) {
    i64 p0, p1;
    rg::split_range(P, static_cast<int>(c), static_cast<int>(chunks), &p0, &p1);
    for (i64 p = p0; p < p1; ++p) {
      for (i64 m0 = 0; m0 < M; m0 += PANEL_MR) {
        with_panel_rows(M - m0, [&](auto rows) {
          constexpr int R = decltype(rows)::value;
          for (int j0 = 0; j0 < PANEL_VECS; j0 += panel_sb(R)) pass(rows, p, j0, m0, m0 == 0 && j0 == 0);
        });
      }
    }
  };
  run_chunks(nth, chunks, 2.0 * static_cast<double>(M) * N * K, chunk);
}

template <V (*Load)(const uint16_t*)>
static void linear_panels(int nth, i64 M, i64 N, i64 K, const float* x, const uint16_t* w, const float* bias,
                          float* y) {
  constexpr i64 C = rg::kPanelCols;
  linear_panels_by(nth, M, N, K, [&](auto rows, i64 p, int j0, i64 m0, bool stream) {
    constexpr int R = decltype(rows)::value;
    panel_pass<R, Load>(w + p * C * K, K, j0, x + m0 * K, bias, y + m0 * N, N, p * C, stream);
  });
}

static void linear_q8_panels(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef& w, const float* bias,
                             float* y) {
  constexpr i64 C = rg::kPanelCols;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  linear_panels_by(nth, M, N, K, [&](auto rows, i64 p, int j0, i64 m0, bool stream) {
    constexpr int R = decltype(rows)::value;
    panel_pass_q8<R>(q + p * C * K, w.scales + p * K, K, j0, x + m0 * K, bias, y + m0 * N, N, p * C, stream);
  });
}

// Larger M on panels: a chunk of panels widened to float32 as the GEMM's B [K, cols] (each
// panel's k-th 32 values side by side) and multiplied by one GEMM, chunks shared out among the threads as
// linear_large_dt's rows (~1 MB of float32 each). One GEMM a panel instead took a 256-token prefill of
// recycle-large 1.33x the row-major weights' time: x was packed again for every 32 columns.
// widen(p, k, out) writes panel p's 32 values of k, as float32, to out.
template <class Widen>
static void linear_large_panels_by(int nth, i64 M, i64 N, i64 K, const float* x, const float* bias, float* y,
                                   Widen&& widen) {
  constexpr i64 C = rg::kPanelCols;
  const i64 P = (N + C - 1) / C;
  const int use = threads_for(nth, 2.0 * static_cast<double>(M) * N * K / 40.0);  // as linear_large_dt
  i64 chunks = (P + imax(1, 262144 / imax(K, 1) / C) - 1) / imax(1, 262144 / imax(K, 1) / C);
  chunks = imin(P, (chunks + use - 1) / use * use);
  auto chunk = [&](i64 c) {
    i64 p0, p1;
    rg::split_range(P, static_cast<int>(c), static_cast<int>(chunks), &p0, &p1);
    const i64 wcols = (p1 - p0) * C, n0 = p0 * C, cols = imin(N, p1 * C) - n0;
    float* wc = tls_w.get(wcols * K);
    for (i64 p = p0; p < p1; ++p) {
      for (i64 k = 0; k < K; ++k) widen(p, k, wc + k * wcols + (p - p0) * C);
    }
    if (bias) {  // as linear_f32: the bias pre-fills y and the product accumulates onto it
      for (i64 m = 0; m < M; ++m) memcpy(y + m * N + n0, bias + n0, static_cast<size_t>(cols) * 4);
    }
    gemm_strided(M, cols, K, x, K, 1, wc, wcols, 1, y + n0, N, bias != nullptr);
  };
  rg::parallel_chunks(use, chunks, chunk);
}

template <class Row>
static void linear_large_panels(int nth, i64 M, i64 N, i64 K, const float* x, const uint16_t* w, const float* bias,
                                float* y) {
  constexpr i64 C = rg::kPanelCols;
  linear_large_panels_by(nth, M, N, K, x, bias, y,
                         [&](i64 p, i64 k, float* out) { dequant_into(Row{w + (p * K + k) * C}, C, out); });
}

// q8_0 panels past PANEL_OUTER_MAX_ROWS: the 32 values of k are d·q with each row's own scale of k's block.
static void linear_large_q8_panels(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef& w,
                                   const float* bias, float* y) {
  constexpr i64 C = rg::kPanelCols;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  linear_large_panels_by(nth, M, N, K, x, bias, y, [&](i64 p, i64 k, float* out) {
    const int8_t* qk = q + (p * K + k) * C;
    const uint16_t* dk = w.scales + p * K + (k / rg::kQ8Block) * C;
    for (i64 j = 0; j < C; ++j) out[j] = f16_to_f32(dk[j]) * static_cast<float>(qk[j]);
  });
}

static void linear(int nth, i64 M, i64 N, i64 K, const float* x, const rg::WeightRef* w, const float* bias, float* y) {
  const uint16_t* bits = static_cast<const uint16_t*>(w->data);
  if (w->dtype == rg::kWF32) linear_f32(nth, M, N, K, x, static_cast<const float*>(w->data), bias, y);
  else if (w->dtype == rg::kWQ8Panels && M <= PANEL_OUTER_MAX_ROWS) linear_q8_panels(nth, M, N, K, x, *w, bias, y);
  else if (w->dtype == rg::kWQ8Panels) linear_large_q8_panels(nth, M, N, K, x, *w, bias, y);
  else if (w->dtype == rg::kWF16Panels && M <= PANEL_OUTER_MAX_ROWS)
    linear_panels<vload_f16>(nth, M, N, K, x, bits, bias, y);
  else if (w->dtype == rg::kWBF16Panels && M <= PANEL_OUTER_MAX_ROWS)
    linear_panels<vload_bf16>(nth, M, N, K, x, bits, bias, y);
  else if (w->dtype == rg::kWF16Panels) linear_large_panels<RowF16>(nth, M, N, K, x, bits, bias, y);
  else if (w->dtype == rg::kWBF16Panels) linear_large_panels<RowBF16>(nth, M, N, K, x, bits, bias, y);
#if defined(RG_HAVE_I8DOT)
#if defined(RG_I8DOT_Q8_0)
  else if (M <= rg::linear_small_max_rows && w->dtype == rg::kWQ8_0) linear_q8_int<WQ8>(nth, M, N, K, x, *w, bias, y);
#endif
  else if (M <= rg::linear_small_max_rows && w->dtype == rg::kWQ4_0) linear_q8_int<WQ4>(nth, M, N, K, x, *w, bias, y);
#endif
  else if (M <= rg::linear_small_max_rows) linear_small_dt(nth, M, N, K, x, *w, bias, y);
  else linear_large_dt(nth, M, N, K, x, *w, bias, y);
}

// db[N] += Σ_m dy[m, :]; each column range sums its rows in order.
static void bias_backward(int nth, i64 M, i64 N, const float* dy, float* db) {
  for_cols(nth, N, M, [&](i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; c += W) {
      const int n = static_cast<int>(imin(W, c1 - c));
      V acc = vzero();
      for (i64 m = 0; m < M; ++m) acc = vadd(acc, vload_n(dy + m * N + c, n));
      vstore_n(db + c, vadd(vload_n(db + c, n), acc), n);
    }
  });
}

// ================================================================================================
// Embedding
// ================================================================================================
// V (the table's rows) is unused: the glue has checked every id against it. Rows of f16 / bf16 / q8_0 tables are
// converted exactly (dequant_row), so every dtype gives the float32 values ref's weightRow gives.
static void embedding_forward(int nth, i64 T, i64 C, i64 /*V*/, const int32_t* ids, const rg::WeightRef* table,
                              float* out) {
  if (table->dtype == rg::kWF32) {
    const float* tab = static_cast<const float*>(table->data);
    for_rows(nth, T, static_cast<double>(C), [&](i64 t0, i64 t1) {
      for (i64 t = t0; t < t1; ++t) memcpy(out + t * C, tab + static_cast<i64>(ids[t]) * C, static_cast<size_t>(C) * 4);
    });
    return;
  }
  for_rows(nth, T, static_cast<double>(C), [&](i64 t0, i64 t1) {
    for (i64 t = t0; t < t1; ++t) dequant_row(*table, ids[t], C, out + t * C);
  });
}

// Column ranges: repeated ids accumulate in t order within one chunk.
static void embedding_backward(int nth, i64 T, i64 C, i64 /*V*/, const int32_t* ids, const float* dout,
                               float* dtable) {
  for_cols(nth, C, T, [&](i64 c0, i64 c1) {
    for (i64 t = 0; t < T; ++t) {
      float* d = dtable + static_cast<i64>(ids[t]) * C;
      const float* s = dout + t * C;
      for (i64 c = c0; c < c1; c += W) {
        const int n = static_cast<int>(imin(W, c1 - c));
        vstore_n(d + c, vadd(vload_n(d + c, n), vload_n(s + c, n)), n);
      }
    }
  });
}

// ================================================================================================
// Norms: rows are independent (row-parallel); parameter gradients are column-parallel (each column sums its
// rows in order on one thread).
// ================================================================================================
static inline float row_sum(const float* x, i64 C) {
  V acc = vzero();
  i64 c = 0;
  for (; c + W <= C; c += W) acc = vadd(acc, vload(x + c));
  if (c < C) acc = vadd(acc, vload_n(x + c, static_cast<int>(C - c)));
  return vhsum(acc);
}

static void layernorm_forward(int nth, i64 N, i64 C, const float* x, const float* w, const float* b, float eps,
                              float* out, float* mean, float* rstd) {
  for_rows(nth, N, 8.0 * C, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      float* o = out + r * C;
      const float mu = row_sum(xr, C) / static_cast<float>(C);
      const V muv = vset1(mu);
      V acc = vzero();
      i64 c = 0;
      for (; c + W <= C; c += W) {
        const V d = vsub(vload(xr + c), muv);
        acc = vadd(acc, vmul(d, d));
      }
      if (c < C) {
        const V d = vkeep_n(vsub(vload_n(xr + c, static_cast<int>(C - c)), muv), static_cast<int>(C - c));
        acc = vadd(acc, vmul(d, d));
      }
      const float rs = static_cast<float>(1.0 / sqrt(static_cast<double>(vhsum(acc)) / C + eps));
      const V rsv = vset1(rs);
      for (c = 0; c + W <= C; c += W)
        vstore(o + c, vadd(vmul(vmul(vsub(vload(xr + c), muv), rsv), vload(w + c)), vload(b + c)));
      if (c < C) {
        const int n = static_cast<int>(C - c);
        vstore_n(o + c, vadd(vmul(vmul(vsub(vload_n(xr + c, n), muv), rsv), vload_n(w + c, n)), vload_n(b + c, n)), n);
      }
      mean[r] = mu;
      rstd[r] = rs;
    }
  });
}

static void layernorm_backward(int nth, i64 N, i64 C, const float* dout, const float* x, const float* w,
                               const float* mean, const float* rstd, float* dx, float* dw, float* db) {
  // dx = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)), dnorm = dout·w
  for_rows(nth, N, 12.0 * C, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      const float* dr = dout + r * C;
      float* dxr = dx + r * C;
      const V muv = vset1(mean[r]), rsv = vset1(rstd[r]);
      V s1 = vzero(), s2 = vzero();
      for (i64 c = 0; c < C; c += W) {
        const int n = static_cast<int>(imin(W, C - c));
        const V norm = vmul(vsub(vload_n(xr + c, n), muv), rsv);
        const V dn = vmul(vload_n(dr + c, n), vload_n(w + c, n));
        s1 = vadd(s1, dn);
        s2 = vadd(s2, vmul(dn, norm));
      }
      const V m1 = vset1(vhsum(s1) / static_cast<float>(C)), m2 = vset1(vhsum(s2) / static_cast<float>(C));
      for (i64 c = 0; c < C; c += W) {
        const int n = static_cast<int>(imin(W, C - c));
        const V norm = vmul(vsub(vload_n(xr + c, n), muv), rsv);
        const V dn = vmul(vload_n(dr + c, n), vload_n(w + c, n));
        const V g = vmul(vsub(vsub(dn, m1), vmul(norm, m2)), rsv);
        vstore_n(dxr + c, vadd(vload_n(dxr + c, n), g), n);
      }
    }
  });
  for_cols(nth, C, 4 * N, [&](i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; c += W) {
      const int n = static_cast<int>(imin(W, c1 - c));
      V aw = vzero(), ab = vzero();
      for (i64 r = 0; r < N; ++r) {
        const V d = vload_n(dout + r * C + c, n);
        const V norm = vmul(vsub(vload_n(x + r * C + c, n), vset1(mean[r])), vset1(rstd[r]));
        aw = vadd(aw, vmul(d, norm));
        ab = vadd(ab, d);
      }
      vstore_n(dw + c, vadd(vload_n(dw + c, n), aw), n);
      vstore_n(db + c, vadd(vload_n(db + c, n), ab), n);
    }
  });
}

static void rmsnorm_forward(int nth, i64 N, i64 C, const float* x, const float* w, float eps, float* out,
                            float* rstd) {
  for_rows(nth, N, 4.0 * C, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      float* o = out + r * C;
      V acc = vzero();
      for (i64 c = 0; c < C; c += W) {
        const V v = vload_n(xr + c, static_cast<int>(imin(W, C - c)));
        acc = vadd(acc, vmul(v, v));
      }
      const float rs = static_cast<float>(1.0 / sqrt(static_cast<double>(vhsum(acc)) / C + eps));
      const V rsv = vset1(rs);
      for (i64 c = 0; c < C; c += W) {
        const int n = static_cast<int>(imin(W, C - c));
        vstore_n(o + c, vmul(vmul(vload_n(xr + c, n), rsv), vload_n(w + c, n)), n);
      }
      rstd[r] = rs;
    }
  });
}

static void rmsnorm_backward(int nth, i64 N, i64 C, const float* dout, const float* x, const float* w,
                             const float* rstd, float* dx, float* dw) {
  // dx_i = r·w_i·dout_i − x_i·r³·mean(dout·w·x)
  for_rows(nth, N, 8.0 * C, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      const float* dr = dout + r * C;
      float* dxr = dx + r * C;
      V acc = vzero();
      for (i64 c = 0; c < C; c += W) {
        const int n = static_cast<int>(imin(W, C - c));
        acc = vadd(acc, vmul(vmul(vload_n(dr + c, n), vload_n(w + c, n)), vload_n(xr + c, n)));
      }
      const double rs = rstd[r];
      const V rsv = vset1(rstd[r]), kv = vset1(static_cast<float>(rs * rs * rs * vhsum(acc) / C));
      for (i64 c = 0; c < C; c += W) {
        const int n = static_cast<int>(imin(W, C - c));
        const V g = vsub(vmul(vmul(rsv, vload_n(w + c, n)), vload_n(dr + c, n)), vmul(vload_n(xr + c, n), kv));
        vstore_n(dxr + c, vadd(vload_n(dxr + c, n), g), n);
      }
    }
  });
  for_cols(nth, C, 3 * N, [&](i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; c += W) {
      const int n = static_cast<int>(imin(W, c1 - c));
      V aw = vzero();
      for (i64 r = 0; r < N; ++r)
        aw = vadd(aw, vmul(vmul(vload_n(dout + r * C + c, n), vload_n(x + r * C + c, n)), vset1(rstd[r])));
      vstore_n(dw + c, vadd(vload_n(dw + c, n), aw), n);
    }
  });
}

// ================================================================================================
// Activations
// ================================================================================================
// GELU (tanh form) through the logistic function: with u = a·(x + b·x³) and e = exp(−2u),
// 1 + tanh(u) = 2/(1 + e) and 1 − tanh(u) = 2e/(1 + e), so gelu(x) = x·s with s = 1/(1 + e), and
// gelu'(x) = s + 2x·s·(e·s)·du/dx. No cancellation for large |x| (1 − 2/(exp(2u)+1) would lose the tails).
static const float kGeluA = 0.7978845608028654f;  // sqrt(2/pi)
static const float kGeluB = 0.044715f;

static inline V gelu_e(V v) {
  const V u = vmul(vset1(kGeluA), vadd(v, vmul(vmul(vmul(vset1(kGeluB), v), v), v)));
  return vexp(vmul(vset1(-2.0f), u));
}

static void gelu_forward(int nth, i64 n, const float* x, float* out) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V one = vset1(1.0f);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      const V v = vload_n(x + i, c);
      vstore_n(out + i, vdiv(v, vadd(one, gelu_e(v))), c);
    }
  });
}

static void gelu_backward(int nth, i64 n, const float* x, const float* dout, float* dx) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V one = vset1(1.0f), two = vset1(2.0f), a = vset1(kGeluA), b3 = vset1(3.0f * kGeluB);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      const V v = vload_n(x + i, c);
      const V e = gelu_e(v);
      const V s = vdiv(one, vadd(one, e));
      const V du = vmul(a, vadd(one, vmul(vmul(b3, v), v)));
      const V g = vadd(s, vmul(vmul(vmul(two, v), vmul(s, vmul(e, s))), du));
      vstore_n(dx + i, vadd(vload_n(dx + i, c), vmul(vload_n(dout + i, c), g)), c);
    }
  });
}

static inline V vsigmoid(V g) { return vdiv(vset1(1.0f), vadd(vset1(1.0f), vexp(vsub(vzero(), g)))); }

static void swiglu_forward(int nth, i64 n, const float* gate, const float* up, float* out) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      const V g = vload_n(gate + i, c);
      vstore_n(out + i, vmul(vmul(g, vsigmoid(g)), vload_n(up + i, c)), c);
    }
  });
}

static void swiglu_backward(int nth, i64 n, const float* gate, const float* up, const float* dout, float* dgate,
                            float* dup) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V one = vset1(1.0f);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      const V g = vload_n(gate + i, c), u = vload_n(up + i, c), d = vload_n(dout + i, c);
      const V s = vsigmoid(g);
      const V dg = vmul(vmul(vmul(d, u), s), vadd(one, vmul(g, vsub(one, s))));
      vstore_n(dgate + i, vadd(vload_n(dgate + i, c), dg), c);
      vstore_n(dup + i, vadd(vload_n(dup + i, c), vmul(vmul(d, g), s)), c);
    }
  });
}

// ================================================================================================
// RoPE (rotate-half): x[r, h, i], x[r, h, i + D/2] rotated by the angle of (pos[r], i), from the context's
// tables (rg::rope_tables, shared by all instruction sets so that the angles are the same bits).
// ================================================================================================
static void rope(int nth, i64 R, i64 H, i64 D, float* x, const int32_t* pos, double theta, bool inverse,
                 rg::RopeCache* cache) {
  const float *cosTab, *sinTab;
  const int32_t* rows;
  rg::rope_tables(cache, theta, D, R, pos, &cosTab, &sinTab, &rows);
  const i64 half = D / 2;
  const V sgn = vset1(inverse ? -1.0f : 1.0f);
  for_rows(nth, R, 6.0 * H * D, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const float* ct = cosTab + static_cast<i64>(rows[r]) * half;
      const float* st = sinTab + static_cast<i64>(rows[r]) * half;
      for (i64 h = 0; h < H; ++h) {
        float* o = x + (r * H + h) * D;
        for (i64 i = 0; i < half; i += W) {
          const int c = static_cast<int>(imin(W, half - i));
          const V cs = vload_n(ct + i, c), sn = vmul(vload_n(st + i, c), sgn);
          const V x0 = vload_n(o + i, c), x1 = vload_n(o + half + i, c);
          vstore_n(o + i, vsub(vmul(x0, cs), vmul(x1, sn)), c);
          vstore_n(o + half + i, vadd(vmul(x1, cs), vmul(x0, sn)), c);
        }
      }
    }
  });
}

// ================================================================================================
// Attention
// ================================================================================================
// s[0..n) ← exp(s − max(s)); returns Σ (fixed order for a given n).
static float softmax_exp(float* s, i64 n) {
  V mv = vset1(-3.402823466e38f);
  i64 i = 0;
  for (; i + W <= n; i += W) mv = vmax(mv, vload(s + i));
  float mx = vhmax(mv);
  for (; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  const V mxv = vset1(mx);
  V acc = vzero();
  for (i = 0; i + W <= n; i += W) {
    const V e = vexp(vsub(vload(s + i), mxv));
    vstore(s + i, e);
    acc = vadd(acc, e);
  }
  if (i < n) {
    const int c = static_cast<int>(n - i);
    const V e = vkeep_n(vexp(vsub(vload_n(s + i, c), mxv)), c);
    vstore_n(s + i, e, c);
    acc = vadd(acc, e);
  }
  return vhsum(acc);
}

static inline void scale_row(float* s, i64 n, float by) {
  const V f = vset1(by);
  for (i64 i = 0; i < n; i += W) {
    const int c = static_cast<int>(imin(W, n - i));
    vstore_n(s + i, vmul(vload_n(s + i, c), f), c);
  }
}

// Training attention as small GEMMs per (batch, head), in blocks of ATT_RB query rows so that the causal
// upper triangle is (mostly) skipped: S = Q·Kᵀ, P = softmax(scale·S) (written to probs), out = P·V.
constexpr i64 ATT_RB = 64;

// p[0..n) ← softmax(scale·p[0..n)), like softmax_exp + normalisation.
static void softmax_scaled(float* p, i64 n, float scale) {
  scale_row(p, n, scale);
  const float sum = softmax_exp(p, n);
  scale_row(p, n, 1.0f / sum);
}

static void attention_forward(int nth, i64 B, i64 T, i64 H, i64 G, i64 D, const float* q, const float* k,
                              const float* v, float* out, float* probs) {
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(D)));
  const i64 hpk = H / G, rblocks = (T + ATT_RB - 1) / ATT_RB, tasks = B * H * rblocks;
  // Chunks (b, h, row block), the costly late row blocks first so that the cheap ones fill the gaps.
  auto job = [&](i64 c) {
    const i64 rb = rblocks - 1 - c / (B * H), bh = c % (B * H), h = bh % H, b = bh / H, g = h / hpk;
    const i64 r0 = rb * ATT_RB, r1 = imin(T, r0 + ATT_RB), rows = r1 - r0;
    const float* qb = q + ((b * T + r0) * H + h) * D;  // Q rows r0..r1, stride H·D
    const float* kb = k + (b * T * G + g) * D;          // K rows 0..r1, stride G·D
    const float* vb = v + (b * T * G + g) * D;
    float* pb = probs + ((b * H + h) * T + r0) * T;     // probs rows r0..r1, stride T
    gemm_strided(rows, r1, D, qb, H * D, 1, kb, 1, G * D, pb, T, false);
    for (i64 i = 0; i < rows; ++i) {
      float* pr = pb + i * T;
      const i64 t = r0 + i;
      softmax_scaled(pr, t + 1, scale);
      if (t + 1 < T) memset(pr + t + 1, 0, static_cast<size_t>(T - t - 1) * 4);
    }
    gemm_strided(rows, D, r1, pb, T, 1, vb, G * D, 1, out + ((b * T + r0) * H + h) * D, H * D, false);
  };
  run_chunks(nth, tasks, 2.0 * B * H * T * T * D, job);
}

// Backward per (b, g): the task owns dK, dV of KV head g and dQ of its query heads, and takes those heads in
// order, so every sum has one fixed order (independent of the thread count). Per head h:
//   dP = dO·Vᵀ, rd_t = Σ_j P_tj·dP_tj, dS = P ⊙ (dP − rd)·scale, dQ += dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO.
static void attention_backward(int nth, i64 B, i64 T, i64 H, i64 G, i64 D, const float* q, const float* k,
                               const float* v, const float* probs, const float* dout, float* dq, float* dk,
                               float* dv) {
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(D)));
  const i64 hpk = H / G, tasks = B * G, rblocks = (T + ATT_RB - 1) / ATT_RB;
  auto job = [&](i64 task) {
    float* ds = tls_s2.get(T * T);
    const i64 g = task % G, b = task / G;
    const float* kb = k + (b * T * G + g) * D;
    const float* vb = v + (b * T * G + g) * D;
    float* dkb = dk + (b * T * G + g) * D;
    float* dvb = dv + (b * T * G + g) * D;
    for (i64 h = g * hpk; h < (g + 1) * hpk; ++h) {
      const float* pb = probs + (b * H + h) * T * T;
      const float* qb = q + (b * T * H + h) * D;
      const float* dob = dout + (b * T * H + h) * D;
      float* dqb = dq + (b * T * H + h) * D;
      // dS, row block by row block (keys 0..r1 only), then dQ for those rows
      for (i64 rb = 0; rb < rblocks; ++rb) {
        const i64 r0 = rb * ATT_RB, r1 = imin(T, r0 + ATT_RB), rows = r1 - r0;
        float* dsb = ds + r0 * T;
        gemm_strided(rows, r1, D, dob + r0 * H * D, H * D, 1, vb, 1, G * D, dsb, T, false);
        for (i64 i = 0; i < rows; ++i) {
          const i64 t = r0 + i, n = t + 1;
          const float* pr = pb + t * T;
          float* dr = dsb + i * T;
          const float rd = dot(pr, dr, n);
          const V rdv = vset1(rd), sv = vset1(scale);
          for (i64 j = 0; j < n; j += W) {
            const int c = static_cast<int>(imin(W, n - j));
            vstore_n(dr + j, vmul(vmul(vload_n(pr + j, c), vsub(vload_n(dr + j, c), rdv)), sv), c);
          }
          if (n < T) memset(dr + n, 0, static_cast<size_t>(T - n) * 4);
        }
        gemm_strided(rows, D, r1, dsb, T, 1, kb, G * D, 1, dqb + r0 * H * D, H * D, true);
      }
      // dK, dV for key block [j0, j1): only query rows t >= j0 contribute
      for (i64 jb = 0; jb < rblocks; ++jb) {
        const i64 j0 = jb * ATT_RB, j1 = imin(T, j0 + ATT_RB), cols = j1 - j0, trows = T - j0;
        gemm_strided(cols, D, trows, ds + j0 * T + j0, 1, T, qb + j0 * H * D, H * D, 1, dkb + j0 * G * D, G * D, true);
        gemm_strided(cols, D, trows, pb + j0 * T + j0, 1, T, dob + j0 * H * D, H * D, 1, dvb + j0 * G * D, G * D, true);
      }
    }
  };
  run_chunks(nth, tasks, 4.0 * B * H * T * T * D, job);
}

// Decode: head h's task handles all M query rows, so each cached key/value row is read once per head for
// all rows. Per (row, head) the arithmetic is fixed whatever M is (row independence): scores
// dot(q, k_j)·scale in j order, softmax_exp, normalisation, then Σ_j p_j·v_j in j order.
// o[0 .. K·W) = Σ_{j < n} p[j] · v_j[0 .. K·W), v_j at v + j·stride, K accumulators in registers, for R
// consecutive query rows at once: row r sees the first n = n0 + r keys (causal), its probabilities at p + r·plen,
// its output at o + r·ostride. Each value vector is loaded once for all R rows, and the rows' K·R FMA chains run
// side by side (one row alone waits on its K chains' latency); each element gets its FMAs in key order, the first
// n0 keys then the row's own, so a row's sums are the same in a group of any size (R = 1: one row alone).
template <int K, int R>
static inline void values_rows(i64 n0, const float* p, i64 plen, const float* v, i64 stride, float* o, i64 ostride) {
  V a[R][K];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) a[r][k] = vzero();
  }
  for (i64 j = 0; j < n0; ++j) {
    const float* vr = v + j * stride;
    V vv[K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) vv[k] = vload(vr + k * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V pv = vset1(p[r * plen + j]);
#pragma GCC unroll 8
      for (int k = 0; k < K; ++k) a[r][k] = vfma(pv, vv[k], a[r][k]);
    }
  }
#pragma GCC unroll 8
  for (int r = 1; r < R; ++r) {
    for (i64 j = n0; j < n0 + r; ++j) {
      const V pv = vset1(p[r * plen + j]);
#pragma GCC unroll 8
      for (int k = 0; k < K; ++k) a[r][k] = vfma(pv, vload(v + j * stride + k * W), a[r][k]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) vstore(o + r * ostride + k * W, a[r][k]);
  }
}

// Rows 0 .. M−1 of one head's values for the K-vector column block at d: in groups of up to 4 rows, as many as
// ATT_ACC accumulators (simd_*.h) hold, then the rest one row at a time.
template <int K>
static inline void values_col(i64 M, i64 H, i64 h, i64 D, i64 pos0, i64 len, i64 stride, const float* vcol,
                              const float* p, float* out, i64 d) {
  constexpr int RG = ATT_ACC / K >= 4 ? 4 : ATT_ACC / K >= 2 ? 2 : 1;
  i64 m = 0;
  for (; m + RG <= M; m += RG)
    values_rows<K, RG>(pos0 + m + 1, p + m * len, len, vcol + d, stride, out + (m * H + h) * D + d, H * D);
  for (; m < M; ++m)
    values_rows<K, 1>(pos0 + m + 1, p + m * len, len, vcol + d, stride, out + (m * H + h) * D + d, H * D);
}

// out[m, h] = Σ_{j ≤ pos0+m} p[m][j] · v_j for one head: D in blocks of up to 8 vectors, each summed over the keys
// with its accumulators in registers (not a load-add-store chain through memory: 1 thread, H=5 D=64, 48 keys,
// 6.5 → 3.8 µs from cache, 42 → 26 µs with the cache cold), then a masked tail. Every element gets its FMAs in key
// order, whatever the blocking and however many rows share a pass (values_col).
static void attention_values(i64 M, i64 H, i64 h, i64 D, i64 pos0, i64 len, i64 stride, const float* vcol,
                             const float* p, float* out) {
  i64 d = 0;
  for (; d + 8 * W <= D; d += 8 * W) values_col<8>(M, H, h, D, pos0, len, stride, vcol, p, out, d);
  switch ((D - d) / W) {
    case 1: values_col<1>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 2: values_col<2>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 3: values_col<3>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 4: values_col<4>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 5: values_col<5>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 6: values_col<6>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    case 7: values_col<7>(M, H, h, D, pos0, len, stride, vcol, p, out, d); break;
    default: break;
  }
  d += (D - d) / W * W;
  if (d < D) {
    const int r = static_cast<int>(D - d);
    for (i64 m = 0; m < M; ++m) {
      const float* pm = p + m * len;
      const i64 n = pos0 + m + 1;
      V a = vzero();
      for (i64 j = 0; j < n; ++j) a = vfma(vset1(pm[j]), vload_n(vcol + j * stride + d, r), a);
      vstore_n(out + (m * H + h) * D + d, a, r);
    }
  }
}

// s[0..n) = dot(q, k_j)·scale for the n <= W keys k_j = k + j·stride: dot()'s arithmetic for each (one accumulator
// over the W-chunks in order, the masked tail, vhsum's tree: here one transposed reduction for all W keys, vtsum), the
// W chains side by side (one dot at a time waited on its chain and its horizontal sum). Lanes past n repeat key n−1
// and are not stored.
static inline void dot_keys(const float* q, const float* k, i64 stride, i64 D, i64 n, float scale, float* s) {
  const float* kr[W];
  V a[W];
#pragma GCC unroll 16
  for (int i = 0; i < W; ++i) {
    kr[i] = k + (i < n ? i : n - 1) * stride;
    a[i] = vzero();
  }
  i64 d = 0;
  for (; d + W <= D; d += W) {
    const V qv = vload(q + d);
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) a[i] = vfma(qv, vload(kr[i] + d), a[i]);
  }
  if (d < D) {
    const int r = static_cast<int>(D - d);
    const V qv = vload_n(q + d, r);
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) a[i] = vfma(qv, vload_n(kr[i] + d, r), a[i]);
  }
  const V sv = vmul(vtsum(a), vset1(scale));
  if (n == W)
    vstore(s, sv);
  else
    vstore_n(s, sv, static_cast<int>(n));
}

static void attention_decode(int nth, i64 M, i64 H, i64 G, i64 D, const float* q, const float* kCache,
                             const float* vCache, i64 pos0, float* out) {
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(D)));
  const i64 hpk = H / G, len = pos0 + M, stride = G * D;
  // A chunk is a range of kv heads (with their hpk query heads): per head and row, the scores W keys at a time
  // (dot_keys), then the values (attention_values). Every head's arithmetic is the same whatever the chunking and
  // the rows: scores by one dot each, softmax per row, values accumulated in key order.
  const i64 chunks = imin(G, imax(1, static_cast<i64>(nth)) * 2);
  auto job = [&](i64 c) {
    i64 g0, g1;
    rg::split_range(G, static_cast<int>(c), static_cast<int>(chunks), &g0, &g1);
    const i64 nh = (g1 - g0) * hpk, h0 = g0 * hpk;
    float* s = tls_s2.get(nh * M * len);  // s[(h - h0) * M + m][j]
    // Scores in blocks of W keys (dot_keys), each row over the keys it sees (0 .. pos0 + m).
    for (i64 h = h0; h < h0 + nh; ++h) {
      const float* kh = kCache + (h / hpk) * D;
      for (i64 m = 0; m < M; ++m) {
        const float* qm = q + (m * H + h) * D;
        float* sm = s + ((h - h0) * M + m) * len;
        const i64 n = pos0 + m + 1;
        for (i64 j = 0; j < n; j += W) dot_keys(qm, kh + j * stride, stride, D, imin(W, n - j), scale, sm + j);
      }
    }
    for (i64 r = 0; r < nh * M; ++r) {
      const i64 n = pos0 + r % M + 1;
      const float sum = softmax_exp(s + r * len, n);
      scale_row(s + r * len, n, 1.0f / sum);
    }
    for (i64 h = h0; h < h0 + nh; ++h)
      attention_values(M, H, h, D, pos0, len, stride, vCache + (h / hpk) * D, s + (h - h0) * M * len, out);
  };
  // Memory-bound when M is small: count the bytes of K and V read as work too, so long caches use every thread.
  run_chunks(nth, chunks, 4.0 * M * H * len * D + 8.0 * len * stride, job);
}

// ================================================================================================
// Cross-entropy (row-parallel; the returned sum is taken in row order, so it is thread-count independent)
// ================================================================================================
// max and Σ exp(x − max) of one row; the sum in float64, so that a loss near 0 (log of a sum near 1) and the
// target's gradient (sum − e_t)/sum keep their relative precision.
static void row_max_sumexp(const float* x, i64 V_, float* mx_out, double* sum_out) {
  V mv = vset1(-3.402823466e38f);
  i64 i = 0;
  for (; i + W <= V_; i += W) mv = vmax(mv, vload(x + i));
  float mx = vhmax(mv);
  for (; i < V_; ++i) mx = x[i] > mx ? x[i] : mx;
  const V mxv = vset1(mx);
  VD2 lo = vd_zero(), hi = vd_zero();
  for (i = 0; i + W <= V_; i += W) vacc_f64(vexp(vsub(vload(x + i), mxv)), &lo, &hi);
  if (i < V_) {
    const int c = static_cast<int>(V_ - i);
    vacc_f64(vkeep_n(vexp(vsub(vload_n(x + i, c), mxv)), c), &lo, &hi);
  }
  *mx_out = mx;
  *sum_out = vd_hsum(lo) + vd_hsum(hi);
}

static inline float exp1(float v) {  // the vector exp on one value, so e_t matches the row's values
  float r[W];
  vstore(r, vexp(vset1(v)));
  return r[0];
}

static double cross_entropy_forward(int nth, i64 N, i64 V_, const float* logits, const int32_t* targets,
                                    float* losses) {
  double* rl = reinterpret_cast<double*>(alloc_floats(2 * imax(N, 1)));
  for_rows(nth, N, 6.0 * V_, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      if (targets[r] == -1) {
        losses[r] = 0.0f;
        rl[r] = 0.0;
        continue;
      }
      const float* x = logits + r * V_;
      float mx;
      double sum;
      row_max_sumexp(x, V_, &mx, &sum);
      const double loss = (static_cast<double>(mx) - x[targets[r]]) + log(sum);
      rl[r] = loss;
      losses[r] = static_cast<float>(loss);
    }
  });
  double total = 0.0;
  for (i64 r = 0; r < N; ++r) total += rl[r];
  free(rl);
  return total;
}

static void cross_entropy_backward(int nth, i64 N, i64 V_, const float* logits, const int32_t* targets, float scale,
                                   float* dlogits) {
  for_rows(nth, N, 10.0 * V_, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r) {
      const int32_t tg = targets[r];
      if (tg == -1) continue;
      const float* x = logits + r * V_;
      float* d = dlogits + r * V_;
      float mx;
      double sum;
      row_max_sumexp(x, V_, &mx, &sum);
      const float dtg = d[tg];
      const V mxv = vset1(mx), f = vset1(static_cast<float>(scale / sum));
      for (i64 i = 0; i < V_; i += W) {
        const int c = static_cast<int>(imin(W, V_ - i));
        const V p = vmul(vexp(vsub(vload_n(x + i, c), mxv)), f);  // scale·softmax
        vstore_n(d + i, vadd(vload_n(d + i, c), p), c);
      }
      // the target: scale·(p_t − 1) = −scale·(sum − e_t)/sum, without the cancellation of p_t − 1 in float
      const double et = exp1(x[tg] - mx);
      d[tg] = static_cast<float>(dtg - static_cast<double>(scale) * ((sum - et) / sum));
    }
  });
}

// ================================================================================================
// Optimizer and elementwise
// ================================================================================================
// Scalars arrive as float64 (the bias corrections need beta and step at full precision), used as float32.
static void adamw(int nth, i64 n, float* param, const float* grad, float* m, float* v, double lr_, double beta1_,
                  double beta2_, double eps_, double wd_, double step) {
  float bc1, bc2;
  rg::adam_bias_correction(beta1_, beta2_, step, &bc1, &bc2);
  const float lr = static_cast<float>(lr_), beta1 = static_cast<float>(beta1_), beta2 = static_cast<float>(beta2_);
  const float eps = static_cast<float>(eps_), wd = static_cast<float>(wd_);
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V b1 = vset1(beta1), b2 = vset1(beta2), c1 = vset1(1.0f - beta1), c2 = vset1(1.0f - beta2);
    const V bc1v = vset1(bc1), bc2v = vset1(bc2), lrv = vset1(lr), epsv = vset1(eps), wdv = vset1(wd);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      const V g = vload_n(grad + i, c), p = vload_n(param + i, c);
      const V mn = vadd(vmul(b1, vload_n(m + i, c)), vmul(c1, g));
      const V vn = vadd(vmul(b2, vload_n(v + i, c)), vmul(vmul(c2, g), g));
      const V upd = vadd(vdiv(vdiv(mn, bc1v), vadd(vsqrt(vdiv(vn, bc2v)), epsv)), vmul(wdv, p));
      vstore_n(m + i, mn, c);
      vstore_n(v + i, vn, c);
      vstore_n(param + i, vsub(p, vmul(lrv, upd)), c);
    }
  });
}

static void add(int nth, i64 n, const float* a, const float* b, float* out) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      vstore_n(out + i, vadd(vload_n(a + i, c), vload_n(b + i, c)), c);
    }
  });
}

static void axpy(int nth, i64 n, float alpha, const float* x, float* y) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V av = vset1(alpha);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      vstore_n(y + i, vadd(vload_n(y + i, c), vmul(av, vload_n(x + i, c))), c);
    }
  });
}

static void scale(int nth, i64 n, float* x, float alpha) {
  for_elems(nth, n, [&](i64 i0, i64 i1) {
    const V av = vset1(alpha);
    for (i64 i = i0; i < i1; i += W) {
      const int c = static_cast<int>(imin(W, i1 - i));
      vstore_n(x + i, vmul(vload_n(x + i, c), av), c);
    }
  });
}

// Σ x² in float64 over fixed chunks of 8192, chunk sums added in order: independent of the thread count.
static double sum_squares(int nth, i64 n, const float* x) {
  constexpr i64 CH = 8192;
  const i64 chunks = (n + CH - 1) / CH;
  if (chunks == 0) return 0.0;
  double* part = reinterpret_cast<double*>(alloc_floats(2 * chunks));
  auto job = [&](i64 ch) {
    VD2 lo = vd_zero(), hi = vd_zero();
    const i64 e = imin(n, (ch + 1) * CH);
    for (i64 i = ch * CH; i < e; i += W) vsq_acc_f64(vload_n(x + i, static_cast<int>(imin(W, e - i))), &lo, &hi);
    part[ch] = vd_hsum(lo) + vd_hsum(hi);
  };
  run_chunks(nth, chunks, static_cast<double>(n), job);
  double s = 0.0;
  for (i64 ch = 0; ch < chunks; ++ch) s += part[ch];
  free(part);
  return s;
}

// The bandwidth probe: each thread sums its contiguous part with 4 independent accumulators.
static double read_sum(int nth, i64 n, const float* x) {
  double part[256] = {0};
  auto job = [&](int tid, int nt) {
    i64 b, e;
    rg::split_range(n / (4 * W), tid, nt, &b, &e);
    V a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    for (i64 i = b * 4 * W; i < e * 4 * W; i += 4 * W) {
      a0 = vadd(a0, vload(x + i));
      a1 = vadd(a1, vload(x + i + W));
      a2 = vadd(a2, vload(x + i + 2 * W));
      a3 = vadd(a3, vload(x + i + 3 * W));
    }
    part[tid] = vhsum(vadd(vadd(a0, a1), vadd(a2, a3)));
  };
  rg::parallel(nth > 256 ? 256 : nth, job);
  double s = 0.0;
  for (int t = 0; t < 256; ++t) s += part[t];
  return s;
}

// The table, in the order of RG_KERNELS (kernels.h), which declares the members.
#define RG_ENTRY(c, js, spec, Ret, Params) c,
static const rg::KernelTable kTable = {RG_ISA_NAME, W, RG_KERNELS(RG_ENTRY) read_sum, fma_chains};
#undef RG_ENTRY
