/**
 * A set of tensors that may span several safetensors files (Hugging Face layout: `model.safetensors`, or shards listed
 * in `model.safetensors.index.json` as `{"metadata": {...}, "weight_map": {tensor: shard file}}`), independent of
 * where the bytes come from: sharded.ts opens the files of a directory, `openTensorsFromBytes` takes them from memory.
 * No `node:` import: the browser core uses it.
 */
import { parseJson } from './json.js';
import {
  asUint8Array,
  SafetensorsBytes,
  type Bytes,
  type LoadedTensor,
  type SafetensorsSource,
  type StoredArray,
  type TensorInfo,
} from './safetensors-bytes.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** A lazily read set of tensors that may span several files. */
export interface TensorSource {
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo & { file: string };
  get(name: string): LoadedTensor;
  /** A tensor's stored values into `dst` (F32 → Float32Array, F16 / BF16 → Uint16Array, I8 → Int8Array). */
  readInto(name: string, dst: StoredArray): void;
  close(): void;
}

/** Checks a parsed shard index (`where` names it in errors); returns tensor -> shard file name. */
export function parseShardIndex(json: unknown, where: string): Map<string, string> {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${where}: must be a JSON object`);
  const wm = (json as Record<string, unknown>).weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new Error(`${where}: weight_map must be an object of tensor name -> shard file, got ${JSON.stringify(wm)}`);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new Error(`${where}: weight_map["${name}"] must be a file name, got ${JSON.stringify(shard)}`);
    }
    // Shards must sit next to the index: a path here could point anywhere on disk.
    if (shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..') {
      throw new Error(`${where}: weight_map["${name}"] = ${JSON.stringify(shard)} is not a plain file name`);
    }
    map.set(name, shard);
  }
  if (map.size === 0) throw new Error(`${where}: weight_map is empty`);
  return map;
}

/**
 * The tensors of one file (`weightMap` null: every tensor of `open(SINGLE_FILE)`) or of the shards of an index
 * (`where` names the index in errors). `open` gives a reader of one file, or throws naming what is missing. Every
 * mapping is checked against the shard's header up front; on any error the readers opened so far are closed.
 */
export class ShardSet implements TensorSource {
  readonly metadata: Record<string, string> = {};
  private readonly readers = new Map<string, SafetensorsSource>();
  private readonly where = new Map<string, string>();

  constructor(where: string, weightMap: Map<string, string> | null, open: (file: string) => SafetensorsSource) {
    try {
      if (weightMap === null) {
        const r = open(SINGLE_FILE);
        this.readers.set(SINGLE_FILE, r);
        for (const n of r.names()) this.where.set(n, SINGLE_FILE);
        Object.assign(this.metadata, r.metadata);
        return;
      }
      for (const shard of new Set(weightMap.values())) {
        const r = open(shard);
        this.readers.set(shard, r);
        Object.assign(this.metadata, r.metadata);
      }
      for (const [name, shard] of weightMap) {
        if (!this.readers.get(shard)?.has(name)) {
          throw new Error(`${where}: tensor "${name}" is mapped to ${shard} but that shard has no such tensor`);
        }
        this.where.set(name, shard);
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private reader(name: string): SafetensorsSource {
    const shard = this.where.get(name);
    const r = shard === undefined ? undefined : this.readers.get(shard);
    if (!r) throw new Error(`no tensor named "${name}" in ${[...this.readers.values()].map((x) => x.file).join(', ')}`);
    return r;
  }

  info(name: string): TensorInfo & { file: string } {
    const r = this.reader(name);
    return { ...r.info(name), file: r.file };
  }

  get(name: string): LoadedTensor {
    return this.reader(name).get(name);
  }

  readInto(name: string, dst: StoredArray): void {
    this.reader(name).readInto(name, dst);
  }

  close(): void {
    for (const r of this.readers.values()) r.close();
  }
}

/** Shards in memory: the index (model.safetensors.index.json, as text, bytes or parsed) and each shard's bytes. */
export interface ShardedBytes {
  readonly index: string | Bytes | object;
  /** shard file name (as the index's weight_map names it) -> its bytes */
  readonly shards: Readonly<Record<string, Bytes>>;
}

/** One safetensors file, or shards and their index, held in memory. */
export type WeightBytes = Bytes | ShardedBytes;

/** `label(file)` names one file in errors: "model.safetensors (bytes)" by default. */
export type FileLabel = (file: string) => string;

export const bytesLabel: FileLabel = (file) => `${file} (bytes)`;

/** JSON given as text, bytes (strict UTF-8) or an already parsed value; text goes through the strict parser. */
export function jsonOf(v: unknown, where: string): unknown {
  if (typeof v === 'string') return parseJson(v, where);
  if (isBytes(v)) {
    let text: string;
    try {
      // ignoreBOM keeps a byte-order mark in the text, so the JSON parser can name it instead of hiding it.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(asUint8Array(v, where));
    } catch {
      throw new Error(`${where}: is not valid UTF-8 text`);
    }
    return parseJson(text, where);
  }
  return v;
}

/** toString, not instanceof: an ArrayBuffer from another realm (a worker, an iframe) is still one. */
function isBytes(v: unknown): v is Bytes {
  const tag = Object.prototype.toString.call(v);
  return ArrayBuffer.isView(v) || tag === '[object ArrayBuffer]' || tag === '[object SharedArrayBuffer]';
}

/**
 * The tensors of weights held in memory: one safetensors file (Uint8Array or ArrayBuffer) or `{index, shards}`.
 * The same checks as on disk; tensors are decoded on demand (each a float32 copy).
 */
export function openTensorsFromBytes(weights: WeightBytes, label: FileLabel = bytesLabel): TensorSource {
  if (isBytes(weights)) return new ShardSet(label(SINGLE_FILE), null, (f) => new SafetensorsBytes(weights, label(f)));
  if (typeof weights !== 'object' || weights === null || !('index' in weights) || !('shards' in weights)) {
    throw new Error(
      `${label(SINGLE_FILE)}: weights must be the bytes of one safetensors file or {index, shards}, got ` +
        (weights === null
          ? 'null'
          : typeof weights === 'object'
            ? 'an object without index and shards'
            : typeof weights),
    );
  }
  const where = label(INDEX_FILE);
  const shards = weights.shards;
  if (typeof shards !== 'object' || shards === null) throw new Error(`${where}: shards must be an object`);
  const map = parseShardIndex(jsonOf(weights.index, where), where);
  return new ShardSet(where, map, (f) => {
    if (!Object.prototype.hasOwnProperty.call(shards, f)) {
      throw new Error(`${where}: shard ${JSON.stringify(f)} is listed but not given (given: ${listKeys(shards)})`);
    }
    return new SafetensorsBytes(shards[f]!, label(f));
  });
}

function listKeys(o: object): string {
  const k = Object.keys(o);
  return k.length === 0 ? 'none' : k.map((x) => JSON.stringify(x)).join(', ');
}
