/**
 * Model directory I/O (ARCHITECTURE.md §5): config.json + model.safetensors (or HF shards). Loading maps Hugging Face
 * tensor names onto our parameters (GPT-2 Conv1D weights transposed to [out, in]); saving writes HF names back,
 * so HF tools load the base. Every tensor is checked by name and shape; errors name the file and the tensor.
 *
 * A quantized directory (`recyclegpt quantize`) has the same names: f16 / bf16 weights as F16 / BF16 tensors, a q8_0
 * weight `X` as the I8 tensor `X` [out, in] plus the F16 tensor `X.q8_0_scales` [out, in/32], norms and biases F32,
 * and config.json's `"quantization"` section saying which (see quantizationSection).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from './files.js';
import { writeSafetensors, type WriteTensor } from './safetensors.js';
import { openTensorsFromDir } from './sharded.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import { convertWeights, storageDtype, USER_DTYPES, type UserDtype } from '../model/convert.js';
import { allParamSpecs, isProductWeight, type ParamSpec } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import type { Allocator, KernelWeightDtype, WeightDtype } from '../kernels/backend.js';
import { Q8_BLOCK } from '../kernels/quant.js';
import {
  fileShape,
  loadWeights,
  Q8_SCALES_SUFFIX,
  transpose,
  type LoadWeightsOptions,
  type QuantizationInfo,
} from './load-weights.js';

export { Q8_SCALES_SUFFIX, type QuantizationInfo } from './load-weights.js';

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

/** config.json's `"quantization"` section for a user dtype (none for f32). */
export function quantizationSection(dtype: UserDtype): Record<string, unknown> | null {
  if (dtype === 'f32') return null;
  if (dtype !== 'int8') return { dtype, format: dtype };
  return { dtype, format: 'q8_0', block_size: Q8_BLOCK, scales_suffix: Q8_SCALES_SUFFIX };
}

/** The `"quantization"` section of a parsed config.json (null when absent); `where` names the file in errors. */
export function parseQuantization(json: unknown, where: string): QuantizationInfo | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const q = (json as Record<string, unknown>).quantization;
  if (q === undefined) return null;
  const bad = (field: string, msg: string): never => {
    throw new Error(`${where}: field "quantization${field}": ${msg}`);
  };
  if (typeof q !== 'object' || q === null || Array.isArray(q)) return bad('', `must be an object, got ${str(q)}`);
  const { dtype, format, block_size: block, scales_suffix: suffix } = q as Record<string, unknown>;
  if (dtype === 'f16' || dtype === 'bf16') {
    if (format !== undefined && format !== dtype)
      bad('.format', `must be "${dtype}" for dtype ${dtype}, got ${str(format)}`);
    return { dtype };
  }
  if (dtype !== 'int8') return bad('.dtype', `must be "int8", "f16" or "bf16", got ${str(dtype)}`);
  if (format !== 'q8_0') bad('.format', `must be "q8_0" for dtype int8, got ${str(format)}`);
  if (block !== Q8_BLOCK) bad('.block_size', `must be ${Q8_BLOCK} (q8_0), got ${str(block)}`);
  if (suffix !== undefined && suffix !== Q8_SCALES_SUFFIX) {
    bad('.scales_suffix', `must be "${Q8_SCALES_SUFFIX}", got ${str(suffix)}`);
  }
  return { dtype };
}

