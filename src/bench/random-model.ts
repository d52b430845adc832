/** A preset-shaped model with random weights and a random module (speed work: acceptance means nothing). */
import type { Backend } from '../kernels/backend.js';
import { InferenceModel } from '../model/infer.js';
import { initParams } from '../model/init.js';
import { allParamSpecs } from '../model/names.js';
import { presetConfig } from '../model/presets.js';
import { Weights } from '../model/weights.js';

export function randomPresetModel(preset: string, backend: Backend, seed = 1): InferenceModel {
  const config = presetConfig(preset);
  const specs = allParamSpecs(config);
  const weights = new Weights(specs);
  initParams(specs, (n) => weights.get(n), config, seed);
  return new InferenceModel(config, weights, backend);
}
