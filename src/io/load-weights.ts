/**
 * Model weights from a TensorSource (files or bytes): Hugging Face tensor names mapped onto our parameters (GPT-2
 * Conv1D weights transposed to [out, in]), every tensor checked by name and shape against the config before
 * anything is allocated or read; errors name the source and the tensor. No `node:` import: the browser core uses it.
 */
import type { Allocator, KernelWeightDtype, StoredWeight, WeightDtype } from '../kernels/backend.js';
import { dequantizeQ8, Q8_BLOCK, type Q8Tensor } from '../kernels/quant.js';
import type { ModelConfig } from '../model/config.js';
import { allParamSpecs, isProductWeight, type ParamSpec } from '../model/names.js';
import { Weights } from '../model/weights.js';
import type { LoadedTensor, SafetensorsDtype } from './safetensors-bytes.js';
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

/**
 * A quantized model directory's `"quantization"` section of config.json (ARCHITECTURE.md §5): the user dtype its
 * product weights were written in; for int8, the q8_0 block size (32) and the suffix of the scales tensors.
 */
export interface QuantizationInfo {
  dtype: 'f16' | 'bf16' | 'int8';
}

/** A q8_0 weight `X` is stored as `X` (I8 [N, K], the quants) and `X` + this suffix (F16 [N, K/32], the scales). */
export const Q8_SCALES_SUFFIX = '.q8_0_scales';

export interface LoadWeightsOptions {
  /** Load a checkpoint without "recycle.*" tensors (the module keeps what `initModule` gives it). */
  allowMissingModule?: boolean;
  /** Memory for the weights (a backend's allocator; default plain arrays). */
  alloc?: Allocator;
  /** Weight dtypes to keep as stored (a backend's `weightDtypes`); others are widened to f32. Default: none. */
  dtypes?: readonly KernelWeightDtype[];
  /**
   * The config's quantization section: null when config.json has none, so I8 tensors are refused; undefined (a
   * caller without a config.json to read it from) accepts q8_0 tensors by their names alone.
   */
  quantization?: QuantizationInfo | null;
}

/** What a load gives: the weights, module tensors absent from the checkpoint, product weights widened to f32. */
export interface LoadWeightsResult {
  weights: Weights;
  missing: string[];
  /** Product weights stored in a dtype the load was not asked to keep (f16 / bf16 / q8_0), so widened to f32. */
  widened: string[];
}

/** Index of the first NaN or ±Infinity of a weight, or −1 (for half storage: the all-ones exponent). */
function firstNonFinite(w: StoredWeight): number {
  if (w.dtype === 'f32') {
    const d = w.data;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
    return -1;
  }
  // q8_0: every int8 quant is a value; the float16 scales can be non-finite
  const d = w.dtype === 'q8_0' ? w.scales : w.data;
  const mask = w.dtype === 'bf16' ? 0x7f80 : 0x7c00;
  for (let i = 0; i < d.length; i++) if ((d[i]! & mask) === mask) return i;
  return -1;
}

/** How one stored tensor is read: its spec, its file name, and for a q8_0 weight the name of its scales. */
interface PlanItem {
  raw: string;
  spec: ParamSpec;
  scales: string | null;
}

/**
 * Copy the tensors of `src` into new Weights for `config`. With `allowMissingModule`, a checkpoint without
 * "recycle.*" tensors loads (the module keeps the values `initModule` gives it); otherwise every parameter must
 * be present. Names, shapes and the set of tensors are checked against the config from the file headers alone,
 * before anything is allocated or read: a config or header that claims huge sizes fails here, cheaply. Tensors
 * are read once, into the weights' own memory where their dtype is kept.
 *
 * A quantized directory's q8_0 weight `X` is the I8 tensor `X` [N, K] (the [out, in] layout, also for GPT-2's
 * Conv1D weights, since blocks run along K) and the F16 tensor `X.q8_0_scales` [N, K/32]; both are checked against
 * the config (a matrix, K a multiple of 32) before anything is allocated.
 */
