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

/**
 * Q4_0, the 4-bit weight format (kernels only: the module's cheaper draft head, model/draft-head.ts; model files do
 * not hold it). Each row of a weight [N, K] is cut into blocks of 32 consecutive values; a block stores one scale d
 * (float16 bits) and 32 quants q in 0..15 standing for d·(q − 8). ggml's Q4_0 value for value and byte for byte (its
 * nibble order), so a GGUF export of a q4_0 weight would be exact. Two arrays, like Q8_0:
 *
 *   data:   Uint8Array  [N·K/2]    packed quants: block b of row n is the 16 bytes from (n·K + 32·b)/2; byte j of a
 *                                  block holds weight j in its low nibble and weight j + 16 in its high nibble
 *   scales: Uint16Array [N·K/32]   float16 bits of d, row-major (row n, block b at n·K/32 + b)
 *
 * K must be a multiple of 32. ggml's reference quantizer (quantize_row_q4_0_ref), in float32: `max` is the block's
 * value of largest magnitude with its sign (the first one on ties); d = max / −8; id = d ? 1/d : 0;
 * q = min(15, trunc(x·id + 8.5)); d is stored rounded to float16, q are computed with the unrounded 1/d. So the
 * block's largest-magnitude value gets q = 0 (d·(−8) = max, before d's rounding) and its opposite sign reaches 15.
 */
export const Q4_BLOCK = 32;

export interface Q4Tensor {
  data: Uint8Array;
  scales: Uint16Array;
}

/**
 * Quantizes x [N, K] (K a multiple of 32) to Q4_0, into `out` when given. Non-finite values, and blocks whose scale
 * |max|/8 overflows float16 (|max| ≥ 524,160), are errors naming the row and column: ggml's results for them are
 * not defined values (its int8 conversion of NaN or ±inf), and an infinite scale would make the weights NaN.
 */
export function quantizeQ4(
  x: Float32Array,
  N: number,
  K: number,
  out: Q4Tensor = { data: new Uint8Array((N * K) / 2), scales: new Uint16Array((N * K) / Q4_BLOCK) },
): Q4Tensor {
  if (K % Q4_BLOCK !== 0) throw new Error(`quantizeQ4: K = ${K} is not a multiple of ${Q4_BLOCK}`);
  if (x.length < N * K) throw new Error(`quantizeQ4: x has ${x.length} values, [${N}, ${K}] needs ${N * K}`);
  if (out.data.length < (N * K) / 2 || out.scales.length < (N * K) / Q4_BLOCK)
    throw new Error(
      `quantizeQ4: out holds ${out.data.length} bytes and ${out.scales.length} scales, [${N}, ${K}] needs ` +
        `${(N * K) / 2} and ${(N * K) / Q4_BLOCK}`,
    );
  const f = Math.fround;
  const half = Q4_BLOCK / 2;
  const where = (i: number): string => `row ${Math.floor(i / K)}, column ${i % K}`;
  for (let b = 0; b < (N * K) / Q4_BLOCK; b++) {
    const o = b * Q4_BLOCK;
    let amax = 0,
      max = 0;
    for (let j = 0; j < Q4_BLOCK; j++) {
      const v = x[o + j]!;
      if (!Number.isFinite(v)) throw new Error(`quantizeQ4: x at ${where(o + j)} is ${v}, not a finite value`);
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    const dh = f32ToF16Bits(d);
    if ((dh & 0x7c00) === 0x7c00)
      throw new Error(`quantizeQ4: the block at ${where(o)} has scale ${d} (max ${max} / −8), beyond float16's range`);
    out.scales[b] = dh;
    const p = o / 2;
    for (let j = 0; j < half; j++) {
      // x·id + 8.5 in float32, then C's float-to-int8 conversion (toward zero); id = 1/d of a float16-subnormal d
      // can be +inf in float32, giving NaN for x = 0: such a block's d is 0 in float16, its q do not matter (8)
      const v0 = f(f(x[o + j]! * id) + 8.5),
        v1 = f(f(x[o + half + j]! * id) + 8.5);
      const q0 = Number.isNaN(v0) ? 8 : Math.max(0, Math.min(15, Math.trunc(v0)));
      const q1 = Number.isNaN(v1) ? 8 : Math.max(0, Math.min(15, Math.trunc(v1)));
      out.data[p + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** The float32 values a Q4_0 tensor stands for (d·(q − 8), d widened from float16: exact in float32). */
export function dequantizeQ4(t: Q4Tensor, out: Float32Array = new Float32Array(t.data.length * 2)): Float32Array {
  const half = Q4_BLOCK / 2;
  for (let b = 0; b < t.scales.length; b++) {
    const d = f16BitsToF32(t.scales[b]!);
    const o = b * Q4_BLOCK,
      p = o / 2;
    for (let j = 0; j < half; j++) {
      const byte = t.data[p + j]!;
      out[o + j] = d * ((byte & 0x0f) - 8);
      out[o + half + j] = d * ((byte >> 4) - 8);
    }
  }
  return out;
}
