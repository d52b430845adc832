/**
 * The native kernels on weights kept as stored (issue 11, item 1): f16, bf16 and q8_0 weights read by `linear` and
 * `embeddingForward`, converted to float32 in registers. For every dtype, every SIMD path this CPU has and 1 and 2
 * threads: results equal ref's (which computes on the exactly dequantized weights) up to float32 summation order,
 * and for M ≤ 8 equal the native f32 kernel on the dequantized weights bit for bit — except q8_0 on the small-M path
 * (M ≤ linearSmallMaxRows) with an int8 dot (INT8_DOT_PATHS: x quantized to int8 per block of 32, ggml's Q8_0 × Q8_0),
 * which equals a model of that computation (helpers/x86-int8-dot.ts) up to float32 summation order and ref within the
 * bound of x's rounding to 8 bits (Σ_b dx_b/2 · Σ_j |w_bj|); rows are bit-identical for every M on the small-M path
 * (up to linearSmallMaxRows, in groups of 8 past 8); embeddings equal ref's bit for bit
 * (every f16 and bf16 bit pattern); bad handles get the checked layer's messages from the raw addon too. End to end:
 * the shipped model (stored F16) keeps f16 weights on the native backend and decodes greedily exactly as its f32
 * load does; int8 verified greedy equals int8 standard greedy. Seeds are fresh each run and printed on failure (SEED=…
 * reproduces). Fails if the addon is not built, unless RECYCLEGPT_BACKEND=ref.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRefBackend } from '../src/kernels/ref.js';
import { createNativeBackend, type NativeBackend } from '../src/kernels/native.js';
import type { KernelWeightDtype, Weight } from '../src/kernels/backend.js';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Bits, f32ToF16Bits } from '../src/kernels/half.js';
import { dequantizeQ8, quantizeQ8 } from '../src/kernels/quant.js';
import { allParamSpecs } from '../src/model/names.js';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { Rng } from './helpers/check.js';
import {
  assertBitwise,
  assertClose,
  eachConfig,
  native,
  nativeSkip,
  prodTol,
  SMALL_M_ROWS,
  seededNative,
  assertRowsAsAlone,
} from './helpers/native.js';
import { assertWithin } from './helpers/wasm-int8-dot.js';
import { x86Int8Model, type BlockQuants } from './helpers/x86-int8-dot.js';

const skip = nativeSkip;
const ref = createRefBackend();
const seeded = seededNative;
/** Bit for bit; NaNs (whatever their payload) only have to be NaN on both sides. */
const assertSame = (got: Float32Array, want: Float32Array, what: string): void => assertBitwise(got, want, what, true);
const DTYPES = ['f16', 'bf16', 'q8_0'] as const;
type StoredDtype = (typeof DTYPES)[number];

/** `w` [N, K] stored as `dtype`, and the float32 values that storage stands for. */
function stored(dtype: StoredDtype, w: Float32Array, N: number, K: number): { h: Weight; deq: Float32Array } {
  if (dtype === 'q8_0') {
    const q = quantizeQ8(w, N, K);
    return { h: { dtype, ...q }, deq: dequantizeQ8(q) };
  }
  const bits = Uint16Array.from(w, dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits);
  return { h: { dtype, data: bits }, deq: dtype === 'f16' ? f16ToF32Array(bits) : bf16ToF32Array(bits) };
}

/** SIMD paths whose q8_0 product on the small-M path quantizes x to int8 (native/kernels_impl.h, linear_q8_int). */
const INT8_DOT_PATHS: readonly string[] = ['avx2', 'avx512'];

/** float16 bits to a number. */
function f16(bits: number): number {
  return f16ToF32Array(Uint16Array.of(bits))[0]!;
}

/** The q8_0 weight's quants and float16 block scales, for the x86 int8-dot model. */
function q8Quants(h: { data: Int8Array; scales: Uint16Array }, K: number): BlockQuants {
  return { quant: (n, k) => h.data[n * K + k]!, scale: (n, b) => f16(h.scales[(n * K) / 32 + b]!) };
}

/**
 * The checks of one q8_0-or-other product `got` at M rows on SIMD path `simd`: against ref (`want`), and for M ≤ 8
 * against the f32 kernel on the dequantized weights (`f32`, bit for bit) or, for q8_0 on an int8-dot path's small-M
 * product (M ≤ linearSmallMaxRows), the int8 model.
 */
