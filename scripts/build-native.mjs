// Builds the native kernel addon during `npm install`. A failed build is not fatal: the library then
// falls back to the plain-TypeScript reference backend and says so once at load time.
// Skipped when build/Release holds an addon built from the same sources for the same Node ABI with the same compiler
// (CXX and its --version) and flags (CXXFLAGS etc.) (build-stamp.mjs). `--print-digest` prints that digest, builds
// nothing.
// node-gyp: the one npm runs lifecycle scripts with (npm_config_node_gyp, npm's own copy), else one on the PATH.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compilerIdentity, filesUnder, inputsDigest, upToDate, writeStamp } from './build-stamp.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'recyclegpt_native.node');
const stamp = join(root, 'build', 'Release', 'recyclegpt-build-stamp.json');
// the C++ sources binding.gyp compiles (native/wasm/ is the WebAssembly build's, not the addon's)
const inputs = [join(root, 'binding.gyp'), ...filesUnder(join(root, 'native'), (n) => /\.(cc|h)$/.test(n))].filter(
  (f) => !f.startsWith(join(root, 'native', 'wasm')),
);
const digest = inputsDigest(root, inputs, {
  abi: process.versions.modules,
  napi: process.versions.napi,
  platform: process.platform,
  arch: process.arch,
  compiler: compilerIdentity(process.env),
});
if (process.argv.includes('--print-digest')) {
  console.log(digest);
  process.exit(0);
}
if (upToDate(stamp, digest, [addon])) process.exit(0);

const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { stdio: 'inherit', cwd: root })
  : spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', cwd: root, shell: process.platform === 'win32' });
if (r.error || r.status !== 0) {
  const why = r.error ? `node-gyp could not be started (${r.error.message})` : 'building the native addon failed';
  console.warn(`recyclegpt: ${why}; the slow "ref" backend will be used.`);
} else writeStamp(stamp, digest);
process.exit(0);
