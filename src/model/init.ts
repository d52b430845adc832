/**
 * Initialisation (GPT-2 / nanoGPT scheme): N(0, 0.02) for matrices and embeddings, residual projections scaled by
 * 1/sqrt(2·L), norms at 1, biases at 0. The module's W_in starts as [I | 0.01·N] so that m_t ≈ h_t
 * (ARCHITECTURE.md §1.1): identity on the h half, small on the e half.
 *
 * Two sources of normal values: training draws exact normals (mulberry32 + Box–Muller, ~60 ns a value); the speed
 * benchmarks' random models (bench/random-model.ts) draw from `fastNormalFill`, a table approximation ~15x faster,
 * so that llama-1b's 1.1B weights take seconds, not minutes.
 */
import type { ModelConfig } from './config.js';
import type { ParamSpec } from './names.js';

/** Fills dst with std · (draws of one seeded N(0, 1) source, in index order). */
export type NormalFill = (dst: Float32Array, std: number) => void;

/** mulberry32: one 32-bit step. */
function mulberry32(state: number): number {
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** Seeded normal generator (mulberry32 + Box–Muller): init depends only on the seed. */
export function normalSource(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    return mulberry32(s) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** normalSource as a NormalFill (the training init: exact normals). */
export function boxMullerFill(seed: number): NormalFill {
  const normal = normalSource(seed);
  return (dst, std) => {
    for (let i = 0; i < dst.length; i++) dst[i] = std * normal();
  };
}

/** Φ⁻¹(p) for 0 < p < 1: Acklam's rational approximation (relative error < 1.2e-9). */
function inverseNormalCdf(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5,
    r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

const FAST_BITS = 12;
const FAST_BINS = 1 << FAST_BITS;
let fastTable: Float64Array | null = null;

/**
 * The inverse normal CDF at FAST_BINS + 1 equally spaced probabilities (the ends pulled in by half a bin), scaled so
 * that the piecewise-linear distribution between them has variance 1: the fast generator's quantile function.
 */
function fastNormalTable(): Float64Array {
  if (fastTable) return fastTable;
  const t = new Float64Array(FAST_BINS + 1);
  for (let i = 0; i <= FAST_BINS; i++) t[i] = inverseNormalCdf((i + 0.5) / (FAST_BINS + 1));
  // E[x²] of u uniform on a bin [t_i, t_i+1] is (t_i² + t_i·t_i+1 + t_i+1²) / 3; bins are equally likely
  let m2 = 0;
  for (let i = 0; i < FAST_BINS; i++) m2 += (t[i]! * t[i]! + t[i]! * t[i + 1]! + t[i + 1]! * t[i + 1]!) / 3;
  const k = 1 / Math.sqrt(m2 / FAST_BINS);
  for (let i = 0; i <= FAST_BINS; i++) t[i]! *= k;
  fastTable = t;
  return t;
}

/**
 * An approximate N(0, 1) source for the benchmarks' random models: one mulberry32 draw per value, its top 12 bits
 * pick one of 4096 equally likely bins of the normal distribution and the other 20 a point inside it (linear
 * between the bin's quantiles). Mean 0, variance 1, symmetric, tails cut at ±3.5σ: the shapes and magnitudes of a
 * normal init, which is all a speed benchmark's weights need. Seeded: a seed gives the same values everywhere.
 */
export function fastNormalFill(seed: number): NormalFill {
  const t = fastNormalTable();
  let s = seed >>> 0;
  const fracScale = 1 / (1 << (32 - FAST_BITS));
  return (dst, std) => {
    let state = s; // a local in the loop (a captured variable written per value is much slower)
    const n = dst.length;
    for (let i = 0; i < n; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      const r = mulberry32(state),
        bin = r >>> (32 - FAST_BITS),
        lo = t[bin]!;
      dst[i] = std * (lo + (t[bin + 1]! - lo) * (r & ((1 << (32 - FAST_BITS)) - 1)) * fracScale);
    }
    s = state;
  };
}

export function initParam(spec: ParamSpec, dst: Float32Array, c: ModelConfig, fill: NormalFill): void {
  const std = 0.02;
  switch (spec.init) {
    case 'ones':
      dst.fill(1);
      return;
    case 'zeros':
      dst.fill(0);
      return;
    case 'normal':
      fill(dst, std);
      return;
    case 'residual':
      fill(dst, std / Math.sqrt(2 * (c.nLayers + (c.recycle?.numLayers ?? 0))));
      return;
    case 'in_proj': {
      const C = c.hidden;
      for (let r = 0; r < C; r++) {
        const row = dst.subarray(r * 2 * C, (r + 1) * 2 * C);
        row.fill(0, 0, C);
        row[r] = 1;
        fill(row.subarray(C), 0.01);
      }
      return;
    }
  }
}

/** Initialise every spec through a getter of its storage; `fill` defaults to the exact normals of `seed`. */
export function initParams(
  specs: readonly ParamSpec[],
  get: (name: string) => Float32Array,
  c: ModelConfig,
  seed: number,
  fill: NormalFill = boxMullerFill(seed),
): void {
  for (const s of specs) initParam(s, get(s.name), c, fill);
}
