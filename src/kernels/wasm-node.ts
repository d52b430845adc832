/**
 * The wasm backend in Node: the compiled kernels read from the package (native/wasm/recyclegpt-kernels.wasm) and
 * compiled once per process, synchronously, so `createBackend({kind: 'wasm'})` stays synchronous like the others.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../node/package-root.js';
import {
  createWasmBackendFromModule,
  WASM_MAX_MEMORY_BYTES,
  type WasmBackend,
  type WasmBackendOptions,
} from './wasm.js';

let compiled: WebAssembly.Module | null = null;

/** The path of the compiled kernels in this package. */
export function wasmKernelsFile(): string {
  return join(packageRoot(), 'native', 'wasm', 'recyclegpt-kernels.wasm');
}

/**
 * A fresh wasm backend (its own memory), from the package's kernels. Memory defaults to the most a module can
 * address (4 GiB less 64 KiB): Node reserves it as address space and touches pages only as they are used.
 */
export function createNodeWasmBackend(opts: WasmBackendOptions = {}): WasmBackend {
  compiled ??= new WebAssembly.Module(readFileSync(wasmKernelsFile()));
  return createWasmBackendFromModule(compiled, { memoryBytes: WASM_MAX_MEMORY_BYTES, ...opts });
}
