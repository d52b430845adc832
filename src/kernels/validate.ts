/**
 * Argument checks of every kernel, written once for all backends: `withArgChecks(raw)` wraps a backend whose
 * kernels trust their arguments, so each call is validated first and bad sizes or values throw an Error that names
 * the kernel and what disagrees (same messages whatever the backend).
 */
import type { Backend, KernelWeightDtype } from './backend.js';
import {
  checkAttentionHeads,
  checkChannels,
  checkDims,
  checkDivides,
  checkF32,
  checkF32OrNull,
  checkFinite,
  checkI32,
  checkIds,
  checkPositive,
  checkTargets,
  checkWeight,
} from './checks.js';

export type KernelName = Exclude<
  keyof Backend,
  'name' | 'threads' | 'setThreads' | 'weightDtypes' | 'alloc' | 'prepareLinear'
>;

export const KERNEL_NAMES: readonly KernelName[] = [
  'gemm',
  'linear',
  'biasBackward',
  'embeddingForward',
  'embeddingBackward',
  'layerNormForward',
  'layerNormBackward',
  'rmsNormForward',
  'rmsNormBackward',
  'geluForward',
  'geluBackward',
  'swigluForward',
  'swigluBackward',
  'rope',
  'attentionForward',
  'attentionBackward',
  'attentionDecode',
  'crossEntropyForward',
  'crossEntropyBackward',
  'adamw',
  'add',
  'axpy',
  'scale',
  'sumSquares',
];

type ArgChecks = { [K in KernelName]: (...args: Parameters<Backend[K]>) => void };

/** checkF32 for several arrays of one size, named by their keys (in order). */
function checkAll(op: string, arrays: Record<string, unknown>, need: number, shape: (name: string) => string): void {
  for (const [name, arr] of Object.entries(arrays)) checkF32(op, name, arr, need, () => shape(name));
}

