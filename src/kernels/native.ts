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
import { checkAttentionHeads, checkChannels, checkDims, checkDivides, checkFinite, checkIds, checkLen, checkPositive, checkTargets } from './checks.js';

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

// ---- the same argument checks as ref.ts, with the same messages -----------------------------------------------
function checkAll(op: string, arrays: ReadonlyArray<readonly [string, ArrayLike<number>]>, need: number, shape: (name: string) => string): void {
  for (const [name, arr] of arrays) checkLen(op, name, arr, need, shape(name));
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
  return {
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
      const op = 'gemm';
      checkDims(op, { M, N, K });
      checkLen(op, 'a', a, M * K, transA ? `A[K=${K},M=${M}]` : `A[M=${M},K=${K}]`);
      checkLen(op, 'b', b, K * N, transB ? `B[N=${N},K=${K}]` : `B[K=${K},N=${N}]`);
      checkLen(op, 'c', c, M * N, `C[M=${M},N=${N}]`);
      lib.gemm(M, N, K, a, transA, b, transB, c, accumulate);
    },
    linear(M, N, K, x, w, bias, y) {
      const op = 'linear';
      checkDims(op, { M, N, K });
      checkLen(op, 'x', x, M * K, `x[M=${M},K=${K}]`);
      checkLen(op, 'w', w, N * K, `w[N=${N},K=${K}]`);
      if (bias) checkLen(op, 'bias', bias, N, `bias[N=${N}]`);
      checkLen(op, 'y', y, M * N, `y[M=${M},N=${N}]`);
      lib.linear(M, N, K, x, w, bias, y);
    },
    biasBackward(M, N, dy, db) {
      const op = 'biasBackward';
      checkDims(op, { M, N });
      checkLen(op, 'dy', dy, M * N, `dy[M=${M},N=${N}]`);
      checkLen(op, 'db', db, N, `db[N=${N}]`);
      lib.biasBackward(M, N, dy, db);
    },

    embeddingForward(T, C, V, ids, table, out) {
      const op = 'embeddingForward';
      checkDims(op, { T, C, V });
      checkLen(op, 'ids', ids, T, `ids[T=${T}]`);
      checkLen(op, 'table', table, V * C, `table[V=${V},C=${C}]`);
      checkLen(op, 'out', out, T * C, `out[T=${T},C=${C}]`);
      checkIds(op, ids, T, V);
      lib.embeddingForward(T, C, V, ids, table, out);
    },
    embeddingBackward(T, C, V, ids, dout, dtable) {
      const op = 'embeddingBackward';
      checkDims(op, { T, C, V });
      checkLen(op, 'ids', ids, T, `ids[T=${T}]`);
      checkLen(op, 'dout', dout, T * C, `dout[T=${T},C=${C}]`);
      checkLen(op, 'dtable', dtable, V * C, `dtable[V=${V},C=${C}]`);
      checkIds(op, ids, T, V);
      lib.embeddingBackward(T, C, V, ids, dout, dtable);
    },

    layerNormForward(N, C, x, w, b, eps, out, mean, rstd) {
      const op = 'layerNormForward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      checkPositive(op, 'eps', eps);
      checkLen(op, 'x', x, N * C, `x[N=${N},C=${C}]`);
      checkLen(op, 'w', w, C, `w[C=${C}]`);
      checkLen(op, 'b', b, C, `b[C=${C}]`);
      checkLen(op, 'out', out, N * C, `out[N=${N},C=${C}]`);
      checkLen(op, 'mean', mean, N, `mean[N=${N}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      lib.layerNormForward(N, C, x, w, b, eps, out, mean, rstd);
    },
    layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db) {
      const op = 'layerNormBackward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      checkAll(op, [['dout', dout], ['x', x], ['dx', dx]], N * C, (n) => `${n}[N=${N},C=${C}]`);
      checkAll(op, [['w', w], ['dw', dw], ['db', db]], C, (n) => `${n}[C=${C}]`);
      checkLen(op, 'mean', mean, N, `mean[N=${N}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      lib.layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db);
    },
    rmsNormForward(N, C, x, w, eps, out, rstd) {
      const op = 'rmsNormForward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      checkPositive(op, 'eps', eps);
      checkLen(op, 'x', x, N * C, `x[N=${N},C=${C}]`);
      checkLen(op, 'w', w, C, `w[C=${C}]`);
      checkLen(op, 'out', out, N * C, `out[N=${N},C=${C}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      lib.rmsNormForward(N, C, x, w, eps, out, rstd);
    },
    rmsNormBackward(N, C, dout, x, w, rstd, dx, dw) {
      const op = 'rmsNormBackward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      checkAll(op, [['dout', dout], ['x', x], ['dx', dx]], N * C, (n) => `${n}[N=${N},C=${C}]`);
      checkLen(op, 'w', w, C, `w[C=${C}]`);
      checkLen(op, 'dw', dw, C, `dw[C=${C}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      lib.rmsNormBackward(N, C, dout, x, w, rstd, dx, dw);
    },

    geluForward(n, x, out) {
      const op = 'geluForward';
      checkDims(op, { n });
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      checkLen(op, 'out', out, n, `out[n=${n}]`);
      lib.geluForward(n, x, out);
    },
    geluBackward(n, x, dout, dx) {
      const op = 'geluBackward';
      checkDims(op, { n });
      checkAll(op, [['x', x], ['dout', dout], ['dx', dx]], n, (s) => `${s}[n=${n}]`);
      lib.geluBackward(n, x, dout, dx);
    },
    swigluForward(n, gate, up, out) {
      const op = 'swigluForward';
      checkDims(op, { n });
      checkAll(op, [['gate', gate], ['up', up], ['out', out]], n, (s) => `${s}[n=${n}]`);
      lib.swigluForward(n, gate, up, out);
    },
    swigluBackward(n, gate, up, dout, dgate, dup) {
      const op = 'swigluBackward';
      checkDims(op, { n });
      checkAll(op, [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]], n, (s) => `${s}[n=${n}]`);
      lib.swigluBackward(n, gate, up, dout, dgate, dup);
    },

    rope(R, H, D, x, pos, theta, inverse) {
      const op = 'rope';
      checkDims(op, { R, H, D });
      checkDivides(op, `D=${D} must be even`, D, 2);
      checkPositive(op, 'theta', theta);
      checkLen(op, 'x', x, R * H * D, `x[R=${R},H=${H},D=${D}]`);
      checkLen(op, 'pos', pos, R, `pos[R=${R}]`);
      lib.rope(R, H, D, x, pos, theta, inverse);
    },

    attentionForward(B, T, H, G, D, q, k, v, out, probs) {
      const op = 'attentionForward';
      checkDims(op, { B, T, H, G, D });
      checkAttentionHeads(op, H, G, D);
      checkLen(op, 'q', q, B * T * H * D, `q[B=${B},T=${T},H=${H},D=${D}]`);
      checkLen(op, 'k', k, B * T * G * D, `k[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'v', v, B * T * G * D, `v[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'out', out, B * T * H * D, `out[B=${B},T=${T},H=${H},D=${D}]`);
      checkLen(op, 'probs', probs, B * H * T * T, `probs[B=${B},H=${H},T=${T}]`);
      lib.attentionForward(B, T, H, G, D, q, k, v, out, probs);
    },
    attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv) {
      const op = 'attentionBackward';
      checkDims(op, { B, T, H, G, D });
      checkAttentionHeads(op, H, G, D);
      checkAll(op, [['q', q], ['dout', dout], ['dq', dq]], B * T * H * D, (n) => `${n}[B=${B},T=${T},H=${H},D=${D}]`);
      checkAll(op, [['k', k], ['v', v], ['dk', dk], ['dv', dv]], B * T * G * D, (n) => `${n}[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'probs', probs, B * H * T * T, `probs[B=${B},H=${H},T=${T}]`);
      lib.attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv);
    },
    attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out) {
      const op = 'attentionDecode';
      checkDims(op, { M, H, G, D, pos0 });
      checkAttentionHeads(op, H, G, D);
      const len = pos0 + M;
      checkLen(op, 'q', q, M * H * D, `q[M=${M},H=${H},D=${D}]`);
      checkLen(op, 'kCache', kCache, len * G * D, `kCache[pos0+M=${len},G=${G},D=${D}]`);
      checkLen(op, 'vCache', vCache, len * G * D, `vCache[pos0+M=${len},G=${G},D=${D}]`);
      checkLen(op, 'out', out, M * H * D, `out[M=${M},H=${H},D=${D}]`);
      lib.attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out);
    },

    crossEntropyForward(N, V, logits, targets, losses) {
      const op = 'crossEntropyForward';
      checkDims(op, { N, V });
      checkLen(op, 'logits', logits, N * V, `logits[N=${N},V=${V}]`);
      checkLen(op, 'targets', targets, N, `targets[N=${N}]`);
      checkLen(op, 'losses', losses, N, `losses[N=${N}]`);
      checkTargets(op, targets, N, V);
      return lib.crossEntropyForward(N, V, logits, targets, losses);
    },
    crossEntropyBackward(N, V, logits, targets, scale, dlogits) {
      const op = 'crossEntropyBackward';
      checkDims(op, { N, V });
      checkFinite(op, 'scale', scale);
      checkLen(op, 'logits', logits, N * V, `logits[N=${N},V=${V}]`);
      checkLen(op, 'targets', targets, N, `targets[N=${N}]`);
      checkLen(op, 'dlogits', dlogits, N * V, `dlogits[N=${N},V=${V}]`);
      checkTargets(op, targets, N, V);
      lib.crossEntropyBackward(N, V, logits, targets, scale, dlogits);
    },

    adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step) {
      const op = 'adamw';
      checkDims(op, { n });
      checkAll(op, [['param', param], ['grad', grad], ['m', m], ['v', v]], n, (s) => `${s}[n=${n}]`);
      for (const [name, val] of [['lr', lr], ['eps', eps], ['weightDecay', weightDecay]] as const) checkFinite(op, name, val);
      for (const [name, beta] of [['beta1', beta1], ['beta2', beta2]] as const) {
        if (!(beta >= 0 && beta < 1)) throw new Error(`${op}: ${name} must be in [0, 1), got ${beta}`);
      }
      if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer >= 1, got ${step}`);
      lib.adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
    },
    add(n, a, b, out) {
      const op = 'add';
      checkDims(op, { n });
      checkAll(op, [['a', a], ['b', b], ['out', out]], n, (s) => `${s}[n=${n}]`);
      lib.add(n, a, b, out);
    },
    axpy(n, alpha, x, y) {
      const op = 'axpy';
      checkDims(op, { n });
      checkFinite(op, 'alpha', alpha);
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      checkLen(op, 'y', y, n, `y[n=${n}]`);
      lib.axpy(n, alpha, x, y);
    },
    scale(n, x, alpha) {
      const op = 'scale';
      checkDims(op, { n });
      checkFinite(op, 'alpha', alpha);
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      lib.scale(n, x, alpha);
    },
    sumSquares(n, x) {
      const op = 'sumSquares';
      checkDims(op, { n });
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      return lib.sumSquares(n, x);
    },
  };
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
