/**
 * The wasm backend (the native kernels compiled to WebAssembly SIMD128, native/wasm/) against the ref backend: every
 * kernel on random inputs of odd sizes and block edges, each call made twice, once on plain arrays (copied in and out)
 * and once on arrays from the backend's allocator (read in place), which must agree bit for bit; linear's rows
 * bit-identical for every M on the small-M path (≤ 24 rows, f32 ≤ 12) and every weight dtype; q8_0 there (the int8 dot:
 * x quantized per block of 32, ggml's Q8_0 × Q8_0) equal to an independent model of that computation bit for bit
 * (test/helpers/wasm-int8-dot.ts, extreme inputs included) and to ref within the bound of x's rounding to int8, as
 * native x86's q8_0 is held (test/kernels-dtypes.test.ts); argument errors identical to ref's; memory that runs out
 * gives an error naming it. Seeds are fresh each run and printed on failure (SEED=… reproduces).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { createNodeWasmBackend } from '../src/kernels/wasm-node.js';
import type { Backend, Weight, WeightDtype } from '../src/kernels/backend.js';
import { f16ToF32Array, f32ToBf16Bits, f32ToF16Bits } from '../src/kernels/half.js';
import { quantizeQ8 } from '../src/kernels/quant.js';
import { Rng, seededTest } from './helpers/check.js';
import { assertBitwise, assertClose, prodTol, SMALL_M_ROWS } from './helpers/native.js';
import { copyInto, type KernelArg } from './helpers/backend-copy.js';
import { assertWithin, wasmInt8DotModel } from './helpers/wasm-int8-dot.js';

const ref = createRefBackend();
// the one-thread kernels (test/wasm-threads.test.ts checks the threaded ones against them, bit for bit)
const wasm = createNodeWasmBackend({ memoryBytes: 512 * 2 ** 20, threaded: false });
const ODD = [1, 2, 3, 7, 16, 17, 31, 33, 64, 65, 100] as const;

type Arg = KernelArg;
type Call = (be: Backend, args: Arg[]) => unknown;

const plainCopy = (a: Arg): Arg => (a instanceof Float32Array || a instanceof Int32Array ? a.slice() : a);

/**
 * Runs `call` on ref, on wasm with plain arrays and on wasm with its own arrays; compares the float arrays at `outs`
 * (and the return value) with ref to `tol` (relative, assertClose with `floor`), and the two wasm runs bit for bit.
 */
function compare(what: string, args: Arg[], outs: number[], tol: number, call: Call, floor = 0): void {
  const want = args.map(plainCopy);
  const wantRet = call(ref, want);
  const plain = args.map(plainCopy);
  const plainRet = call(wasm, plain);
  const inMem = args.map((a) => copyInto(wasm, a));
  const inMemRet = call(wasm, inMem);
  for (const i of outs) {
    assertClose(plain[i] as Float32Array, want[i] as Float32Array, tol, `${what}: argument ${i}`, floor);
    assertBitwise(new Float32Array(inMem[i] as Float32Array), plain[i] as Float32Array, `${what}: arg ${i} in memory`);
  }
  if (typeof wantRet === 'number') {
    assertClose([plainRet as number], [wantRet], tol, `${what}: result`);
    assert.equal(inMemRet, plainRet, `${what}: result in memory`);
  }
}

function seeded(name: string, body: (rng: Rng) => void): void {
  seededTest(name, body);
}

test('the wasm backend: name, dtypes, one thread, memory reserved up front', () => {
  assert.equal(wasm.name, 'wasm');
  assert.deepEqual(
    [...wasm.weightDtypes],
    ['f32', 'bf16', 'q8_0', 'q4_0'],
    'f16 is widened at load (no SIMD128 conversion)',
  );
  wasm.setThreads(4);
  assert.equal(wasm.threads(), 1);
  assert.equal(wasm.memoryBytes, 512 * 2 ** 20);
  const a = wasm.alloc.f32(1000);
  assert.ok(a.every((v) => v === 0));
  assert.equal(a.byteOffset % 64, 0, 'allocations are 64-byte aligned');
});

