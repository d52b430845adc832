/**
 * The small-M linear's software prefetch distance (native/kernels.h linear_prefetch_bytes, set at load from the
 * CPU and by setLinearPrefetch): it moves only prefetch hints, so every distance gives the same bits, for every M ≤ 8,
 * odd sizes, every SIMD path and thread count, and each row still equals its M = 1 result and ref within rounding.
 */
import assert from 'node:assert/strict';
import type { WeightArg } from '../src/kernels/backend.js';
import { f32ToF16Bits } from '../src/kernels/half.js';
import { quantizeQ4, quantizeQ8 } from '../src/kernels/quant.js';
import type { NativeBackend } from '../src/kernels/native.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { assertBitwise, assertClose, eachConfig, native, nativeSkip, prodTol, seededNative } from './helpers/native.js';
import { test } from 'node:test';

const DISTANCES = [0, 64, 4096, 65536];

/**
 * y = linear(xs, w) at every prefetch distance in DISTANCES: the same bits at each, and each of the M rows equal, bit
 * for bit, to its product alone (M = 1). Returns y.
 */
function sameAtEveryDistance(
  be: NativeBackend,
  at: string,
  M: number,
  N: number,
  K: number,
  xs: Float32Array,
  w: WeightArg,
  bias: Float32Array,
): Float32Array {
  let first: Float32Array | null = null;
  for (const d of DISTANCES) {
    be.addon.setLinearPrefetch(d);
    const y = new Float32Array(M * N);
    be.linear(M, N, K, xs, w, bias, y);
    if (first) {
      assertBitwise(y, first, `${at} prefetch ${d} vs ${DISTANCES[0]}`);
      continue;
    }
    first = y;
    for (let m = 0; m < M; m++) {
      const alone = new Float32Array(N);
      be.linear(1, N, K, xs.subarray(m * K, (m + 1) * K), w, bias, alone);
      assertBitwise(y.subarray(m * N, (m + 1) * N), alone, `${at} row ${m} vs alone`);
    }
  }
  return first!;
}

seededNative(
  'linear at M <= 8: the same bits at every prefetch distance, each row as alone, close to ref',
  (rng, be) => {
    const ref = createRefBackend();
    const pf0 = be.addon.linearPrefetch();
    try {
      for (const [N, K] of [
        [37, 1],
        [129, 67],
        [300, 1030], // a masked tail chunk
        [64, 4096], // 16 KB rows: the longest distance prefetches the next row
      ] as const) {
        const w = rng.f32(N * K),
          bias = rng.f32(N),
          x = rng.f32(8 * K);
        eachConfig(be, (cfg) => {
          for (const M of [1, 2, 3, 5, 8]) {
            const xs = x.subarray(0, M * K);
            const y = sameAtEveryDistance(be, `${cfg} M=${M} ${N}x${K}`, M, N, K, xs, w, bias);
            const want = new Float32Array(M * N);
            ref.linear(M, N, K, xs, w, bias, want);
            assertClose(y, want, prodTol(K), `${cfg} M=${M} ${N}x${K} vs ref`);
          }
        });
      }
    } finally {
      be.addon.setLinearPrefetch(pf0);
    }
  },
);

seededNative(
  'linear at M <= 8 on f16 / bf16 / q8_0 / q4_0 weights: the same bits at every prefetch distance, rows as alone',
  (rng, be) => {
    const pf0 = be.addon.linearPrefetch();
    try {
      for (const [N, K] of [
        [37, 32],
        [129, 96],
        [300, 1056],
      ] as const) {
        const f = rng.f32(N * K),
          bias = rng.f32(N),
          x = rng.f32(8 * K);
        const half = Uint16Array.from(f, (v) => f32ToF16Bits(v));
        const weights: Array<[string, WeightArg]> = [
          ['f16', { dtype: 'f16', data: half }],
          ['bf16', { dtype: 'bf16', data: Uint16Array.from(new Uint32Array(f.buffer.slice(0)), (u) => u >>> 16) }],
          ['q8_0', { dtype: 'q8_0', ...quantizeQ8(f, N, K) }],
          ['q4_0', { dtype: 'q4_0', ...quantizeQ4(f, N, K) }],
        ];
        for (const [name, w] of weights) {
          if (!be.weightDtypes.includes(name as (typeof be.weightDtypes)[number])) continue;
          eachConfig(be, (cfg) => {
            for (const M of [1, 2, 3, 5, 8])
              sameAtEveryDistance(be, `${cfg} ${name} M=${M} ${N}x${K}`, M, N, K, x.subarray(0, M * K), w, bias);
          });
        }
      }
    } finally {
      be.addon.setLinearPrefetch(pf0);
    }
  },
);

test('setLinearPrefetch: process-wide (every context sees it), bounded, restorable', { skip: nativeSkip }, () => {
  const a = native().addon;
  const pf0 = a.linearPrefetch();
  try {
    assert.ok(Number.isInteger(pf0) && pf0 >= 0 && pf0 <= 65536);
    a.setLinearPrefetch(1024);
    assert.equal(a.linearPrefetch(), 1024);
    assert.throws(() => a.setLinearPrefetch(65537), /^RangeError: setLinearPrefetch: bytes/);
    assert.throws(() => a.setLinearPrefetch(-1), /setLinearPrefetch: bytes/);
    assert.equal(a.linearPrefetch(), 1024);
  } finally {
    a.setLinearPrefetch(pf0);
  }
});