function str(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** config.json of a model directory: the model config and its quantization section. */
export function readModelConfig(dir: string): { config: ModelConfig; quantization: QuantizationInfo | null } {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${dir}: no config.json (is this a model directory?)`);
  const json = readJsonFile(cfgPath, 'config');
  return { config: parseConfig(json, cfgPath), quantization: parseQuantization(json, cfgPath) };
}

/**
 * Load config.json and the weights of a model directory (weights in the dtypes `opts.dtypes` keeps, others widened
 * to f32 exactly; a quantized directory's q8_0 weights are dequantized unless 'q8_0' is kept).
 */
export function loadModelDir(dir: string, opts: LoadWeightsOptions & { config?: ModelConfig } = {}): LoadedModel {
  let config = opts.config;
  let quantization: QuantizationInfo | null | undefined = opts.quantization;
  if (!config) {
    const c = readModelConfig(dir);
    config = c.config;
    if (quantization === undefined) quantization = c.quantization;
  }
  const src = openTensorsFromDir(dir);
  try {
    const { weights, missing } = loadWeights(config, src, dir, { ...opts, quantization });
    return { config, weights, missing };
  } finally {
    src.close();
  }
}

export interface LoadAsOptions {
  /** The dtype of the product weights (converted at load, models/convert.ts); default: as stored. */
  dtype?: UserDtype;
  /** Memory for the weights (a backend's allocator). */
  alloc?: Allocator;
  /** The weight dtypes the backend reads (`backend.weightDtypes`); others are widened to f32. Default f32 only. */
  dtypes?: readonly KernelWeightDtype[];
  /** Names the backend in the warning about widened weights. */
  backendName?: string;
  /** Told when weights in the requested (or stored) dtype are widened to f32 because the backend cannot read it. */
  onWarning?: (message: string) => void;
}

/** A loaded model and the dtype its product weights stand for (their values; storage may be wider). */
export interface LoadedAs extends LoadedModel {
  dtype: UserDtype;
  /** The storage dtypes of the product weights, as loaded (e.g. ['q8_0', 'f16'], or ['f32'] when widened). */
  storage: WeightDtype[];
}

/**
 * Load a model directory with its product weights as `opts.dtype` (`--dtype`; default: as stored): an f32 model
 * is converted at load (convertWeights), a quantized directory loads as stored when it already holds that dtype.
 * Where the backend cannot read the result's storage, the weights are widened to f32 after the conversion (the
 * same values, f32 memory and speed) and `onWarning` says so.
 */
export function loadModelDirAs(dir: string, opts: LoadAsOptions = {}): LoadedAs {
  if (opts.dtype !== undefined && !USER_DTYPES.includes(opts.dtype)) {
    throw new Error(`dtype must be one of ${USER_DTYPES.join(', ')}, got ${str(opts.dtype)}`);
  }
  const { config, quantization } = readModelConfig(dir);
  const stored: UserDtype = quantization?.dtype ?? 'f32';
  const dtype = opts.dtype ?? stored;
  const reads = new Set<KernelWeightDtype>(['f32', ...(opts.dtypes ?? [])]);
  const targets = new Set(
    allParamSpecs(config)
      .filter((s) => isProductWeight(s, config))
      .map((s) => storageDtype(dtype, s)),
  );
  const unread = [...targets].filter((d) => !reads.has(d));
  const warn = (): void => {
    if (unread.length === 0 || dtype === 'f32') return;
    opts.onWarning?.(
      `${dir}: the ${opts.backendName ?? ''}${opts.backendName ? ' ' : ''}backend reads ${[...reads].join(', ')} ` +
        `weights, not ${unread.join(', ')}: the ${dtype} weights are widened to f32 at load ` +
        '(the same values, f32 memory and speed)',
    );
  };
  let weights: Weights;
  if (dtype === stored) {
    // as stored: kept where the backend reads it, else widened exactly
    const keep = opts.dtype === 'f32' ? [] : [...reads];
    weights = loadModelDir(dir, { config, quantization, alloc: opts.alloc, dtypes: keep }).weights;
  } else {
    const src = loadModelDir(dir, { config, quantization, dtypes: ['f16', 'bf16', 'q8_0'] }).weights;
    weights =
      unread.length === 0
        ? convertWeights(src, config, dtype, opts.alloc)
        : convertWeights(convertWeights(src, config, dtype), config, 'f32', opts.alloc);
  }
  warn();
  const storage = [
    ...new Set(
      allParamSpecs(config)
        .filter((s) => isProductWeight(s, config))
        .map((s) => weights.weight(s.name).dtype),
    ),
  ];
  return { config, weights, missing: [], dtype, storage };
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

/**
 * The tensors of `weights` as stored (a quantized directory's model.safetensors): f32 as F32 and f16 / bf16 bits as
 * F16 / BF16, in HF layouts (Conv1D transposed back); a q8_0 weight as I8 quants [out, in] and F16 scales
 * `NAME.q8_0_scales` [out, in/32].
 */
export function exportStoredTensors(specs: readonly ParamSpec[], weights: Weights): WriteTensor[] {
  const out: WriteTensor[] = [];
  for (const s of specs) {
    const w = weights.weight(s.name);
    if (w.dtype === 'q8_0') {
      const [N, K] = s.shape as [number, number];
      out.push({ name: s.name, shape: [N, K], data: w.data, dtype: 'I8' });
      out.push({ name: s.name + Q8_SCALES_SUFFIX, shape: [N, K / Q8_BLOCK], data: w.scales, dtype: 'F16' });
      continue;
    }
    const dtype = w.dtype === 'f32' ? 'F32' : w.dtype === 'f16' ? 'F16' : 'BF16';
    if (!s.fileTransposed) {
      out.push({ name: s.name, shape: s.shape, data: w.data, dtype });
      continue;
    }
    const t = w.data instanceof Float32Array ? new Float32Array(w.data.length) : new Uint16Array(w.data.length);
    transpose(w.data, s.shape[0]!, s.shape[1]!, t);
    out.push({ name: s.name, shape: fileShape(s), data: t, dtype });
  }
  return out;
}

/** Write model.safetensors (atomically) for `config` from Weights, each tensor in its storage dtype. */
export function saveStoredWeights(file: string, config: ModelConfig, weights: Weights): void {
  writeSafetensors(file, exportStoredTensors(allParamSpecs(config), weights), { metadata: { format: 'pt' } });
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