seeded('gemm: all transposes, accumulate, odd sizes and block edges vs ref', (rng) => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [0, 3, 4],
    [rng.pick(ODD), rng.pick(ODD), rng.pick(ODD)],
    [15, 33, 257],
    [rng.int(60, 80), rng.int(30, 70), rng.int(250, 530)],
  ];
  for (const [M, N, K] of shapes)
    for (const tA of [false, true])
      for (const tB of [false, true])
        for (const acc of [false, true])
          compare(
            `gemm ${M}x${N}x${K} tA=${tA} tB=${tB} acc=${acc}`,
            [M, N, K, rng.uniform(M * K), tA, rng.uniform(K * N), tB, rng.uniform(M * N), acc],
            [7],
            prodTol(K),
            (be, a) => be.gemm(M, N, K, a[3] as Float32Array, tA, a[5] as Float32Array, tB, a[7] as Float32Array, acc),
          );
});

/** A weight of `dtype` holding the values of `w` ([N, K]) rounded to that dtype. */
function weightOf(dtype: WeightDtype, w: Float32Array, N: number, K: number): Weight {
  if (dtype === 'f32') return { dtype, data: w };
  if (dtype === 'q8_0') {
    const q = { dtype, data: new Int8Array(N * K), scales: new Uint16Array((N * K) / 32) } as const;
    quantizeQ8(w, N, K, q);
    return q;
  }
  return { dtype, data: Uint16Array.from(w, dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits) };
}

type Q8Weight = { dtype: 'q8_0'; data: Int8Array; scales: Uint16Array };

/**
 * A q8_0 product on the small-M path (M ≤ SMALL_M_ROWS: the int8 dot), on plain arrays and on the module's: equal bit
 * for bit to each other and to the model of the computation, and to ref within the bound of x's rounding to int8.
 */
function checkQ8Int(
  what: string,
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  w: Q8Weight,
  bias: Float32Array | null,
) {
  const want = new Float32Array(M * N);
  ref.linear(M, N, K, x, w, bias, want);
  const got = new Float32Array(M * N).fill(NaN);
  wasm.linear(M, N, K, x, w, bias, got);
  const inMem = copyInto(wasm, new Float32Array(M * N).fill(NaN)) as Float32Array;
  wasm.linear(M, N, K, copyInto(wasm, x) as Float32Array, copyInto(wasm, w) as Weight, bias, inMem);
  assertBitwise(new Float32Array(inMem), got, `${what}: in memory`, true);
  const model = wasmInt8DotModel(M, N, K, x, (n, k) => w.data[n * K + k]!, f16ToF32Array(w.scales), bias);
  assertBitwise(got, model.y, `${what}: vs the int8-dot model`, true);
  assertWithin(got, want, model.bound, prodTol(K), `${what}: vs ref within x's rounding to int8`);
}

seeded(
  'linear: every dtype, small-M and GEMM paths, bias or not, vs ref; rows bit-identical on the small-M path',
  (rng) => {
    for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
      const shapes: [number, number, number][] = [
        [1, 1, 32],
        [2, 33, 64],
        [3, 65, 96],
        [8, 17, 32 * rng.int(1, 25)],
        [rng.int(9, 40), rng.int(1, 90), 32 * rng.int(1, 10)],
      ];
      if (dtype !== 'q8_0') shapes.push([5, 7, 1], [1, 17, 767], [rng.int(1, 8), rng.int(1, 300), rng.int(1, 800)]);
      else shapes.push([rng.int(4, 7), rng.int(1, 300), 32 * rng.int(1, 40)], [9, 33, 96], [SMALL_M_ROWS, 5, 64]);
      shapes.push([SMALL_M_ROWS + 1, rng.int(1, 90), 32 * rng.int(1, 10)]); // the GEMM for every dtype
      const smallRows = dtype === 'f32' ? SMALL_M_ROWS >> 1 : SMALL_M_ROWS; // rows the small-M path takes
      for (const [M, N, K] of shapes) {
        const x = rng.uniform(M * K);
        const weight = weightOf(dtype, rng.uniform(N * K), N, K);
        for (const bias of [null, rng.uniform(N)]) {
          if (weight.dtype === 'q8_0' && M <= SMALL_M_ROWS) {
            checkQ8Int(`linear q8_0 ${M}x${N}x${K} bias=${bias !== null}`, M, N, K, x, weight as Q8Weight, bias);
            continue;
          }
          compare(
            `linear ${dtype} ${M}x${N}x${K} bias=${bias !== null}`,
            [x, weight, bias, new Float32Array(M * N)],
            [3],
            prodTol(K),
            (be, a) =>
              be.linear(
                M,
                N,
                K,
                a[0] as Float32Array,
                a[1] as Weight,
                a[2] as Float32Array | null,
                a[3] as Float32Array,
              ),
          );
        }
        if (M > smallRows) continue;
        const all = new Float32Array(M * N);
        wasm.linear(M, N, K, x, weight, null, all);
        for (let m = 0; m < M; m++) {
          const one = new Float32Array(N);
          wasm.linear(1, N, K, x.subarray(m * K, (m + 1) * K), weight, null, one);
          assertBitwise(all.subarray(m * N, (m + 1) * N), one, `linear ${dtype} N=${N} K=${K}: row ${m} of M=${M}`);
        }
      }
    }
  },
);

