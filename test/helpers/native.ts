/**
 * What the native-kernel test files share: the addon (loaded once; RECYCLEGPT_BACKEND=ref skips these tests), a
 * seeded test that gets it, a loop over every SIMD path × 1 and 2 threads, and the comparisons with ref.
 */
import assert from 'node:assert/strict';
import type { Backend, WeightArg } from '../../src/kernels/backend.js';
import { tryLoadNativeBackend, type NativeBackend, type SimdPath } from '../../src/kernels/native.js';
import { Rng, seededTest } from './check.js';

/**
 * The most rows a linear on f16 / bf16 / q8_0 / q4_0 weights takes through the small-M product, native and wasm alike
 * (kernels.h linear_small_max_rows' default; f32 weights: half): rows bit-identical to the row alone, and q8_0 / q4_0
 * on an int8-dot path with x quantized to int8.
 */
export const SMALL_M_ROWS = 24;

/** Whether M rows on f16 / bf16 / q8_0 / q4_0 weights take the f32 weights' kind of path (small-M or GEMM). */
export function sameKindOfPathAsF32(M: number): boolean {
  return M <= Math.max(8, SMALL_M_ROWS >> 1) || M > SMALL_M_ROWS;
}

export const nativeSkip: string | false = process.env.RECYCLEGPT_BACKEND === 'ref' ? 'RECYCLEGPT_BACKEND=ref' : false;
const loaded = nativeSkip ? { backend: null, error: 'skipped' } : tryLoadNativeBackend();

/** The native backend; a test fails (not skips) when the addon did not load. */
export function native(): NativeBackend {
  if (!loaded.backend)
    throw new Error(`the native addon did not load: ${loaded.error} (set RECYCLEGPT_BACKEND=ref to skip these tests)`);
  return loaded.backend;
}

/** A test with a fresh seed (or SEED=…), reported in the failure message, given the native backend. */
export function seededNative(name: string, body: (rng: Rng, be: NativeBackend) => void): void {
  seededTest(name, (rng) => body(rng, native()), { skip: nativeSkip });
}

/** Runs `fn` at threads 1 and 2 on the default SIMD path (restoring the thread count afterwards). */
export function eachThreadCount(be: NativeBackend, fn: (threads: number) => void): void {
  const th0 = be.threads();
  try {
    for (const th of [1, 2]) {
      be.setThreads(th);
      fn(th);
    }
  } finally {
    be.setThreads(th0);
  }
}

/** Runs `fn` for every SIMD path this CPU has, restoring the backend's SIMD path and thread count afterwards. */
export function eachSimd(be: NativeBackend, fn: (simd: SimdPath) => void): void {
  const simd0 = be.simd,
    th0 = be.threads();
  try {
    for (const simd of be.availableSimd()) {
      be.setSimd(simd);
      fn(simd);
    }
  } finally {
    be.setSimd(simd0);
    be.setThreads(th0);
  }
}

/** Runs `fn` for every SIMD path × threads 1, 2 (restoring the defaults afterwards). */
export function eachConfig(be: NativeBackend, fn: (label: string, threads: number) => void): void {
  eachSimd(be, (simd) => {
    for (const th of [1, 2]) {
      be.setThreads(th);
      fn(`${simd}/${th}t`, th);
    }
  });
}

/**
 * |got − want| ≤ rtol·(|want| + rms(want) + floor) elementwise; reports the worst element. `floor` is the scale of the
 * operands where the result may cancel to far below it (e.g. a moment β·m + (1 − β)·g of one element).
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol: number,
  what: string,
  floor = 0,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let rms = 0;
  for (let i = 0; i < want.length; i++) rms += want[i]! * want[i]!;
  rms = Math.sqrt(rms / Math.max(1, want.length)) || 1e-30;
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / (Math.abs(want[i]!) + rms + floor);
    if (!(err <= worstErr)) {
      worstErr = Number.isNaN(err) ? Infinity : err;
      worst = i;
    }
  }
  if (worstErr > rtol) {
    assert.fail(
      `${what}: element ${worst} is ${got[worst]}, want ${want[worst]} ` +
        `(relative error ${worstErr.toExponential(2)} > ${rtol.toExponential(2)})`,
    );
  }
}

/** Bit for bit; with `anyNaN`, NaNs (whatever their payload) only have to be NaN on both sides. */
export function assertBitwise(got: Float32Array, want: Float32Array, what: string, anyNaN = false): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(anyNaN && Number.isNaN(got[i]) && Number.isNaN(want[i])))
      assert.fail(`${what}: element ${i} differs: ${got[i]} vs ${want[i]}`);
  }
}

/**
 * Row independence of `linear` on the small-M path: each of `rows` x rows computed alone at one thread, then at each
 * of `threads` calls on M = 1..9, a random 10..rows and `rows` consecutive rows from a random start, each row compared
 * with its lone value bit for bit (`anyNaN` as assertBitwise's). `what(th, M, m)` names a failure. Returns the lone
 * rows.
 */
export function assertRowsAsAlone(
  be: Backend,
  rng: Rng,
  o: {
    rows: number;
    N: number;
    K: number;
    x: Float32Array;
    w: WeightArg;
    bias: Float32Array | null;
    threads: readonly number[];
    setThreads: (n: number) => void;
    what: (threads: number, M: number, m: number) => string;
    anyNaN?: boolean;
  },
): Float32Array[] {
  const { rows, N, K, x, w, bias } = o;
  o.setThreads(1);
  const alone: Float32Array[] = [];
  for (let m = 0; m < rows; m++) {
    const y = new Float32Array(N);
    be.linear(1, N, K, x.subarray(m * K, (m + 1) * K), w, bias, y);
    alone.push(y);
  }
  for (const th of o.threads) {
    o.setThreads(th);
    for (const M of [1, 2, 3, 4, 5, 6, 7, 8, 9, rng.int(10, rows), rows]) {
      const start = rng.int(0, rows - M);
      const y = new Float32Array(M * N);
      be.linear(M, N, K, x.subarray(start * K, (start + M) * K), w, bias, y);
      for (let m = 0; m < M; m++)
        assertBitwise(y.subarray(m * N, (m + 1) * N), alone[start + m]!, o.what(th, M, m), o.anyNaN);
    }
  }
  return alone;
}

/** Tolerance of a K-term float32 dot product against ref's float64 one. */
export const prodTol = (K: number): number => 1e-5 * Math.max(1, Math.sqrt(K));
