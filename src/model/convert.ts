/**
 * Weights in another storage dtype: the product weights (model/names.ts isProductWeight: the block matrices, the
 * embedding table, the head, the module's W_in) are converted; norms, biases and GPT-2's position table stay f32.
 * `--dtype` on the commands converts at load time with this; `recyclegpt quantize` writes the result.
 *
 *   f32            widened (exact from f16 / bf16 / q8_0)
 *   f16, bf16      rounded to nearest even from float32
 *   int8 (q8_0)    ggml's Q8_0 (kernels/quant.ts); a matrix whose rows are not a multiple of 32 long stays f16
 */
import type { Allocator, RowMajorWeight, WeightDtype } from '../kernels/backend.js';
import { heapAllocator } from '../kernels/backend.js';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Bits, f32ToF16Bits } from '../kernels/half.js';
import { dequantizeQ4, dequantizeQ8, quantizeQ4, quantizeQ8, Q8_BLOCK } from '../kernels/quant.js';
import type { ModelConfig } from './config.js';
import { isProductWeight, type ParamSpec } from './names.js';
import { Weights } from './weights.js';

/** The dtypes a user names (`--dtype`): int8 is stored as q8_0. */
export type UserDtype = 'f32' | 'f16' | 'bf16' | 'int8';
export const USER_DTYPES: readonly UserDtype[] = ['f32', 'f16', 'bf16', 'int8'];

/** The storage a product weight of this shape gets for a user dtype. */
export function storageDtype(dtype: UserDtype, spec: ParamSpec): WeightDtype {
  if (dtype !== 'int8') return dtype;
  return spec.shape.length === 2 && spec.shape[1]! % Q8_BLOCK === 0 ? 'q8_0' : 'f16';
}

/** A weight's values as float32 (a view for f32 storage, else a new array). */
export function weightToF32(w: RowMajorWeight): Float32Array {
  switch (w.dtype) {
    case 'f32':
      return w.data;
    case 'f16':
      return f16ToF32Array(w.data);
    case 'bf16':
      return bf16ToF32Array(w.data);
    case 'q8_0':
      return dequantizeQ8(w);
    case 'q4_0':
      return dequantizeQ4(w);
  }
}

/** Float32 values [N, K] written into `to` in its dtype (f16 / bf16 to nearest even, q8_0 / q4_0 as ggml's). */
export function storeF32(from: Float32Array, N: number, K: number, to: RowMajorWeight): void {
  switch (to.dtype) {
    case 'f32':
      to.data.set(from);
      break;
    case 'f16':
      for (let i = 0; i < from.length; i++) to.data[i] = f32ToF16Bits(from[i]!);
      break;
    case 'bf16':
      for (let i = 0; i < from.length; i++) to.data[i] = f32ToBf16Bits(from[i]!);
      break;
    case 'q8_0':
      quantizeQ8(from, N, K, to);
      break;
    case 'q4_0':
      quantizeQ4(from, N, K, to);
      break;
  }
}

/** `src` with every product weight stored as `dtype` (others f32), in memory from `alloc`. */
export function convertWeights(
  src: Weights,
  config: ModelConfig,
  dtype: UserDtype,
  alloc: Allocator = heapAllocator,
): Weights {
  const dtypeOf = (s: ParamSpec): WeightDtype => (isProductWeight(s, config) ? storageDtype(dtype, s) : 'f32');
  const out = new Weights(src.specs, alloc, dtypeOf);
  for (const spec of src.specs) {
    const from = weightToF32(src.weight(spec.name));
    storeF32(from, spec.shape[0] ?? 1, from.length / (spec.shape[0] ?? 1), out.weight(spec.name));
  }
  return out;
}
