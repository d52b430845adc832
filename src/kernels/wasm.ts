/**
 * The "wasm" backend: the native kernels' C++ (native/kernels_impl.h) compiled to WebAssembly with SIMD128
 * (native/simd_wasm.h, native/wasm/, `npm run build:wasm`), behind the Backend interface. It runs wherever
 * WebAssembly SIMD does (browsers, workers, Node); nothing here imports `node:` (it is part of `recyclegpt/core`).
 *
 * Memory: each backend instantiates the module with its own WebAssembly.Memory, reserved up front at `memoryBytes`
 * and never grown, because growing a (non-shared) memory detaches every typed array viewing it and the engine keeps
 * views for a model's life. `alloc` hands out views of that memory (weights, KV caches, scratch), so the kernels
 * read them in place; arrays from elsewhere are copied in for the call (and written ones copied back), which is
 * correct but slow: a model loaded with this backend's allocator never pays it. Allocations are never freed; they
 * go when the backend does (a fresh backend per model). One thread: the pool of the wasm build runs a job's parts
 * one after another.
 */
import type { Allocator, Backend, WeightArg } from './backend.js';
import { KERNEL_NAMES, withArgChecks, type KernelName } from './validate.js';

/**
 * The compiled kernels in the package (src/kernels or dist/kernels → native/wasm), resolved when first needed, not at
 * load: a bundle without import.meta (an IIFE) still loads and can pass its own `kernels`. Bundlers that follow
 * `new URL(…, import.meta.url)` (Vite, webpack 5) ship the file.
 */
export function wasmKernelsUrl(): URL {
  return new URL('../../native/wasm/recyclegpt-kernels.wasm', import.meta.url);
}

const PAGE = 65536;
const DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024;
/** The most memory a backend may reserve: 4 GiB less a page, so addresses stay below 2^32. */
export const WASM_MAX_MEMORY_BYTES = 65536 * PAGE - PAGE;
const MAX_MEMORY_BYTES = WASM_MAX_MEMORY_BYTES;
const DTYPE_CODE = { f32: 0, f16: 1, bf16: 2, q8_0: 3 } as const; // kernels.h's WeightDtype

export interface WasmBackendOptions {
  /**
   * Bytes of WebAssembly memory reserved for this backend (default 1 GiB, at most 4 GiB less 64 KiB): the model's
   * weights, KV caches and scratch must fit. Pages are touched only when used, so a generous size costs address
   * space, not RAM.
   */
  memoryBytes?: number;
}

/** The wasm backend plus what it adds to the Backend interface. */
export interface WasmBackend extends Backend {
  readonly name: 'wasm';
  /** Bytes of WebAssembly memory reserved (see WasmBackendOptions). */
  readonly memoryBytes: number;
  /** Bytes of that memory in use so far. */
  usedBytes(): number;
  /** Bytes copied in so far for arrays from outside the module's memory (0 when everything came from `alloc`). */
  stagedBytes(): number;
  /**
   * Seconds of each of `repeats` streaming reads of a `bytes` buffer in the module's memory (the bench's
   * read-bandwidth probe, as the native addon's readBandwidth); the buffer is freed afterwards.
   */
  readBandwidth(bytes: number, repeats: number): number[];
}

interface KernelExports {
  memory: WebAssembly.Memory;
  __indirect_function_table: WebAssembly.Table;
  rg_kernel_count(): number;
  rg_kernel_name(i: number): number;
  rg_kernel_args(i: number): number;
  rg_kernel_fn(i: number): number;
  rg_alloc_zeroed(bytes: number): number;
  rg_malloc(bytes: number): number;
  rg_free(p: number): void;
  rg_read_sum(x: number, n: number): number;
  rg_heap_end(): number;
}

type TypedArray = Float32Array | Int32Array | Uint16Array | Int8Array;
type RawKernel = (...args: unknown[]) => unknown;

function checkMemoryBytes(n: number): number {
  if (!Number.isInteger(n) || n < 16 * PAGE || n > MAX_MEMORY_BYTES)
    throw new Error(`createWasmBackend: memoryBytes must be an integer ${16 * PAGE}..${MAX_MEMORY_BYTES}, got ${n}`);
  return n;
}

