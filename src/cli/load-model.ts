/**
 * The model `eval`, `bench` and `forward` read: a model directory, or a module-only directory (the output of
 * `train --freeze-base`) together with the base it refers to, as `generate` and RecycleGPT.load accept it.
 */
import { loadModelDirAs, readModelConfig } from '../io/model-dir.js';
import { baseDtype, loadModuleModel, readBaseRef } from '../io/module-dir.js';
import type { UserDtype } from '../model/convert.js';
import type { ModelConfig } from '../model/config.js';
import type { Weights } from '../model/weights.js';

export interface CliModel {
  config: ModelConfig;
  /** Float32 storage (holding `dtype`'s values). */
  weights: Weights;
  /** The values' dtype: --dtype's, else as stored (a module-only directory: its base's). */
  dtype: UserDtype;
  /** The dtype the weights are stored in, as a --dtype value (a module-only directory: its base's). */
  stored: UserDtype;
  /** Where tokenizer.json is: the directory, or a module-only directory's base when it has none of its own. */
  tokenizerDir: string;
}

/**
 * Loads `dir` with float32 weights. `dtype` (`--dtype`) converts a model directory at load; a module-only directory
 * loads as stored (converting one would need the merged model: `recyclegpt merge`).
 */
export function loadCliModel(dir: string, dtype?: UserDtype): CliModel {
  if (readBaseRef(dir) === null)
    return { ...loadModelDirAs(dir, dtype ? { dtype } : {}), stored: storedDtype(dir), tokenizerDir: dir };
  if (dtype !== undefined)
    throw new Error(
      `--dtype ${dtype}: ${dir} holds only a module (it refers to its base); merge it into one model directory ` +
        'first (recyclegpt merge --module DIR --out MERGED), then convert that',
    );
  const m = loadModuleModel(dir);
  const stored = storedDtype(m.baseDir);
  return { config: m.config, weights: m.weights, dtype: stored, stored, tokenizerDir: m.tokenizerDir };
}

/** A model directory's storage as a --dtype value: its quantization, else the safetensors dtype of most bytes. */
export function storedDtype(dir: string): UserDtype {
  const quantized = readModelConfig(dir).quantization?.dtype;
  if (quantized) return quantized;
  const top = baseDtype(dir);
  return top === 'F16' ? 'f16' : top === 'BF16' ? 'bf16' : 'f32';
}
