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
  /** Where tokenizer.json is: the directory, or a module-only directory's base when it has none of its own. */
  tokenizerDir: string;
}

/**
 * Loads `dir` with float32 weights. `dtype` (`--dtype`) converts a model directory at load; a module-only directory
 * loads as stored (converting one would need the merged model: `recyclegpt merge`).
 */
export function loadCliModel(dir: string, dtype?: UserDtype): CliModel {
  if (readBaseRef(dir) === null) return { ...loadModelDirAs(dir, dtype ? { dtype } : {}), tokenizerDir: dir };
  if (dtype !== undefined)
    throw new Error(
      `--dtype ${dtype}: ${dir} holds only a module (it refers to its base); merge it into one model directory ` +
        'first (recyclegpt merge --module DIR --out MERGED), then convert that',
    );
  const m = loadModuleModel(dir);
  const quantized = readModelConfig(m.baseDir).quantization?.dtype;
  const stored = baseDtype(m.baseDir);
  return {
    config: m.config,
    weights: m.weights,
    dtype: quantized ?? (stored === 'F16' ? 'f16' : stored === 'BF16' ? 'bf16' : 'f32'),
    tokenizerDir: m.tokenizerDir,
  };
}
