/**
 * Module-only model directories (ARCHITECTURE.md §5): what training on a frozen base writes. The directory holds
 * the recyclable module alone and refers to its base, the PEFT adapter convention:
 *
 *   config.json        the model's HF config with "recycle" and "base": {"path": DIR, "fingerprint": "sha256:…"}
 *                      (path relative to the module directory, or absolute)
 *   model.safetensors  only recycle.* tensors, in the base's dtype (F32 / F16 / BF16)
 *   tokenizer.json     only when the module was trained with a tokenizer other than the base's; otherwise the
 *                      base's tokenizer files are used where they are
 *
 * The fingerprint (baseFingerprint) identifies the base's tensors cheaply: SHA-256 over every tensor's name, dtype
 * and shape (sorted by name) and 3 × 64 bytes sampled from each tensor's data (its start, middle and end), plus the
 * data length of each file. Reading a 2 GB two-shard TinyLlama base costs two headers and ~600 reads of 64 bytes
 * (milliseconds); any re-export, re-quantization, dtype change, reshaping or retraining of the base changes it.
 * Loading a module checks it and names both values when the base changed.
 *
 * `mergeModuleDir` writes a full directory: the base's safetensors files copied byte for byte, the module's tensors
 * (already in the base's dtype) in one more shard, an index over all of them, the base's config.json with the
 * "recycle" section added, and the base's tokenizer and generation files copied unchanged.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Allocator, KernelWeightDtype } from '../kernels/backend.js';
import { parseConfig, toHfConfig, type ModelConfig } from '../model/config.js';
import { moduleParamSpecs } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import { replaceDirAtomic } from './atomic.js';
import { openRegularFile, readJsonFile } from './files.js';
import { loadWeights } from './load-weights.js';
import { exportTensors } from './model-dir.js';
import { writeSafetensors, type WriteTensor } from './safetensors.js';
import type { StoredArray, TensorInfo } from './safetensors-bytes.js';
import { INDEX_FILE, openTensorsFromDir, readShardIndex, SINGLE_FILE, type TensorSource } from './sharded.js';
import { f32ToBf16Bits, f32ToF16Array } from '../kernels/half.js';

/** The "base" section of a module-only directory's config.json. */
export interface BaseRef {
  /** The base directory, relative to the module directory or absolute. */
  path: string;
  fingerprint: string;
}

/** The files of a base carried into a merged directory as they are (those present). */
export const BASE_TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'generation_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
] as const;

/** Dtype a module is stored in: the base's (its largest tensors' safetensors dtype). */
export type ModuleDtype = 'F32' | 'F16' | 'BF16';

const SAMPLE = 64;

/** The safetensors files of a model directory (model.safetensors, or the shards of its index). */
function weightFiles(dir: string): string[] {
  if (fs.existsSync(path.join(dir, SINGLE_FILE))) return [SINGLE_FILE];
  const index = path.join(dir, INDEX_FILE);
  if (!fs.existsSync(index)) throw new Error(`${dir}: no ${SINGLE_FILE} and no ${INDEX_FILE}`);
  return [...new Set(readShardIndex(index).values())].sort();
}

