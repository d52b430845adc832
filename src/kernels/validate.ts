/**
 * Argument checks of every kernel, written once for all backends: `withArgChecks(raw)` wraps a backend whose
 * kernels trust their arguments, so each call is validated first and bad sizes or values throw an Error that names
 * the kernel and what disagrees (same messages whatever the backend).
 */
import type { Backend } from './backend.js';
import {
  checkAttentionHeads, checkChannels, checkDims, checkDivides, checkFinite, checkIds, checkLen, checkPositive, checkTargets,
} from './checks.js';

export type KernelName = Exclude<keyof Backend, 'name' | 'threads' | 'setThreads'>;

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

function checkAll(op: string, arrays: ReadonlyArray<readonly [string, ArrayLike<number>]>, need: number, shape: (name: string) => string): void {
  for (const [name, arr] of arrays) checkLen(op, name, arr, need, () => shape(name));
}

const argChecks: ArgChecks = {
  gemm(M, N, K, a, transA, b, transB, c) {
    const op = 'gemm';
    checkDims(op, { M, N, K });
    checkLen(op, 'a', a, M * K, () => transA ? `A[K=${K},M=${M}]` : `A[M=${M},K=${K}]`);
    checkLen(op, 'b', b, K * N, () => transB ? `B[N=${N},K=${K}]` : `B[K=${K},N=${N}]`);
    checkLen(op, 'c', c, M * N, () => `C[M=${M},N=${N}]`);
  },
  linear(M, N, K, x, w, bias, y) {
    const op = 'linear';
    checkDims(op, { M, N, K });
    checkLen(op, 'x', x, M * K, () => `x[M=${M},K=${K}]`);
    checkLen(op, 'w', w, N * K, () => `w[N=${N},K=${K}]`);
    if (bias) checkLen(op, 'bias', bias, N, () => `bias[N=${N}]`);
    checkLen(op, 'y', y, M * N, () => `y[M=${M},N=${N}]`);
  },
  biasBackward(M, N, dy, db) {
    const op = 'biasBackward';
    checkDims(op, { M, N });
    checkLen(op, 'dy', dy, M * N, () => `dy[M=${M},N=${N}]`);
    checkLen(op, 'db', db, N, () => `db[N=${N}]`);
  },
  embeddingForward(T, C, V, ids, table, out) {
    const op = 'embeddingForward';
    checkDims(op, { T, C, V });
    checkLen(op, 'ids', ids, T, () => `ids[T=${T}]`);
    checkLen(op, 'table', table, V * C, () => `table[V=${V},C=${C}]`);
    checkLen(op, 'out', out, T * C, () => `out[T=${T},C=${C}]`);
    checkIds(op, ids, T, V);
  },
  embeddingBackward(T, C, V, ids, dout, dtable) {
    const op = 'embeddingBackward';
    checkDims(op, { T, C, V });
    checkLen(op, 'ids', ids, T, () => `ids[T=${T}]`);
    checkLen(op, 'dout', dout, T * C, () => `dout[T=${T},C=${C}]`);
    checkLen(op, 'dtable', dtable, V * C, () => `dtable[V=${V},C=${C}]`);
    checkIds(op, ids, T, V);
  },
  layerNormForward(N, C, x, w, b, eps, out, mean, rstd) {
    const op = 'layerNormForward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkPositive(op, 'eps', eps);
    checkLen(op, 'x', x, N * C, () => `x[N=${N},C=${C}]`);
    checkLen(op, 'w', w, C, () => `w[C=${C}]`);
    checkLen(op, 'b', b, C, () => `b[C=${C}]`);
    checkLen(op, 'out', out, N * C, () => `out[N=${N},C=${C}]`);
    checkLen(op, 'mean', mean, N, () => `mean[N=${N}]`);
    checkLen(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db) {
    const op = 'layerNormBackward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkAll(op, [['dout', dout], ['x', x], ['dx', dx]], N * C, (n) => `${n}[N=${N},C=${C}]`);
    checkAll(op, [['w', w], ['dw', dw], ['db', db]], C, (n) => `${n}[C=${C}]`);
    checkLen(op, 'mean', mean, N, () => `mean[N=${N}]`);
    checkLen(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  rmsNormForward(N, C, x, w, eps, out, rstd) {
    const op = 'rmsNormForward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkPositive(op, 'eps', eps);
    checkLen(op, 'x', x, N * C, () => `x[N=${N},C=${C}]`);
    checkLen(op, 'w', w, C, () => `w[C=${C}]`);
    checkLen(op, 'out', out, N * C, () => `out[N=${N},C=${C}]`);
    checkLen(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  rmsNormBackward(N, C, dout, x, w, rstd, dx, dw) {
    const op = 'rmsNormBackward';
    checkDims(op, { N, C });
    checkChannels(op, N, C);
    checkAll(op, [['dout', dout], ['x', x], ['dx', dx]], N * C, (n) => `${n}[N=${N},C=${C}]`);
    checkLen(op, 'w', w, C, () => `w[C=${C}]`);
    checkLen(op, 'dw', dw, C, () => `dw[C=${C}]`);
    checkLen(op, 'rstd', rstd, N, () => `rstd[N=${N}]`);
  },
  geluForward(n, x, out) {
    const op = 'geluForward';
    checkDims(op, { n });
    checkLen(op, 'x', x, n, () => `x[n=${n}]`);
    checkLen(op, 'out', out, n, () => `out[n=${n}]`);
  },
  geluBackward(n, x, dout, dx) {
    const op = 'geluBackward';
    checkDims(op, { n });
    checkAll(op, [['x', x], ['dout', dout], ['dx', dx]], n, (s) => `${s}[n=${n}]`);
  },
  swigluForward(n, gate, up, out) {
    const op = 'swigluForward';
    checkDims(op, { n });
    checkAll(op, [['gate', gate], ['up', up], ['out', out]], n, (s) => `${s}[n=${n}]`);
  },
  swigluBackward(n, gate, up, dout, dgate, dup) {
    const op = 'swigluBackward';
    checkDims(op, { n });
    checkAll(op, [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]], n, (s) => `${s}[n=${n}]`);
  },
  rope(R, H, D, x, pos, theta) {
    const op = 'rope';
    checkDims(op, { R, H, D });
    checkDivides(op, `D=${D} must be even`, D, 2);
    checkPositive(op, 'theta', theta);
    checkLen(op, 'x', x, R * H * D, () => `x[R=${R},H=${H},D=${D}]`);
    checkLen(op, 'pos', pos, R, () => `pos[R=${R}]`);
  },
  attentionForward(B, T, H, G, D, q, k, v, out, probs) {
    const op = 'attentionForward';
    checkDims(op, { B, T, H, G, D });
    checkAttentionHeads(op, H, G, D);
    checkLen(op, 'q', q, B * T * H * D, () => `q[B=${B},T=${T},H=${H},D=${D}]`);
    checkLen(op, 'k', k, B * T * G * D, () => `k[B=${B},T=${T},G=${G},D=${D}]`);
    checkLen(op, 'v', v, B * T * G * D, () => `v[B=${B},T=${T},G=${G},D=${D}]`);
    checkLen(op, 'out', out, B * T * H * D, () => `out[B=${B},T=${T},H=${H},D=${D}]`);
    checkLen(op, 'probs', probs, B * H * T * T, () => `probs[B=${B},H=${H},T=${T}]`);
  },
  attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv) {
    const op = 'attentionBackward';
    checkDims(op, { B, T, H, G, D });
    checkAttentionHeads(op, H, G, D);
    checkAll(op, [['q', q], ['dout', dout], ['dq', dq]], B * T * H * D, (n) => `${n}[B=${B},T=${T},H=${H},D=${D}]`);
    checkAll(op, [['k', k], ['v', v], ['dk', dk], ['dv', dv]], B * T * G * D, (n) => `${n}[B=${B},T=${T},G=${G},D=${D}]`);
    checkLen(op, 'probs', probs, B * H * T * T, () => `probs[B=${B},H=${H},T=${T}]`);
  },
  attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out) {
    const op = 'attentionDecode';
    checkDims(op, { M, H, G, D, pos0 });
    checkAttentionHeads(op, H, G, D);
    const len = pos0 + M;
    checkLen(op, 'q', q, M * H * D, () => `q[M=${M},H=${H},D=${D}]`);
    checkLen(op, 'kCache', kCache, len * G * D, () => `kCache[pos0+M=${len},G=${G},D=${D}]`);
    checkLen(op, 'vCache', vCache, len * G * D, () => `vCache[pos0+M=${len},G=${G},D=${D}]`);
    checkLen(op, 'out', out, M * H * D, () => `out[M=${M},H=${H},D=${D}]`);
  },
  crossEntropyForward(N, V, logits, targets, losses) {
    const op = 'crossEntropyForward';
    checkDims(op, { N, V });
    checkLen(op, 'logits', logits, N * V, () => `logits[N=${N},V=${V}]`);
    checkLen(op, 'targets', targets, N, () => `targets[N=${N}]`);
    checkLen(op, 'losses', losses, N, () => `losses[N=${N}]`);
    checkTargets(op, targets, N, V);
  },
  crossEntropyBackward(N, V, logits, targets, scale, dlogits) {
    const op = 'crossEntropyBackward';
    checkDims(op, { N, V });
    checkFinite(op, 'scale', scale);
    checkLen(op, 'logits', logits, N * V, () => `logits[N=${N},V=${V}]`);
    checkLen(op, 'targets', targets, N, () => `targets[N=${N}]`);
    checkLen(op, 'dlogits', dlogits, N * V, () => `dlogits[N=${N},V=${V}]`);
    checkTargets(op, targets, N, V);
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
  },
  add(n, a, b, out) {
    const op = 'add';
    checkDims(op, { n });
    checkAll(op, [['a', a], ['b', b], ['out', out]], n, (s) => `${s}[n=${n}]`);
  },
  axpy(n, alpha, x, y) {
    const op = 'axpy';
    checkDims(op, { n });
    checkFinite(op, 'alpha', alpha);
    checkLen(op, 'x', x, n, () => `x[n=${n}]`);
    checkLen(op, 'y', y, n, () => `y[n=${n}]`);
  },
  scale(n, x, alpha) {
    const op = 'scale';
    checkDims(op, { n });
    checkFinite(op, 'alpha', alpha);
    checkLen(op, 'x', x, n, () => `x[n=${n}]`);
  },
  sumSquares(n, x) {
    const op = 'sumSquares';
    checkDims(op, { n });
    checkLen(op, 'x', x, n, () => `x[n=${n}]`);
  },
};

/** `raw` with every kernel call validated first; name and thread controls pass through. */
export function withArgChecks<B extends Backend>(raw: B): B {
  const checked: Record<string, unknown> = {};
  for (const k of KERNEL_NAMES) {
    const check = argChecks[k] as (...args: unknown[]) => void;
    const kernel = (raw[k] as (...args: unknown[]) => unknown).bind(raw);
    checked[k] = (...args: unknown[]) => {
      check(...args);
      return kernel(...args);
    };
  }
  return Object.assign(Object.create(raw) as B, checked);
}
