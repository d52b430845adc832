/**
 * A preset-shaped model with random weights and a random module (speed work: acceptance means nothing). The weights
 * come from model/init.ts's fast approximate normals (fastNormalFill), not training's exact ones: llama-1b's 1.1B
 * values are drawn in seconds.
 *
 * With a `dtype` other than f32 the model is built directly in that dtype, one slice of rows at a time: each slice
 * is initialised in float32, converted into the weight's storage (model/convert.ts's rules: q8_0 for int8, f16 for
 * matrices whose rows are not a multiple of 32, norms and biases f32) and dropped. So `llama-1b` in int8 never holds
 * its 4.6 GB of float32 weights, only ≈ 1.2 GB of q8_0 and a few MB of scratch. The values are those of the f32
 * model of the same seed, converted: randomPresetModel(p, b, s, 'int8') has the weights of
 * convertWeights(randomPresetModel(p, b, s).weights, config, 'int8').
 */
import type { Backend, Weight, WeightDtype } from '../kernels/backend.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../kernels/half.js';
import { quantizeQ8, Q8_BLOCK } from '../kernels/quant.js';
import type { ModelConfig } from '../model/config.js';
import { storageDtype, USER_DTYPES, type UserDtype } from '../model/convert.js';
import { InferenceModel } from '../model/infer.js';
import { fastNormalFill, initParam, initParams, type NormalFill } from '../model/init.js';
import { allParamSpecs, isProductWeight, type ParamSpec } from '../model/names.js';
import { presetConfig } from '../model/presets.js';
import { Weights } from '../model/weights.js';

/** Float32 scratch per slice: 1M values (4 MB), whole rows. */
const SLICE_VALUES = 1 << 20;

/**
 * A random model of `preset` for `backend`, its product weights stored as `dtype` (default f32). Throws when the
 * backend does not read that storage, rather than measure another dtype under its name. `sliceValues` (tests) sets
 * the float32 scratch per slice.
 */
export function randomPresetModel(
  preset: string,
  backend: Backend,
  seed = 1,
  dtype: UserDtype = 'f32',
  opts: { sliceValues?: number } = {},
): InferenceModel {
  if (!USER_DTYPES.includes(dtype))
    throw new Error(`randomPresetModel: dtype must be one of ${USER_DTYPES.join(', ')}`);
  const config = presetConfig(preset);
  const specs = allParamSpecs(config);
  if (dtype === 'f32') {
    const weights = new Weights(specs, backend.alloc); // the backend's memory: wasm kernels read it in place
    initParams(specs, (n) => weights.get(n), config, seed, fastNormalFill(seed));
    return new InferenceModel(config, weights, backend);
  }
  const dtypeOf = (s: ParamSpec): WeightDtype => (isProductWeight(s, config) ? storageDtype(dtype, s) : 'f32');
  for (const s of specs) {
    const d = dtypeOf(s);
    if (!backend.weightDtypes.includes(d)) {
      throw new Error(
        `randomPresetModel: the ${backend.name} backend reads ${backend.weightDtypes.join(', ')} weights, ` +
          `not ${d} (needed for ${dtype})`,
      );
    }
  }
  const weights = new Weights(specs, backend.alloc, dtypeOf);
  const normal = fastNormalFill(seed);
  const slice = opts.sliceValues ?? SLICE_VALUES;
  for (const s of specs) initConverted(s, weights.weight(s.name), config, normal, slice);
  return new InferenceModel(config, weights, backend);
}

/**
 * Initialises `w` as initParam would a float32 array, slice by slice of whole rows (the same draws in the same
 * order, so the values equal the f32 model's), converting each slice into w's storage.
 */
function initConverted(spec: ParamSpec, w: Weight, config: ModelConfig, normal: NormalFill, sliceValues: number): void {
  if (w.dtype === 'f32') {
    initParam(spec, w.data, config, normal);
    return;
  }
  const K = spec.shape[spec.shape.length - 1]!;
  const n = w.data.length;
  // in_proj's init depends on the row index, so it is made whole (C × 2C values: 33 MB for llama-1b)
  const step = spec.init === 'in_proj' ? n : Math.max(1, Math.floor(sliceValues / K)) * K;
  const tmp = new Float32Array(Math.min(step, n));
  for (let off = 0; off < n; off += step) {
    const len = Math.min(step, n - off);
    const x = tmp.subarray(0, len);
    initParam(spec, x, config, normal);
    if (w.dtype === 'q8_0') {
      const data = w.data.subarray(off, off + len);
      const scales = w.scales.subarray(off / Q8_BLOCK, (off + len) / Q8_BLOCK);
      quantizeQ8(x, len / K, K, { data, scales });
    } else {
      const bits = w.data.subarray(off, off + len);
      const conv = w.dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < len; i++) bits[i] = conv(x[i]!);
    }
  }
}
