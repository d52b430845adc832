/**
 * Which model directory a name means, for the CLI (`--model`) and the API (`RecycleGPT.load`) alike: an existing
 * directory; else the name of a model shipped in <package root>/models (`recycle-deep`); nothing: the shipped
 * default. A name that is neither is an error listing the shipped models.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';

export const DEFAULT_MODEL_NAME = 'recycle-large';

/** The models shipped in <package root>/models (each a folder with a config.json). */
export function shippedModelNames(): string[] {
  const dir = join(packageRoot(), 'models');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => existsSync(join(dir, n, 'config.json')))
    .sort();
}

/**
 * The directory `model` names. `label` starts the error messages: `--model` for the CLI, `RecycleGPT.load` for
 * the API. A name with a path separator is only ever a directory.
 */
export function resolveModelDir(model: string | undefined, label = '--model'): string {
  if (model !== undefined && model !== '') {
    if (existsSync(model)) {
      if (!statSync(model).isDirectory()) throw new Error(`${label} ${model}: is a file, not a model directory`);
      return model;
    }
    if (/[\\/]/.test(model)) throw new Error(`${label} ${model}: no such directory`);
    const shipped = join(packageRoot(), 'models', model);
    if (existsSync(join(shipped, 'config.json'))) return shipped;
    throw new Error(
      `${label} ${model}: no such directory, and no shipped model of that name ` +
        `(shipped: ${shippedModelNames().join(', ') || 'none'})`,
    );
  }
  const dir = join(packageRoot(), 'models', DEFAULT_MODEL_NAME);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`${label}: no model given and the default model is not installed at ${dir}`);
  }
  return dir;
}