seeded('linear q8_0, M ≤ 8 (int8 dot): extreme x blocks and weights equal the model bit for bit', (rng) => {
  // K = 128: 4 blocks a row. Weights: quants -128..127 (both ends in every row), scales with float16's extremes.
  const N = 37,
    K = 128,
    nb = K / 32;
  const data = Int8Array.from({ length: N * K }, (_, i) =>
    i % 32 === 0 ? -128 : i % 32 === 1 ? 127 : rng.int(-128, 127),
  );
  const special = [0x0000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0x8001, 0xfbff];
  const scales = Uint16Array.from({ length: N * nb }, (_, i) =>
    i < special.length ? special[i]! : rng.int(0, 0x7bff) | (rng.int(0, 1) << 15),
  );
  const w: Q8Weight = { dtype: 'q8_0', data, scales };
  /**
   * A block of 32 values: `scale` times uniform values, with a zero and the block's extremes ±scale; scale 127 gives
   * d = 1 and halves (-15.5 .. 13.5), ties that round to even.
   */
  const blockOf = (scale: number): number[] =>
    Array.from({ length: 32 }, (_, j) =>
      j === 0 ? scale : j === 1 ? -scale : j === 2 ? 0 : scale === 127 ? j - 17.5 : scale * rng.uniform(1)[0]!,
    );
  const rows: number[][] = [
    [1, 1, 1, 1], // ordinary blocks
    [1e-37, 3e-37, 3.8e-37, 1e-36], // 1/d overflows to inf (first two: quants clamped to ±127), subnormal d
    [0, 1e-45, 1e-40, 1e-30], // a zero block (d = 0), float32 subnormals (d = 0; a subnormal d, 1/d = inf)
    [1, NaN, 1, 1], // a NaN block: the row is NaN
    [1, 1, Infinity, 1], // an infinite block: the row is NaN
    [3.4e38, 1e30, 65504, 1e-3], // the largest float32 (dd overflows to inf against large scales)
    [127, 2, 100, 1e-5], // ties
    [1, 1, 1, -Infinity],
  ];
  const x = new Float32Array(8 * K);
  rows.forEach((r, m) =>
    r.forEach((scale, b) => {
      const v = Number.isFinite(scale) && scale !== 0 ? blockOf(scale) : new Array<number>(32).fill(0);
      if (!Number.isFinite(scale)) v[rng.int(0, 31)] = scale;
      x.set(v, m * K + b * 32);
    }),
  );
  const dw = f16ToF32Array(scales);
  for (const M of [1, 2, 5, 8]) {
    for (let start = 0; start + M <= 8; start += M) {
      const xs = x.subarray(start * K, (start + M) * K);
      for (const bias of [null, rng.uniform(N)]) {
        const got = new Float32Array(M * N).fill(NaN);
        wasm.linear(M, N, K, xs, w, bias, got);
        const model = wasmInt8DotModel(M, N, K, xs, (n, k) => data[n * K + k]!, dw, bias);
        assertBitwise(got, model.y, `q8_0 rows ${start}..${start + M - 1} bias=${bias !== null}: vs the model`, true);
      }
    }
  }
  // the non-finite rows are NaN (as on x86: a non-finite x block gives d = NaN), the others not all NaN
  const y = new Float32Array(8 * N);
  wasm.linear(8, N, K, x, w, null, y);
  for (const m of [3, 4, 7]) assert.ok(y.subarray(m * N, (m + 1) * N).every(Number.isNaN), `row ${m} is NaN`);
  for (const m of [0, 1, 2, 6]) assert.ok(y.subarray(m * N, (m + 1) * N).some(Number.isFinite), `row ${m} finite`);
});

