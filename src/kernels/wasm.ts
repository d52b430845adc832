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
 * go when the backend does (a fresh backend per model).
 *
 * Threads: two builds of the kernels. recyclegpt-kernels.wasm has its own unshared memory and one thread (the pool
 * runs a job's parts one after another); recyclegpt-kernels-threads.wasm imports a shared memory (a
 * SharedArrayBuffer: Node, or a cross-origin isolated page) and is instantiated once here and once in each of
 * `threads − 1` workers (Web Workers, or worker_threads through `startWorker`), all on that one memory. Each worker's
 * instance gets its own stack and thread-local block (the kernels' per-thread scratch) from this backend's heap,
 * then sits in the module's rg_worker_main: kernels split their output rows / columns (never a sum) into chunks that
 * the threads claim through atomics on the shared memory (native/wasm/threads.cc), so a kernel call costs no
 * message and its result does not depend on the thread count (bit for bit: test/wasm-threads.test.ts). The calling
 * thread takes a share too, and takes every share no worker has claimed, so workers that are still starting or
 * asleep never hold a call up. Where the calling thread may not block (a browser page's main thread), it spins while
 * the last running shares finish (microseconds) instead of sleeping; workers spin 0.2 ms after a job, then sleep.
 */
import type { Allocator, Backend, WeightArg } from './backend.js';
import { KERNEL_NAMES, withArgChecks, type KernelName } from './validate.js';

/**
 * The compiled kernels in the package (src/kernels or dist/kernels → native/wasm), resolved when first needed, not at
 * load: a bundle without import.meta (an IIFE) still loads and can pass its own `kernels`. Bundlers that follow
 * `new URL(…, import.meta.url)` (Vite, webpack 5) ship the file.
 */
export function wasmKernelsUrl(threads = false): URL {
  return threads
    ? new URL('../../native/wasm/recyclegpt-kernels-threads.wasm', import.meta.url)
    : new URL('../../native/wasm/recyclegpt-kernels.wasm', import.meta.url);
}

/**
 * Whether this context can share a WebAssembly memory with workers: SharedArrayBuffer exists and, in a browser, the
 * page is cross-origin isolated (COOP / COEP headers; `npm run demo` sends them). Node: always.
 */
export function wasmThreadsAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  return isolated !== false;
}

/** What a worker of the threaded kernels receives (structured-cloned: the module and the shared memory). */
export interface WasmWorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The top of this worker's stack (its own region of the memory) and its thread-local block. */
  stackTop: number;
  tls: number;
  index: number;
}

/**
 * Starts a worker that evaluates `source` (a classic script defining `rgWorker(init)`) and calls `rgWorker(init)`;
 * returns something to terminate it with. The default makes a Web Worker from a blob: URL where `Worker` exists;
 * Node passes one on worker_threads (src/kernels/wasm-node.ts).
 */
export type WasmStartWorker = (source: string, init: WasmWorkerInit) => { terminate(): unknown };

// The worker's code, as a string so that it needs no file of its own (bundlers, blob: URLs, worker_threads' eval):
// one instance of the threaded kernels on the shared memory, its own stack pointer and thread-local block, then the
// pool's loop. A trap inside a kernel's share (out of memory) is reported to the pool, which makes the calling
// thread's call trap too, and the loop is entered again on a fresh stack.
const WORKER_SOURCE = `'use strict';
function rgWorker(d) {
  const env = { memory: d.memory, log: Math.log, pow: Math.pow, cos: Math.cos, sin: Math.sin,
    report() {}, now: () => performance.now() };
  const ex = new WebAssembly.Instance(d.module, { env }).exports;
  ex.__wasm_init_tls(d.tls);
  for (;;) {
    ex.__stack_pointer.value = d.stackTop;
    try {
      ex.rg_worker_main();
      return;
    } catch (err) {
      ex.rg_worker_failed();
    }
  }
}
`;

function defaultStartWorker(): WasmStartWorker | null {
  const g = globalThis as { Worker?: new (url: string, opts?: { name?: string }) => WebWorkerLike };
  if (typeof g.Worker !== 'function' || typeof Blob === 'undefined' || typeof URL.createObjectURL !== 'function')
    return null;
  const WorkerClass = g.Worker;
  return (source, init) => {
    const code = `${source}\nself.onmessage = (e) => { self.onmessage = null; rgWorker(e.data); };\n`;
    const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
    const w = new WorkerClass(url, { name: `recyclegpt-kernels-${init.index}` });
    w.postMessage(init);
    return {
      terminate: () => {
        w.terminate();
        URL.revokeObjectURL(url);
      },
    };
  };
}

interface WebWorkerLike {
  postMessage(data: unknown): void;
  terminate(): void;
}