function checkProduct(
  simd: string,
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  h: Weight,
  bias: Float32Array | null,
  got: Float32Array,
  want: Float32Array,
  f32: () => Float32Array,
  what: string,
): void {
  if (h.dtype === 'q8_0' && M <= SMALL_M_ROWS && INT8_DOT_PATHS.includes(simd)) {
    const model = x86Int8Model(M, N, K, x, q8Quants(h, K), bias);
    assertClose(got, model.y, prodTol(K), `${what}: vs the int8-activation model`);
    assertWithin(got, want, model.bound, prodTol(K), `${what}: vs ref within x's rounding to int8`);
    return;
  }
  assertClose(got, want, prodTol(K), what);
  if (M <= 8) assertSame(got, f32(), `${what}: vs f32 on the dequantized weights`);
}

/** A row length for `dtype`: odd ones for f16 / bf16 (masked tails), multiples of 32 for q8_0. */
function pickK(rng: Rng, dtype: StoredDtype): number {
  if (dtype === 'q8_0') return 32 * rng.pick([1, 2, 3, 5, 24, rng.int(1, 40)]);
  return rng.pick([1, 7, 15, 17, 31, 33, 65, 767, 2 * rng.int(0, 400) + 1]);
}

test('the native backend reads every weight dtype as stored, and f16 / bf16 / q8_0 as panels', { skip }, () => {
  assert.deepEqual([...native().weightDtypes], [
    'f32',
    'f16',
    'bf16',
    'q8_0',
    'q4_0',
    'f16_panels',
    'bf16_panels',
    'q8_0_panels',
  ] satisfies KernelWeightDtype[]);
});

// ---- linear -------------------------------------------------------------------------------------------------------
seeded(
  'linear: every dtype, SIMD path and thread count vs ref; M ≤ 8 equals f32 on the dequantized weights',
  (rng, be) => {
    for (const dtype of DTYPES) {
      const shapes: [number, number, number][] = [];
      for (let M = 1; M <= 9; M++) shapes.push([M, rng.pick([1, 3, 17, 33, rng.int(1, 150) | 1]), pickK(rng, dtype)]);
      shapes.push([16, 65, pickK(rng, dtype)], [rng.int(10, 70), rng.int(1, 200) | 1, pickK(rng, dtype)]);
      shapes.push([33, 257, dtype === 'q8_0' ? 96 : 97]); // several W chunks of the M > 8 path
      shapes.push([3, 5, 0], [12, 5, 0]); // empty rows: y = bias
      for (const [M, N, K] of shapes) {
        const x = rng.uniform(M * K),
          bias = rng.uniform(N);
        const { h, deq } = stored(dtype, rng.uniform(N * K), N, K);
        for (const b of [null, bias]) {
          const want = new Float32Array(M * N);
          ref.linear(M, N, K, x, h, b, want);
          let first: Float32Array | null = null;
          eachConfig(be, (cfg, th) => {
            const what = `linear ${dtype} ${M}x${N}x${K} bias=${b !== null} ${cfg}`;
            const got = new Float32Array(M * N).fill(NaN);
            be.linear(M, N, K, x, h, b, got);
            const f32 = (): Float32Array => {
              const y = new Float32Array(M * N).fill(NaN);
              be.linear(M, N, K, x, deq, b, y);
              return y;
            };
            checkProduct(be.simd, M, N, K, x, h, b, got, want, f32, what);
            if (th === 1) first = got;
            else if (first) assertSame(got, first, `${what}: 2 threads vs 1`);
          });
        }
      }
    }
  },
);

seeded('linear: every dtype, a row is bit-identical whatever M (on the small-M path) and the threads', (rng, be) => {
  const rows = SMALL_M_ROWS; // f16 / bf16 / q8_0: groups of 8 rows past 8, up to this
  for (const dtype of DTYPES) {
    for (let trial = 0; trial < 2; trial++) {
      const N = rng.pick([1, 3, 17, rng.int(1, 300) | 1]),
        K = pickK(rng, dtype);
      const x = rng.uniform(rows * K),
        bias = rng.uniform(N);
      const { h } = stored(dtype, rng.uniform(N * K), N, K);
      const simd0 = be.simd;
      try {
        for (const simd of be.availableSimd()) {
          be.setSimd(simd);
          assertRowsAsAlone(be, rng, {
            ...{ rows, N, K, x, w: h, bias, threads: [1, 2], anyNaN: true },
            setThreads: (n) => be.setThreads(n),
            what: (th, M, m) => `linear ${dtype} ${simd} ${th}t N=${N} K=${K}: row ${m} of M=${M} vs alone`,
          });
        }
      } finally {
        be.setSimd(simd0);
        be.setThreads(1);
      }
    }
  }
});

