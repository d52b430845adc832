/** Where the shipped default model lives: <package root>/models/<DEFAULT_MODEL_NAME>. */
import { existsSync } from 'node:fs';
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

/** Resolve `--model`: the given directory, or the shipped default (with a clear error if it is absent). */
export function resolveModelDir(model: string | undefined): string {
  if (model) return model;
  const dir = join(packageRoot(), 'models', DEFAULT_MODEL_NAME);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`no --model given and the default model is not installed at ${dir}`);
  }
  return dir;
}
