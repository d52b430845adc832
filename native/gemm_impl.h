// The fp32 GEMM (training, prefill, attention blocks) and the FMA peak probe, written once against the vector
// primitives of simd_*.h. Included by kernels_impl.h inside the per-ISA namespace, after its helpers (imin, imax,
// alloc_floats, Scratch, threads_for).
//
// GotoBLAS / BLIS structure. C is cut in MR×NR micro-tiles (simd_*.h: AVX-512 14×32, AVX2 6×16, scalar 4×16),
// computed by a register-blocked micro-kernel from packed panels: A in MR-row panels (k-major, MR values per k),
// B in NR-column panels (NR values per k), contiguous and 64-byte aligned, zero-padded at the edges.
//
//   pc: K in blocks of KC              (one pass over C per block, C += A[:,pc]·B[pc,:])
//     pack the smaller operand ("shared") for this K block, in parallel
//     chunks of the other dimension, taken dynamically by the threads; each packs its own part ("own", in L2)
//       ic: rows in blocks of MC        (the A block lives in L2)
//         jr: one NR-column B micro-panel (stays in L1)
//           ir: one MR-row A micro-panel (streams from L2) → micro-kernel
//
// KC, MC and the chunk widths come from the cache sizes read at run time (rg::cache_bytes, native/probe.cc): the
// micro-panel kept in L1 (KC×NR) fills half of L1d, the blocks kept in L2 (MC×KC of A, KC×chunk of B) a quarter of
// L2 each. Nothing is tuned to one machine.
//
// Determinism: every C element is one sum over k in order, KC blocks in order, each block's FMAs in k order in the
// micro-kernel (an edge tile runs the same micro-kernel into a buffer), then C = C + block (or = block). How C is
// cut into chunks, and which thread takes which, changes nothing: results do not depend on the thread count. They
// depend on KC, which depends on this CPU's L1d only.

constexpr int MR = GEMM_MR;
constexpr int NR = GEMM_NV * W;

struct GemmBlocking {
  i64 kc;  // K block
  i64 mc;  // rows of A kept in L2 (multiple of MR)
  i64 nc;  // columns of B per chunk when the threads split N (multiple of NR)
};

static GemmBlocking gemm_blocking_from_caches() {
  const i64 l1 = rg::cache_bytes(1), l2 = rg::cache_bytes(2);
  GemmBlocking b;
  // The L1-resident micro-panel (KC×NR of B; the MR×KC panel of A is smaller or comparable) takes half of L1d.
  i64 kc = l1 / 2 / (4 * (NR > MR ? NR : MR));
  kc = imin(1024, imax(64, kc / 16 * 16));
  b.kc = kc;
  // Blocks kept in L2 take a quarter of it each: A's MC×KC block, and B's KC×NC chunk (with the other block and
  // the streaming operand beside them).
  const i64 rows = l2 / 4 / (4 * kc);
  b.mc = imax(MR, rows / MR * MR);
  b.nc = imax(2 * NR, rows / NR * NR);
  return b;
}

static const GemmBlocking& gemm_blocking() {
  static const GemmBlocking b = gemm_blocking_from_caches();
  return b;
}

// C[R×NR] (= or +=) rows 0..R-1 of Ap(MR×kc) · Bp(kc×NR); R = MR is the micro-kernel, R < MR an edge panel's rows
template <int R>
static inline void micro_kernel_rows(i64 kc, const float* __restrict a, const float* __restrict b,
                                     float* __restrict c, i64 ldc, bool add) {
  // Fetch the C tile (MR rows, far apart) while the k loop runs: its misses would otherwise stall the stores.
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);
  }
  V acc[R][GEMM_NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < GEMM_NV; ++j) acc[i][j] = vzero();
  for (i64 k = 0; k < kc; ++k) {
    V bv[GEMM_NV];
#pragma GCC unroll 4
    for (int j = 0; j < GEMM_NV; ++j) bv[j] = vload(b + j * W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V av = vset1(a[i]);
#pragma GCC unroll 4
      for (int j = 0; j < GEMM_NV; ++j) acc[i][j] = vfma(av, bv[j], acc[i][j]);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < GEMM_NV; ++j) {
      float* p = c + i * ldc + j * W;
      vstore(p, add ? vadd(vload(p), acc[i][j]) : acc[i][j]);
    }
}