/** The checks of every kernel for a backend that reads weights of `dtypes`. */
const argChecksFor = (dtypes: readonly KernelWeightDtype[]): ArgChecks => ({
  gemm(M, N, K, a, transA, b, transB, c) {
    const op = 'gemm';
    checkDims(op, { M, N, K });
    checkF32(op, 'a', a, M * K, () => (transA ? `A[K=${K},M=${M}]` : `A[M=${M},K=${K}]`));
    checkF32(op, 'b', b, K * N, () => (transB ? `B[N=${N},K=${K}]` : `B[K=${K},N=${N}]`));
    checkF32(op, 'c', c, M * N, () => `C[M=${M},N=${N}]`);
  },
  linear(M, N, K, x, w, bias, y) {
    const op = 'linear';
    checkDims(op, { M, N, K });
    checkF32(op, 'x', x, M * K, () => `x[M=${M},K=${K}]`);
    checkWeight(op, 'w', w, N, K, () => `w[N=${N},K=${K}]`, dtypes);
    checkF32OrNull(op, 'bias', bias, N, () => `bias[N=${N}]`);
    checkF32(op, 'y', y, M * N, () => `y[M=${M},N=${N}]`);
  },
  biasBackward(M, N, dy, db) {
    const op = 'biasBackward';
    checkDims(op, { M, N });
    checkF32(op, 'dy', dy, M * N, () => `dy[M=${M},N=${N}]`);
    checkF32(op, 'db', db, N, () => `db[N=${N}]`);
  },
  embeddingForward(T, C, V, ids, table, out) {
    const op = 'embeddingForward';
    checkDims(op, { T, C, V });
    checkI32(op, 'ids', ids, T, () => `ids[T=${T}]`);
    checkWeight(op, 'table', table, V, C, () => `table[V=${V},C=${C}]`, dtypes);
    checkF32(op, 'out', out, T * C, () => `out[T=${T},C=${C}]`);
    checkIds(op, ids, T, V);
  },
  embeddingBackward(T, C, V, ids, dout, dtable) {
    const op = 'embeddingBackward';
    checkDims(op, { T, C, V });
    checkI32(op, 'ids', ids, T, () => `ids[T=${T}]`);
    checkF32(op, 'dout', dout, T * C, () => `dout[T=${T},C=${C}]`);
    checkF32(op, 'dtable', dtable, V * C, () => `dtable[V=${V},C=${C}]`);
    checkIds(op, ids, T, V);
  },
  layerNormForward(N, C, x, w, b, eps, out, mean, rstd) {
    const op = 'layerNormForward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkPositive(op, 'eps', eps);
    checkF32(op, 'x', x, N * C, () => `x[N=${N},C=${C}]`);
    checkF32(op, 'w', w, C, () => `w[C=${C}]`);
    checkF32(op, 'b', b, C, () => `b[C=${C}]`);
    checkF32(op, 'out', out, N * C, () => `out[N=${N},C=${C}]`);
    checkF32(op, 'mean', mean, N, () => `mean[N=${N}]`);
    checkF32(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db) {
    const op = 'layerNormBackward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkAll(op, { dout, x, dx }, N * C, (n) => `${n}[N=${N},C=${C}]`);
    checkAll(op, { w, dw, db }, C, (n) => `${n}[C=${C}]`);
    checkF32(op, 'mean', mean, N, () => `mean[N=${N}]`);
    checkF32(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  rmsNormForward(N, C, x, w, eps, out, rstd) {
    const op = 'rmsNormForward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkPositive(op, 'eps', eps);
    checkF32(op, 'x', x, N * C, () => `x[N=${N},C=${C}]`);
    checkF32(op, 'w', w, C, () => `w[C=${C}]`);
    checkF32(op, 'out', out, N * C, () => `out[N=${N},C=${C}]`);
    checkF32(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  rmsNormBackward(N, C, dout, x, w, rstd, dx, dw) {
    const op = 'rmsNormBackward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkAll(op, { dout, x, dx }, N * C, (n) => `${n}[N=${N},C=${C}]`);
    checkF32(op, 'w', w, C, () => `w[C=${C}]`);
    checkF32(op, 'dw', dw, C, () => `dw[C=${C}]`);
    checkF32(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  geluForward(n, x, out) {
    const op = 'geluForward';
    checkDims(op, { n });
    checkF32(op, 'x', x, n, () => `x[n=${n}]`);
    checkF32(op, 'out', out, n, () => `out[n=${n}]`);
  },
  geluBackward(n, x, dout, dx) {
    const op = 'geluBackward';
    checkDims(op, { n });
    checkAll(op, { x, dout, dx }, n, (s) => `${s}[n=${n}]`);
  },
  swigluForward(n, gate, up, out) {
    const op = 'swigluForward';
    checkDims(op, { n });
    checkAll(op, { gate, up, out }, n, (s) => `${s}[n=${n}]`);
  },
  swigluBackward(n, gate, up, dout, dgate, dup) {
    const op = 'swigluBackward';
    checkDims(op, { n });
    checkAll(op, { gate, up, dout, dgate, dup }, n, (s) => `${s}[n=${n}]`);
  },
  rope(R, H, D, x, pos, theta) {
    const op = 'rope';
    checkDims(op, { R, H, D });
    checkDivides(op, `D=${D} must be even`, D, 2);
    checkPositive(op, 'theta', theta);
    checkF32(op, 'x', x, R * H * D, () => `x[R=${R},H=${H},D=${D}]`);
    checkI32(op, 'pos', pos, R, () => `pos[R=${R}]`);
  },
  attentionForward(B, T, H, G, D, q, k, v, out, probs) {
    const op = 'attentionForward';
    checkDims(op, { B, T, H, G, D });
    checkAttentionHeads(op, H, G, D);
    checkF32(op, 'q', q, B * T * H * D, () => `q[B=${B},T=${T},H=${H},D=${D}]`);
    checkF32(op, 'k', k, B * T * G * D, () => `k[B=${B},T=${T},G=${G},D=${D}]`);
    checkF32(op, 'v', v, B * T * G * D, () => `v[B=${B},T=${T},G=${G},D=${D}]`);
    checkF32(op, 'out', out, B * T * H * D, () => `out[B=${B},T=${T},H=${H},D=${D}]`);
    checkF32(op, 'probs', probs, B * H * T * T, () => `probs[B=${B},H=${H},T=${T}]`);
  },
  attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv) {
    const op = 'attentionBackward';
    checkDims(op, { B, T, H, G, D });
    checkAttentionHeads(op, H, G, D);
    checkAll(op, { q, dout, dq }, B * T * H * D, (n) => `${n}[B=${B},T=${T},H=${H},D=${D}]`);
    checkAll(op, { k, v, dk, dv }, B * T * G * D, (n) => `${n}[B=${B},T=${T},G=${G},D=${D}]`);
    checkF32(op, 'probs', probs, B * H * T * T, () => `probs[B=${B},H=${H},T=${T}]`);
  },
  attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out) {
    const op = 'attentionDecode';
    checkDims(op, { M, H, G, D, pos0 });
    checkAttentionHeads(op, H, G, D);
    const len = pos0 + M;
    checkF32(op, 'q', q, M * H * D, () => `q[M=${M},H=${H},D=${D}]`);
    checkF32(op, 'kCache', kCache, len * G * D, () => `kCache[pos0+M=${len},G=${G},D=${D}]`);
    checkF32(op, 'vCache', vCache, len * G * D, () => `vCache[pos0+M=${len},G=${G},D=${D}]`);
    checkF32(op, 'out', out, M * H * D, () => `out[M=${M},H=${H},D=${D}]`);
  },
  crossEntropyForward(N, V, logits, targets, losses) {
    const op = 'crossEntropyForward';
    checkDims(op, { N, V });
    checkF32(op, 'logits', logits, N * V, () => `logits[N=${N},V=${V}]`);
    checkI32(op, 'targets', targets, N, () => `targets[N=${N}]`);
    checkF32(op, 'losses', losses, N, () => `losses[N=${N}]`);
    checkTargets(op, targets, N, V);
  },
  crossEntropyBackward(N, V, logits, targets, scale, dlogits) {
    const op = 'crossEntropyBackward';
    checkDims(op, { N, V });
    checkFinite(op, 'scale', scale);
    checkF32(op, 'logits', logits, N * V, () => `logits[N=${N},V=${V}]`);
    checkI32(op, 'targets', targets, N, () => `targets[N=${N}]`);
    checkF32(op, 'dlogits', dlogits, N * V, () => `dlogits[N=${N},V=${V}]`);
    checkTargets(op, targets, N, V);
  },
  adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step) {
    const op = 'adamw';
    checkDims(op, { n });
    checkAll(op, { param, grad, m, v }, n, (s) => `${s}[n=${n}]`);
    for (const [name, val] of [
      ['lr', lr],
      ['eps', eps],
      ['weightDecay', weightDecay],
    ] as const)
      checkFinite(op, name, val);
    for (const [name, beta] of [
      ['beta1', beta1],
      ['beta2', beta2],
    ] as const) {
      if (!(beta >= 0 && beta < 1)) throw new Error(`${op}: ${name} must be in [0, 1), got ${beta}`);
    }
    if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer >= 1, got ${step}`);
  },
  add(n, a, b, out) {
    const op = 'add';
    checkDims(op, { n });
    checkAll(op, { a, b, out }, n, (s) => `${s}[n=${n}]`);
  },
  axpy(n, alpha, x, y) {
    const op = 'axpy';
    checkDims(op, { n });
    checkFinite(op, 'alpha', alpha);
    checkF32(op, 'x', x, n, () => `x[n=${n}]`);
    checkF32(op, 'y', y, n, () => `y[n=${n}]`);
  },
  scale(n, x, alpha) {
    const op = 'scale';
    checkDims(op, { n });
    checkFinite(op, 'alpha', alpha);
    checkF32(op, 'x', x, n, () => `x[n=${n}]`);
  },
  sumSquares(n, x) {
    const op = 'sumSquares';
    checkDims(op, { n });
    checkF32(op, 'x', x, n, () => `x[n=${n}]`);
  },
});

type EmptyWhen = { [K in KernelName]?: (...args: Parameters<Backend[K]>) => boolean };

/**
 * Calls that write nothing at all (after their checks pass) are not handed to the kernel. A zero dimension
 * empties every product it is in, so the length checks no longer bound the other dimensions: a kernel looping
 * over them (attentionBackward with B = 2^31−1 and T = 0 loops over B·H heads) would spin for nothing, or size a
 * scratch buffer by them. Kernels left out write something whenever they are called (a bias gradient, losses) or
 * loop only over dimensions their arrays bound. The addon skips the same calls (native/addon.cc).
 */
const emptyWhen: EmptyWhen = {
  gemm: (M, N) => M === 0 || N === 0,
  linear: (M, N) => M === 0 || N === 0,
  embeddingForward: (T, C) => T === 0 || C === 0,
  embeddingBackward: (T, C) => T === 0 || C === 0,
  layerNormForward: (N) => N === 0,
  layerNormBackward: (_N, C) => C === 0,
  rmsNormForward: (N) => N === 0,
  rmsNormBackward: (_N, C) => C === 0,
  rope: (R, H, D) => R === 0 || H === 0 || D === 0,
  attentionForward: (B, T, H) => B === 0 || T === 0 || H === 0,
  attentionBackward: (B, T, H) => B === 0 || T === 0 || H === 0,
  attentionDecode: (M, H) => M === 0 || H === 0,
};

/** `raw` with every kernel call validated first; name and thread controls pass through. */
export function withArgChecks<B extends Backend>(raw: B): B {
  const checked: Record<string, unknown> = {};
  const argChecks = argChecksFor(raw.weightDtypes);
  for (const k of KERNEL_NAMES) {
    const check = argChecks[k] as (...args: unknown[]) => void;
    const empty = emptyWhen[k] as ((...args: unknown[]) => boolean) | undefined;
    const kernel = (raw[k] as (...args: unknown[]) => unknown).bind(raw);
    checked[k] = empty
      ? (...args: unknown[]) => {
          check(...args);
          return empty(...args) ? undefined : kernel(...args);
        }
      : (...args: unknown[]) => {
          check(...args);
          return kernel(...args);
        };
  }
  return Object.assign(Object.create(raw) as B, checked);
}
