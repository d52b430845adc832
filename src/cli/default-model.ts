/** Where the shipped default model lives: <package root>/models/<DEFAULT_MODEL_NAME>. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../node/package-root.js';

export { packageRoot }; // one definition (src/node/package-root.ts); re-exported for existing importers

export const DEFAULT_MODEL_NAME = 'recycle-small';

/** The models shipped in <package root>/models (each a folder with a config.json). */
export function shippedModelNames(): string[] {
  const dir = join(packageRoot(), 'models');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => existsSync(join(dir, n, 'config.json')))
    .sort();
}

/**
 * Resolve `--model`: a directory; else the name of a shipped model (`--model recycle-deep`); nothing: the shipped
 * default. A name that is neither gives an error listing the shipped models.
 */
export function resolveModelDir(model: string | undefined): string {
  if (model) {
    if (existsSync(model)) return model;
    if (/[\\/]/.test(model)) throw new Error(`--model ${model}: no such directory`);
    const shipped = join(packageRoot(), 'models', model);
    if (existsSync(join(shipped, 'config.json'))) return shipped;
    throw new Error(
      `--model ${model}: no such directory, and no shipped model of that name ` +
        `(shipped: ${shippedModelNames().join(', ') || 'none'})`,
    );
  }
  const dir = join(packageRoot(), 'models', DEFAULT_MODEL_NAME);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`no --model given and the default model is not installed at ${dir}`);
  }
  return dir;
}
