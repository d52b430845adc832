/**
 * The "native" backend: the C++ addon (native/, built by `npm install` into build/Release) behind the Backend
 * interface. Every call is validated here first with the same checks and messages as the ref backend, then
 * handed to the addon. Each backend owns a native context: its own instruction set (AVX-512, AVX2+FMA or scalar,
 * the best the CPU has unless asked for a lower one), thread count and RoPE tables, so several models in one
 * process keep their own settings. Contexts share the addon's thread pool; calls are synchronous, so they never
 * overlap on one JS thread.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { heapAllocator, type Backend, type WeightArg } from './backend.js';
import { q8ToPanels, toPanels } from './panels.js';
import { KERNEL_NAMES, withArgChecks, type KernelName } from './validate.js';
import { packageRoot } from '../node/package-root.js';

export type SimdPath = 'avx512' | 'avx2' | 'scalar';

/** Settings of one native context (and backend). */
export interface NativeContextOptions {
  /** Threads for parallel kernels, 1..256 (default: every core this process may use). */
  threads?: number;
  /** Instruction set (default: the best this CPU has); one the CPU lacks is an error. */
  simd?: SimdPath;
}

/**
 * The addon's raw kernels: the Backend's signatures. Weights (linear's w, embeddingForward's table) are taken as
 * they come, a Float32Array or a handle of any dtype, which the addon reads as stored (native/kernels.h, %w).
 */
type AddonKernels = Pick<Backend, KernelName>;

/** A native context (native/addon.cc): every kernel, bound to this context's settings, plus its controls. */
export interface NativeAddon extends AddonKernels {
  simd(): SimdPath;
  availableSimd(): SimdPath[];
  setSimd(name: SimdPath): void;
  threads(): number;
  setThreads(n: number): void;
  /**
   * Seconds of each of `repeats` streaming reads of a `bytes` buffer on `threads` threads (benchmarks). The buffer
   * is kept for the next call of the same size; readBandwidth(0, 1, 0) frees it.
   */
  readBandwidth(bytes: number, threads: number, repeats: number): number[];
  /**
   * The same probe over the bytes of an array the caller holds (a model's weights), read in place in whole 64-byte
   * blocks: it allocates nothing, so a benchmark of a large model does not hold a probe buffer beside the weights.
   */
  readBandwidthOf(array: ArrayBufferView, threads: number, repeats: number): number[];
  /**
   * The small-M linear's software prefetch distance in bytes (0: none) for every weight dtype, process-wide: chosen at
   * load from the CPU's L1 data cache (native/addon.cc), changed by setLinearPrefetch (0..65536) for benchmarks.
   * Results are the same at any distance.
   */
  linearPrefetch(): number;
  setLinearPrefetch(bytes: number): void;
  /**
   * The most rows a linear on f16 / bf16 / q8_0 / q4_0 weights takes through the small-M product (groups of 8 rows per
   * chunk of W, each row bit-identical to the row alone) before the dequantize-and-GEMM path; f32 weights: half as
   * many, at least 8. Process-wide; setLinearSmallMaxRows (8..1024) is for benchmarks and tests.
   */
  linearSmallMaxRows(): number;
  setLinearSmallMaxRows(rows: number): void;
  /** How long (µs) an idle pool worker spins for the next job before it sleeps, process-wide (benchmarks). */
  poolSpin(): number;
  setPoolSpin(microseconds: number): void;
  /**
   * GFLOP/s (all threads together) of the FMA peak probe: independent FMA chains in registers on `threads` threads
   * with this context's SIMD path, one run of about `seconds` (benchmarks compare the GEMM with it).
   */
  fmaPeak(threads: number, seconds: number): number;
}

/** The addon module's exports. */
export interface NativeModule {
  /** A fresh context: nothing it sets is seen by another. */
  createContext(opts?: NativeContextOptions): NativeAddon;
  /** Paths this CPU supports, best first. */
  availableSimd(): SimdPath[];
}

/** The native backend plus the instruction-set controls (beyond the Backend interface). */
export interface NativeBackend extends Backend {
  readonly name: 'native';
  /** The SIMD path in use. */
  readonly simd: SimdPath;
  /** Paths this CPU supports, best first. */
  availableSimd(): SimdPath[];
  /** Switch this backend to another supported path (tests compare all of them). */
  setSimd(path: SimdPath): void;
  /** This backend's raw context (benchmarks use its readBandwidth). */
  readonly addon: NativeAddon;
}

