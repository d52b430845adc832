/**
 * Loading the tensors of a model directory: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (Hugging Face layout: `{"metadata": {...}, "weight_map": {tensor: shard file}}`).
 * The index checks and the shard bookkeeping are those of tensor-source.ts, shared with weights held in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile } from './files.js';
import { SafetensorsReader, type LoadedTensor, type SafetensorsFile } from './safetensors.js';
import { INDEX_FILE, parseShardIndex, ShardSet, SINGLE_FILE, type TensorSource } from './tensor-source.js';

export { INDEX_FILE, SINGLE_FILE, type TensorSource } from './tensor-source.js';

/** Reads and checks an index file; returns tensor -> shard file name. */
export function readShardIndex(indexPath: string): Map<string, string> {
  return parseShardIndex(readJsonFile(indexPath, 'shard index'), indexPath);
}

function openShards(dir: string, weightMap: Map<string, string> | null): TensorSource {
  const indexPath = path.join(dir, INDEX_FILE);
  return new ShardSet(indexPath, weightMap, (shard) => {
    const p = path.join(dir, shard);
    if (weightMap !== null && !fs.existsSync(p)) {
      throw new Error(`${indexPath}: shard ${JSON.stringify(shard)} is listed but ${p} does not exist`);
    }
    return new SafetensorsReader(p);
  });
}

/** Opens the tensors of `dir` lazily (single file or shards). */
export function openTensorsFromDir(dir: string): TensorSource {
  const indexPath = path.join(dir, INDEX_FILE);
  if (fs.existsSync(path.join(dir, SINGLE_FILE))) return openShards(dir, null);
  if (fs.existsSync(indexPath)) return openShards(dir, readShardIndex(indexPath));
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