// C[MR×NR] (= or +=) Ap(MR×kc) · Bp(kc×NR)
static inline void micro_kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, bool add) {
  micro_kernel_rows<MR>(kc, a, b, c, ldc, add);
}

template <int R>
static void edge_rows(i64 kc, const float* a, const float* b, float* c, i64 ldc, bool add) {
  micro_kernel_rows<R>(kc, a, b, c, ldc, add);
}

// An edge tile (mr < MR rows or nr < NR columns). Full width, fewer rows (the last row panel of M): only those rows
// are computed, straight into C (a 4-row tail of a 6-row kernel ran as a whole 6-row tile into a buffer cost ~3% of
// a 256-row GEMM). Fewer columns: the micro-kernel into a buffer, the valid part added. Either way each element gets
// the micro-kernel's arithmetic, so edges agree with full tiles.
static inline void edge_kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, bool add, i64 mr, i64 nr) {
  if (nr == NR) {
    typedef void (*EdgeFn)(i64, const float*, const float*, float*, i64, bool);
    // rows 1..15, each entry R < MR (entries past MR - 1 are never called: they repeat R = 1)
#define RG_EDGE(r) edge_rows<(r) < MR ? (r) : 1>
    static const EdgeFn fns[16] = {nullptr,     RG_EDGE(1),  RG_EDGE(2),  RG_EDGE(3),  RG_EDGE(4),  RG_EDGE(5),
                                   RG_EDGE(6),  RG_EDGE(7),  RG_EDGE(8),  RG_EDGE(9),  RG_EDGE(10), RG_EDGE(11),
                                   RG_EDGE(12), RG_EDGE(13), RG_EDGE(14), RG_EDGE(15)};
#undef RG_EDGE
    static_assert(MR <= 16, "edge_kernel: a row count table of 16");
    fns[mr](kc, a, b, c, ldc, add);
    return;
  }
  alignas(64) float tmp[MR * NR];
  micro_kernel(kc, a, b, tmp, NR, false);
  for (i64 i = 0; i < mr; ++i) {
    float* p = c + i * ldc;
    const float* t = tmp + i * NR;
    i64 j = 0;
    for (; j + W <= nr; j += W) vstore(p + j, add ? vadd(vload(p + j), vload(t + j)) : vload(t + j));
    if (j < nr) {
      const int r = static_cast<int>(nr - j);
      vstore_n(p + j, add ? vadd(vload_n(p + j, r), vload_n(t + j, r)) : vload_n(t + j, r), r);
    }
  }
}

// Loads n (<= W) floats, zero-padded; a full vector when n == W.
static inline V vload_upto(const float* p, int n) { return n >= W ? vload(p) : vload_n(p, n); }

// Packs rows [0,mc) × k [0,kc) of A (element (i,k) at a[i*rs + k*cs]) into MR-row panels, zero-padded.
// Panel layout: for each k, MR consecutive values of rows i.
static void pack_a(i64 mc, i64 kc, const float* a, i64 rs, i64 cs, float* ap) {
  for (i64 p = 0; p < mc; p += MR) {
    const i64 mr = imin(MR, mc - p);
    float* dst = ap + p * kc;
    if (cs == 1) {  // rows contiguous in k: transpose W×W blocks in registers
      for (int i0 = 0; i0 < MR; i0 += W) {
        const int rows = static_cast<int>(imax(0, imin(W, mr - i0)));
        const int lanes = MR - i0 < W ? MR - i0 : W;
        for (i64 k0 = 0; k0 < kc; k0 += W) {
          const int kn = static_cast<int>(imin(W, kc - k0));
          V t[W];
          for (int i = 0; i < W; ++i) t[i] = i < rows ? vload_upto(a + (p + i0 + i) * rs + k0, kn) : vzero();
          vtranspose(t);
          for (int kk = 0; kk < kn; ++kk) {
            if (lanes == W) vstore(dst + (k0 + kk) * MR + i0, t[kk]);
            else vstore_n(dst + (k0 + kk) * MR + i0, t[kk], lanes);
          }
        }
      }
    } else {  // rs == 1 (A given as [K,M]): columns contiguous in i, a (masked) vector copy per k
      for (i64 k = 0; k < kc; ++k) {
        const float* src = a + k * cs + p;
        for (int i0 = 0; i0 < MR; i0 += W) {
          const int lanes = MR - i0 < W ? MR - i0 : W;
          const V v = mr > i0 ? vload_upto(src + i0, static_cast<int>(imin(W, mr - i0))) : vzero();
          if (lanes == W) vstore(dst + k * MR + i0, v);
          else vstore_n(dst + k * MR + i0, v, lanes);
        }
      }
    }
  }
}

