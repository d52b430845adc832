/**
 * The small-M f32 linear's software prefetch distance (native/kernels.h linear_prefetch_bytes, set at load from the
 * CPU and by setLinearPrefetch): it moves only prefetch hints, so every distance gives the same bits, for every M ≤ 8,
 * odd sizes, every SIMD path and thread count, and each row still equals its M = 1 result and ref within rounding.
 */
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { assertBitwise, assertClose, eachConfig, native, nativeSkip, prodTol, seededNative } from './helpers/native.js';
import { test } from 'node:test';

const DISTANCES = [0, 64, 4096, 65536];

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
            let first: Float32Array | null = null;
            for (const d of DISTANCES) {
              be.addon.setLinearPrefetch(d);
              const y = new Float32Array(M * N);
              be.linear(M, N, K, xs, w, bias, y);
              if (!first) {
                first = y;
                const want = new Float32Array(M * N);
                ref.linear(M, N, K, xs, w, bias, want);
                assertClose(y, want, prodTol(K), `${cfg} M=${M} ${N}x${K} vs ref`);
                for (let m = 0; m < M; m++) {
                  const alone = new Float32Array(N);
                  be.linear(1, N, K, xs.subarray(m * K, (m + 1) * K), w, bias, alone);
                  assertBitwise(y.subarray(m * N, (m + 1) * N), alone, `${cfg} M=${M} ${N}x${K} row ${m} vs alone`);
                }
              } else assertBitwise(y, first, `${cfg} M=${M} ${N}x${K} prefetch ${d} vs ${DISTANCES[0]}`);
            }
          }
        });
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