/** Whether this thread may block in Atomics.wait (not a browser page's main thread). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

const PAGE = 65536;
const DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024;
/** The most memory a backend may reserve: 4 GiB less a page, so addresses stay below 2^32. */
export const WASM_MAX_MEMORY_BYTES = 65536 * PAGE - PAGE;
const MAX_MEMORY_BYTES = WASM_MAX_MEMORY_BYTES;
const DTYPE_CODE = {
  f32: 0,
  f16: 1,
  bf16: 2,
  q8_0: 3,
  q4_0: 4,
  f16_panels: 5,
  bf16_panels: 6,
  q8_0_panels: 7,
} as const; // kernels.h

export interface WasmBackendOptions {
  /**
   * Bytes of WebAssembly memory reserved for this backend (default 1 GiB, at most 4 GiB less 64 KiB): the model's
   * weights, KV caches and scratch must fit. Pages are touched only when used, so a generous size costs address
   * space, not RAM.
   */
  memoryBytes?: number;
  /**
   * Kernel threads, 1..256 (default 1): the calling thread plus `threads − 1` workers on a shared memory. Needs the
   * threaded kernels (what `createWasmBackend` picks where `wasmThreadsAvailable()`, and Node's backend always);
   * with the one-thread kernels the count is accepted and kernels run on one thread (`threads()` says 1).
   */
  threads?: number;
  /** How workers are started (default: Web Workers from a blob: URL; Node: worker_threads). */
  startWorker?: WasmStartWorker;
  /** Bytes of stack per worker (default 1 MiB, as the calling thread's). */
  workerStackBytes?: number;
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
  /** Whether these are the threaded kernels (a shared memory; `setThreads` starts workers). */
  readonly threaded: boolean;
  /**
   * Workers running now (started workers that have entered the pool's loop); 0 once closed, since a closed pool
   * hands no share to a worker even while a terminated one is still unwinding.
   */
  workers(): number;
  /** Shares of kernel calls (tids) that workers have run so far (0 with one thread). */
  workerShares(): number;
  /**
   * Resolves once every worker asked for so far is running (or after `timeoutMs`, default 10 s), with the number
   * running. Kernels never wait for workers (the calling thread takes the shares no worker has claimed), so this is
   * for callers that want the threads in use from the first call: tests, benchmarks, a page reporting its threads.
   * A browser page must return to its event loop for workers to start: await this before a long synchronous run.
   */
  ready(timeoutMs?: number): Promise<number>;
  /** Stops and terminates the workers; kernels run on the calling thread from then on. */
  close(): void;
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
  rg_set_threads(n: number): void;
  // the threaded kernels only
  __stack_pointer?: WebAssembly.Global;
  __tls_size?: WebAssembly.Global;
  __tls_align?: WebAssembly.Global;
  __wasm_init_tls?(p: number): void;
  rg_pool_stop?(): void;
  rg_pool_set_caller_can_wait?(yes: number): void;
  rg_pool_workers?(): number;
  rg_pool_worker_tids?(): number;
}

type TypedArray = Float32Array | Int32Array | Uint16Array | Int8Array | Uint8Array;
type RawKernel = (...args: unknown[]) => unknown;

function checkMemoryBytes(n: number): number {
  if (!Number.isInteger(n) || n < 16 * PAGE || n > MAX_MEMORY_BYTES)
    throw new Error(`createWasmBackend: memoryBytes must be an integer ${16 * PAGE}..${MAX_MEMORY_BYTES}, got ${n}`);
  return n;
}

function checkThreads(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`${what}: threads must be an integer 1..256, got ${n}`);
  return n;
}

/** Whether `module` is the threaded build of the kernels (it imports a shared memory). */
export function isThreadedWasmKernels(module: WebAssembly.Module): boolean {
  return WebAssembly.Module.exports(module).some((e) => e.name === 'rg_worker_main');
}

