/**
 * The server tests' model: a temporary copy of the shipped small model (config.json, model.safetensors,
 * tokenizer.json) with extra files beside it (a tokenizer_config.json with a chat template, a generation_config.json).
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecycleGPT } from '../../src/generate/recyclegpt.js';
import { packageRoot } from '../../src/node/package-root.js';

/** The shipped small model's folder. */
export const smallModelDir = (): string => join(packageRoot(), 'models', 'recycle-small');

/**
 * A copy of the shipped small model with `extra` files (name → JSON value) in a new temporary folder, loaded;
 * `remove()` deletes the folder.
 */
export async function smallModelWith(
  extra: Record<string, unknown>,
): Promise<{ model: RecycleGPT; dir: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'recyclegpt-small-'));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
    copyFileSync(join(smallModelDir(), f), join(dir, f));
  for (const [name, value] of Object.entries(extra)) writeFileSync(join(dir, name), JSON.stringify(value));
  return { model: await RecycleGPT.load(dir), dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