/** A fresh wasm backend from the compiled module (synchronous; `createWasmBackend` fetches and compiles first). */
export function createWasmBackendFromModule(module: WebAssembly.Module, opts: WasmBackendOptions = {}): WasmBackend {
  const memoryBytes = checkMemoryBytes(opts.memoryBytes ?? DEFAULT_MEMORY_BYTES);
  const pages = Math.floor(memoryBytes / PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  let report = '';
  const cString = (p: number): string => {
    const bytes = new Uint8Array(memory.buffer, p);
    return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  };
  const env = {
    memory,
    // the float64 functions the kernels take from JavaScript (native/wasm/include/math.h): ref's bits
    log: Math.log,
    pow: Math.pow,
    cos: Math.cos,
    sin: Math.sin,
    report: (p: number) => {
      report = cString(p);
    },
  };
  const ex = new WebAssembly.Instance(module, { env }).exports as unknown as KernelExports;
  const buffer = memory.buffer; // never detached: the memory never grows
  const u8 = new Uint8Array(buffer);
  const i32 = new Int32Array(buffer);

  const allocBytes = (bytes: number, what: string): number => {
    const p = bytes <= MAX_MEMORY_BYTES ? ex.rg_alloc_zeroed(bytes) >>> 0 : 0;
    if (p === 0)
      throw new Error(
        `wasm backend: out of memory allocating ${what} (${bytes} bytes; ${usedBytes()} of ${memoryBytes} in use); ` +
          'create the backend with a larger memoryBytes',
      );
    return p;
  };
  const usedBytes = (): number => ex.rg_heap_end() >>> 0;
  const alloc: Allocator = {
    f32: (n) => new Float32Array(buffer, allocBytes(n * 4, `f32[${n}]`), n),
    u16: (n) => new Uint16Array(buffer, allocBytes(n * 2, `u16[${n}]`), n),
    i32: (n) => new Int32Array(buffer, allocBytes(n * 4, `i32[${n}]`), n),
    i8: (n) => new Int8Array(buffer, allocBytes(n, `i8[${n}]`), n),
  };
  // One WeightRef {int32 dtype, const void* data, const uint16_t* scales} per call (a kernel takes one weight).
  const weightRef = allocBytes(16, 'a weight handle');

  // Arrays outside the module's memory are copied into malloc'd blocks for the call; `written` ones copied back.
  const staged: { p: number; src: TypedArray; written: boolean }[] = [];
  let stagedTotal = 0;
  const address = (arr: TypedArray | null, written: boolean, op: string): number => {
    if (arr === null) return 0;
    if (arr.buffer === buffer) return arr.byteOffset;
    const p = ex.rg_malloc(arr.byteLength) >>> 0;
    if (p === 0) throw new Error(`wasm backend: ${op}: out of memory staging a ${arr.byteLength}-byte array`);
    u8.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), p);
    stagedTotal += arr.byteLength;
    staged.push({ p, src: arr, written });
    return p;
  };
  const unstage = (): void => {
    for (const { p, src, written } of staged) {
      if (written) new Uint8Array(src.buffer, src.byteOffset, src.byteLength).set(u8.subarray(p, p + src.byteLength));
      ex.rg_free(p);
    }
    staged.length = 0;
  };
  const weightAddress = (w: WeightArg, op: string): number => {
    const h = w instanceof Float32Array ? { dtype: 'f32' as const, data: w } : w;
    i32[weightRef >> 2] = DTYPE_CODE[h.dtype];
    i32[(weightRef >> 2) + 1] = address(h.data, false, op);
    i32[(weightRef >> 2) + 2] = h.dtype === 'q8_0' ? address(h.scales, false, op) : 0;
    return weightRef;
  };

  // kernel name → a function taking the Backend's arguments, marshalled by the argument kinds the module reports
  const kernels: Partial<Record<KernelName, RawKernel>> = {};
  for (let i = 0; i < ex.rg_kernel_count(); i++) {
    const name = cString(ex.rg_kernel_name(i)) as KernelName;
    const kinds = cString(ex.rg_kernel_args(i));
    const fn = ex.__indirect_function_table.get(ex.rg_kernel_fn(i)) as RawKernel;
    const args: unknown[] = new Array(kinds.length);
    kernels[name] = (...js: unknown[]) => {
      try {
        for (let a = 0; a < kinds.length; a++) {
          const v = js[a];
          switch (kinds[a]) {
            case 'r':
            case 'i':
              args[a] = address(v as TypedArray | null, false, name);
              break;
            case 'w':
              args[a] = address(v as TypedArray, true, name);
              break;
            case 'W':
              args[a] = weightAddress(v as WeightArg, name);
              break;
            case 'b':
              args[a] = v ? 1 : 0;
              break;
            case 'x':
              args[a] = 0;
              break;
            default: // n, f, d: numbers as they are
              args[a] = v;
          }
        }
        const result = fn(...args);
        unstage();
        return result;
      } catch (err) {
        if (!(err instanceof WebAssembly.RuntimeError)) unstage(); // a JS-side error: the module is intact
        staged.length = 0; // after a trap the module may be in any state: its blocks are not touched again
        if (err instanceof WebAssembly.RuntimeError && report)
          throw new Error(`wasm backend: ${name}: ${report.replace(' %zu bytes', '')} (memoryBytes ${memoryBytes})`, {
            cause: err,
          });
        throw err;
      }
    };
  }
  for (const k of KERNEL_NAMES)
    if (!kernels[k]) throw new Error(`the wasm kernels have no kernel "${k}" (rebuild them)`);

  return withArgChecks<WasmBackend>({
    name: 'wasm',
    // f16 is widened to f32 at load: SIMD128 has no half-precision conversion, and the ~10 integer and float
    // operations per 4 weights that replace it made f16 products ~1.7x slower than f32 end to end (shipped model,
    // Node 20). bf16 (one shift) and q8_0 are read as stored.
    weightDtypes: ['f32', 'bf16', 'q8_0'],
    alloc,
    memoryBytes: pages * PAGE,
    usedBytes,
    stagedBytes: () => stagedTotal,
    readBandwidth(bytes: number, repeats: number): number[] {
      const n = Math.floor(bytes / 4);
      const p = ex.rg_malloc(n * 4) >>> 0;
      if (p === 0) throw new Error(`wasm backend: readBandwidth: out of memory allocating ${n * 4} bytes`);
      new Float32Array(buffer, p, n).fill(1); // touch every page
      const secs: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        ex.rg_read_sum(p, n);
        secs.push((performance.now() - t0) / 1000);
      }
      ex.rg_free(p);
      return secs;
    },
    threads: () => 1,
    setThreads(n: number): void {
      if (!Number.isInteger(n) || n < 1 || n > 256)
        throw new Error(`setThreads: n must be an integer 1..256, got ${n}`);
      // one thread: the wasm build has no worker pool yet, so the count is accepted and ignored (as ref does)
    },
    ...(kernels as Pick<Backend, KernelName>),
  });
}

/** Where the compiled kernels come from: their bytes, a compiled module, or a URL to fetch (default: the package's). */
export type WasmKernelsSource = BufferSource | WebAssembly.Module | URL | string;

/** A fresh wasm backend: compiles (or fetches and compiles) the kernels, then instantiates them. */
export async function createWasmBackend(
  opts: WasmBackendOptions & { kernels?: WasmKernelsSource } = {},
): Promise<WasmBackend> {
  const src = opts.kernels ?? wasmKernelsUrl();
  let module: WebAssembly.Module;
  if (src instanceof WebAssembly.Module) module = src;
  else if (typeof src === 'string' || src instanceof URL) {
    const res = await fetch(src);
    if (!res.ok) throw new Error(`createWasmBackend: fetching ${String(src)} gave HTTP ${res.status}`);
    module = await WebAssembly.compile(await res.arrayBuffer());
  } else module = await WebAssembly.compile(src);
  return createWasmBackendFromModule(module, opts);
}