// ---- loading ------------------------------------------------------------------------------------------------------
let addonFile: string | undefined;
const loaded = new Map<string, NativeModule>();

/**
 * Where the addon is loaded from (default: <package root>/build/Release/recyclegpt_native.node). Tests point it at a
 * missing file to see the fallback; `undefined` restores the default.
 */
export function setNativeAddonFile(file: string | undefined): void {
  addonFile = file;
}

/** Loads the addon module (once per file); throws with the reason when it is missing or fails to load. */
export function loadNativeModule(): NativeModule {
  const file = addonFile ?? join(packageRoot(), 'build', 'Release', 'recyclegpt_native.node');
  const cached = loaded.get(file);
  if (cached) return cached;
  if (!existsSync(file)) throw new Error(`${file} is not built (run "npm run build:native")`);
  const mod = createRequire(import.meta.url)(file) as NativeModule;
  loaded.set(file, mod);
  return mod;
}

/** A fresh raw native context (unchecked by the TS layer; the addon checks its own arguments). */
export function loadNativeAddon(opts: NativeContextOptions = {}): NativeAddon {
  return loadNativeModule().createContext(opts);
}

/** A fresh native backend with its own context; throws when the addon does not load or `opts` is refused. */
export function createNativeBackend(opts: NativeContextOptions = {}): NativeBackend {
  const lib = loadNativeAddon(opts);
  for (const k of KERNEL_NAMES)
    if (typeof lib[k] !== 'function') throw new Error(`the native addon has no kernel "${k}" (rebuild it)`);
  // The context's kernels take the Backend's arguments as they are (they use no `this`), weight handles included:
  // the addon reads f16, bf16, q8_0 and q4_0 weights as stored, converting in registers. An f32 handle is passed as its
  // Float32Array, which the addon reads with one call instead of a handle's few property reads (~1 µs a call).
  const kernels = Object.fromEntries(KERNEL_NAMES.map((k) => [k, lib[k]])) as Pick<Backend, KernelName>;
  const bare = (w: WeightArg): WeightArg => (w instanceof Float32Array || w.dtype !== 'f32' ? w : w.data);
  kernels.linear = (M, N, K, x, w, bias, y) => lib.linear(M, N, K, x, bare(w), bias, y);
  kernels.embeddingForward = (T, C, V, ids, table, out) => lib.embeddingForward(T, C, V, ids, bare(table), out);
  return withArgChecks<NativeBackend>({
    name: 'native',
    weightDtypes: ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'f16_panels', 'bf16_panels', 'q8_0_panels'],
    alloc: heapAllocator,
    // f16 / bf16 / q8_0 matrices as panels, which every instruction set's small-M product reads as an outer product
    // (native/kernels_impl.h linear_panels: fewer loads than the row-major dot products, no horizontal sums; q8_0:
    // x stays float32, where the row-major int8 dot quantizes it, and 2 / 4 rows cost 0.75 / 0.61x as much)
    prepareLinear: (w, N, K) =>
      w.dtype === 'q8_0' ? q8ToPanels(w, N, K, heapAllocator) : toPanels(w, N, K, heapAllocator),
    get simd(): SimdPath {
      return lib.simd();
    },
    addon: lib,
    availableSimd: () => lib.availableSimd(),
    setSimd(path: SimdPath): void {
      lib.setSimd(path);
    },
    threads: () => lib.threads(),
    setThreads(n: number): void {
      if (!Number.isInteger(n) || n < 1 || n > 256)
        throw new Error(`setThreads: n must be an integer 1..256, got ${n}`);
      lib.setThreads(n);
    },

    ...kernels,
  });
}

/**
 * A fresh native backend, or null and the reason (addon not built, fails to load, `opts` refused). `simd`
 * reports the instruction set chosen.
 */
export function tryLoadNativeBackend(opts: NativeContextOptions = {}): {
  backend: NativeBackend | null;
  error?: string;
  simd?: SimdPath;
} {
  try {
    const backend = createNativeBackend(opts);
    return { backend, simd: backend.simd };
  } catch (err) {
    return { backend: null, error: err instanceof Error ? err.message : String(err) };
  }
}
