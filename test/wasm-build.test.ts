/**
 * The committed WebAssembly kernels (native/wasm/recyclegpt-kernels.wasm and recyclegpt-kernels-threads.wasm, what
 * `npm install` ships without a compiler) are what their source builds: `npm run build:wasm` into a temporary folder
 * must reproduce them byte for byte. Needs clang and wasm-ld (Debian: apt-get install clang lld; .ci/run installs
 * them); skipped, saying so, only where they are absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernelsFile } from '../src/kernels/wasm-node.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const has = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
const missing = ['clang', 'wasm-ld'].filter((t) => !has(t));
const skip = missing.length ? `${missing.join(' and ')} not installed (apt-get install clang lld)` : false;

test('rebuilding the wasm kernels from source reproduces the committed file byte for byte', { skip }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rg-wasm-test-'));
  try {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-wasm.mjs'), '--out-dir', tmp], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `build-wasm failed:\n${r.stdout}\n${r.stderr}`);
    const clang = spawnSync('clang', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
    for (const threads of [false, true]) {
      const file = wasmKernelsFile(threads);
      const built = readFileSync(join(tmp, basename(file))),
        committed = readFileSync(file);
      assert.ok(
        built.equals(committed),
        `native/wasm/${basename(file)} (${committed.length} bytes) differs from a fresh build (${built.length} ` +
          `bytes, ${clang}): run "npm run build:wasm" and commit the result`,
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