/** A fresh wasm backend from the compiled module (synchronous; `createWasmBackend` fetches and compiles first). */
export function createWasmBackendFromModule(module: WebAssembly.Module, opts: WasmBackendOptions = {}): WasmBackend {
  const memoryBytes = checkMemoryBytes(opts.memoryBytes ?? DEFAULT_MEMORY_BYTES);
  if (opts.threads !== undefined) checkThreads(opts.threads, 'createWasmBackend');
  const stackBytes = opts.workerStackBytes ?? 2 ** 20;
  if (!Number.isInteger(stackBytes) || stackBytes < 65536 || stackBytes % 16 !== 0)
    throw new Error(`createWasmBackend: workerStackBytes must be a multiple of 16, at least 65536, got ${stackBytes}`);
  const threaded = isThreadedWasmKernels(module);
  const pages = Math.floor(memoryBytes / PAGE);
  const memory = new WebAssembly.Memory(
    threaded ? { initial: pages, maximum: pages, shared: true } : { initial: pages, maximum: pages },
  );
  let report = '';
  const cString = (p: number): string => {
    const bytes = new Uint8Array(memory.buffer, p);
    // copied out first: TextDecoder refuses views of a SharedArrayBuffer
    return new TextDecoder().decode(bytes.slice(0, bytes.indexOf(0)));
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
    now: () => performance.now(), // the threaded pool's spin deadlines
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
    u8: (n) => new Uint8Array(buffer, allocBytes(n, `u8[${n}]`), n),
  };
  // One WeightRef {int32 dtype, const void* data, const uint16_t* scales} per call (a kernel takes one weight).
  const weightRef = allocBytes(16, 'a weight handle');

  // ---- threads (the threaded kernels only) ----
  const tlsBlock = (): number => {
    const size = Number(ex.__tls_size!.value),
      align = Number(ex.__tls_align!.value);
    if (align > 64) throw new Error(`wasm backend: thread-local alignment ${align} > 64`);
    return allocBytes(Math.max(size, 1), 'a thread-local block');
  };
  if (threaded) {
    ex.__wasm_init_tls!(tlsBlock()); // this thread's own block, like every worker's
    ex.rg_pool_set_caller_can_wait!(canBlock() ? 1 : 0);
  }
  const startWorker = opts.startWorker ?? defaultStartWorker();
  const workers: { terminate(): unknown }[] = [];
  let threads = 1;
  let closed = false;
  const setThreads = (n: number): void => {
    checkThreads(n, 'setThreads');
    // the one-thread kernels: accepted and ignored (as ref does)
    if (!threaded || startWorker === null || closed) return;
    while (workers.length < n - 1) {
      const stack = allocBytes(stackBytes, 'a worker stack');
      const init: WasmWorkerInit = {
        module,
        memory,
        stackTop: stack + stackBytes,
        tls: tlsBlock(),
        index: workers.length,
      };
      workers.push(startWorker(WORKER_SOURCE, init));
    }
    threads = n;
    ex.rg_set_threads(n);
  };

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
    i32[(weightRef >> 2) + 2] = 'scales' in h ? address(h.scales, false, op) : 0;
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
  if (opts.threads !== undefined) setThreads(opts.threads);

  return withArgChecks<WasmBackend>({
    name: 'wasm',
    // f16 is widened to f32 at load: SIMD128 has no half-precision conversion, and the ~10 integer and float
    // operations per 4 weights that replace it made f16 products ~1.7x slower than f32 end to end (shipped model,
    // Node 20). bf16 (one shift), q8_0 and q4_0 are read as stored.
    weightDtypes: ['f32', 'bf16', 'q8_0', 'q4_0'],
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
    threads: () => threads,
    setThreads,
    threaded,
    workers: () => (threaded && !closed ? ex.rg_pool_workers!() : 0),
    workerShares: () => (threaded ? ex.rg_pool_worker_tids!() >>> 0 : 0),
    async ready(timeoutMs = 10_000): Promise<number> {
      const until = performance.now() + timeoutMs;
      const running = (): number => (threaded ? ex.rg_pool_workers!() : 0);
      while (running() < workers.length && !closed && performance.now() < until)
        await new Promise((resolve) => setTimeout(resolve, 2));
      return running();
    },
    close(): void {
      if (closed || !threaded) return;
      closed = true;
      ex.rg_pool_stop!();
      for (const w of workers) w.terminate();
      threads = 1;
      ex.rg_set_threads(1);
    },
    ...(kernels as Pick<Backend, KernelName>),
  });
}

/** Where the compiled kernels come from: their bytes, a compiled module, or a URL to fetch (default: the package's). */
export type WasmKernelsSource = BufferSource | WebAssembly.Module | URL | string;

/**
 * A fresh wasm backend: compiles (or fetches and compiles) the kernels, instantiates them, and with `threads` > 1
 * waits for its workers (`ready`). The default kernels are the threaded ones where `wasmThreadsAvailable()` (so
 * `setThreads` can add workers later), else the one-thread ones.
 */
export async function createWasmBackend(
  opts: WasmBackendOptions & { kernels?: WasmKernelsSource } = {},
): Promise<WasmBackend> {
  const src = opts.kernels ?? wasmKernelsUrl(wasmThreadsAvailable());
  let module: WebAssembly.Module;
  if (src instanceof WebAssembly.Module) module = src;
  else if (typeof src === 'string' || src instanceof URL) {
    const res = await fetch(src);
    if (!res.ok) throw new Error(`createWasmBackend: fetching ${String(src)} gave HTTP ${res.status}`);
    module = await WebAssembly.compile(await res.arrayBuffer());
  } else module = await WebAssembly.compile(src);
  const backend = createWasmBackendFromModule(module, opts);
  if (backend.threads() > 1) await backend.ready();
  return backend;
}
