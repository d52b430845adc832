/**
 * The "native" backend: the C++ addon (native/, built by `npm install` into build/Release) behind the Backend
 * interface. Every call is validated here first with the same checks and messages as the ref backend, then
 * handed to the addon, which picks AVX-512, AVX2+FMA or scalar kernels at load time (RECYCLEGPT_SIMD can force a
 * lower path) and runs them on its own thread pool.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { heapAllocator, type Backend, type F32, type WeightArg } from './backend.js';
import { KERNEL_NAMES, withArgChecks, type KernelName } from './validate.js';

export type SimdPath = 'avx512' | 'avx2' | 'scalar';

/** The addon's raw kernels: the Backend's signatures, with weights as float32 storage. */
type AddonKernels = Omit<Pick<Backend, KernelName>, 'linear' | 'embeddingForward'> & {
  linear(M: number, N: number, K: number, x: F32, w: F32, bias: F32 | null, y: F32): void;
  embeddingForward(T: number, C: number, V: number, ids: Int32Array, table: F32, out: F32): void;
};

/** The addon's exports (native/addon.cc): every kernel, plus controls. */
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
}

/** The native backend plus the instruction-set controls (beyond the Backend interface). */
export interface NativeBackend extends Backend {
  readonly name: 'native';
  /** The SIMD path in use. */
  readonly simd: SimdPath;
  /** Paths this CPU supports, best first. */
  availableSimd(): SimdPath[];
  /** Switch to another supported path (tests compare all of them). */
  setSimd(path: SimdPath): void;
  /** The raw addon (benchmarks use its readBandwidth). */
  readonly addon: NativeAddon;
}

// ---- loading ------------------------------------------------------------------------------------------------------
/** The package root: the nearest folder above this file with binding.gyp (src/kernels/ under tsx, dist/kernels/ compiled). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package root (binding.gyp) above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

let cachedAddon: NativeAddon | null = null;

/** Loads build/Release/recyclegpt_native.node; throws with the reason when it is missing or fails to load. */
export function loadNativeAddon(): NativeAddon {
  if (cachedAddon) return cachedAddon;
  const file = join(packageRoot(), 'build', 'Release', 'recyclegpt_native.node');
  if (!existsSync(file)) throw new Error(`${file} is not built (run "npm run build:native")`);
  const require = createRequire(import.meta.url);
  cachedAddon = require(file) as NativeAddon;
  return cachedAddon;
}

function f32Storage(w: WeightArg): F32 {
  return w instanceof Float32Array ? w : (w.data as F32);
}

export function createNativeBackend(addon: NativeAddon = loadNativeAddon()): NativeBackend {
  const lib = addon;
  // The addon's kernels take the Backend's arguments as they are (they use no `this`), except weight handles,
  // which are unwrapped to their float32 storage (the only dtype the addon reads so far; checked before the call).
  const kernels = Object.fromEntries(KERNEL_NAMES.map((k) => [k, lib[k]])) as Pick<Backend, KernelName>;
  kernels.linear = (M, N, K, x, w, bias, y) => lib.linear(M, N, K, x, f32Storage(w), bias, y);
  kernels.embeddingForward = (T, C, V, ids, table, out) => lib.embeddingForward(T, C, V, ids, f32Storage(table), out);
  return withArgChecks<NativeBackend>({
    name: 'native',
    weightDtypes: ['f32'],
    alloc: heapAllocator,
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
 * The native backend, or null and the reason (addon not built, fails to load, RECYCLEGPT_SIMD names a path
 * this CPU lacks). `simd` reports the instruction set chosen.
 */
export function tryLoadNativeBackend(): { backend: NativeBackend | null; error?: string; simd?: SimdPath } {
  try {
    const backend = createNativeBackend(loadNativeAddon());
    return { backend, simd: backend.simd };
  } catch (err) {
    return { backend: null, error: err instanceof Error ? err.message : String(err) };
  }
}
