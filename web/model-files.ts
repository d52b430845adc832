/**
 * The files of a model for RecycleGPT.fromBytes: the shipped model fetched from the demo server (web/vite.config.ts
 * serves the repository's models/ folder at /models/), or a folder the user picked (an <input webkitdirectory>).
 */
import type { ModelBytes } from '../src/core.js';

export const SHIPPED_MODEL = 'recycle-small';

async function fetchBytes(url: string, required: boolean): Promise<Uint8Array | null> {
  const res = await fetch(url);
  if (res.status === 404 && !required) return null;
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** The shipped model's files, from this server (no other network access). */
export async function fetchShippedModel(): Promise<{ name: string; files: ModelBytes; bytes: number }> {
  const base = `/models/${SHIPPED_MODEL}/`;
  const [config, weights, tokenizer] = await Promise.all([
    fetchBytes(`${base}config.json`, true),
    fetchBytes(`${base}model.safetensors`, true),
    fetchBytes(`${base}tokenizer.json`, false),
  ]);
  return {
    name: `models/${SHIPPED_MODEL}`,
    files: { config: config!, weights: weights!, tokenizer },
    bytes: weights!.length,
  };
}

/** The model in a picked folder: config.json, model.safetensors or an index and its shards, tokenizer files. */
export async function readModelFolder(list: FileList): Promise<{ name: string; files: ModelBytes; bytes: number }> {
  const byName = new Map<string, File>();
  for (const f of Array.from(list)) byName.set(f.name, f); // top-level names (webkitRelativePath adds the folder)
  const folder = list[0]?.webkitRelativePath.split('/')[0] ?? 'the folder';
  const read = async (name: string): Promise<Uint8Array | null> => {
    const f = byName.get(name);
    return f ? new Uint8Array(await f.arrayBuffer()) : null;
  };
  const config = await read('config.json');
  if (!config) throw new Error(`${folder}: no config.json`);
  let weights: ModelBytes['weights'];
  let bytes = 0;
  const single = await read('model.safetensors');
  if (single) {
    weights = single;
    bytes = single.length;
  } else {
    const index = await read('model.safetensors.index.json');
    if (!index) throw new Error(`${folder}: no model.safetensors or model.safetensors.index.json`);
    const shards: Record<string, Uint8Array> = {};
    for (const [name, f] of byName) {
      if (!/\.safetensors$/.test(name)) continue;
      shards[name] = new Uint8Array(await f.arrayBuffer());
      bytes += f.size;
    }
    weights = { index, shards };
  }
  return {
    name: folder,
    files: {
      config,
      weights,
      tokenizer: await read('tokenizer.json'),
      tokenizerConfig: await read('tokenizer_config.json'),
    },
    bytes,
  };
}