seeded('embedding forward (every dtype) and backward, biasBackward vs ref', (rng) => {
  const T = rng.pick(ODD),
    V = rng.int(1, 20),
    C = rng.pick([32, 64, 96]),
    ids = rng.ints(T, 0, V - 1);
  for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
    const weight = weightOf(dtype, rng.uniform(V * C), V, C);
    compare(`embeddingForward ${dtype}`, [ids, weight, new Float32Array(T * C)], [2], 0, (be, a) =>
      be.embeddingForward(T, C, V, a[0] as Int32Array, a[1] as Weight, a[2] as Float32Array),
    );
  }
  const C2 = rng.pick([1, 3, 17, 100]);
  compare(`embeddingBackward C=${C2}`, [ids, rng.uniform(T * C2), rng.uniform(V * C2)], [2], prodTol(T), (be, a) =>
    be.embeddingBackward(T, C2, V, a[0] as Int32Array, a[1] as Float32Array, a[2] as Float32Array),
  );
  const M = rng.pick(ODD),
    N = rng.pick([1, 17, 100, 767]);
  compare(`biasBackward ${M}x${N}`, [rng.uniform(M * N), rng.uniform(N)], [1], prodTol(M), (be, a) =>
    be.biasBackward(M, N, a[0] as Float32Array, a[1] as Float32Array),
  );
});