/** The fingerprint of a base directory's tensors (see the file comment). */
export function baseFingerprint(dir: string): string {
  const src = openTensorsFromDir(dir);
  try {
    const hash = createHash('sha256');
    const names = src.names().sort();
    const fds = new Map<string, number>();
    try {
      const buf = new Uint8Array(SAMPLE);
      for (const name of names) {
        const info = src.info(name);
        hash.update(`${name}\0${info.dtype}\0${info.shape.join(',')}\0${info.end - info.begin}\n`);
        let fd = fds.get(info.file);
        if (fd === undefined) {
          fd = openRegularFile(info.file, 'safetensors file').fd;
          fds.set(info.file, fd);
        }
        const len = info.end - info.begin;
        const n = Math.min(SAMPLE, len);
        for (const at of [0, Math.floor((len - n) / 2), len - n]) {
          const got = fs.readSync(fd, buf, 0, n, info.begin + at);
          hash.update(buf.subarray(0, got));
        }
      }
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
    return `sha256:${hash.digest('hex')}`;
  } finally {
    src.close();
  }
}

/** The dtype of a base's product weights as stored (the dtype its module is written in). */
export function baseDtype(dir: string): ModuleDtype {
  const src = openTensorsFromDir(dir);
  try {
    const bytes = new Map<string, number>();
    for (const n of src.names()) {
      const i = src.info(n);
      bytes.set(i.dtype, (bytes.get(i.dtype) ?? 0) + (i.end - i.begin));
    }
    const top = [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    return top === 'F16' || top === 'BF16' ? top : 'F32';
  } finally {
    src.close();
  }
}

/** A reference to `baseDir` as stored in a module directory written to `moduleDir`. */
export function makeBaseRef(baseDir: string, moduleDir: string): BaseRef {
  const rel = path.relative(path.resolve(moduleDir), path.resolve(baseDir));
  return { path: path.isAbsolute(baseDir) ? path.resolve(baseDir) : rel || '.', fingerprint: baseFingerprint(baseDir) };
}

/** The raw config.json object of a directory. */
function rawConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  const json = readJsonFile(file, 'config');
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

/** The base reference of a module-only directory, or null for a full (or plain base) directory. */
export function readBaseRef(dir: string): BaseRef | null {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) return null;
  const base = rawConfig(dir).base;
  if (base === undefined) return null;
  const b = base as Record<string, unknown>;
  if (typeof base !== 'object' || base === null || typeof b.path !== 'string' || typeof b.fingerprint !== 'string')
    throw new Error(
      `${file}: field "base" must be {"path": string, "fingerprint": string}, got ${JSON.stringify(base)}`,
    );
  return { path: b.path, fingerprint: b.fingerprint };
}

/** The base directory a module directory refers to. */
export function resolveBase(moduleDir: string, ref: BaseRef): string {
  return path.isAbsolute(ref.path) ? ref.path : path.resolve(moduleDir, ref.path);
}

/** Throws when `baseDir` is not the base the module was trained on (its tensors changed). */
export function checkBase(moduleDir: string, baseDir: string, ref: BaseRef): void {
  if (!fs.existsSync(path.join(baseDir, 'config.json')))
    throw new Error(`${moduleDir}: its base ${baseDir} (config.json "base.path" ${ref.path}) is not a model directory`);
  const now = baseFingerprint(baseDir);
  if (now !== ref.fingerprint) {
    throw new Error(
      `${moduleDir}: the base ${baseDir} is not the one this module was trained on: its tensors' fingerprint is ` +
        `${now}, the module's config.json records ${ref.fingerprint} (the base was changed, re-exported or ` +
        `replaced); give the original base, or train the module again on this one`,
    );
  }
}

/** Write a module-only model.safetensors: the recycle.* tensors in `dtype` under HF names and layouts. */
export function saveModuleWeights(
  file: string,
  config: ModelConfig,
  get: (name: string) => Float32Array,
  dtype: ModuleDtype,
): void {
  const tensors: WriteTensor[] = exportTensors(moduleParamSpecs(config), get).map((t) => {
    const f = t.data as Float32Array;
    if (dtype === 'F32') return t;
    if (dtype === 'F16') return { ...t, data: f32ToF16Array(f), dtype };
    const bits = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) bits[i] = f32ToBf16Bits(f[i]!);
    return { ...t, data: bits, dtype };
  });
  writeSafetensors(file, tensors, { metadata: { format: 'pt' } });
}

/** config.json of a module-only directory. */
export function moduleConfigJson(config: ModelConfig, ref: BaseRef): string {
  return `${JSON.stringify({ ...toHfConfig(config), base: ref }, null, 2)}\n`;
}

/** The tensors of a base and of a module over it, as one source (the module's names win). */
class UnionSource implements TensorSource {
  readonly metadata: Record<string, string>;

  constructor(
    private readonly base: TensorSource,
    private readonly mod: TensorSource,
  ) {
    this.metadata = { ...base.metadata };
  }

  private of(name: string): TensorSource {
    return this.mod.has(name) ? this.mod : this.base;
  }

