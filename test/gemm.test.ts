/**
 * The native GEMM's blocking edges (native/gemm_impl.h) against the ref backend: sizes just below, at and above the
 * micro-tile (MR×NR), the K block (KC) and the L2 blocks (MC rows of A, NC columns of B per chunk), in both the
 * "wide" (N ≥ M: A shared, N in chunks) and "tall" (M > N: B shared, M in chunks) schedules, every transpose,
 * with and without accumulate, for every SIMD path this CPU has at 1 and 2 threads; 2 threads bit-identical to 1
 * and repeated calls bit-identical (training must be deterministic). The block sizes are derived here the way
 * gemm_impl.h derives them from the cache sizes (sysfs), plus the common values, so the edges are hit on any CPU.
 * The FMA peak probe returns a plausible figure. Fails if the addon is not built, unless RECYCLEGPT_BACKEND=ref.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRefBackend } from '../src/kernels/ref.js';
import type { NativeBackend, SimdPath } from '../src/kernels/native.js';
import { Rng } from './helpers/check.js';
import { assertClose, eachSimd, seededNative } from './helpers/native.js';

const ref = createRefBackend();
const seeded = seededNative;

/** The micro-tile of each path (simd_*.h: GEMM_MR rows × GEMM_NV vectors). */
const TILE: Record<SimdPath, { mr: number; nr: number }> = {
  avx512: { mr: 14, nr: 32 },
  avx2: { mr: 6, nr: 16 },
  scalar: { mr: 4, nr: 16 },
};

/** Data cache size of `level` from sysfs (what native/probe.cc reads first), or `fallback`. */
function cacheBytes(level: number, fallback: number): number {
  for (let i = 0; i < 16; i++) {
    const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
    try {
      if (Number(readFileSync(`${dir}/level`, 'utf8')) !== level) continue;
      if (readFileSync(`${dir}/type`, 'utf8').trim() === 'Instruction') continue;
      const m = /^(\d+)([KM]?)/.exec(readFileSync(`${dir}/size`, 'utf8').trim());
      if (m) return Number(m[1]) * (m[2] === 'K' ? 1024 : m[2] === 'M' ? 1024 * 1024 : 1);
    } catch {
      break;
    }
  }
  return fallback;
}

/** KC, MC, NC as gemm_impl.h's gemm_blocking_from_caches computes them for a path. */
function blocking(simd: SimdPath): { kc: number; mc: number; nc: number } {
  const { mr, nr } = TILE[simd];
  const l1 = cacheBytes(1, 32 << 10),
    l2 = cacheBytes(2, 512 << 10);
  const kc = Math.min(1024, Math.max(64, Math.floor(l1 / 2 / (4 * Math.max(mr, nr)) / 16) * 16));
  const rows = Math.floor(l2 / 4 / (4 * kc));
  return { kc, mc: Math.max(mr, Math.floor(rows / mr) * mr), nc: Math.max(2 * nr, Math.floor(rows / nr) * nr) };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

/** Checks one shape on the current path: every transpose × accumulate, 1 and 2 threads, vs ref and bitwise. */
function checkShape(be: NativeBackend, rng: Rng, M: number, N: number, K: number, label: string): void {
  const tol = 1e-5 * Math.max(1, Math.sqrt(K));
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = rng.uniform(M * K),
        b = rng.uniform(K * N),
        c0 = rng.uniform(M * N);
      for (const accumulate of [false, true]) {
        const what = `${label} gemm ${M}x${N}x${K} tA=${transA} tB=${transB} acc=${accumulate}`;
        const want = c0.slice();
        ref.gemm(M, N, K, a, transA, b, transB, want, accumulate);
        const runs: Float32Array[] = [];
        for (const th of [1, 2, 2]) {
          be.setThreads(th);
          const got = c0.slice();
          be.gemm(M, N, K, a, transA, b, transB, got, accumulate);
          runs.push(got);
        }
        assertClose(runs[0], want, tol, what);
        assert.ok(sameBits(runs[1], runs[0]), `${what}: 2 threads differ from 1`);
        assert.ok(sameBits(runs[2], runs[1]), `${what}: a repeated 2-thread call differs`);
      }
    }
  }
}

seeded('gemm block edges: micro-tile MR/NR and K block KC, vs ref, 2 threads = 1', (rng, be) => {
  eachSimd(be, (simd) => {
    const { mr, nr } = TILE[simd];
    const { kc } = blocking(simd);
    // around the micro-tile, with K across one and two K blocks
    for (const [M, N] of [
      [mr - 1, nr - 1],
      [mr, nr],
      [mr + 1, nr + 1],
      [2 * mr + 1, 2 * nr - 1],
      [nr + 1, mr - 1],
    ]) {
      for (const K of [1, kc - 1, kc + 1]) checkShape(be, rng, M, N, K, simd);
    }
    for (const K of [kc, 2 * kc, 2 * kc + 1]) checkShape(be, rng, mr + 2, nr + 3, K, simd);
    // the common K blocks of other CPUs' caches, so their edges are covered here too
    for (const K of [128, 192, 256, 384]) checkShape(be, rng, mr, 2 * nr + 1, K + 1, simd);
  });
});

seeded('gemm block edges: L2 blocks MC and NC, several chunks, both schedules, vs ref, 2 threads = 1', (rng, be) => {
  eachSimd(be, (simd) => {
    const { mr, nr } = TILE[simd];
    const { kc, mc, nc } = blocking(simd);
    const K = kc + rng.int(1, 17);
    // wide (N ≥ M): N around one and several chunks of NC columns, M across A's MC blocks
    for (const N of [nc - 1, nc + 1, 3 * nc + nr + 1]) checkShape(be, rng, Math.min(N, mc + 1), N, K, simd);
    // tall (M > N): M around one and several chunks of MC rows
    for (const M of [mc - 1, mc + 1, 2 * mc + mr + 1]) checkShape(be, rng, M, rng.int(nr + 1, 3 * nr), K, simd);
  });
});

seeded('fmaPeak: a plausible GFLOP/s per path at 1 and 2 threads; bad arguments refused', (_rng, be) => {
  eachSimd(be, (simd) => {
    const one = be.addon.fmaPeak(1, 0.005);
    assert.ok(Number.isFinite(one) && one > 0.05 && one < 1e5, `${simd}: fmaPeak(1) = ${one}`);
    const two = be.addon.fmaPeak(2, 0.005);
    assert.ok(Number.isFinite(two) && two > 0.05 && two < 2e5, `${simd}: fmaPeak(2) = ${two}`);
  });
  assert.throws(() => be.addon.fmaPeak(0, 0.01), /threads/);
  assert.throws(() => be.addon.fmaPeak(1, -1), /seconds/);
});
