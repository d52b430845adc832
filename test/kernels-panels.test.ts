/**
 * Panels, the layout the native backend's products read f16 / bf16 matrices in (kernels/panels.ts,
 * native/kernels_impl.h linear_panels: an outer product over 32-row panels, each stored column by column): the
 * packing against its formula (zero-padded last panel) and back; `linear` on panels against ref on the row-major
 * weights at every SIMD path this CPU has and 1, 2 and 3 threads, on odd shapes, with and without a bias, through
 * the outer product (up to 1024 rows) and past it (the GEMM on widened panels); rows bit-identical to the row alone
 * for every M ≤ 24 and the same at every thread count; `embeddingForward` on panels equal to the row-major table bit
 * for bit; bad handles refused with the kernel and the weight named, by the checks and by the raw addon; and a model
 * on the native backend reading its products as panels (prepareLinear) with the logits of the ref backend. Seeds are
 * fresh each run (SEED=… reproduces).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { heapAllocator, type Backend, type StoredWeight, type Weight } from '../src/kernels/backend.js';
import { f32ToBf16Bits, f32ToF16Array } from '../src/kernels/half.js';
import { panelRow, PANEL_ROWS, q8ToPanels, toPanels } from '../src/kernels/panels.js';
import { quantizeQ8 } from '../src/kernels/quant.js';
import { convertWeights } from '../src/model/convert.js';
import { InferenceModel } from '../src/model/infer.js';
import { Rng, seededTest } from './helpers/check.js';
import {
  assertBitwise,
  assertClose,
  assertRowsAsAlone,
  eachSimd,
  native,
  nativeSkip,
  prodTol,
  seededNative,
  SMALL_M_ROWS,
} from './helpers/native.js';
import { randomModel } from './helpers/models.js';

const ref = createRefBackend();

/** A random [N, K] matrix stored as f16 or bf16 bits. */
function halfMatrix(rng: Rng, dtype: 'f16' | 'bf16', N: number, K: number): StoredWeight {
  const v = rng.f32(N * K, 0.5);
  const data = dtype === 'f16' ? f32ToF16Array(v) : Uint16Array.from(v, (x) => f32ToBf16Bits(x));
  return { dtype, data };
}

/**
 * `linear` on the panels `p` of `w` [N, K] for each M of `Ms`: ref's product on the row-major `w` (to rounding, a bias
 * or not), and the same bits at 1, 2 and 3 threads.
 */
function linearAsRef(
  be: Backend,
  rng: Rng,
  w: StoredWeight,
  p: Weight,
  N: number,
  K: number,
  Ms: readonly number[],
  label: string,
): void {
  for (const M of Ms) {
    const x = rng.f32(M * K),
      bias = rng.next() < 0.5 ? rng.f32(N) : null,
      want = new Float32Array(M * N);
    ref.linear(M, N, K, x, w, bias, want);
    let first: Float32Array | null = null;
    for (const th of [1, 2, 3]) {
      be.setThreads(th);
      const got = new Float32Array(M * N);
      be.linear(M, N, K, x, p, bias, got);
      const what = `${label} [${N}, ${K}] M=${M} ${th} thread(s)`;
      assertClose(got, want, prodTol(K), what);
      if (first) assertBitwise(got, first, `${what}: the same as at 1 thread`);
      first = got;
    }
  }
}

/** The message `f` throws with ('no error' when it throws none). */
function messageOf(f: () => void): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

seededTest(
  'toPanels: element (n, k) at ⌊n/32⌋·32·K + 32·k + n mod 32, the last panel zero-padded; rows back',
  (rng) => {
    for (const [N, K] of [
      [1, 1],
      [31, 3],
      [32, 7],
      [33, 5],
      [70, 17],
    ] as const) {
      const w = halfMatrix(rng, 'f16', N, K),
        p = toPanels(w, N, K, heapAllocator);
      assert.equal(p.dtype, 'f16_panels');
      const data = p.data as Uint16Array,
        P = Math.ceil(N / PANEL_ROWS);
      assert.equal(data.length, P * PANEL_ROWS * K);
      for (let n = 0; n < P * PANEL_ROWS; n++) {
        for (let k = 0; k < K; k++) {
          const at = Math.floor(n / PANEL_ROWS) * PANEL_ROWS * K + PANEL_ROWS * k + (n % PANEL_ROWS);
          assert.equal(data[at], n < N ? w.data[n * K + k] : 0, `[${N}, ${K}] element (${n}, ${k})`);
        }
        if (n < N) assert.deepEqual(panelRow(data, n, K), w.data.subarray(n * K, (n + 1) * K));
      }
    }
    assert.equal(toPanels(halfMatrix(rng, 'bf16', 2, 2), 2, 2, heapAllocator).dtype, 'bf16_panels');
    const f32: StoredWeight = { dtype: 'f32', data: new Float32Array(4) };
    assert.equal(toPanels(f32, 2, 2, heapAllocator), f32, 'f32 stays as it is');
    assert.throws(() => toPanels(halfMatrix(rng, 'f16', 2, 2), 3, 2, heapAllocator), /needs 6 values, got 4/);
  },
);