  names(): string[] {
    const mod = this.mod.names();
    const own = new Set(mod);
    return [...this.base.names().filter((n) => !own.has(n)), ...mod];
  }

  has(name: string): boolean {
    return this.mod.has(name) || this.base.has(name);
  }

  info(name: string): TensorInfo & { file: string } {
    return this.of(name).info(name);
  }

  get(name: string): ReturnType<TensorSource['get']> {
    return this.of(name).get(name);
  }

  readInto(name: string, dst: StoredArray): void {
    this.of(name).readInto(name, dst);
  }

  close(): void {
    this.base.close();
    this.mod.close();
  }
}

export interface ModuleLoadOptions {
  alloc?: Allocator;
  dtypes?: readonly KernelWeightDtype[];
}

export interface LoadedModuleModel {
  config: ModelConfig;
  weights: Weights;
  /** The base directory (after the fingerprint check). */
  baseDir: string;
  /** Where the tokenizer comes from: the module directory when it has a tokenizer.json, else the base. */
  tokenizerDir: string;
}

/**
 * Load a module-only directory with its base: the base it refers to, or `baseDir` (the PEFT way: the module's
 * recorded fingerprint must match that base).
 */
export function loadModuleModel(
  moduleDir: string,
  opts: ModuleLoadOptions & { baseDir?: string } = {},
): LoadedModuleModel {
  const ref = readBaseRef(moduleDir);
  if (!ref) throw new Error(`${moduleDir}: config.json has no "base" section (not a module-only directory)`);
  const baseDir = opts.baseDir ?? resolveBase(moduleDir, ref);
  checkBase(moduleDir, baseDir, ref);
  const config = parseConfig(rawConfig(moduleDir), path.join(moduleDir, 'config.json'));
  if (!config.recycle) throw new Error(`${path.join(moduleDir, 'config.json')}: no "recycle" section`);
  const base = openTensorsFromDir(baseDir);
  let mod: TensorSource;
  try {
    mod = openTensorsFromDir(moduleDir);
  } catch (e) {
    base.close();
    throw e;
  }
  const src = new UnionSource(base, mod);
  try {
    for (const n of mod.names()) {
      if (!n.startsWith('recycle.'))
        throw new Error(`${moduleDir}: tensor "${n}" is not a module tensor (a module-only directory holds recycle.*)`);
    }
    const { weights } = loadWeights(config, src, `${moduleDir} (+ base ${baseDir})`, opts);
    const tokenizerDir = fs.existsSync(path.join(moduleDir, 'tokenizer.json')) ? moduleDir : baseDir;
    return { config, weights, baseDir, tokenizerDir };
  } finally {
    src.close();
  }
}

/**
 * A model directory, or a module-only one with its base, or (`moduleDir` given) `dir` as the base with that module:
 * what RecycleGPT.load reads.
 */
export function loadAnyModelDir(
  dir: string,
  moduleDir: string | undefined,
  opts: ModuleLoadOptions,
  loadPlain: (dir: string) => { config: ModelConfig; weights: Weights },
): { config: ModelConfig; weights: Weights; tokenizerDir: string } {
  if (moduleDir !== undefined) return loadModuleModel(moduleDir, { ...opts, baseDir: dir });
  if (readBaseRef(dir) !== null) return loadModuleModel(dir, opts);
  return { ...loadPlain(dir), tokenizerDir: dir };
}

/** Shard file name of the module in a merged directory. */
export const MERGED_MODULE_SHARD = 'model-recycle.safetensors';
const MERGED_BASE_SHARD = 'model-base.safetensors';

/**
 * Write `out` (atomically; it must not hold a model yet) as a full model directory: the base's weights files byte
 * for byte (a merged base's module shard excepted: the new module replaces it) plus the module's shard and an index,
 * the base's config.json with "recycle" added, and the base's tokenizer and generation files unchanged. Returns the
 * base directory used.
 */
