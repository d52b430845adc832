/**
 * Model directory I/O (ARCHITECTURE.md §5): config.json + model.safetensors (or HF shards). Loading maps Hugging Face
 * tensor names onto our parameters (GPT-2 Conv1D weights transposed to [out, in]); saving writes HF names back,
 * so HF tools load the base. Every tensor is checked by name and shape; errors name the file and the tensor.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from './files.js';
import { writeSafetensors, type WriteTensor } from './safetensors.js';
import { openTensorsFromDir } from './sharded.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import { allParamSpecs, type ParamSpec } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import { fileShape, loadWeights, transpose, type LoadWeightsOptions } from './load-weights.js';

export interface LoadedModel {
  config: ModelConfig;
  weights: Weights;
  /** Module parameters absent from the checkpoint (only with allowMissingModule). */
  missing: string[];
}

/** Read and validate a config.json file (a regular file of strict JSON; errors name the file and field). */
export function readConfig(file: string): ModelConfig {
  return parseConfig(readJsonFile(file, 'config'), file);
}

/** Load config.json and the weights of a model directory. */
export function loadModelDir(dir: string, opts: LoadWeightsOptions & { config?: ModelConfig } = {}): LoadedModel {
  const cfgPath = join(dir, 'config.json');
  if (!opts.config && !existsSync(cfgPath)) throw new Error(`${dir}: no config.json (is this a model directory?)`);
  const config = opts.config ?? readConfig(cfgPath);
  const src = openTensorsFromDir(dir);
  try {
    const { weights, missing } = loadWeights(config, src, dir, opts);
    return { config, weights, missing };
  } finally {
    src.close();
  }
}

/** The tensors to write for a model, under HF names and HF layouts (Conv1D transposed back). */
export function exportTensors(specs: readonly ParamSpec[], get: (name: string) => Float32Array): WriteTensor[] {
  return specs.map((s) => {
    const data = get(s.name);
    if (!s.fileTransposed) return { name: s.name, shape: s.shape, data };
    const out = new Float32Array(data.length);
    transpose(data, s.shape[0]!, s.shape[1]!, out);
    return { name: s.name, shape: fileShape(s), data: out };
  });
}

/** Write model.safetensors (atomically) for `config` from a getter of internal tensors. */
export function saveWeights(
  file: string,
  config: ModelConfig,
  get: (name: string) => Float32Array,
  dtype: 'F32' | 'F16' = 'F32',
): void {
  writeSafetensors(file, exportTensors(allParamSpecs(config), get), { dtype, metadata: { format: 'pt' } });
}
