/**
 * Model directory I/O (DESIGN.md §3): config.json + model.safetensors (or HF shards). Loading maps Hugging Face
 * tensor names onto our parameters (GPT-2 Conv1D weights transposed to [out, in]); saving writes HF names back,
 * so HF tools load the base. Every tensor is checked by name and shape; errors name the file and the tensor.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from './files.js';
import { writeSafetensors, type LoadedTensor, type WriteTensor } from './safetensors.js';
import { openTensorsFromDir, type TensorSource } from './sharded.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import { allParamSpecs, type ParamSpec } from '../model/names.js';
import { Weights } from '../model/weights.js';

/** Tensors HF checkpoints carry that are buffers or duplicates, not parameters: skipped on load. */
function isIgnorable(name: string, c: ModelConfig): boolean {
  if (/\.attn\.(masked_)?bias$/.test(name) && c.arch === 'gpt2') return true; // causal-mask buffers
  if (/rotary_emb\.inv_freq$/.test(name)) return true;
  if (name === 'lm_head.weight' && c.tieEmbeddings) return true; // tied: a copy of the embedding
  return false;
}

/** HF GPT-2 files saved from GPT2LMHeadModel prefix the base with "transformer.". */
function canonicalName(name: string): string {
  return name.startsWith('transformer.') ? name.slice('transformer.'.length) : name;
}

function transpose(src: Float32Array, rows: number, cols: number, dst: Float32Array): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c]!;
}

function fileShape(s: ParamSpec): number[] {
  return s.fileTransposed ? [s.shape[1]!, s.shape[0]!] : s.shape;
}

/**
 * Copy the tensors of `src` into new Weights for `config`. With `allowMissingModule`, a checkpoint without
 * "recycle.*" tensors loads (the module keeps the values `initModule` gives it); otherwise every parameter must
 * be present. Names, shapes and the set of tensors are checked against the config from the file headers alone,
 * before anything is allocated or read: a config or header that claims huge sizes fails here, cheaply.
 */
export function loadWeights(
  config: ModelConfig,
  src: TensorSource,
  where: string,
  opts: { allowMissingModule?: boolean } = {},
): { weights: Weights; missing: string[] } {
  const specs = allParamSpecs(config);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const plan: Array<{ raw: string; spec: ParamSpec }> = [];
  const seen = new Set<string>();
  for (const raw of src.names()) {
    const name = canonicalName(raw);
    const spec = byName.get(name);
    if (!spec) {
      if (isIgnorable(name, config)) continue;
      throw new Error(`${where}: tensor "${raw}" is not a parameter of this ${config.arch} model (check config.json)`);
    }
    if (seen.has(name)) throw new Error(`${where}: tensor "${name}" appears twice`);
    seen.add(name);
    const shape = src.info(raw).shape;
    const want = fileShape(spec);
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new Error(
        `${where}: tensor "${raw}" has shape [${shape.join(', ')}], config.json implies [${want.join(', ')}]`,
      );
    }
    plan.push({ raw, spec });
  }
  const missing = specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
  const missingBase = missing.filter((n) => !n.startsWith('recycle.'));
  if (missingBase.length > 0 || (missing.length > 0 && !opts.allowMissingModule)) {
    const list = missingBase.length > 0 ? missingBase : missing;
    throw new Error(
      `${where}: missing ${list.length} tensor(s): ${list.slice(0, 5).join(', ')}${list.length > 5 ? ', …' : ''}`,
    );
  }
  const weights = allocateWeights(specs, where);
  for (const { raw, spec } of plan) {
    const t: LoadedTensor = src.get(raw);
    const dst = weights.get(spec.name);
    if (spec.fileTransposed) transpose(t.data, spec.shape[1]!, spec.shape[0]!, dst);
    else dst.set(t.data);
    for (let i = 0; i < dst.length; i++) {
      if (!Number.isFinite(dst[i]!))
        throw new Error(`${where}: tensor "${raw}" holds a non-finite value at index ${i}`);
    }
  }
  return { weights, missing };
}

/** Weights for `specs`, or an error that says how much memory the model needs (instead of a bare RangeError). */
function allocateWeights(specs: readonly ParamSpec[], where: string): Weights {
  try {
    return new Weights(specs);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const n = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    throw new Error(
      `${where}: cannot allocate ${n} float32 parameters (${((n * 4) / 2 ** 30).toFixed(1)} GiB): ${e.message}`,
    );
  }
}

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
export function loadModelDir(
  dir: string,
  opts: { allowMissingModule?: boolean; config?: ModelConfig } = {},
): LoadedModel {
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
