// Builds native/wasm/recyclegpt-kernels.wasm: the kernels of native/kernels_impl.h for WebAssembly SIMD128, with
// clang and wasm-ld (Debian: apt-get install clang lld), freestanding (native/wasm/include stands in for libc).
// The output is committed, so `npm install` needs no clang; test/wasm-build.test.ts rebuilds it and compares.
// The flags pin everything that reaches the bytes (no debug info, no paths, names stripped).
//
//   node scripts/build-wasm.mjs [--out FILE] [--clang PATH] [--wasm-ld PATH]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const out = arg('--out', join(root, 'native', 'wasm', 'recyclegpt-kernels.wasm'));
const clang = arg('--clang', process.env.CLANG ?? 'clang');
const wasmLd = arg('--wasm-ld', process.env.WASM_LD ?? 'wasm-ld');

const SOURCES = ['native/wasm/kernels_wasm.cc', 'native/wasm/runtime.cc', 'native/kernels_common.cc'];
const CFLAGS = [
  '--target=wasm32',
  '-std=c++17',
  '-O3',
  '-msimd128', // SIMD128: every engine since 2021
  '-mbulk-memory', // memory.copy / memory.fill for memcpy / memset
  '-ffreestanding',
  '-nostdlib',
  '-nostdinc++',
  '-fno-exceptions',
  '-fno-rtti',
  '-fno-threadsafe-statics',
  '-ffp-contract=off', // as the native build: a multiply-add is fused only where the code says so (never here)
  '-fno-math-errno',
  '-Wall',
  '-Wno-unused-function',
  '-Werror',
];
const LDFLAGS = [
  '--no-entry',
  '--import-memory', // the JavaScript side makes the memory (src/kernels/wasm.ts: reserved up front)
  '--export-table', // kernels are reached through the function table
  '--stack-first', // a stack overflow traps instead of running into data
  '-z',
  'stack-size=1048576',
  '--strip-all',
];

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (install it: apt-get install clang lld)`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with status ${r.status}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'rg-wasm-'));
try {
  const objects = SOURCES.map((src, i) => {
    const obj = join(tmp, `${i}.o`);
    run(clang, [...CFLAGS, '-isystem', 'native/wasm/include', '-c', src, '-o', obj]);
    return obj;
  });
  run(wasmLd, [...LDFLAGS, '-o', out, ...objects]);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`wrote ${out}`);
