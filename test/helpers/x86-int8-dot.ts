/**
 * A model of the native x86 int8-dot product that q8_0 and q4_0 weights take at M ≤ 8 (native/simd_x86_q8.h):
 * each x row quantized per block of 32 as vb_quantize does (d = amax/127 and q = rint(x·(1/d)), in float32),
 * y = Σ_b fround(dx_b·dw_b)·Σ_j xq_j·w_j summed in float64 (the kernel sums in float32: compare with a product
 * tolerance). `bound` is how far the exact product on the stored weights may be from it because of x's rounding:
 * Σ_b dx_b/2 · |dw_b| · Σ_j |w_j|. Weights are given as integer quants and a scale per block of 32.
 */
import { rint } from './wasm-int8-dot.js';

export interface BlockQuants {
  /** The integer quant of weight (n, k). */
  quant(n: number, k: number): number;
  /** The scale of block b (weights 32b..32b+31) of row n. */
  scale(n: number, b: number): number;
}

export function x86Int8Model(
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  w: BlockQuants,
  bias: Float32Array | null,
): { y: Float32Array; bound: Float64Array } {
  const f = Math.fround,
    nb = K / 32;
  const xq = new Int8Array(M * K),
    dx = new Float64Array(M * nb);
  for (let m = 0; m < M; m++)
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[m * K + b * 32 + j]!));
      const d = f(amax / 127),
        id = d !== 0 ? f(1 / d) : 0;
      dx[m * nb + b] = d;
      for (let j = 0; j < 32; j++) xq[m * K + b * 32 + j] = rint(f(x[m * K + b * 32 + j]! * id));
    }
  const y = new Float32Array(M * N),
    bound = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let sum = 0,
        err = 0;
      for (let b = 0; b < nb; b++) {
        const dw = w.scale(n, b);
        let isum = 0,
          wabs = 0;
        for (let j = 0; j < 32; j++) {
          const q = w.quant(n, b * 32 + j);
          isum += q * xq[m * K + b * 32 + j]!;
          wabs += Math.abs(q);
        }
        sum += f(dx[m * nb + b]! * dw) * isum;
        err += (dx[m * nb + b]! / 2) * Math.abs(dw) * wabs;
      }
      y[m * N + n] = sum + (bias ? bias[n]! : 0);
      bound[m * N + n] = err;
    }
  return { y, bound };
}