export function loadWeights(
  config: ModelConfig,
  src: TensorSource,
  where: string,
  opts: LoadWeightsOptions = {},
): LoadWeightsResult {
  const specs = allParamSpecs(config);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const plan: PlanItem[] = [];
  const seen = new Set<string>();
  const scalesOf = new Map<string, string>(); // parameter name -> raw name of its scales tensor
  for (const raw of src.names()) {
    const name = canonicalName(raw);
    if (name.endsWith(Q8_SCALES_SUFFIX) && byName.has(name.slice(0, -Q8_SCALES_SUFFIX.length))) {
      const base = name.slice(0, -Q8_SCALES_SUFFIX.length);
      if (scalesOf.has(base)) throw new Error(`${where}: tensor "${name}" appears twice`);
      scalesOf.set(base, raw);
      continue;
    }
    const spec = byName.get(name);
    if (!spec) {
      if (isIgnorable(name, config)) continue;
      throw new Error(`${where}: tensor "${raw}" is not a parameter of this ${config.arch} model (check config.json)`);
    }
    if (seen.has(name)) throw new Error(`${where}: tensor "${name}" appears twice`);
    seen.add(name);
    const info = src.info(raw);
    const q8 = info.dtype === 'I8';
    if (q8) checkQ8Tensor(config, spec, raw, where, opts.quantization);
    const shape = info.shape;
    // q8_0 quants are stored [out, in] (blocks along the input dimension), never in Conv1D's transposed layout
    const want = q8 ? spec.shape : fileShape(spec);
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new Error(
        `${where}: tensor "${raw}" has shape [${shape.join(', ')}], config.json implies [${want.join(', ')}]` +
          (q8 ? ' (q8_0 quants are stored [out, in])' : ''),
      );
    }
    plan.push({ raw, spec, scales: null });
  }
  for (const item of plan) {
    const scalesRaw = scalesOf.get(item.spec.name) ?? null;
    const q8 = src.info(item.raw).dtype === 'I8';
    if (q8 && scalesRaw === null) {
      throw new Error(
        `${where}: tensor "${item.raw}" holds q8_0 quants (I8) ` +
          `but its scales "${item.raw}${Q8_SCALES_SUFFIX}" are missing`,
      );
    }
    if (!q8 && scalesRaw !== null) {
      throw new Error(
        `${where}: tensor "${scalesRaw}" holds q8_0 scales ` +
          `but "${item.raw}" is ${src.info(item.raw).dtype}, not I8 quants`,
      );
    }
    if (scalesRaw !== null) {
      const si = src.info(scalesRaw);
      const [N, K] = item.spec.shape as [number, number];
      if (si.dtype !== 'F16')
        throw new Error(`${where}: tensor "${scalesRaw}": q8_0 scales must be F16, got ${si.dtype}`);
      if (si.shape.length !== 2 || si.shape[0] !== N || si.shape[1] !== K / Q8_BLOCK) {
        throw new Error(
          `${where}: tensor "${scalesRaw}" has shape [${si.shape.join(', ')}], ` +
            `the q8_0 scales of [${N}, ${K}] are [${N}, ${K / Q8_BLOCK}]`,
        );
      }
      item.scales = scalesRaw;
      scalesOf.delete(item.spec.name);
    }
  }
  for (const [base, raw] of scalesOf) {
    throw new Error(`${where}: tensor "${raw}" holds q8_0 scales but the checkpoint has no tensor "${base}"`);
  }
  const missing = specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
  const missingBase = missing.filter((n) => !n.startsWith('recycle.'));
  if (missingBase.length > 0 || (missing.length > 0 && !opts.allowMissingModule)) {
    const list = missingBase.length > 0 ? missingBase : missing;
    throw new Error(
      `${where}: missing ${list.length} tensor(s): ${list.slice(0, 5).join(', ')}${list.length > 5 ? ', …' : ''}`,
    );
  }
  // Weights read by products keep their stored dtype when the caller keeps it; everything else is float32.
  const keep = new Set<KernelWeightDtype>(opts.dtypes ?? []);
  const storedOf = new Map(plan.map(({ raw, spec }) => [spec.name, storedDtype(src.info(raw).dtype)]));
  const widened: string[] = [];
  const dtypeOf = (s: ParamSpec): WeightDtype => {
    const d = storedOf.get(s.name) ?? 'f32';
    return d !== 'f32' && keep.has(d) && isProductWeight(s, config) ? d : 'f32';
  };
  for (const s of specs) {
    const d = storedOf.get(s.name);
    if (d !== undefined && d !== 'f32' && dtypeOf(s) === 'f32' && isProductWeight(s, config)) widened.push(s.name);
  }
  const weights = allocateWeights(specs, where, opts.alloc, dtypeOf);
  for (const { raw, spec, scales } of plan) {
    const w = weights.weight(spec.name);
    const [rows, cols] = fileShape(spec) as [number, number];
    if (scales !== null) {
      // q8_0 on disk: as stored, or dequantized (exactly, d·q) into float32 storage
      const n = w.data.length;
      const q: Q8Tensor = w.dtype === 'q8_0' ? w : { data: new Int8Array(n), scales: new Uint16Array(n / Q8_BLOCK) };
      src.readInto(raw, q.data);
      src.readInto(scales, q.scales);
      const bad = firstNonFinite({ dtype: 'q8_0', data: q.data, scales: q.scales });
      if (bad >= 0) throw new Error(`${where}: tensor "${scales}" holds a non-finite q8_0 scale at index ${bad}`);
      if (w.dtype === 'f32') dequantizeQ8(q, w.data);
      else if (w.dtype !== 'q8_0') throw new Error(`${where}: tensor "${raw}": q8_0 cannot be loaded as ${w.dtype}`);
      continue;
    }
    if (w.dtype === 'q8_0') throw new Error(`${where}: tensor "${raw}": q8_0 weights come from a quantized model only`);
    if (w.dtype !== 'f32' || storedOf.get(spec.name) === 'f32') {
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
  return { weights, missing, widened };
}

/** The weight dtype a safetensors dtype is kept as (F32, F64 and the integer types are read as float32). */
function storedDtype(d: SafetensorsDtype): WeightDtype {
  return d === 'F16' ? 'f16' : d === 'BF16' ? 'bf16' : d === 'I8' ? 'q8_0' : 'f32';
}

/** An I8 tensor is a q8_0 weight's quants: only a matrix with rows a multiple of 32, only in a quantized model. */
function checkQ8Tensor(
  config: ModelConfig,
  spec: ParamSpec,
  raw: string,
  where: string,
  quantization: QuantizationInfo | null | undefined,
): void {
  if (!isProductWeight(spec, config)) {
    throw new Error(
      `${where}: tensor "${raw}" is I8 (q8_0 quants), but config.json implies it is a float32 ` +
        `${spec.shape.length === 1 ? 'vector (norm or bias)' : 'table'} [${spec.shape.join(', ')}]: ` +
        'only matrices are quantized',
    );
  }
  if (spec.shape[1]! % Q8_BLOCK !== 0) {
    throw new Error(
      `${where}: tensor "${raw}" is I8 (q8_0 quants), ` +
        `but its rows of ${spec.shape[1]} are not a multiple of ${Q8_BLOCK}`,
    );
  }
  if (quantization === null) {
    throw new Error(`${where}: tensor "${raw}" is I8 (q8_0 quants), but config.json has no "quantization" section`);
  }
  if (quantization !== undefined && quantization.dtype !== 'int8') {
    throw new Error(
      `${where}: tensor "${raw}" is I8 (q8_0 quants), but config.json's quantization dtype is "${quantization.dtype}"`,
    );
  }
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