seededNative('linear on panels: ref on the row-major weights, every SIMD path and 1-3 threads, both paths', (rng, be) =>
  eachSimd(be, (simd) => {
    for (const dtype of ['f16', 'bf16'] as const) {
      for (const [N, K] of [
        [1, 1],
        [5, 2],
        [31, 17],
        [32, 64],
        [33, 33],
        [97, 129],
        [64, 320],
      ] as const) {
        const w = halfMatrix(rng, dtype, N, K);
        // the outer product up to 1024 rows (past linear_small_max_rows too), the GEMM on widened panels past it
        const Ms = [1, 2, 3, 5, 6, 7, 8, 13, SMALL_M_ROWS, SMALL_M_ROWS + 9, ...(N * K < 4000 ? [1030] : [])];
        linearAsRef(be, rng, w, toPanels(w, N, K, heapAllocator), N, K, Ms, `${simd} ${dtype}`);
      }
    }
  }),
);

seededNative('linear on panels: each row bit-identical to the row alone for every M ≤ 24, every SIMD path', (rng, be) =>
  eachSimd(be, (simd) => {
    const N = rng.int(1, 90),
      K = rng.int(1, 70),
      rows = SMALL_M_ROWS;
    const w = toPanels(halfMatrix(rng, rng.next() < 0.5 ? 'f16' : 'bf16', N, K), N, K, heapAllocator);
    assertRowsAsAlone(be, rng, {
      rows,
      N,
      K,
      x: rng.f32(rows * K),
      w,
      bias: rng.f32(N),
      threads: [1, 2, 3],
      setThreads: (n) => be.setThreads(n),
      what: (th, M, m) => `${simd} [${N}, ${K}] ${th} thread(s): row ${m} of ${M}`,
    });
  }),
);

seededNative('embeddingForward on panels: the row-major table, bit for bit', (rng, be) => {
  for (const dtype of ['f16', 'bf16'] as const) {
    const V = 45,
      C = 19,
      w = halfMatrix(rng, dtype, V, C),
      ids = rng.ints(30, 0, V - 1);
    const want = new Float32Array(30 * C),
      got = new Float32Array(30 * C);
    be.embeddingForward(30, C, V, ids, w, want);
    be.embeddingForward(30, C, V, ids, toPanels(w, V, C, heapAllocator), got);
    assertBitwise(got, want, dtype);
  }
});

seededNative('panels: short or mistyped storage is refused, naming the kernel and the weight', (rng, be) => {
  const N = 33,
    K = 4,
    x = rng.f32(K),
    y = new Float32Array(N);
  const short: Weight = { dtype: 'f16_panels', data: new Uint16Array(N * K) }; // 2 panels need 64·4 values
  const wrong = { dtype: 'f16_panels', data: new Float32Array(64 * K) } as unknown as Weight;
  assert.throws(() => be.linear(1, N, K, x, short, null, y), /linear: w\.data has 132 elements .* panels .* needs 256/);
  assert.throws(
    () => be.linear(1, N, K, x, wrong, null, y),
    /linear: argument w\.data must be a Uint16Array \(f16_panels bits\)/,
  );
  // the raw addon checks the same, with the same messages
  for (const w of [short, wrong])
    assert.equal(
      messageOf(() => be.addon.linear(1, N, K, x, w, null, y)),
      messageOf(() => be.linear(1, N, K, x, w, null, y)),
    );
  assert.equal(createRefBackend().weightDtypes.includes('f16_panels'), false, 'ref reads row-major weights only');
});

test(
  'a model on the native backend: products as panels, lookups row-major, the logits of ref',
  { skip: nativeSkip },
  () => {
    const be = native();
    const { weights, config } = randomModel({ preset: 'tiny', scale: 4, seed: 3 });
    // the same f16 weights on each backend
    const stored = convertWeights(weights, config, 'f16');
    const half = new InferenceModel(config, stored, be);
    const halfRef = new InferenceModel(config, stored, createRefBackend());
    assert.equal(halfRef.products.size, 0, 'ref prepares nothing');
    const spec = half.weights.specs.find((s) => s.name.endsWith('mlp.c_fc.weight'))!;
    assert.equal(half.products.weight(spec.name).dtype, 'f16_panels');
    const emb = half.weights.specs[0]!.name;
    assert.equal(half.weights.weight(emb).dtype, 'f16', 'the stored weights stay row-major');
    const ids = [1, 2, 3, 4, 5];
    const got = half.forwardBase(ids, half.newBaseCache(), 'all').logits;
    const want = halfRef.forwardBase(ids, halfRef.newBaseCache(), 'all').logits;
    assertClose(got, want, 1e-4, 'logits, native on panels vs ref on row-major f16');
  },
);