// Packs k [0,kc) × columns [0,nc) of B (element (k,j) at b[k*rs + j*cs]) into NR-column panels, zero-padded.
// Panel layout: for each k, NR consecutive values of columns j.
static void pack_b(i64 kc, i64 nc, const float* b, i64 rs, i64 cs, float* bp) {
  if (cs == 1) {  // rows of B contiguous in j: row by row across all panels (one sequential read per row)
    const i64 full = nc / NR;
    for (i64 k = 0; k < kc; ++k) {
      const float* src = b + k * rs;
      for (i64 p = 0; p < full; ++p) {
        float* d = bp + p * NR * kc + k * NR;
#pragma GCC unroll 4
        for (int j = 0; j < NR; j += W) vstore(d + j, vload(src + p * NR + j));
      }
      if (full * NR < nc) {
        const i64 p = full * NR, nr = nc - p;
        float* d = bp + p * kc + k * NR;
        for (int j = 0; j < NR; j += W) {
          const i64 left = nr - j;
          vstore(d + j, left > 0 ? vload_upto(src + p + j, static_cast<int>(imin(W, left))) : vzero());
        }
      }
    }
    return;
  }
  for (i64 p = 0; p < nc; p += NR) {  // rs == 1: B given as [N,K] (a weight matrix), columns contiguous in k
    const i64 nr = imin(NR, nc - p);
    float* dst = bp + p * kc;
    for (int j0 = 0; j0 < NR; j0 += W) {
      const int cols = static_cast<int>(imax(0, imin(W, nr - j0)));
      for (i64 k0 = 0; k0 < kc; k0 += W) {
        const int kn = static_cast<int>(imin(W, kc - k0));
        V t[W];
        for (int j = 0; j < W; ++j) t[j] = j < cols ? vload_upto(b + (p + j0 + j) * cs + k0, kn) : vzero();
        vtranspose(t);
        for (int kk = 0; kk < kn; ++kk) vstore(dst + (k0 + kk) * NR + j0, t[kk]);
      }
    }
  }
}

struct GemmArgs {
  i64 M, N, K;
  const float* a;
  i64 ars, acs;  // A(i,k) = a[i*ars + k*acs]
  const float* b;
  i64 brs, bcs;  // B(k,j) = b[k*brs + j*bcs]
  float* c;
  i64 ldc;  // C(i,j) = c[i*ldc + j]
  bool accumulate;
};

// Software prefetch, into L2, of the part of A or B that the next chunk will pack (rows of `bytes` contiguous
// bytes, `stride` floats apart), a few lines between micro-kernels: it arrives from memory while this chunk
// computes, and the next pack reads it from L2 (packing straight from DRAM cost ~7% of the GEMM).
struct Prefetch {
  const float* base = nullptr;
  i64 stride = 0, lines = 0, rows = 0;  // lines per row
  i64 row = 0, line = 0, per_call = 0;
  void step() {
    for (i64 n = per_call; n > 0 && row < rows; --n) {
      __builtin_prefetch(reinterpret_cast<const char*>(base + row * stride) + line * 64, 0, 2);
      if (++line == lines) line = 0, ++row;
    }
  }
};

// The region that pack_a / pack_b reads for rows x0..x1 of A (wide = false) or columns x0..x1 of B (wide), K block
// [pc, pc+kc); `calls` micro-kernels to spread it over.
static Prefetch own_region(const GemmArgs& g, bool wide, i64 x0, i64 x1, i64 pc, i64 kc, i64 calls) {
  Prefetch p;
  const float* m = wide ? g.b : g.a;
  const i64 ks = wide ? g.brs : g.acs, xs = wide ? g.bcs : g.ars;  // strides along k and along x
  if (xs == 1) p.base = m + pc * ks + x0, p.stride = ks, p.rows = kc, p.lines = ((x1 - x0) * 4 + 127) / 64;
  else p.base = m + x0 * xs + pc * ks, p.stride = xs, p.rows = x1 - x0, p.lines = (kc * 4 + 127) / 64;
  p.per_call = (p.rows * p.lines + calls - 1) / imax(1, calls);
  return p;
}