seeded('layerNorm, rmsNorm, gelu, swiglu, rope forward/backward vs ref', (rng) => {
  for (const C of [1, 3, 17, rng.pick([64, 100, 767, 768])]) {
    const N = rng.pick(ODD),
      eps = 1e-5,
      x = rng.uniform(N * C, 2),
      w = rng.uniform(C),
      b = rng.uniform(C);
    const tol = prodTol(C);
    compare(
      `layerNormForward C=${C}`,
      [x, w, b, new Float32Array(N * C), new Float32Array(N), new Float32Array(N)],
      [3, 4, 5],
      tol,
      (be, a) => {
        const [xx, ww, bb, o, mu, rs] = a as Float32Array[];
        be.layerNormForward(N, C, xx!, ww!, bb!, eps, o!, mu!, rs!);
      },
    );
    const mean = new Float32Array(N),
      rstd = new Float32Array(N);
    ref.layerNormForward(N, C, x, w, b, eps, new Float32Array(N * C), mean, rstd);
    compare(
      `layerNormBackward C=${C}`,
      [rng.uniform(N * C), x, w, mean, rstd, rng.uniform(N * C), rng.uniform(C), rng.uniform(C)],
      [5, 6, 7],
      prodTol(N * C),
      (be, a) => {
        const [d, xx, ww, mu, rs, dx, dw, db] = a as Float32Array[];
        be.layerNormBackward(N, C, d!, xx!, ww!, mu!, rs!, dx!, dw!, db!);
      },
    );
    compare(`rmsNormForward C=${C}`, [x, w, new Float32Array(N * C), new Float32Array(N)], [2, 3], tol, (be, a) => {
      const [xx, ww, o, rs] = a as Float32Array[];
      be.rmsNormForward(N, C, xx!, ww!, eps, o!, rs!);
    });
    ref.rmsNormForward(N, C, x, w, eps, new Float32Array(N * C), rstd);
    compare(
      `rmsNormBackward C=${C}`,
      [rng.uniform(N * C), x, w, rstd, rng.uniform(N * C), rng.uniform(C)],
      [4, 5],
      prodTol(N * C),
      (be, a) => {
        const [d, xx, ww, rs, dx, dw] = a as Float32Array[];
        be.rmsNormBackward(N, C, d!, xx!, ww!, rs!, dx!, dw!);
      },
    );
  }
  const n = rng.pick([1, 7, 17, 1000, 40003]);
  const x = rng.uniform(n, 6),
    up = rng.uniform(n, 3);
  compare(`geluForward n=${n}`, [x, new Float32Array(n)], [1], 1e-5, (be, a) =>
    be.geluForward(n, a[0] as Float32Array, a[1] as Float32Array),
  );
  compare(`geluBackward n=${n}`, [x, rng.uniform(n), rng.uniform(n)], [2], 1e-5, (be, a) =>
    be.geluBackward(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
  );
  compare(`swigluForward n=${n}`, [x, up, new Float32Array(n)], [2], 1e-5, (be, a) =>
    be.swigluForward(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
  );
  compare(`swigluBackward n=${n}`, [x, up, rng.uniform(n), rng.uniform(n), rng.uniform(n)], [3, 4], 1e-5, (be, a) => {
    const [g, u, d, dg, du] = a as Float32Array[];
    be.swigluBackward(n, g!, u!, d!, dg!, du!);
  });
  const R = rng.pick(ODD),
    H = rng.int(1, 4),
    D = 2 * rng.int(1, 40),
    pos = rng.ints(R, 0, 3000);
  for (const inverse of [false, true])
    compare(`rope R=${R} H=${H} D=${D} inverse=${inverse}`, [rng.uniform(R * H * D), pos], [0], 1e-6, (be, a) =>
      be.rope(R, H, D, a[0] as Float32Array, a[1] as Int32Array, 10000, inverse),
    );
});

seeded('attention forward/backward/decode vs ref', (rng) => {
  for (const [G, hpk] of [
    [1, 1],
    [2, 2],
    [1, 3],
  ] as const) {
    const B = rng.int(1, 2),
      T = rng.pick([1, 7, 17, 33]),
      H = G * hpk,
      D = rng.pick([1, 16, 17, 64]);
    const q = rng.uniform(B * T * H * D),
      k = rng.uniform(B * T * G * D),
      v = rng.uniform(B * T * G * D);
    const what = `B=${B} T=${T} H=${H} G=${G} D=${D}`;
    compare(
      `attentionForward ${what}`,
      [q, k, v, new Float32Array(q.length), new Float32Array(B * H * T * T)],
      [3, 4],
      prodTol(T * D),
      (be, a) => {
        const [qq, kk, vv, o, p] = a as Float32Array[];
        be.attentionForward(B, T, H, G, D, qq!, kk!, vv!, o!, p!);
      },
    );
    const probs = new Float32Array(B * H * T * T);
    ref.attentionForward(B, T, H, G, D, q, k, v, new Float32Array(q.length), probs);
    const grads = [rng.uniform(q.length), rng.uniform(k.length), rng.uniform(v.length)];
    compare(
      `attentionBackward ${what}`,
      [q, k, v, probs, rng.uniform(q.length), ...grads],
      [5, 6, 7],
      prodTol(T * D * hpk),
      (be, a) => {
        const [qq, kk, vv, p, d, dq, dk, dv] = a as Float32Array[];
        be.attentionBackward(B, T, H, G, D, qq!, kk!, vv!, p!, d!, dq!, dk!, dv!);
      },
    );
    const M = rng.int(1, 8),
      pos0 = rng.pick([0, 1, 5, rng.int(0, 300)]),
      len = pos0 + M;
    const qd = rng.uniform(M * H * D),
      kc = rng.uniform(len * G * D),
      vc = rng.uniform(len * G * D);
    compare(
      `attentionDecode M=${M} pos0=${pos0} ${what}`,
      [qd, kc, vc, new Float32Array(M * H * D)],
      [3],
      prodTol(len * D),
      (be, a) => {
        const [qq, kk, vv, o] = a as Float32Array[];
        be.attentionDecode(M, H, G, D, qq!, kk!, vv!, pos0, o!);
      },
    );
    const all = new Float32Array(M * H * D);
    wasm.attentionDecode(M, H, G, D, qd, kc, vc, pos0, all);
    for (let i = 0; i < M; i++) {
      const one = new Float32Array(H * D);
      wasm.attentionDecode(1, H, G, D, qd.subarray(i * H * D), kc, vc, pos0 + i, one);
      assertBitwise(one, all.subarray(i * H * D, (i + 1) * H * D), `attentionDecode row ${i} of M=${M} ${what}`);
    }
  }
});

seeded('crossEntropy, adamw, add, axpy, scale, sumSquares vs ref', (rng) => {
  const N = rng.pick(ODD),
    V = rng.pick([1, 2, 17, 1000, 4099]);
  const logits = rng.uniform(N * V, 8),
    targets = rng.ints(N, -1, V - 1);
  compare(`crossEntropyForward V=${V}`, [logits, targets, new Float32Array(N)], [2], prodTol(V), (be, a) =>
    be.crossEntropyForward(N, V, a[0] as Float32Array, a[1] as Int32Array, a[2] as Float32Array),
  );
  compare(`crossEntropyBackward V=${V}`, [logits, targets, rng.uniform(N * V, 0.01)], [2], prodTol(V), (be, a) =>
    be.crossEntropyBackward(N, V, a[0] as Float32Array, a[1] as Int32Array, 1 / N, a[2] as Float32Array),
  );
  const n = rng.pick([1, 15, 17, 1000, 100003]);
  const p = rng.uniform(n),
    g = rng.uniform(n, 0.1),
    m = rng.uniform(n, 0.01),
    v = rng.uniform(n, 1e-4).map(Math.abs),
    step = rng.int(1, 50);
  // 0.9·m + 0.1·g may cancel (seen at n = 1): the outputs' errors are held to the scale of m's terms (0.01)
  compare(
    `adamw n=${n}`,
    [p, g, m, v],
    [0, 1, 2, 3],
    1e-6,
    (be, a) => {
      const [pp, gg, mm, vv] = a as Float32Array[];
      be.adamw(n, pp!, gg!, mm!, vv!, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
    },
    0.01,
  );
  compare(`add n=${n}`, [p, g, new Float32Array(n)], [2], 0, (be, a) =>
    be.add(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
  );
  compare(`axpy n=${n}`, [g, rng.uniform(n)], [1], 1e-6, (be, a) =>
    be.axpy(n, 0.37, a[0] as Float32Array, a[1] as Float32Array),
  );
  compare(`scale n=${n}`, [p], [0], 1e-6, (be, a) => be.scale(n, a[0] as Float32Array, -1.7));
  compare(`sumSquares n=${n}`, [p], [], 1e-12, (be, a) => be.sumSquares(n, a[0] as Float32Array));
});

test('wasm kernels: argument errors are ref’s; out of memory names the backend and its size', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const calls: [string, (be: Backend) => void][] = [
    ['linear short y', (be) => be.linear(2, 3, 4, f(8), f(12), null, f(5))],
    [
      'linear q8_0 K',
      (be) =>
        be.linear(1, 2, 31, f(31), { dtype: 'q8_0', data: new Int8Array(62), scales: new Uint16Array(2) }, null, f(2)),
    ],
    ['embedding id', (be) => be.embeddingForward(1, 2, 3, new Int32Array([3]), f(6), f(2))],
    ['heads', (be) => be.attentionDecode(1, 3, 2, 4, f(12), f(8), f(8), 0, f(12))],
    ['rope odd D', (be) => be.rope(1, 1, 3, f(3), new Int32Array(1), 10000, false)],
  ];
  let refused = '';
  assert.throws(
    () => wasm.linear(1, 1, 1, f(1), { dtype: 'f16', data: new Uint16Array(1) }, null, f(1)),
    (e: Error) => ((refused = e.message), /f16/.test(e.message)),
  );
  assert.match(refused, /linear/, refused);
  for (const [what, call] of calls) {
    let want = '';
    assert.throws(
      () => call(ref),
      (e: Error) => ((want = e.message), true),
      what,
    );
    assert.throws(
      () => call(wasm),
      (e: Error) => e.message === want,
      `${what}: ${want}`,
    );
  }
  const small = createNodeWasmBackend({ memoryBytes: 2 ** 21 });
  assert.throws(() => small.alloc.f32(2 ** 20), /wasm backend: out of memory allocating f32\[1048576\].*memoryBytes/);
  assert.throws(() => createNodeWasmBackend({ memoryBytes: 1000 }), /memoryBytes must be an integer/);
});

test('wasm float16 widening (q8_0 scales; the raw kernel on f16 tables): all 65536 values, exactly', () => {
  const raw = Object.getPrototypeOf(wasm) as Backend; // the unchecked kernels: the checked layer refuses f16 here
  const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const table: Weight = { dtype: 'f16', data: bits };
  const got = new Float32Array(65536),
    want = new Float32Array(65536);
  raw.embeddingForward(1, 65536, 1, new Int32Array([0]), table, got);
  ref.embeddingForward(1, 65536, 1, new Int32Array([0]), table, want);
  assertBitwise(got, want, 'f16 → f32', true);
});