/** A random [N, K] matrix in q8_0 (K a multiple of 32). */
function q8Matrix(rng: Rng, N: number, K: number): Extract<StoredWeight, { dtype: 'q8_0' }> {
  const q = quantizeQ8(rng.f32(N * K, 0.5), N, K);
  return { dtype: 'q8_0', data: q.data, scales: q.scales };
}

seededTest('q8ToPanels: quants as the panels, scales [P][K/32][32], zero-padded; rows dequantize as q8_0', (rng) => {
  for (const [N, K] of [
    [1, 32],
    [31, 64],
    [33, 96],
    [70, 32],
  ] as const) {
    const w = q8Matrix(rng, N, K),
      p = q8ToPanels(w, N, K, heapAllocator);
    assert.equal(p.dtype, 'q8_0_panels');
    if (p.dtype !== 'q8_0_panels') return;
    const P = Math.ceil(N / PANEL_ROWS),
      KB = K / 32;
    assert.equal(p.data.length, P * PANEL_ROWS * K);
    assert.equal(p.scales.length, P * PANEL_ROWS * KB);
    for (let n = 0; n < P * PANEL_ROWS; n++) {
      const base = Math.floor(n / PANEL_ROWS) * PANEL_ROWS,
        c = n % PANEL_ROWS;
      for (let k = 0; k < K; k++)
        assert.equal(p.data[base * K + PANEL_ROWS * k + c], n < N ? w.data[n * K + k] : 0, `quant (${n}, ${k})`);
      for (let b = 0; b < KB; b++)
        assert.equal(p.scales[base * KB + PANEL_ROWS * b + c], n < N ? w.scales[n * KB + b] : 0, `scale (${n}, ${b})`);
    }
  }
  assert.throws(() => q8ToPanels(q8Matrix(rng, 2, 32), 2, 48, heapAllocator), /rows of 48 are not whole blocks/);
  assert.throws(() => q8ToPanels(q8Matrix(rng, 2, 32), 3, 32, heapAllocator), /needs 96 quants and 3 scales/);
});

seededNative('linear on q8_0 panels: ref on the q8_0 rows, every SIMD path and 1-3 threads; rows as alone', (rng, be) =>
  eachSimd(be, (simd) => {
    for (const [N, K] of [
      [1, 32],
      [5, 64],
      [31, 32],
      [33, 96],
      [97, 160],
      [64, 320],
    ] as const) {
      const w = q8Matrix(rng, N, K);
      const Ms = [1, 2, 3, 5, 6, 7, 8, 13, SMALL_M_ROWS + 9, ...(N * K < 4000 ? [1030] : [])];
      linearAsRef(be, rng, w, q8ToPanels(w, N, K, heapAllocator), N, K, Ms, `${simd} q8_0 panels`);
    }
    const N = rng.int(1, 90),
      K = 32 * rng.int(1, 4),
      rows = SMALL_M_ROWS;
    assertRowsAsAlone(be, rng, {
      rows,
      N,
      K,
      x: rng.f32(rows * K),
      w: q8ToPanels(q8Matrix(rng, N, K), N, K, heapAllocator),
      bias: rng.f32(N),
      threads: [1, 2, 3],
      setThreads: (n) => be.setThreads(n),
      what: (th, M, m) => `${simd} q8_0 panels [${N}, ${K}] ${th} thread(s): row ${m} of ${M}`,
    });
  }),
);

seededNative(
  'q8_0 panels: lookups equal the q8_0 rows; short scales and ragged rows refused like the addon',
  (rng, be) => {
    const V = 45,
      C = 64,
      w = q8Matrix(rng, V, C),
      ids = rng.ints(30, 0, V - 1);
    const want = new Float32Array(30 * C),
      got = new Float32Array(30 * C);
    be.embeddingForward(30, C, V, ids, w, want);
    be.embeddingForward(30, C, V, ids, q8ToPanels(w, V, C, heapAllocator), got);
    assertBitwise(got, want, 'embedding');
    const N = 33,
      K = 32,
      x = rng.f32(K),
      y = new Float32Array(N);
    const shortScales: Weight = { dtype: 'q8_0_panels', data: new Int8Array(64 * K), scales: new Uint16Array(N) };
    const ragged: Weight = { dtype: 'q8_0_panels', data: new Int8Array(64 * 40), scales: new Uint16Array(64 * 2) };
    assert.throws(() => be.linear(1, N, K, x, shortScales, null, y), /w\.scales has 33 elements .* panels .* needs 64/);
    assert.throws(() => be.linear(1, N, 40, rng.f32(40), ragged, null, y), /multiple of 32/);
    assert.equal(
      messageOf(() => be.addon.linear(1, N, K, x, shortScales, null, y)),
      messageOf(() => be.linear(1, N, K, x, shortScales, null, y)),
    );
  },
);
