/**
 * q4_0, the 4-bit kernel weight format (kernels/quant.ts: ggml's Q4_0, blocks of 32 along K with a float16 scale d
 * and quants q in 0..15 standing for d·(q − 8), two a byte): the quantizer against blocks computed by hand (ggml's
 * reference rounding in float32: the signed max, ties to the first, the 15 clamp, a zero block, float32 edges) and
 * its errors; dequantization and the round trip; `linear` and `embeddingForward` on q4_0 weights in every backend:
 * ref (on the dequantized weights), native at every SIMD path this CPU has and 1, 2 and 3 threads, wasm (one-thread
 * and threaded kernels). On paths with an int8 dot (native AVX2 / AVX-512, wasm) the product at M ≤ 24 quantizes x
 * to int8 per block (ggml's Q4_0 × Q8_0), so it is held to a model of that computation (on wasm also to the exact
 * model of test/helpers/wasm-int8-dot.ts, bit for bit) and to ref within the bound of x's rounding (as q8_0's in
 * test/kernels-dtypes.test.ts); elsewhere it equals the f32 kernel on the dequantized weights bit for bit where both
 * take the same kind of path (helpers/native.ts sameKindOfPathAsF32). Rows are bit-identical for every M ≤ 24 (the
 * small-M path) at every thread count; results do not depend on the thread count; bad handles get errors naming the
 * kernel and the weight, the same from every backend and the raw addon. Seeds are fresh each run and printed on failure
 * (SEED=… reproduces).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import type { NativeBackend } from '../src/kernels/native.js';
import { createNodeWasmBackend } from '../src/kernels/wasm-node.js';
import type { Backend, Weight } from '../src/kernels/backend.js';
import { f16ToF32Array } from '../src/kernels/half.js';
import { dequantizeQ4, quantizeQ4, Q4_BLOCK, type Q4Tensor } from '../src/kernels/quant.js';
import { Rng, seededTest } from './helpers/check.js';
import {
  assertBitwise,
  assertClose,
  native,
  nativeSkip,
  prodTol,
  sameKindOfPathAsF32,
  SMALL_M_ROWS,
  assertRowsAsAlone,
  eachSimd,
} from './helpers/native.js';
import { assertWithin, wasmInt8DotModel } from './helpers/wasm-int8-dot.js';
import { x86Int8Model, type BlockQuants } from './helpers/x86-int8-dot.js';

const ref = createRefBackend();
const wasm1 = createNodeWasmBackend({ memoryBytes: 256 * 2 ** 20, threaded: false });
const wasmT = createNodeWasmBackend({ memoryBytes: 256 * 2 ** 20, threads: 3 });
after(() => wasmT.close());
const THREADS = [1, 2, 3] as const;
/**
 * Paths whose q4_0 product at M ≤ 8 quantizes x to int8 (native/kernels_impl.h, linear_q8_int): native AVX2 and
 * AVX-512, and wasm (SIMD128's i16 dots; its q8_0 takes them too).
 */
const INT8_DOT_PATHS: readonly string[] = ['avx2', 'avx512', 'wasm'];
const assertSame = (got: Float32Array, want: Float32Array, what: string): void => assertBitwise(got, want, what, true);

const handle = (t: Q4Tensor): Weight => ({ dtype: 'q4_0', data: t.data, scales: t.scales });

/** A block of 32 values from a sparse list (other values 0). */
function block(values: Record<number, number>): number[] {
  const b = new Array<number>(32).fill(0);
  for (const [j, v] of Object.entries(values)) b[Number(j)] = v;
  return b;
}

/** The packed bytes of a block from its 32 quants (byte j: q[j] low nibble, q[j + 16] high nibble). */
function pack(q: number[]): number[] {
  return Array.from({ length: 16 }, (_, j) => q[j]! | (q[j + 16]! << 4));
}

