/** Where the shipped default model lives: <package root>/models/<DEFAULT_MODEL_NAME>. */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_MODEL_NAME = 'recycle-small';

/** The package root: the nearest folder above this file holding package.json (works from src/ and dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the recyclegpt package root');
}

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
