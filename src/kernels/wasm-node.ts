/**
 * The wasm backend in Node: the compiled kernels read from the package (native/wasm/) and compiled once per process,
 * synchronously, so `createBackend({kind: 'wasm'})` stays synchronous like the others. Node can always share memory,
 * so this is the threaded build: `threads` (or `setThreads` later) starts worker_threads on the backend's memory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../node/package-root.js';
import {
  createWasmBackendFromModule,
  WASM_MAX_MEMORY_BYTES,
  type WasmBackend,
  type WasmBackendOptions,
  type WasmStartWorker,
} from './wasm.js';

const compiled = new Map<boolean, WebAssembly.Module>();

/** The path of the compiled kernels in this package: the one-thread build, or the threaded one. */
export function wasmKernelsFile(threads = false): string {
  return join(packageRoot(), 'native', 'wasm', threads ? 'recyclegpt-kernels-threads.wasm' : 'recyclegpt-kernels.wasm');
}

/** The kernels' workers on worker_threads: unref'd (they never keep the process alive), errors kept off stderr. */
export const startNodeWorker: WasmStartWorker = (source, init) => {
  const w = new Worker(`${source}\nrgWorker(require('node:worker_threads').workerData);\n`, {
    eval: true,
    workerData: init,
    name: `recyclegpt-kernels-${init.index}`,
  });
  w.unref();
  w.on('error', () => {}); // a worker that fails leaves its shares to the others (the caller takes them)
  return w;
};

/**
 * A fresh wasm backend (its own memory), from the package's kernels: the threaded build unless `threaded: false`.
 * Memory defaults to the most a module can address (4 GiB less 64 KiB): Node reserves it as address space and
 * touches pages only as they are used.
 */
export function createNodeWasmBackend(opts: WasmBackendOptions & { threaded?: boolean } = {}): WasmBackend {
  const threaded = opts.threaded ?? true;
  let module = compiled.get(threaded);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(wasmKernelsFile(threaded)));
    compiled.set(threaded, module);
  }
  return createWasmBackendFromModule(module, {
    memoryBytes: WASM_MAX_MEMORY_BYTES,
    startWorker: startNodeWorker,
    ...opts,
  });
}
