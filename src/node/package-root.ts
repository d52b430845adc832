/**
 * The package root (Node only): the nearest folder above this module holding both package.json and binding.gyp,
 * which is the repository under tsx (src/node/) and the installed package when compiled (dist/node/). The one
 * definition: the addon loader, the CLI (version, shipped models) and tests all resolve files from it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function packageRoot(): string {
  if (cached !== null) return cached;
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return (cached = dir);
    const up = dirname(dir);
    if (up === dir)
      throw new Error(`cannot find the recyclegpt package root (package.json and binding.gyp) above ${here}`);
    dir = up;
  }
}