// C[m0:m1, n0:n1] (+)= Ap·Bp for one K block: ap holds the MR-row panels of rows m0.., bp the NR-column panels of
// columns n0... jr outer: one B micro-panel stays in L1 while the A panels (an L2 block) stream past it.
static void gemm_tiles(i64 kc, const float* ap, const float* bp, float* c, i64 ldc, i64 m0, i64 m1, i64 n0, i64 n1,
                       bool add, Prefetch* pf) {
  for (i64 jr = n0; jr < n1; jr += NR) {
    const i64 nr = imin(NR, n1 - jr);
    const float* bpp = bp + (jr - n0) * kc;
    for (i64 ir = m0; ir < m1; ir += MR) {
      const i64 mr = imin(MR, m1 - ir);
      const float* app = ap + (ir - m0) * kc;
      float* cp = c + ir * ldc + jr;
      pf->step();
      if (mr == MR && nr == NR) micro_kernel(kc, app, bpp, cp, ldc, add);
      else edge_kernel(kc, app, bpp, cp, ldc, add, mr, nr);
    }
  }
}

// The GEMM on up to nth threads (nth = 1: all on the calling thread, no pool involved; attention calls it so
// from inside its own parallel loop). Packing buffers: kernels_impl.h's per-thread scratch, tls_s0 for the shared
// operand's block (the calling thread's), tls_s1 for a chunk's own block.
static void gemm_run(int nth, const GemmArgs& g) {
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) {
    if (!g.accumulate)
      for (i64 i = 0; i < g.M; ++i) memset(g.c + i * g.ldc, 0, static_cast<size_t>(g.N) * 4);
    return;
  }
  const GemmBlocking& bl = gemm_blocking();
  const i64 KC = bl.kc;
  // wide: share A (all rows packed once per K block), chunk N; tall: share B, chunk M.
  const bool wide = g.N >= g.M;
  const i64 tile = wide ? NR : MR, other = wide ? g.N : g.M, tiles = (other + tile - 1) / tile;
  const i64 cap = wide ? bl.nc / NR : bl.mc / MR;  // most tiles per chunk (its own block stays in L2)
  const int use = threads_for(nth, 2.0 * g.M * g.N * g.K / 40.0);  // ≥ 4 Mflop per thread
  i64 chunks = (tiles + cap - 1) / cap;
  if (use > 1) chunks = imin(tiles, (imax(chunks, 4 * use) + use - 1) / use * use);
  const i64 per = (tiles + chunks - 1) / chunks;  // most tiles in a chunk (split_range: equal to within one)
  const i64 span = wide ? (g.M + MR - 1) / MR * MR : (g.N + NR - 1) / NR * NR;  // padded shared extent
  float* shared = tls_s0.get(span * KC);
  // The A rows of a wide chunk, in L2-sized blocks of equal size (a multiple of MR).
  const i64 mblocks = (g.M + bl.mc - 1) / bl.mc;
  const i64 mstep = ((g.M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  for (i64 pc = 0; pc < g.K; pc += KC) {
    const i64 kc = imin(KC, g.K - pc);
    const bool add = g.accumulate || pc > 0;
    // Phase 1: pack the shared operand's K block, in groups of 16 panels.
    const i64 panel = wide ? MR : NR, groups = (span / panel + 15) / 16;
    auto pack = [&](i64 grp) {
      const i64 x0 = grp * 16 * panel, x1 = imin(wide ? g.M : g.N, x0 + 16 * panel);
      if (x1 <= x0) return;
      if (wide) pack_a(x1 - x0, kc, g.a + x0 * g.ars + pc * g.acs, g.ars, g.acs, shared + x0 * kc);
      else pack_b(kc, x1 - x0, g.b + pc * g.brs + x0 * g.bcs, g.brs, g.bcs, shared + x0 * kc);
    };
    rg::parallel_chunks(use, groups, pack);
    // Phase 2: the chunks of the other dimension.
    auto compute = [&](i64 ch) {
      i64 t0, t1;
      rg::split_range(tiles, static_cast<int>(ch), static_cast<int>(chunks), &t0, &t1);
      const i64 x0 = t0 * tile, x1 = imin(other, t1 * tile);
      float* own = tls_s1.get(per * tile * kc);
      // What this thread will likely pack next: chunk ch + use (or one of the next K block's first chunks).
      Prefetch pf;
      const i64 nx = ch + use, npc = nx < chunks ? pc : pc + KC;
      if (npc < g.K) {
        i64 u0, u1;
        rg::split_range(tiles, static_cast<int>(nx % chunks), static_cast<int>(chunks), &u0, &u1);
        const i64 calls = ((wide ? g.M : x1 - x0) + MR - 1) / MR * (((wide ? x1 - x0 : g.N) + NR - 1) / NR);
        pf = own_region(g, wide, u0 * tile, imin(other, u1 * tile), npc, imin(KC, g.K - npc), calls);
      }
      if (wide) {
        pack_b(kc, x1 - x0, g.b + pc * g.brs + x0 * g.bcs, g.brs, g.bcs, own);
        for (i64 m0 = 0; m0 < g.M; m0 += mstep)
          gemm_tiles(kc, shared + m0 * kc, own, g.c, g.ldc, m0, imin(g.M, m0 + mstep), x0, x1, add, &pf);
      } else {
        pack_a(x1 - x0, kc, g.a + x0 * g.ars + pc * g.acs, g.ars, g.acs, own);
        gemm_tiles(kc, own, shared, g.c, g.ldc, x0, x1, 0, g.N, add, &pf);
      }
    };
    rg::parallel_chunks(use, chunks, compute);
  }
}

// A GEMM with explicit strides, on the calling thread (attention uses it inside its own parallel loop).
static inline void gemm_strided(i64 M, i64 N, i64 K, const float* a, i64 ars, i64 acs, const float* b, i64 brs,
                                i64 bcs, float* c, i64 ldc, bool accumulate) {
  GemmArgs g;
  g.M = M, g.N = N, g.K = K, g.a = a, g.ars = ars, g.acs = acs, g.b = b, g.brs = brs, g.bcs = bcs;
  g.c = c, g.ldc = ldc, g.accumulate = accumulate;
  gemm_run(1, g);
}

static void gemm(int nth, i64 M, i64 N, i64 K, const float* a, bool transA, const float* b, bool transB, float* c,
                 bool accumulate) {
  GemmArgs g;
  g.M = M, g.N = N, g.K = K, g.a = a, g.b = b, g.c = c, g.ldc = N, g.accumulate = accumulate;
  if (transA) g.ars = 1, g.acs = M;  // A stored [K,M]
  else g.ars = K, g.acs = 1;
  if (transB) g.brs = 1, g.bcs = K;  // B stored [N,K]
  else g.brs = N, g.bcs = 1;
  gemm_run(nth, g);
}

// ================================================================================================
// FMA peak probe (not a kernel): FMA_CHAINS independent multiply-add chains per thread, in registers only, enough
// to cover the FMA latency times the number of FMA units of any current core (4-5 cycles × 2). Each thread runs
// `iters` rounds; returns the flops done (2 per lane per FMA). rg::fma_peak (native/probe.cc) times it.
// ================================================================================================
constexpr int FMA_CHAINS = W >= 16 ? 16 : 12;
static volatile float fma_sink = 0.0f;
static volatile float fma_seed[3] = {1.0f, 0.9999999f, 1e-7f};  // read at run time: nothing to constant-fold

static double fma_chains(int nth, i64 iters) {
  float part[256] = {0};
  auto job = [&](int tid, int) {
    V acc[FMA_CHAINS];
#pragma GCC unroll 16
    for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = vset1(fma_seed[0] + 0.001f * static_cast<float>(j + tid));
    const V m = vset1(fma_seed[1]), d = vset1(fma_seed[2]);
    for (i64 i = 0; i < iters; ++i) {
#pragma GCC unroll 16
      for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = vfma(acc[j], m, d);
    }
    V s = acc[0];
#pragma GCC unroll 16
    for (int j = 1; j < FMA_CHAINS; ++j) s = vadd(s, acc[j]);
    part[tid] = vhsum(s);
  };
  nth = nth > 256 ? 256 : nth;
  rg::parallel(nth, job);
  for (int t = 0; t < nth; ++t) fma_sink = fma_sink + part[t];
  return 2.0 * FMA_CHAINS * W * static_cast<double>(iters) * nth;
}
