/**
 * Q8_0, the int8 weight format: each row of a weight [N, K] is cut into blocks of 32 consecutive values; a block
 * stores one scale d (float16 bits) and 32 int8 quants q, and stands for d·q. It is ggml's Q8_0 value for value (the
 * same rounding steps, in float32), so a GGUF export of a q8_0 weight is exact. Stored as two arrays rather than
 * ggml's interleaved 34-byte blocks, so kernels read aligned quants and scales separately:
 *
 *   data:   Int8Array  [N·K]       quants, row-major (block b of row n at n·K + 32·b)
 *   scales: Uint16Array [N·K/32]   float16 bits of d, row-major (row n, block b at n·K/32 + b)
 *
 * K must be a multiple of 32 (as in ggml). ggml's reference quantizer: amax = max|x|; d = amax/127; id = d ? 1/d : 0;
 * q = roundf(x·id) (half away from zero); d is stored rounded to float16, q are computed with the unrounded 1/d.
 */
import { f16BitsToF32, f32ToF16Bits } from './half.js';

export const Q8_BLOCK = 32;

export interface Q8Tensor {
  data: Int8Array;
  scales: Uint16Array;
}

/** roundf: to nearest, halves away from zero (Math.round sends −2.5 to −2). Exact for float32 inputs. */
function roundHalfAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** Quantizes x [N, K] (K a multiple of 32) to Q8_0, into `out` when given. */
export function quantizeQ8(
  x: Float32Array,
  N: number,
  K: number,
  out: Q8Tensor = { data: new Int8Array(N * K), scales: new Uint16Array((N * K) / Q8_BLOCK) },
): Q8Tensor {
  if (K % Q8_BLOCK !== 0) throw new Error(`quantizeQ8: K = ${K} is not a multiple of ${Q8_BLOCK}`);
  if (x.length < N * K) throw new Error(`quantizeQ8: x has ${x.length} values, [${N}, ${K}] needs ${N * K}`);
  const f = Math.fround;
  for (let b = 0; b < (N * K) / Q8_BLOCK; b++) {
    const o = b * Q8_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_BLOCK; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    out.scales[b] = f32ToF16Bits(d);
    for (let j = 0; j < Q8_BLOCK; j++) out.data[o + j] = roundHalfAway(f(x[o + j]! * id));
  }
  return out;
}

/** The float32 values a Q8_0 tensor stands for (d·q, with d widened from float16). */
export function dequantizeQ8(t: Q8Tensor, out: Float32Array = new Float32Array(t.data.length)): Float32Array {
  for (let b = 0; b < t.scales.length; b++) {
    const d = f16BitsToF32(t.scales[b]!);
    const o = b * Q8_BLOCK;
    for (let j = 0; j < Q8_BLOCK; j++) out[o + j] = d * t.data[o + j]!;
  }
  return out;
}