export function mergeModuleDir(moduleDir: string, out: string): { baseDir: string; files: string[] } {
  const ref = readBaseRef(moduleDir);
  if (!ref) throw new Error(`${moduleDir}: config.json has no "base" section (not a module-only directory)`);
  const baseDir = resolveBase(moduleDir, ref);
  checkBase(moduleDir, baseDir, ref);
  if (fs.existsSync(path.join(out, 'config.json')))
    throw new Error(`${out} already holds a model (config.json); choose another --out`);
  const modCfg = rawConfig(moduleDir);
  const config = parseConfig(modCfg, path.join(moduleDir, 'config.json'));
  const baseCfg = rawConfig(baseDir);
  const files: string[] = [];
  const mod = openTensorsFromDir(moduleDir);
  try {
    const modNames = mod.names();
    if (modNames.some((n) => !n.startsWith('recycle.')))
      throw new Error(`${moduleDir}: holds tensors other than recycle.* (not a module-only directory)`);
    const baseFiles = weightFiles(baseDir);
    const baseMap = new Map<string, string>();
    replaceDirAtomic(out, (tmp) => {
      if (baseFiles.length === 1 && baseFiles[0] === SINGLE_FILE) {
        fs.copyFileSync(path.join(baseDir, SINGLE_FILE), path.join(tmp, MERGED_BASE_SHARD));
        const src = openTensorsFromDir(baseDir);
        try {
          for (const n of src.names()) baseMap.set(n, MERGED_BASE_SHARD);
        } finally {
          src.close();
        }
        files.push(MERGED_BASE_SHARD);
      } else {
        // a base that is itself a merged model (a module trained on it): its module shard is left out, the new
        // module takes its place (another base shard under that name would be lost, so that is refused)
        const index = readShardIndex(path.join(baseDir, INDEX_FILE));
        for (const [n, f] of index)
          if (f === MERGED_MODULE_SHARD && !n.startsWith('recycle.'))
            throw new Error(`${baseDir}: shard ${f} holds "${n}", not only the module's tensors; cannot merge`);
        for (const f of baseFiles) {
          if (f === MERGED_MODULE_SHARD) continue;
          fs.copyFileSync(path.join(baseDir, f), path.join(tmp, f));
          files.push(f);
        }
        for (const [n, f] of index) if (f !== MERGED_MODULE_SHARD) baseMap.set(n, f);
      }
      const tensors: WriteTensor[] = modNames.map((n) => {
        const info = mod.info(n);
        const count = info.shape.reduce((a, b) => a * b, 1);
        const data =
          info.dtype === 'F32'
            ? new Float32Array(count)
            : info.dtype === 'I8'
              ? new Int8Array(count)
              : new Uint16Array(count);
        mod.readInto(n, data);
        if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16')
          throw new Error(`${moduleDir}: tensor "${n}" is ${info.dtype}; a module is stored as F32, F16 or BF16`);
        return { name: n, shape: info.shape, data, dtype: info.dtype };
      });
      writeSafetensors(path.join(tmp, MERGED_MODULE_SHARD), tensors, { metadata: { format: 'pt' } });
      files.push(MERGED_MODULE_SHARD);
      const weightMap: Record<string, string> = {};
      let total = 0;
      for (const f of files) total += fs.statSync(path.join(tmp, f)).size;
      for (const [n, f] of baseMap) weightMap[n] = f;
      for (const n of modNames) weightMap[n] = MERGED_MODULE_SHARD;
      fs.writeFileSync(
        path.join(tmp, INDEX_FILE),
        `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
      );
      const recycle = (toHfConfig(config) as { recycle: unknown }).recycle;
      fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify({ ...baseCfg, recycle }, null, 2)}\n`);
      for (const f of BASE_TOKENIZER_FILES) {
        const from = path.join(baseDir, f);
        if (fs.existsSync(from) && fs.statSync(from).isFile()) {
          fs.copyFileSync(from, path.join(tmp, f));
          files.push(f);
        }
      }
      // a module trained with its own tokenizer carries it (the base's would not match its ids)
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        const from = path.join(moduleDir, f);
        if (fs.existsSync(path.join(moduleDir, 'tokenizer.json')) && fs.existsSync(from)) {
          fs.copyFileSync(from, path.join(tmp, f));
          if (!files.includes(f)) files.push(f);
        }
      }
    });
  } finally {
    mod.close();
  }
  return { baseDir, files };
}
