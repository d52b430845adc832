/**
 * Model weights from a TensorSource (files or bytes): Hugging Face tensor names mapped onto our parameters (GPT-2
 * Conv1D weights transposed to [out, in]), every tensor checked by name and shape against the config before
 * anything is allocated or read; errors name the source and the tensor. No `node:` import: the browser core uses it.
 */
import type { Allocator, Weight, WeightDtype } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import { allParamSpecs, isProductWeight, type ParamSpec } from '../model/names.js';
import { Weights } from '../model/weights.js';
import type { LoadedTensor } from './safetensors-bytes.js';
import type { TensorSource } from './tensor-source.js';

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

export function transpose<T extends Float32Array | Uint16Array>(src: T, rows: number, cols: number, dst: T): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c]!;
}

export function fileShape(s: ParamSpec): number[] {
  return s.fileTransposed ? [s.shape[1]!, s.shape[0]!] : s.shape;
}

export interface LoadWeightsOptions {
  /** Load a checkpoint without "recycle.*" tensors (the module keeps what `initModule` gives it). */
  allowMissingModule?: boolean;
  /** Memory for the weights (a backend's allocator; default plain arrays). */
  alloc?: Allocator;
  /** Weight dtypes to keep as stored (a backend's `weightDtypes`); others are widened to f32. Default: none. */
  dtypes?: readonly WeightDtype[];
}

/** Index of the first NaN or ±Infinity of a weight, or −1 (for half storage: the all-ones exponent). */
function firstNonFinite(w: Weight): number {
  const d = w.data;
  if (w.dtype === 'f32') {
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
    return -1;
  }
  const mask = w.dtype === 'f16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < d.length; i++) if ((d[i]! & mask) === mask) return i;
  return -1;
}

/**
 * Copy the tensors of `src` into new Weights for `config`. With `allowMissingModule`, a checkpoint without
 * "recycle.*" tensors loads (the module keeps the values `initModule` gives it); otherwise every parameter must
 * be present. Names, shapes and the set of tensors are checked against the config from the file headers alone,
 * before anything is allocated or read: a config or header that claims huge sizes fails here, cheaply. Tensors
 * are read once, into the weights' own memory where their dtype is kept.
 */
export function loadWeights(
  config: ModelConfig,
  src: TensorSource,
  where: string,
  opts: LoadWeightsOptions = {},
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
  // Weights read by products keep their stored dtype when the backend reads it; everything else is float32.
  const keep = new Set<WeightDtype>(opts.dtypes ?? []);
  const stored = new Map(plan.map(({ raw, spec }) => [spec.name, src.info(raw).dtype]));
  const dtypeOf = (s: ParamSpec): WeightDtype => {
    const d = stored.get(s.name);
    const half = d === 'F16' ? 'f16' : d === 'BF16' ? 'bf16' : null;
    return half !== null && keep.has(half) && isProductWeight(s, config) ? half : 'f32';
  };
  const weights = allocateWeights(specs, where, opts.alloc, dtypeOf);
  for (const { raw, spec } of plan) {
    const w = weights.weight(spec.name);
    if (w.dtype === 'q8_0') throw new Error(`${where}: tensor "${raw}": q8_0 weights come from a quantized model only`);
    const [rows, cols] = fileShape(spec) as [number, number];
    if (w.dtype !== 'f32' || stored.get(spec.name) === 'F32') {
      // As stored, straight into the weights' memory (a transposed one through one temporary of its dtype).
      if (!spec.fileTransposed) src.readInto(raw, w.data);
      else {
        const tmp = w.data instanceof Float32Array ? new Float32Array(w.data.length) : new Uint16Array(w.data.length);
        src.readInto(raw, tmp);
        transpose(tmp, rows, cols, w.data);
      }
    } else {
      const t: LoadedTensor = src.get(raw);
      if (spec.fileTransposed) transpose(t.data, rows, cols, w.data);
      else w.data.set(t.data);
    }
    const bad = firstNonFinite(w);
    if (bad >= 0) throw new Error(`${where}: tensor "${raw}" holds a non-finite value at index ${bad}`);
  }
  return { weights, missing };
}

/** Weights for `specs`, or an error that says how much memory the model needs (instead of a bare RangeError). */
function allocateWeights(
  specs: readonly ParamSpec[],
  where: string,
  alloc: Allocator | undefined,
  dtypeOf: (s: ParamSpec) => WeightDtype,
): Weights {
  try {
    return new Weights(specs, alloc, dtypeOf);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const n = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    throw new Error(
      `${where}: cannot allocate ${n} float32 parameters (${((n * 4) / 2 ** 30).toFixed(1)} GiB): ${e.message}`,
    );
  }
}
