// Builds the kernels of native/kernels_impl.h for WebAssembly SIMD128, with clang and wasm-ld (Debian: apt-get
// install clang lld), freestanding (native/wasm/include stands in for libc), in two variants:
//   native/wasm/recyclegpt-kernels.wasm          one thread, its own (unshared) memory: runs on any page
//   native/wasm/recyclegpt-kernels-threads.wasm  a shared memory (-matomics, --shared-memory), thread-local scratch
//                                               and threads.cc's pool of workers: cross-origin isolated pages, Node
// (a module that imports a shared memory cannot take an unshared one, and a page without cross-origin isolation
// cannot make a shared one: hence two files, as onnxruntime-web and wllama ship).
// The outputs are committed, so `npm install` needs no clang; test/wasm-build.test.ts rebuilds them and compares.
// The flags pin everything that reaches the bytes (no debug info, no paths, names stripped).
//
//   node scripts/build-wasm.mjs [--out-dir DIR] [--clang PATH] [--wasm-ld PATH]
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
const outDir = arg('--out-dir', join(root, 'native', 'wasm'));
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

// The variants: the extra compiler and linker flags and sources of each.
const VARIANTS = [
  {
    file: 'recyclegpt-kernels.wasm',
    cflags: ['-fno-threadsafe-statics'],
    sources: [],
    ldflags: [],
  },
  {
    file: 'recyclegpt-kernels-threads.wasm',
    // atomics (and bulk memory) make thread_local real per-thread storage and __atomic builtins real atomics
    cflags: ['-matomics', '-mmutable-globals', '-ftls-model=local-exec', '-DRG_WASM_THREADS'],
    sources: ['native/wasm/threads.cc'],
    ldflags: [
      '--shared-memory',
      '--max-memory=4294901760', // 65535 pages: what src/kernels/wasm.ts may reserve at most
      // what each worker's instance sets before it runs: its stack and its thread-local block
      '--export=__stack_pointer',
      '--export=__wasm_init_tls',
      '--export=__tls_size',
      '--export=__tls_align',
    ],
  },
];

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (install it: apt-get install clang lld)`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with status ${r.status}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'rg-wasm-'));
try {
  for (const [v, variant] of VARIANTS.entries()) {
    const objects = [...SOURCES, ...variant.sources].map((src, i) => {
      const obj = join(tmp, `${v}-${i}.o`);
      run(clang, [...CFLAGS, ...variant.cflags, '-isystem', 'native/wasm/include', '-c', src, '-o', obj]);
      return obj;
    });
    const out = join(outDir, variant.file);
    run(wasmLd, [...LDFLAGS, ...variant.ldflags, '-o', out, ...objects]);
    console.log(`wrote ${out}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