seeded('linear: q8_0 with extreme scales (subnormal, largest float16, zero) and quants -128..127 vs ref', (rng, be) => {
  const N = 37,
    K = 96;
  const data = Int8Array.from({ length: N * K }, () => rng.int(-128, 127));
  const special = [0x0000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0x8001, 0xfbff];
  const scales = Uint16Array.from({ length: (N * K) / 32 }, (_, i) =>
    i < special.length ? special[i] : rng.int(0, 0x7bff) | (rng.int(0, 1) << 15),
  );
  const h: Weight = { dtype: 'q8_0', data, scales };
  const deq = dequantizeQ8({ data, scales });
  for (const M of [1, 2, 5, 8, 12]) {
    const x = rng.uniform(M * K),
      want = new Float32Array(M * N);
    ref.linear(M, N, K, x, h, null, want);
    eachConfig(be, (cfg) => {
      const got = new Float32Array(M * N);
      be.linear(M, N, K, x, h, null, got);
      const f32 = (): Float32Array => {
        const y = new Float32Array(M * N);
        be.linear(M, N, K, x, deq, null, y);
        return y;
      };
      checkProduct(be.simd, M, N, K, x, h, null, got, want, f32, `linear q8_0 M=${M} ${cfg}`);
    });
  }
});

// ---- embeddingForward -----------------------------------------------------------------------------------------------
seeded('embeddingForward: every dtype equals ref bit for bit (odd C, repeated ids)', (rng, be) => {
  for (const dtype of DTYPES) {
    for (const C of dtype === 'q8_0' ? [32, 96, 768] : [1, 7, 17, 33, 320, 767]) {
      const V = rng.int(1, 60),
        T = rng.int(1, 40);
      const ids = rng.ints(T, 0, V - 1);
      const { h } = stored(dtype, rng.uniform(V * C), V, C);
      const want = new Float32Array(T * C);
      ref.embeddingForward(T, C, V, ids, h, want);
      eachConfig(be, (cfg) => {
        const got = new Float32Array(T * C).fill(NaN);
        be.embeddingForward(T, C, V, ids, h, got);
        assertSame(got, want, `embeddingForward ${dtype} T=${T} C=${C} V=${V} ${cfg}`);
      });
    }
  }
});

test(
  'embeddingForward: every f16 and bf16 bit pattern (subnormals, infinities, NaNs) converts as ref',
  { skip },
  () => {
    const be = native();
    const C = 64 + 3, // odd: the conversion's masked tail sees every pattern too
      V = Math.ceil(65536 / C);
    const bits = Uint16Array.from({ length: V * C }, (_, i) => i & 0xffff);
    const ids = Int32Array.from({ length: V }, (_, i) => i);
    for (const dtype of ['f16', 'bf16'] as const) {
      const h: Weight = { dtype, data: bits };
      const want = new Float32Array(V * C);
      ref.embeddingForward(V, C, V, ids, h, want);
      eachConfig(be, (cfg) => {
        const got = new Float32Array(V * C);
        be.embeddingForward(V, C, V, ids, h, got);
        assertSame(got, want, `embeddingForward ${dtype} all patterns ${cfg}`);
      });
    }
  },
);