// ---- quantizer ------------------------------------------------------------------------------------------------------
// Blocks computed by hand from ggml's steps: max (signed) = the first value of largest |x|; d = max / −8;
// id = 1/d; q = min(15, trunc(x·id + 8.5)) in float32; d stored as float16.
const f = Math.fround;
const CASES: { what: string; x: number[]; q: number[]; scale: number }[] = [
  {
    what: 'max positive (8, first of ±8): d = −1',
    // 8 → 0; −8 (a tie, not first) → 16.5 → 15; 1 → 7.5 → 7; −1 → 9; 0.5 → 8.0 → 8; −0.5 → 9; 0.5 + 2^-24 → 7.99999994,
    // 8 in float32 (7 in float64); −7.5 → 16 → 15; −7.4 → 15.9 → 15; 7.4 → 1.1 → 1; 2.5 → 6; 3 → 5; −3 → 11
    x: block({ 0: 8, 1: -8, 2: 1, 3: -1, 4: 0.5, 5: -0.5, 6: f(0.5 + 2 ** -24), 7: -7.5, 8: -7.4, 9: 7.4 }).map(
      (v, j) => (j === 10 ? 2.5 : j === 16 ? 3 : j === 17 ? -3 : v),
    ),
    q: [0, 15, 7, 9, 8, 9, 8, 15, 15, 1, 6, 8, 8, 8, 8, 8, 5, 11, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
    scale: 0xbc00,
  },
  {
    what: 'max negative (−4, first of ±4): d = 0.5',
    // 1 → 10.5 → 10; −4 → 0; 4 → 16.5 → 15; 3.75 → 16 → 15; 3.7 → 15.9 → 15; −0.25 → 8; −0.26 → 7.98 → 7; 0.25 → 9;
    // −2 → 4.5 → 4; 2 → 12.5 → 12
    x: block({ 0: 1, 1: -4, 2: 4, 3: 3.75, 4: 3.7, 5: -0.25, 6: -0.26, 7: 0.25, 16: -2, 17: 2 }),
    q: [10, 0, 15, 15, 15, 8, 7, 9, 8, 8, 8, 8, 8, 8, 8, 8, 4, 12, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
    scale: 0x3800,
  },
  {
    what: 'zero block: d = 0 / −8 = −0 (float16 0x8000, as ggml), id = 0, every q = 8',
    x: block({}),
    q: new Array<number>(32).fill(8),
    scale: 0x8000,
  },
  {
    what: 'd = 0.1 / −8 rounded to float16 (0xa266); q from the unrounded 1/d = −80',
    // 0.1 → 0; 0.05 → −4.0000000596 → −4 in float32 → 4.5 → 4
    x: block({ 0: 0.05, 5: 0.1, 20: 0.05 }),
    q: [4, 8, 8, 8, 8, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
    scale: 0xa266,
  },
];

test('quantizeQ4: blocks computed by hand (signed max, ties, the 15 clamp, a zero block, float32 edges)', () => {
  for (const c of CASES) {
    const t = quantizeQ4(Float32Array.from(c.x), 1, 32);
    assert.deepEqual([...t.data], pack(c.q), `${c.what}: packed quants`);
    assert.deepEqual([...t.scales], [c.scale], `${c.what}: scale`);
  }
  // two rows of two blocks: row-major blocks, bytes (n·K + 32·b)/2, scales n·K/32 + b
  const x = Float32Array.from([...CASES[0]!.x, ...CASES[1]!.x, ...CASES[2]!.x, ...CASES[3]!.x]);
  const t = quantizeQ4(x, 2, 64);
  assert.deepEqual(
    [...t.data],
    CASES.flatMap((c) => pack(c.q)),
  );
  assert.deepEqual([...t.scales], [0xbc00, 0x3800, 0x8000, 0xa266]);
  // into a caller's arrays
  const out = { data: new Uint8Array(64), scales: new Uint16Array(4) };
  assert.equal(quantizeQ4(x, 2, 64, out), out);
  assert.deepEqual([...out.data], [...t.data]);
});

test('quantizeQ4: errors name the problem (K, lengths, non-finite values, a scale beyond float16)', () => {
  assert.throws(() => quantizeQ4(new Float32Array(48), 1, 48), /quantizeQ4: K = 48 is not a multiple of 32/);
  assert.throws(() => quantizeQ4(new Float32Array(63), 1, 64), /x has 63 values, \[1, 64\] needs 64/);
  const bad = (i: number, v: number): Float32Array => {
    const x = new Float32Array(96);
    x[i] = v;
    return x;
  };
  assert.throws(() => quantizeQ4(bad(70, NaN), 3, 32), /x at row 2, column 6 is NaN, not a finite value/);
  assert.throws(() => quantizeQ4(bad(33, -Infinity), 1, 96), /x at row 0, column 33 is -Infinity/);
  // |max| / 8 ≥ 65520 rounds to an infinite float16 scale
  assert.throws(() => quantizeQ4(bad(40, 524160), 1, 96), /the block at row 0, column 32 has scale -65520/);
  assert.doesNotThrow(() => quantizeQ4(bad(40, 524000), 1, 96));
  assert.throws(
    () => quantizeQ4(new Float32Array(64), 1, 64, { data: new Uint8Array(31), scales: new Uint16Array(2) }),
    /out holds 31 bytes and 2 scales, \[1, 64\] needs 32 and 2/,
  );
});

test('dequantizeQ4: d·(q − 8) with d widened from float16, both nibbles in weight order', () => {
  const t = { data: Uint8Array.of(0x0f, ...new Array<number>(15).fill(0x88)), scales: Uint16Array.of(0xa266) };
  const d = f16ToF32Array(Uint16Array.of(0xa266))[0]!;
  // byte 0 = 0x0f: weight 0 (low nibble) q = 15, weight 16 (high nibble) q = 0; the others q = 8 (d·0 = −0 here)
  const want = Float32Array.from({ length: 32 }, (_, j) => d * (j === 0 ? 7 : j === 16 ? -8 : 0));
  assert.deepEqual([...dequantizeQ4(t)], [...want]);
  for (const c of CASES) {
    const v = dequantizeQ4(quantizeQ4(Float32Array.from(c.x), 1, 32));
    const dh = f16ToF32Array(Uint16Array.of(c.scale))[0]!;
    assert.deepEqual([...v], [...c.q.map((q) => Math.fround(dh * (q - 8)))], c.what);
  }
});

seededTest(
  'quantizeQ4 / dequantizeQ4: error within the step, and re-quantizing the values gives the same bytes',
  (rng) => {
    const N = rng.int(1, 20),
      K = 32 * rng.int(1, 12);
    const x = rng.f32(N * K, rng.pick([1e-3, 0.05, 1, 300]));
    for (let i = 0; i < N * K; i += rng.int(1, 200)) x[i] = 0; // zeros, some whole blocks
    x.fill(0, 0, 32);
    const t = quantizeQ4(x, N, K);
    const v = dequantizeQ4(t);
    assert.equal(v.length, N * K);
    for (let b = 0; b < (N * K) / Q4_BLOCK; b++) {
      let max = 0;
      for (let j = 0; j < 32; j++) if (Math.abs(x[b * 32 + j]!) > Math.abs(max)) max = x[b * 32 + j]!;
      const d = Math.abs(max / 8),
        dh = Math.abs(f16ToF32Array(t.scales.subarray(b, b + 1))[0]!);
      // rounding to the nearest step, or the 15 clamp on the side opposite the max (at most one step off); plus d's
      // rounding to float16 over up to 8 steps
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        const lim = d * 1.0001 + 8 * Math.abs(dh - d) + 1e-30;
        if (!(Math.abs(v[i]! - x[i]!) <= lim)) assert.fail(`value ${i}: ${x[i]} -> ${v[i]} (d ${d}, limit ${lim})`);
      }
    }
    const again = quantizeQ4(v, N, K);
    assert.deepEqual(again.data, t.data, 'packed quants after a round trip');
    assert.deepEqual(again.scales, t.scales, 'scales after a round trip');
  },
);

// ---- linear -------------------------------------------------------------------------------------------------------
/** The q4_0 weight's quants (nibble − 8) and float16 block scales, for the x86 int8-dot model. */
function q4Quants(t: Q4Tensor, K: number): BlockQuants {
  const scales = f16ToF32Array(t.scales);
  return {
    quant: (n, k) => {
      const byte = t.data[(n * K + (k & ~31)) / 2 + (k % 16)]!;
      return (k % 32 < 16 ? byte & 15 : byte >> 4) - 8;
    },
    scale: (n, b) => scales[(n * K) / 32 + b]!,
  };
}

/** The shapes of a linear test: M 1..9 with odd N, a large M (37), and chunked M > 8 products. */
function shapes(rng: Rng): [number, number, number][] {
  const K = (): number => 32 * rng.pick([1, 2, 3, 5, 24, rng.int(1, 40)]);
  const out: [number, number, number][] = [];
  for (let M = 1; M <= 9; M++) out.push([M, rng.pick([1, 3, 17, 33, rng.int(1, 150) | 1]), K()]);
  out.push([37, rng.int(1, 200) | 1, K()], [33, 257, 96], [16, 65, K()]);
  return out;
}

/** A product on one backend configuration, checked as described at the top of the file. */
function checkLinear(
  be: Backend,
  simd: string,
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  t: Q4Tensor,
  deq: Float32Array,
  bias: Float32Array | null,
  want: Float32Array,
  what: string,
): Float32Array {
  const got = new Float32Array(M * N).fill(NaN);
  be.linear(M, N, K, x, handle(t), bias, got);
  if (M <= SMALL_M_ROWS && INT8_DOT_PATHS.includes(simd)) {
    const model = x86Int8Model(M, N, K, x, q4Quants(t, K), bias);
    assertClose(got, model.y, prodTol(K), `${what}: vs the int8-activation model`);
    assertWithin(got, want, model.bound, prodTol(K), `${what}: vs ref within x's rounding to int8`);
    if (simd === 'wasm') {
      const w = (n: number, k: number): number => {
        const byte = t.data[(n * K + k - (k % 32)) / 2 + (k % 16)]!;
        return (k % 32 < 16 ? byte & 15 : byte >> 4) - 8;
      };
      const exact = wasmInt8DotModel(M, N, K, x, w, f16ToF32Array(t.scales), bias);
      assertSame(got, exact.y, `${what}: vs the exact wasm int8-dot model`);
    }
    return got;
  }
  assertClose(got, want, prodTol(K), `${what}: vs ref`);
  const f32 = new Float32Array(M * N).fill(NaN);
  be.linear(M, N, K, x, deq, bias, f32);
  if (sameKindOfPathAsF32(M)) assertSame(got, f32, `${what}: vs f32 on the dequantized weights`);
  return got;
}

test('q4_0 is a dtype of every backend', { skip: nativeSkip }, () => {
  assert.ok(ref.weightDtypes.includes('q4_0'));
  assert.ok(native().weightDtypes.includes('q4_0'));
  assert.ok(wasm1.weightDtypes.includes('q4_0') && wasmT.weightDtypes.includes('q4_0'));
  const a = wasm1.alloc.u8(100);
  assert.ok(a instanceof Uint8Array && a.length === 100 && a.buffer === wasm1.alloc.f32(1).buffer);
});

seededTest('linear q4_0 on ref: the dequantized weights, bit for bit', (rng) => {
  for (const [M, N, K] of shapes(rng)) {
    const t = quantizeQ4(rng.uniform(N * K), N, K);
    const x = rng.uniform(M * K),
      bias = rng.uniform(N);
    const got = new Float32Array(M * N),
      want = new Float32Array(M * N);
    ref.linear(M, N, K, x, handle(t), bias, got);
    ref.linear(M, N, K, x, dequantizeQ4(t), bias, want);
    assertSame(got, want, `ref ${M}x${N}x${K}`);
  }
});

seededTest(
  'linear q4_0 native: every SIMD path at 1/2/3 threads vs ref (int8-dot paths within x’s rounding), the same bits',
  (rng) => {
    const be = native();
    const simd0 = be.simd,
      th0 = be.threads();
    try {
      for (const [M, N, K] of shapes(rng)) {
        const t = quantizeQ4(rng.uniform(N * K), N, K),
          deq = dequantizeQ4(t);
        const x = rng.uniform(M * K);
        for (const bias of [null, rng.uniform(N)]) {
          const want = new Float32Array(M * N);
          ref.linear(M, N, K, x, handle(t), bias, want);
          for (const simd of be.availableSimd()) {
            be.setSimd(simd);
            let first: Float32Array | null = null;
            for (const th of THREADS) {
              be.setThreads(th);
              const what = `native q4_0 ${M}x${N}x${K} bias=${bias !== null} ${simd}/${th}t`;
              const got = checkLinear(be, simd, M, N, K, x, t, deq, bias, want, what);
              if (first) assertSame(got, first, `${what}: vs 1 thread`);
              else first = got;
            }
          }
        }
      }
    } finally {
      be.setSimd(simd0);
      be.setThreads(th0);
    }
  },
  { skip: nativeSkip },
);

seededTest('linear q4_0 wasm (one-thread and threaded kernels at 1/2/3 threads) vs ref', (rng) => {
  for (const [M, N, K] of shapes(rng)) {
    const t = quantizeQ4(rng.uniform(N * K), N, K),
      deq = dequantizeQ4(t);
    const x = rng.uniform(M * K),
      bias = rng.uniform(N);
    const want = new Float32Array(M * N);
    ref.linear(M, N, K, x, handle(t), bias, want);
    const first = checkLinear(wasm1, 'wasm', M, N, K, x, t, deq, bias, want, `wasm q4_0 ${M}x${N}x${K}`);
    for (const th of THREADS) {
      wasmT.setThreads(th);
      const got = checkLinear(wasmT, 'wasm', M, N, K, x, t, deq, bias, want, `wasm q4_0 ${M}x${N}x${K} ${th}t`);
      assertSame(got, first, `wasm q4_0 ${M}x${N}x${K} ${th} threads vs the one-thread kernels`);
    }
  }
});

/** Each row of an M-row call (M ≤ SMALL_M_ROWS) equals the same row computed alone, at 1, 2 and 3 threads. */
function checkRowsAlone(be: Backend, rng: Rng, label: string, setThreads: (n: number) => void): void {
  const N = rng.pick([1, 3, 17, rng.int(1, 300) | 1]),
    K = 32 * rng.pick([1, 3, 24, rng.int(1, 40)]);
  const t = quantizeQ4(rng.uniform(N * K), N, K);
  const x = rng.uniform(SMALL_M_ROWS * K),
    bias = rng.uniform(N);
  assertRowsAsAlone(be, rng, {
    ...{ rows: SMALL_M_ROWS, N, K, x, w: handle(t), bias, threads: THREADS, setThreads, anyNaN: true },
    what: (th, M, m) => `${label} ${th}t N=${N} K=${K}: row ${m} of M=${M}`,
  });
}

seededTest(
  'linear q4_0: a row is bit-identical whatever M (on the small-M path) and the thread count (native every path, wasm)',
  (rng) => {
    const be: NativeBackend = native();
    eachSimd(be, (simd) => {
      for (let trial = 0; trial < 2; trial++) checkRowsAlone(be, rng, `native ${simd}`, (n) => be.setThreads(n));
    });
    for (let trial = 0; trial < 2; trial++) checkRowsAlone(wasmT, rng, 'wasm', (n) => wasmT.setThreads(n));
  },
  { skip: nativeSkip },
);

// ---- embeddingForward -----------------------------------------------------------------------------------------------
seededTest(
  'embeddingForward q4_0: every backend equals ref (the dequantized rows) bit for bit',
  (rng) => {
    const be = native();
    const simd0 = be.simd,
      th0 = be.threads();
    try {
      for (const C of [32, 96, 768]) {
        const V = rng.int(1, 60),
          T = rng.int(1, 40);
        const ids = rng.ints(T, 0, V - 1);
        const t = quantizeQ4(rng.uniform(V * C), V, C);
        const want = new Float32Array(T * C);
        ref.embeddingForward(T, C, V, ids, handle(t), want);
        assertSame(want, gather(dequantizeQ4(t), ids, C), `ref C=${C}: the dequantized rows`);
        const runs: [string, Backend, () => void][] = [['wasm', wasm1, () => {}]];
        for (const simd of be.availableSimd())
          for (const th of THREADS)
            runs.push([`native ${simd}/${th}t`, be, () => (be.setSimd(simd), be.setThreads(th))]);
        for (const th of THREADS) runs.push([`wasm ${th}t`, wasmT, () => wasmT.setThreads(th)]);
        for (const [label, b, set] of runs) {
          set();
          const got = new Float32Array(T * C).fill(NaN);
          b.embeddingForward(T, C, V, ids, handle(t), got);
          assertSame(got, want, `embeddingForward q4_0 ${label} T=${T} C=${C} V=${V}`);
        }
      }
    } finally {
      be.setSimd(simd0);
      be.setThreads(th0);
    }
  },
  { skip: nativeSkip },
);

/** Rows `ids` of a [V, C] table. */
function gather(table: Float32Array, ids: Int32Array, C: number): Float32Array {
  const out = new Float32Array(ids.length * C);
  ids.forEach((id, i) => out.set(table.subarray(id * C, (id + 1) * C), i * C));
  return out;
}

// ---- argument checks ------------------------------------------------------------------------------------------------
test(
  'bad q4_0 handles: errors name the kernel and the weight, the same from every backend and the raw addon',
  {
    skip: nativeSkip,
  },
  () => {
    const be = native();
    const f = (n: number): Float32Array => new Float32Array(n);
    const N = 3;
    const cases: [string, unknown, number, RegExp][] = [
      [
        'data as int8',
        { dtype: 'q4_0', data: new Int8Array(48), scales: new Uint16Array(3) },
        32,
        /W\.data must be a Uint8Array \(packed 4-bit quants\), got Int8Array/,
      ],
      [
        'data as uint16',
        { dtype: 'q4_0', data: new Uint16Array(48), scales: new Uint16Array(3) },
        32,
        /W\.data must be a Uint8Array/,
      ],
      [
        'no scales',
        { dtype: 'q4_0', data: new Uint8Array(48) },
        32,
        /W\.scales must be a Uint16Array \(float16 bits\), got undefined/,
      ],
      [
        'scales as float32',
        { dtype: 'q4_0', data: new Uint8Array(48), scales: f(3) },
        32,
        /W\.scales must be a Uint16Array/,
      ],
      [
        'scales short',
        { dtype: 'q4_0', data: new Uint8Array(48), scales: new Uint16Array(2) },
        32,
        /W\.scales has 2 elements but W\[[^\]]*\] needs 3/,
      ],
      [
        'data short',
        { dtype: 'q4_0', data: new Uint8Array(47), scales: new Uint16Array(3) },
        32,
        /W\.data has 47 elements but W\[[^\]]*\] in q4_0 \(2 a byte\) needs 48/,
      ],
      [
        'K = 48',
        { dtype: 'q4_0', data: new Uint8Array(72), scales: new Uint16Array(6) },
        48,
        /q4_0 weight W needs a row length that is a multiple of 32/,
      ],
      [
        'K = 31',
        { dtype: 'q4_0', data: new Uint8Array(48), scales: new Uint16Array(3) },
        31,
        /q4_0 weight W needs a row length that is a multiple of 32/,
      ],
    ];
    const errorOf = (fn: () => void): Error => {
      try {
        fn();
      } catch (e) {
        return e as Error;
      }
      return assert.fail('no error');
    };
    type Call = (b: Backend | NativeBackend['addon']) => void;
    for (const [name, w, K, re] of cases) {
      const calls: [string, string, Call][] = [
        ['linear', 'w', (b) => b.linear(1, N, K, f(K), w as Weight, null, f(N))],
        ['embeddingForward', 'table', (b) => b.embeddingForward(1, K, N, new Int32Array(1), w as Weight, f(K))],
      ];
      for (const [op, arg, call] of calls) {
        const want = errorOf(() => call(ref));
        const pattern = new RegExp(`^${op}: .*` + re.source.replaceAll('W', arg));
        assert.match(want.message, pattern, `${op} ${name}: ref`);
        for (const [who, b] of [
          ['native', be],
          ['raw addon', be.addon],
          ['wasm', wasm1],
        ] as const) {
          const got = errorOf(() => call(b));
          assert.equal(got.message, want.message, `${op} ${name}: ${who}`);
          assert.equal(got.constructor, want.constructor, `${op} ${name}: ${who}: error class`);
        }
      }
    }
  },
);
