// Builds the native kernel addon during `npm install`. A failed build is not fatal: the library then
// falls back to the plain-TypeScript reference backend and says so once at load time.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  console.warn('recyclegpt: node-gyp not found; the native addon was not built (the slow "ref" backend will be used).');
  process.exit(0);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { stdio: 'inherit' });
if (r.status !== 0) {
  console.warn('recyclegpt: building the native addon failed; the slow "ref" backend will be used.');
}
process.exit(0);
