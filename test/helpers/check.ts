/**
 * Shared test helpers: a seeded RNG (fresh seed per run, printed on failure; SEED=… reproduces a run),
 * float64 central-difference gradients, a closeness assertion that reports the worst element, the largest difference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** mulberry32: uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** n normal values times `scale`, rounded to float32. */
  f32(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }
  ints(n: number, lo: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(lo, hi);
    return out;
  }
  /** n values uniform in [−scale, scale), rounded to float32. */
  uniform(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() * 2 - 1) * scale;
    return out;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
}

/** A node:test test with a fresh random seed; the seed is put into the failure message. */
export function seededTest(name: string, body: (rng: Rng) => void, opts: { skip?: string | false } = {}): void {
  test(name, { skip: opts.skip ?? false }, () => {
    const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31);
    try {
      body(new Rng(seed));
    } catch (err) {
      if (err instanceof Error) err.message = `[seed ${seed}; rerun with SEED=${seed}] ${err.message}`;
      throw err;
    }
  });
}

export type Forward64 = (inputs: Float64Array[]) => Float64Array;

/** dL/d inputs[which] for L = Σ r·f(inputs), by central differences in float64. */
export function numericGrad(
  f: Forward64,
  inputs: Float64Array[],
  r: ArrayLike<number>,
  which: number,
  eps = 1e-6,
): Float64Array {
  const loss = (): number => {
    const out = f(inputs);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += r[i] * out[i];
    return s;
  };
  const x = inputs[which];
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const orig = x[i];
    x[i] = orig + eps;
    const plus = loss();
    x[i] = orig - eps;
    const minus = loss();
    x[i] = orig;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

/**
 * |actual − expected| ≤ atolFrac·max|expected| + rtol·|expected| + atolAbs elementwise. The defaults suit a
 * float32 gradient against a float64 finite difference on O(1) data. Fails with the first offending index.
 */
export function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-4,
  atolFrac = 1e-5,
  atolAbs = 1e-6,
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
  const atol = atolFrac * maxAbs + atolAbs;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= atol + rtol * Math.abs(expected[i]))) {
      assert.fail(
        `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} ` +
          `(|diff| ${diff.toExponential(2)}, max|expected| ${maxAbs.toExponential(2)})`,
      );
    }
  }
}

/** The largest |a[i] − b[i]| (the lengths must agree). */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a);
}

/** (after − before) in float64: the amount an accumulating kernel added. */
export function added(after: ArrayLike<number>, before: ArrayLike<number>): Float64Array {
  const out = new Float64Array(after.length);
  for (let i = 0; i < after.length; i++) out[i] = after[i] - before[i];
  return out;
}