// ---- argument checks ------------------------------------------------------------------------------------------------
test('bad weight handles: the raw addon answers with the checked layer’s errors', { skip }, () => {
  const be = native();
  const f = (n: number): Float32Array => new Float32Array(n);
  const cases: [string, unknown, number][] = [
    ['unknown dtype', { dtype: 'q4_1', data: f(96) }, 32],
    ['numeric dtype', { dtype: 3, data: f(96) }, 32],
    ['no dtype', { data: f(96) }, 32],
    ['no data', { dtype: 'f16' }, 32],
    ['unknown dtype, no data', { dtype: 'q4_1' }, 32],
    ['a plain array', [0, 0, 0], 32],
    ['an Int32Array', new Int32Array(96), 32],
    ['f16 data as float32', { dtype: 'f16', data: f(96) }, 32],
    ['bf16 data short', { dtype: 'bf16', data: new Uint16Array(95) }, 32],
    ['f32 handle short', { dtype: 'f32', data: f(95) }, 32],
    ['q8_0 data as uint8', { dtype: 'q8_0', data: new Uint8Array(96), scales: new Uint16Array(3) }, 32],
    ['q8_0 no scales', { dtype: 'q8_0', data: new Int8Array(96) }, 32],
    ['q8_0 K not a multiple of 32', { dtype: 'q8_0', data: new Int8Array(96), scales: new Uint16Array(3) }, 31],
    ['q8_0 scales short', { dtype: 'q8_0', data: new Int8Array(96), scales: new Uint16Array(2) }, 32],
  ];
  const errorOf = (fn: () => void): Error => {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    return assert.fail('no error');
  };
  for (const [name, w, K] of cases) {
    const N = 3;
    type Call = (b: typeof be | typeof ref | NativeBackend['addon']) => void;
    const lin: Call = (b) => b.linear(1, N, K, f(K), w as Weight, null, f(N));
    const emb: Call = (b) => b.embeddingForward(1, K, N, new Int32Array(1), w as Weight, f(K));
    for (const [op, call] of [
      ['linear', lin],
      ['embeddingForward', emb],
    ] as const) {
      // ref's message, but the dtypes a backend lists are its own (native also reads panels: kernels-panels.test.ts)
      const refError = errorOf(() => call(ref)),
        want = {
          message: refError.message.replace(ref.weightDtypes.join(', '), be.weightDtypes.join(', ')),
          constructor: refError.constructor,
        };
      for (const [who, b] of [
        ['backend', be],
        ['raw addon', be.addon],
      ] as const) {
        const got = errorOf(() => call(b));
        assert.equal(got.message, want.message, `${op} ${name}: ${who}`);
        assert.equal(got.constructor, want.constructor, `${op} ${name}: ${who}: error class`);
      }
    }
  }
  // valid handles of every dtype pass the raw addon's checks
  const y = f(3);
  be.addon.linear(1, 3, 32, f(32), { dtype: 'q8_0', data: new Int8Array(96), scales: new Uint16Array(3) }, null, y);
  be.addon.linear(1, 3, 32, f(32), { dtype: 'f32', data: f(96) }, null, y);
  be.addon.embeddingForward(1, 31, 3, new Int32Array([2]), { dtype: 'bf16', data: new Uint16Array(93) }, f(31));
});

// ---- end to end -----------------------------------------------------------------------------------------------------
const modelDir = join(fileURLToPath(new URL('..', import.meta.url)), 'models', 'recycle-small');
const PROMPTS = ['Once upon a time', 'The little dog', 'She said'];

async function greedy(m: RecycleGPT, mode: 'standard' | 'verified'): Promise<number[][]> {
  const out: number[][] = [];
  for (const p of PROMPTS) out.push((await m.generate(p, { mode, max_new_tokens: 40 })).ids);
  return out;
}

test(
  'recycle-small on the native backend: f16 weights kept; greedy equals the f32 load; int8 verified = standard',
  {
    skip,
  },
  async () => {
    // as stored: the loader keeps the dtypes the backend lists in weightDtypes
    const f16 = await RecycleGPT.load(modelDir, { backend: createNativeBackend({ threads: 2 }) });
    const dtypes = new Map<string, number>();
    for (const s of allParamSpecs(f16.model.config)) {
      if (!f16.model.weights.has(s.name)) continue;
      const d = f16.model.weights.weight(s.name).dtype;
      dtypes.set(d, (dtypes.get(d) ?? 0) + 1);
    }
    assert.equal(f16.model.weights.weight('wte.weight').dtype, 'f16', 'the embedding (and tied head) stays f16');
    assert.ok((dtypes.get('f16') ?? 0) >= 6 * 4, `product weights kept f16: ${JSON.stringify([...dtypes])}`);
    const f32 = await RecycleGPT.load(modelDir, { backend: createNativeBackend({ threads: 2 }), dtype: 'f32' });
    assert.equal(f32.model.weights.weight('wte.weight').dtype, 'f32');
    const int8 = await RecycleGPT.load(modelDir, { backend: createNativeBackend({ threads: 2 }), dtype: 'int8' });
    assert.equal(int8.model.weights.weight('wte.weight').dtype, 'q8_0');
    for (const mode of ['standard', 'verified'] as const) {
      assert.deepEqual(await greedy(f16, mode), await greedy(f32, mode), `${mode}: f16 as stored vs f32`);
    }
    assert.deepEqual(await greedy(int8, 'verified'), await greedy(int8, 'standard'), 'int8: verified vs standard');
    assert.deepEqual(await greedy(f16, 'verified'), await greedy(f16, 'standard'), 'f16: verified vs standard');
  },
);
