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
import type { Backend, F32 } from './backend.js';
import { withArgChecks } from './validate.js';

export type SimdPath = 'avx512' | 'avx2' | 'scalar';

/** The addon's exports (native/addon.cc). Argument order follows the Backend interface. */
export interface NativeAddon {
  simd(): SimdPath;
  availableSimd(): SimdPath[];
  setSimd(name: SimdPath): void;
  threads(): number;
  setThreads(n: number): void;
  gemm(M: number, N: number, K: number, a: F32, transA: boolean, b: F32, transB: boolean, c: F32, accumulate: boolean): void;
  linear(M: number, N: number, K: number, x: F32, w: F32, bias: F32 | null, y: F32): void;
  biasBackward(M: number, N: number, dy: F32, db: F32): void;
  embeddingForward(T: number, C: number, V: number, ids: Int32Array, table: F32, out: F32): void;
  embeddingBackward(T: number, C: number, V: number, ids: Int32Array, dout: F32, dtable: F32): void;
  layerNormForward(N: number, C: number, x: F32, w: F32, b: F32, eps: number, out: F32, mean: F32, rstd: F32): void;
  layerNormBackward(N: number, C: number, dout: F32, x: F32, w: F32, mean: F32, rstd: F32, dx: F32, dw: F32, db: F32): void;
  rmsNormForward(N: number, C: number, x: F32, w: F32, eps: number, out: F32, rstd: F32): void;
  rmsNormBackward(N: number, C: number, dout: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32): void;
  geluForward(n: number, x: F32, out: F32): void;
  geluBackward(n: number, x: F32, dout: F32, dx: F32): void;
  swigluForward(n: number, gate: F32, up: F32, out: F32): void;
  swigluBackward(n: number, gate: F32, up: F32, dout: F32, dgate: F32, dup: F32): void;
  rope(R: number, H: number, D: number, x: F32, pos: Int32Array, theta: number, inverse: boolean): void;
  attentionForward(B: number, T: number, H: number, G: number, D: number, q: F32, k: F32, v: F32, out: F32, probs: F32): void;
  attentionBackward(B: number, T: number, H: number, G: number, D: number, q: F32, k: F32, v: F32, probs: F32, dout: F32, dq: F32, dk: F32, dv: F32): void;
  attentionDecode(M: number, H: number, G: number, D: number, q: F32, kCache: F32, vCache: F32, pos0: number, out: F32): void;
  crossEntropyForward(N: number, V: number, logits: F32, targets: Int32Array, losses: F32): number;
  crossEntropyBackward(N: number, V: number, logits: F32, targets: Int32Array, scale: number, dlogits: F32): void;
  adamw(n: number, param: F32, grad: F32, m: F32, v: F32, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  add(n: number, a: F32, b: F32, out: F32): void;
  axpy(n: number, alpha: number, x: F32, y: F32): void;
  scale(n: number, x: F32, alpha: number): void;
  sumSquares(n: number, x: F32): number;
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

export function createNativeBackend(addon: NativeAddon = loadNativeAddon()): NativeBackend {
  const lib = addon;
  return withArgChecks<NativeBackend>({
    name: 'native',
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
      if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`setThreads: n must be an integer 1..256, got ${n}`);
      lib.setThreads(n);
    },

    gemm(M, N, K, a, transA, b, transB, c, accumulate) {
      lib.gemm(M, N, K, a, transA, b, transB, c, accumulate);
    },
    linear(M, N, K, x, w, bias, y) {
      lib.linear(M, N, K, x, w, bias, y);
    },
    biasBackward(M, N, dy, db) {
      lib.biasBackward(M, N, dy, db);
    },

    embeddingForward(T, C, V, ids, table, out) {
      lib.embeddingForward(T, C, V, ids, table, out);
    },
    embeddingBackward(T, C, V, ids, dout, dtable) {
      lib.embeddingBackward(T, C, V, ids, dout, dtable);
    },

    layerNormForward(N, C, x, w, b, eps, out, mean, rstd) {
      lib.layerNormForward(N, C, x, w, b, eps, out, mean, rstd);
    },
    layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db) {
      lib.layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db);
    },
    rmsNormForward(N, C, x, w, eps, out, rstd) {
      lib.rmsNormForward(N, C, x, w, eps, out, rstd);
    },
    rmsNormBackward(N, C, dout, x, w, rstd, dx, dw) {
      lib.rmsNormBackward(N, C, dout, x, w, rstd, dx, dw);
    },

    geluForward(n, x, out) {
      lib.geluForward(n, x, out);
    },
    geluBackward(n, x, dout, dx) {
      lib.geluBackward(n, x, dout, dx);
    },
    swigluForward(n, gate, up, out) {
      lib.swigluForward(n, gate, up, out);
    },
    swigluBackward(n, gate, up, dout, dgate, dup) {
      lib.swigluBackward(n, gate, up, dout, dgate, dup);
    },

    rope(R, H, D, x, pos, theta, inverse) {
      lib.rope(R, H, D, x, pos, theta, inverse);
    },

    attentionForward(B, T, H, G, D, q, k, v, out, probs) {
      lib.attentionForward(B, T, H, G, D, q, k, v, out, probs);
    },
    attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv) {
      lib.attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv);
    },
    attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out) {
      lib.attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out);
    },

    crossEntropyForward(N, V, logits, targets, losses) {
      return lib.crossEntropyForward(N, V, logits, targets, losses);
    },
    crossEntropyBackward(N, V, logits, targets, scale, dlogits) {
      lib.crossEntropyBackward(N, V, logits, targets, scale, dlogits);
    },

    adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step) {
      lib.adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
    },
    add(n, a, b, out) {
      lib.add(n, a, b, out);
    },
    axpy(n, alpha, x, y) {
      lib.axpy(n, alpha, x, y);
    },
    scale(n, x, alpha) {
      lib.scale(n, x, alpha);
    },
    sumSquares(n, x) {
      return lib.sumSquares(n, x);
    },
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
