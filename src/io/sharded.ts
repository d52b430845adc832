/**
 * Loading the tensors of a model directory: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (Hugging Face layout: `{"metadata": {...}, "weight_map": {tensor: shard file}}`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile } from './files.js';
import { SafetensorsReader, type LoadedTensor, type SafetensorsFile, type TensorInfo } from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** A lazily read set of tensors that may span several files. */
export interface TensorSource {
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo & { file: string };
  get(name: string): LoadedTensor;
  close(): void;
}

/** Reads and checks an index file; returns tensor -> shard file name. */
export function readShardIndex(indexPath: string): Map<string, string> {
  const json = readJsonFile(indexPath, 'shard index');
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${indexPath}: must be a JSON object`);
  const wm = (json as Record<string, unknown>).weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new Error(
      `${indexPath}: weight_map must be an object of tensor name -> shard file, got ${JSON.stringify(wm)}`,
    );
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new Error(`${indexPath}: weight_map["${name}"] must be a file name, got ${JSON.stringify(shard)}`);
    }
    // Shards must sit next to the index: a path here could point anywhere on disk.
    if (shard !== path.basename(shard) || shard === '.' || shard === '..' || shard.includes('\\')) {
      throw new Error(`${indexPath}: weight_map["${name}"] = ${JSON.stringify(shard)} is not a plain file name`);
    }
    map.set(name, shard);
  }
  if (map.size === 0) throw new Error(`${indexPath}: weight_map is empty`);
  return map;
}

class ShardedSource implements TensorSource {
  readonly metadata: Record<string, string> = {};
  private readonly readers = new Map<string, SafetensorsReader>();
  private readonly where = new Map<string, string>();

  constructor(dir: string, weightMap: Map<string, string> | null) {
    try {
      if (weightMap === null) {
        const r = new SafetensorsReader(path.join(dir, SINGLE_FILE));
        this.readers.set(SINGLE_FILE, r);
        for (const n of r.names()) this.where.set(n, SINGLE_FILE);
        Object.assign(this.metadata, r.metadata);
        return;
      }
      const indexPath = path.join(dir, INDEX_FILE);
      for (const shard of new Set(weightMap.values())) {
        const p = path.join(dir, shard);
        if (!fs.existsSync(p))
          throw new Error(`${indexPath}: shard ${JSON.stringify(shard)} is listed but ${p} does not exist`);
        const r = new SafetensorsReader(p);
        this.readers.set(shard, r);
        Object.assign(this.metadata, r.metadata);
      }
      for (const [name, shard] of weightMap) {
        if (!this.readers.get(shard)?.has(name)) {
          throw new Error(`${indexPath}: tensor "${name}" is mapped to ${shard} but that shard has no such tensor`);
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

  private reader(name: string): SafetensorsReader {
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

  close(): void {
    for (const r of this.readers.values()) r.close();
  }
}

/** Opens the tensors of `dir` lazily (single file or shards). */
export function openTensorsFromDir(dir: string): TensorSource {
  const indexPath = path.join(dir, INDEX_FILE);
  if (fs.existsSync(path.join(dir, SINGLE_FILE))) return new ShardedSource(dir, null);
  if (fs.existsSync(indexPath)) return new ShardedSource(dir, readShardIndex(indexPath));
  throw new Error(`${dir}: no ${SINGLE_FILE} and no ${INDEX_FILE}`);
}

/** Loads every tensor of `dir` (single file or shards), upcast to float32. */
export function loadTensorsFromDir(dir: string): SafetensorsFile {
  const src = openTensorsFromDir(dir);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const n of src.names()) tensors.set(n, src.get(n));
    return { tensors, metadata: { ...src.metadata } };
  } finally {
    src.close();
  }
}
