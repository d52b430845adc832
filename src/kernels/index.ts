/**
 * Backend selection. `createBackend(opts)` makes a fresh backend with its own settings (several models in one
 * process each hold one); it never writes to stderr: a fallback is reported through `onWarning`. `getBackend()` is
 * the command line's process default, the only reader of RECYCLEGPT_BACKEND, RECYCLEGPT_THREADS and RECYCLEGPT_SIMD.
 */
import type { Backend } from './backend.js';
import { createRefBackend } from './ref.js';
import { createNativeBackend, loadNativeModule, type SimdPath } from './native.js';
import { createNodeWasmBackend } from './wasm-node.js';

export type { Backend, F32 } from './backend.js';
export type { SimdPath } from './native.js';

export type BackendKind = 'native' | 'ref' | 'wasm' | 'auto';

export interface BackendOptions {
  /**
   * "native" (an error if the addon does not load), "ref", "wasm" (the same C++ compiled to WebAssembly; threads on
   * worker_threads), or "auto" (default): native, else ref with a warning.
   */
  kind?: BackendKind;
  /**
   * Threads for parallel kernels, 1..256 (native default: every core this process may use; wasm default 1, more start
   * workers; ref: always 1).
   */
  threads?: number;
  /** The native instruction set (default: the best the CPU has; one it lacks is an error). Ignored by ref. */
  simd?: SimdPath;
  /** Receives what the caller should know, e.g. that "auto" fell back to the slow ref backend. */
  onWarning?: (message: string) => void;
}

const KINDS: readonly BackendKind[] = ['native', 'ref', 'wasm', 'auto'];
const SIMD_PATHS: readonly SimdPath[] = ['avx512', 'avx2', 'scalar'];

/** A fresh backend: nothing set on it (threads, SIMD path) is seen by another. */
export function createBackend(opts: BackendOptions = {}): Backend {
  const kind = opts.kind ?? 'auto';
  if (!KINDS.includes(kind))
    throw new Error(`createBackend: kind must be "native", "ref", "wasm" or "auto", got "${kind}"`);
  const { threads, simd } = opts;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256))
    throw new Error(`createBackend: threads must be an integer 1..256, got ${threads}`);
  if (simd !== undefined && !SIMD_PATHS.includes(simd))
    throw new Error(`createBackend: simd must be "avx512", "avx2" or "scalar", got "${simd}"`);
  if (kind === 'wasm') {
    return createNodeWasmBackend({ threads });
  }
  if (kind !== 'ref') {
    let loadError: string | null = null;
    try {
      loadNativeModule();
    } catch (err) {
      loadError = err instanceof Error ? err.message : String(err);
    }
    // Options the addon refuses (a SIMD path this CPU lacks) are the caller's error, not a reason to fall back.
    if (loadError === null) return createNativeBackend({ threads, simd });
    if (kind === 'native') throw new Error(`the native backend did not load: ${loadError}`);
    opts.onWarning?.(`native kernels unavailable (${loadError}); using the slow "ref" backend`);
  }
  const ref = createRefBackend();
  if (threads !== undefined) ref.setThreads(threads);
  return ref;
}

// ---- the process default (command line) -------------------------------------------------------------------------
let current: Backend | null = null;
let pendingWarnings: string[] = [];

export interface ProcessBackendOptions {
  /**
   * Receives the warnings of creating the process backend. A warning raised before any caller passed a callback
   * (a library call came first) is kept and handed to the first callback given.
   */
  onWarning?: (message: string) => void;
}

function envInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`${name} must be an integer 1..256, got "${text}"`);
  return n;
}

/**
 * The process-wide backend of the command line: made once, from RECYCLEGPT_BACKEND (ref | native | wasm | auto,
 * default auto), RECYCLEGPT_THREADS and RECYCLEGPT_SIMD. Library code takes a backend from its caller instead.
 */
export function getBackend(opts: ProcessBackendOptions = {}): Backend {
  if (!current) {
    const want = process.env.RECYCLEGPT_BACKEND;
    if (want !== undefined && !KINDS.includes(want as BackendKind))
      throw new Error(`RECYCLEGPT_BACKEND must be "ref", "native", "wasm" or "auto", got "${want}"`);
    const simd = process.env.RECYCLEGPT_SIMD || undefined;
    if (simd !== undefined && !SIMD_PATHS.includes(simd as SimdPath))
      throw new Error(`RECYCLEGPT_SIMD must be "avx512", "avx2" or "scalar", got "${simd}"`);
    try {
      current = createBackend({
        kind: want as BackendKind | undefined,
        threads: envInt('RECYCLEGPT_THREADS'),
        simd: simd as SimdPath | undefined,
        onWarning: (m) => pendingWarnings.push(m),
      });
    } catch (err) {
      if (simd === undefined) throw err;
      throw new Error(`RECYCLEGPT_SIMD=${simd}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (opts.onWarning && pendingWarnings.length > 0) {
    const warnings = pendingWarnings;
    pendingWarnings = [];
    for (const m of warnings) opts.onWarning(m);
  }
  return current;
}

/** Replace the process-wide backend (tests, benchmarks). */
export function setBackend(b: Backend): void {
  current = b;
}
