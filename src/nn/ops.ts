/**
 * Differentiable ops: each runs its forward kernel now and records its backward on the tape (llm.c pairs).
 * "Rows × last dim" ops accept any leading shape: M = size / lastDim rows of width lastDim.
 * Gradients accumulate (+=) into inputs' grads, so leaf parameters from a ParamStore collect gradients across
 * backward() calls (micro-batches). Inputs without a grad (data, frozen weights) get none.
 * Int32Array arguments (ids, positions, targets) are kept by reference until backward(): do not modify them.
 */
import { Tensor, checkSameShape, checkShape, rowCount, shapeToString } from '../tensor/tensor.js';
import type { Tape } from './tape.js';

/** A gradient buffer for an input the kernel must write even when nobody wants it (fused backward kernels). */
function gradOrScratch(tape: Tape, t: Tensor, outNeedsGrad: boolean): Float32Array | null {
  if (!outNeedsGrad) return null;
  return t.grad ?? tape.scratch(t.size, true);
}

function checkWidth(op: string, name: string, t: Tensor, width: number): void {
  if (t.rank === 0 || t.lastDim !== width)
    throw new Error(`${op}: ${name} has shape ${shapeToString(t.shape)}, expected last dimension ${width}`);
}

/** y[M,N] = x[M,K] · w[N,K]ᵀ + b[N]. Backward: dx += dy·w, dw += dyᵀ·x, db += Σ_rows dy. */
export function linear(tape: Tape, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const op = 'linear';
  checkShape(op, 'w', w, [null, null]);
  const [N, K] = w.shape;
  checkWidth(op, 'x', x, K);
  if (b) checkShape(op, 'b', b, [N]);
  const M = rowCount(op, 'x', x);
  const be = tape.backend;
  const y = tape.tensor([...x.shape.slice(0, -1), N], tape.needsGrad(x, w, b));
  be.linear(M, N, K, x.data, w.data, b ? b.data : null, y.data);
  const [dx, dw, db] = [x.grad, w.grad, b ? b.grad : null];
  tape.record(y, (dy) => {
    if (dx) be.gemm(M, K, N, dy, false, w.data, false, dx, true);
    if (dw) be.gemm(N, K, M, dy, true, x.data, false, dw, true);
    if (db) be.biasBackward(M, N, dy, db);
  });
  return y;
}

/** out[T,C] = table[ids[t]] for table[V,C]. Backward: dtable[ids[t]] += dout[t]. */
export function embedding(tape: Tape, ids: Int32Array, table: Tensor): Tensor {
  checkShape('embedding', 'table', table, [null, null]);
  const [V, C] = table.shape;
  const T = ids.length;
  const be = tape.backend;
  const out = tape.tensor([T, C], tape.needsGrad(table));
  be.embeddingForward(T, C, V, ids, table.data, out.data);
  const dtable = table.grad;
  tape.record(out, (dout) => {
    if (dtable) be.embeddingBackward(T, C, V, ids, dout, dtable);
  });
  return out;
}

/** out = a + b (same shape). Backward: da += dout, db += dout. */
export function add(tape: Tape, a: Tensor, b: Tensor): Tensor {
  checkSameShape('add', a, b);
  const be = tape.backend;
  const n = a.size;
  const out = tape.tensor(a.shape, tape.needsGrad(a, b));
  be.add(n, a.data, b.data, out.data);
  const [da, db] = [a.grad, b.grad];
  tape.record(out, (dout) => {
    if (da) be.axpy(n, 1, dout, da);
    if (db) be.axpy(n, 1, dout, db);
  });
  return out;
}

/** LayerNorm over the last dim C: x[N,C], w[C], b[C]. Saves mean[N], rstd[N]. */
export function layerNorm(tape: Tape, x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const op = 'layerNorm';
  const C = x.lastDim;
  checkShape(op, 'w', w, [C]);
  checkShape(op, 'b', b, [C]);
  const N = rowCount(op, 'x', x);
  const be = tape.backend;
  const needs = tape.needsGrad(x, w, b);
  const out = tape.tensor(x.shape, needs);
  const mean = tape.scratch(N);
  const rstd = tape.scratch(N);
  be.layerNormForward(N, C, x.data, w.data, b.data, eps, out.data, mean, rstd);
  const [dx, dw, db] = [gradOrScratch(tape, x, needs), gradOrScratch(tape, w, needs), gradOrScratch(tape, b, needs)];
  tape.record(out, (dout) => {
    if (dx && dw && db) be.layerNormBackward(N, C, dout, x.data, w.data, mean, rstd, dx, dw, db);
  });
  return out;
}

/** RMSNorm over the last dim C: x[N,C], w[C]. Saves rstd[N]. */
export function rmsNorm(tape: Tape, x: Tensor, w: Tensor, eps: number): Tensor {
  const op = 'rmsNorm';
  const C = x.lastDim;
  checkShape(op, 'w', w, [C]);
  const N = rowCount(op, 'x', x);
  const be = tape.backend;
  const needs = tape.needsGrad(x, w);
  const out = tape.tensor(x.shape, needs);
  const rstd = tape.scratch(N);
  be.rmsNormForward(N, C, x.data, w.data, eps, out.data, rstd);
  const [dx, dw] = [gradOrScratch(tape, x, needs), gradOrScratch(tape, w, needs)];
  tape.record(out, (dout) => {
    if (dx && dw) be.rmsNormBackward(N, C, dout, x.data, w.data, rstd, dx, dw);
  });
  return out;
}

/** GELU (tanh form), elementwise. */
export function gelu(tape: Tape, x: Tensor): Tensor {
  const be = tape.backend;
  const out = tape.tensor(x.shape, tape.needsGrad(x));
  be.geluForward(x.size, x.data, out.data);
  const dx = x.grad;
  tape.record(out, (dout) => {
    if (dx) be.geluBackward(x.size, x.data, dout, dx);
  });
  return out;
}

/** silu(gate)·up, elementwise (Llama MLP); gate and up have the same shape. */
export function swiglu(tape: Tape, gate: Tensor, up: Tensor): Tensor {
  checkSameShape('swiglu', gate, up);
  const be = tape.backend;
  const needs = tape.needsGrad(gate, up);
  const out = tape.tensor(gate.shape, needs);
  be.swigluForward(gate.size, gate.data, up.data, out.data);
  const [dgate, dup] = [gradOrScratch(tape, gate, needs), gradOrScratch(tape, up, needs)];
  tape.record(out, (dout) => {
    if (dgate && dup) be.swigluBackward(gate.size, gate.data, up.data, dout, dgate, dup);
  });
  return out;
}

/**
 * A rotate-half RoPE by other frequencies than the kernel's theta^(−2i/D) (scaled RoPE, model/rope.ts): in place on
 * x[R, H, D]; `inverse` rotates by the negative angles (the transpose).
 */
export interface RopeRotation {
  rotate(R: number, H: number, D: number, x: Float32Array, pos: Int32Array, inverse: boolean): void;
}

/**
 * Rotate-half RoPE of x viewed as [R, H, D] (R rows with positions pos[R], H heads). Returns a rotated copy.
 * `theta`: the base of the backend kernel's frequencies, or a RopeRotation with its own.
 * Backward: the rotation is orthogonal, so dx += rotate(dout, −angle).
 */
export function rope(
  tape: Tape,
  x: Tensor,
  R: number,
  H: number,
  D: number,
  pos: Int32Array,
  theta: number | RopeRotation,
): Tensor {
  const op = 'rope';
  if (x.size !== R * H * D)
    throw new Error(`${op}: x ${shapeToString(x.shape)} has ${x.size} elements, expected R·H·D = ${R}·${H}·${D}`);
  if (pos.length !== R) throw new Error(`${op}: pos has ${pos.length} entries, expected R = ${R}`);
  const be = tape.backend;
  const needs = tape.needsGrad(x);
  const out = tape.tensor(x.shape, needs);
  out.data.set(x.data);
  const rotate = (a: Float32Array, inverse: boolean): void =>
    typeof theta === 'number' ? be.rope(R, H, D, a, pos, theta, inverse) : theta.rotate(R, H, D, a, pos, inverse);
  rotate(out.data, false);
  const dx = x.grad;
  const rotated = needs ? tape.scratch(x.size) : null;
  tape.record(out, (dout) => {
    if (!dx || !rotated) return;
    rotated.set(dout);
    rotate(rotated, true);
    be.axpy(x.size, 1, rotated, dx);
  });
  return out;
}

export interface AttentionDims {
  B: number;
  T: number;
  /** query heads */
  H: number;
  /** key/value heads (divides H) */
  G: number;
  /** head dim */
  D: number;
}

/** Causal attention: q[B,T,H,D], k,v[B,T,G,D] (any shapes of those sizes) → out shaped like q. */
export function attention(tape: Tape, q: Tensor, k: Tensor, v: Tensor, dims: AttentionDims): Tensor {
  const op = 'attention';
  const { B, T, H, G, D } = dims;
  if (q.size !== B * T * H * D)
    throw new Error(
      `${op}: q ${shapeToString(q.shape)} has ${q.size} elements, expected B·T·H·D = ${B}·${T}·${H}·${D}`,
    );
  for (const [name, t] of [
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.size !== B * T * G * D)
      throw new Error(
        `${op}: ${name} ${shapeToString(t.shape)} has ${t.size} elements, expected B·T·G·D = ${B}·${T}·${G}·${D}`,
      );
  }
  const be = tape.backend;
  const needs = tape.needsGrad(q, k, v);
  const out = tape.tensor(q.shape, needs);
  const probs = tape.scratch(B * H * T * T);
  be.attentionForward(B, T, H, G, D, q.data, k.data, v.data, out.data, probs);
  const [dq, dk, dv] = [gradOrScratch(tape, q, needs), gradOrScratch(tape, k, needs), gradOrScratch(tape, v, needs)];
  tape.record(out, (dout) => {
    if (dq && dk && dv) be.attentionBackward(B, T, H, G, D, q.data, k.data, v.data, probs, dout, dq, dk, dv);
  });
  return out;
}

/** out[M, Ca+Cb] = [a[M,Ca] | b[M,Cb]] (the recyclable module's concat(h, e)). Leading dims follow a. */
export function concatCols(tape: Tape, a: Tensor, b: Tensor): Tensor {
  const op = 'concatCols';
  const [M, Ca, Cb] = [rowCount(op, 'a', a), a.lastDim, b.lastDim];
  if (rowCount(op, 'b', b) !== M)
    throw new Error(`${op}: a ${shapeToString(a.shape)} and b ${shapeToString(b.shape)} have different row counts`);
  const C = Ca + Cb;
  const out = tape.tensor([...a.shape.slice(0, -1), C], tape.needsGrad(a, b));
  for (let m = 0; m < M; m++) {
    out.data.set(a.data.subarray(m * Ca, m * Ca + Ca), m * C);
    out.data.set(b.data.subarray(m * Cb, m * Cb + Cb), m * C + Ca);
  }
  const [da, db] = [a.grad, b.grad];
  tape.record(out, (dout) => {
    for (let m = 0; m < M; m++) {
      if (da) for (let c = 0; c < Ca; c++) da[m * Ca + c] += dout[m * C + c];
      if (db) for (let c = 0; c < Cb; c++) db[m * Cb + c] += dout[m * C + Ca + c];
    }
  });
  return out;
}

/** out[M, width] = x[M, start : start+width] (e.g. splitting a fused q|k|v projection). */
export function sliceCols(tape: Tape, x: Tensor, start: number, width: number): Tensor {
  const op = 'sliceCols';
  const [M, C] = [rowCount(op, 'x', x), x.lastDim];
  if (!Number.isInteger(start) || !Number.isInteger(width) || start < 0 || width < 0 || start + width > C) {
    throw new Error(
      `${op}: columns [${start}, ${start + width}) are outside the ${C} columns of ${shapeToString(x.shape)}`,
    );
  }
  const out = tape.tensor([...x.shape.slice(0, -1), width], tape.needsGrad(x));
  for (let m = 0; m < M; m++) out.data.set(x.data.subarray(m * C + start, m * C + start + width), m * width);
  const dx = x.grad;
  tape.record(out, (dout) => {
    if (dx) for (let m = 0; m < M; m++) for (let c = 0; c < width; c++) dx[m * C + start + c] += dout[m * width + c];
  });
  return out;
}

/**
 * Mean softmax cross-entropy over the rows whose target is not −1: logits[N,V], targets[N] → [1].
 * With every row ignored the loss is 0 and no gradient flows.
 */
export function crossEntropy(tape: Tape, logits: Tensor, targets: Int32Array): Tensor {
  const op = 'crossEntropy';
  const [N, V] = [rowCount(op, 'logits', logits), logits.lastDim];
  if (targets.length !== N)
    throw new Error(`${op}: ${targets.length} targets for ${N} rows of logits ${shapeToString(logits.shape)}`);
  const be = tape.backend;
  const losses = tape.scratch(N);
  const sum = be.crossEntropyForward(N, V, logits.data, targets, losses);
  let counted = 0;
  for (let n = 0; n < N; n++) if (targets[n] !== -1) counted++;
  const out = tape.tensor([1], tape.needsGrad(logits));
  out.data[0] = counted > 0 ? sum / counted : 0;
  const dlogits = logits.grad;
  tape.record(out, (dout) => {
    if (dlogits && counted > 0) be.crossEntropyBackward(N, V, logits.data, targets, dout[0] / counted, dlogits);
  });
  return out;
}

/** A teacher distribution for crossEntropyDistill: row teacherRows[n] of probs [·, V] for logits row n (−1: none). */
export interface SoftTargets {
  probs: Float32Array;
  rows: Int32Array;
  /** α ∈ [0, 1]: the weight of the teacher against the one-hot target. */
  alpha: number;
  /** β ≥ 0 (default 0): the weight of the reverse KL(q ‖ p_teacher) added on rows with a teacher. */
  reverse?: number;
}

/** Teacher probabilities below this count as this in log p (a float32 softmax underflows to 0 far in the tail). */
const REVERSE_KL_FLOOR = 1e-30;

/**
 * Cross-entropy against (1 − α)·onehot(target) + α·p_teacher, mean over the rows whose target is not −1:
 * logits[N,V] → [1] (distillation of the module toward the base; ARCHITECTURE.md §1.2). A row without a teacher
 * (rows[n] = −1) takes its one-hot target alone. Written as the hard cross-entropy plus α·(z_target − Σ_v p_v·z_v),
 * since CE(p, q) − CE(onehot, q) = z_target − Σ p·z when p sums to 1; backward: dz = (q − onehot) + α·(onehot − p).
 * With β = `reverse` > 0 each row with a teacher adds β·KL(q ‖ p) = β·Σ_v q_v·(log q_v − log p_v), q = softmax(z):
 * the mode-seeking direction, which puts the module's mass where the base's is instead of spreading it over the
 * base's support as the forward cross-entropy does — what matters when the module's samples stand in for the base's
 * (the lossy recycle mode). Its gradient: dz_v = β·q_v·(log q_v − log p_v − KL). The teacher is data: no gradient
 * reaches it.
 */
export function crossEntropyDistill(tape: Tape, logits: Tensor, targets: Int32Array, soft: SoftTargets): Tensor {
  const op = 'crossEntropyDistill';
  const [N, V] = [rowCount(op, 'logits', logits), logits.lastDim];
  const { probs, rows, alpha } = soft;
  const beta = soft.reverse ?? 0;
  if (targets.length !== N || rows.length !== N)
    throw new Error(`${op}: ${targets.length} targets and ${rows.length} teacher rows for ${N} rows of logits`);
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`${op}: alpha must be in [0, 1], got ${alpha}`);
  if (!(beta >= 0 && Number.isFinite(beta)))
    throw new Error(`${op}: reverse must be a finite number >= 0, got ${beta}`);
  if (probs.length % V !== 0) throw new Error(`${op}: teacher probs have ${probs.length} values, not rows of ${V}`);
  const teacherRows = probs.length / V;
  for (let n = 0; n < N; n++)
    if (!(rows[n]! >= -1 && rows[n]! < teacherRows))
      throw new Error(`${op}: teacher row ${rows[n]} of logits row ${n} is outside the ${teacherRows} rows`);
  const be = tape.backend,
    z = logits.data;
  const losses = tape.scratch(N);
  let sum = be.crossEntropyForward(N, V, z, targets, losses),
    counted = 0;
  // reverse KL: per row with a teacher, its value (the backward's centring) and log-sum-exp of z (q = exp(z − lse)),
  // and log q − log p per logit in klTerms
  const klRows = beta > 0 ? new Float64Array(N) : null,
    lseRows = beta > 0 ? new Float64Array(N) : null;
  const klTerms = beta > 0 ? tape.scratch(N * V) : null;
  for (let n = 0; n < N; n++) {
    const target = targets[n]!;
    if (target === -1) continue;
    counted++;
    const r = rows[n]!;
    if (r < 0) continue;
    if (alpha > 0) {
      let dot = 0;
      for (let v = 0, o = n * V, t = r * V; v < V; v++) dot += probs[t + v]! * z[o + v]!;
      sum += alpha * (z[n * V + target]! - dot);
    }
    if (klRows && lseRows && klTerms) {
      const o = n * V,
        t = r * V;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, z[o + v]!);
      let se = 0;
      for (let v = 0; v < V; v++) se += Math.exp(z[o + v]! - m);
      const lse = (lseRows[n] = m + Math.log(se));
      let kl = 0;
      for (let v = 0; v < V; v++) {
        const logq = z[o + v]! - lse,
          d = logq - Math.log(Math.max(probs[t + v]!, REVERSE_KL_FLOOR));
        klTerms[o + v] = d;
        kl += Math.exp(logq) * d;
      }
      klRows[n] = kl;
      sum += beta * kl;
    }
  }
  const out = tape.tensor([1], tape.needsGrad(logits));
  out.data[0] = counted > 0 ? sum / counted : 0;
  const dlogits = logits.grad;
  tape.record(out, (dout) => {
    if (!dlogits || counted === 0) return;
    const scale = dout[0]! / counted;
    be.crossEntropyBackward(N, V, z, targets, scale, dlogits);
    if (alpha === 0 && beta === 0) return;
    const a = alpha * scale,
      b = beta * scale;
    for (let n = 0; n < N; n++) {
      const target = targets[n]!,
        r = rows[n]!;
      if (target === -1 || r < 0) continue;
      const o = n * V;
      if (alpha > 0) {
        dlogits[o + target] += a;
        for (let v = 0, t = r * V; v < V; v++) dlogits[o + v] -= a * probs[t + v]!;
      }
      if (klRows && lseRows && klTerms) {
        const kl = klRows[n]!,
          lse = lseRows[n]!;
        for (let v = 0; v < V; v++) dlogits[o + v] += b * Math.exp(z[o + v]! - lse) * (klTerms[o + v]! - kl);
      }
    }
  });
  return out;
}

/**
 * Row-wise softmax of logits[N,V] into out (teacher distributions; no tape). Through the backend's cross-entropy
 * gradient: with scale 1 and target 0 it writes p − e_0 into a zeroed row, and adding e_0 back gives p (p_0 to
 * float32's absolute rounding near 1, ~6e-8): the kernel's vectorized, threaded exp instead of a JS loop.
 */
export function softmaxRows(tape: Tape, N: number, V: number, logits: Float32Array, out: Float32Array): void {
  if (logits.length < N * V || out.length < N * V)
    throw new Error(`softmaxRows: ${N} rows of ${V} need ${N * V} values (logits ${logits.length}, out ${out.length})`);
  const o = out.subarray(0, N * V);
  o.fill(0);
  tape.backend.crossEntropyBackward(N, V, logits, new Int32Array(N), 1, o);
  for (let n = 0; n < N; n++) o[n * V] += 1;
}

/** a + alpha·b for scalars a[1], b[1] (the joint loss: LM loss + λ · recycle loss). */
export function weightedSum(tape: Tape, a: Tensor, b: Tensor, alpha: number): Tensor {
  const op = 'weightedSum';
  if (a.size !== 1 || b.size !== 1)
    throw new Error(`${op}: expects two scalars, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}`);
  if (!Number.isFinite(alpha)) throw new Error(`${op}: alpha must be finite, got ${alpha}`);
  const out = tape.tensor([1], tape.needsGrad(a, b));
  out.data[0] = a.data[0] + alpha * b.data[0];
  const [da, db] = [a.grad, b.grad];
  tape.record(out, (dout) => {
    if (da) da[0] += dout[0];
    if (db) db[0] += alpha * dout[0];
  });
  return out;
}

/** Σ_i w_i·x_i for scalars x_i[1] (the k-step recycle loss over depths). */
export function weightedSumN(tape: Tape, xs: readonly Tensor[], weights: readonly number[]): Tensor {
  const op = 'weightedSumN';
  if (xs.length === 0 || xs.length !== weights.length)
    throw new Error(`${op}: ${xs.length} scalars and ${weights.length} weights (need the same number, ≥ 1)`);
  for (const [i, x] of xs.entries())
    if (x.size !== 1) throw new Error(`${op}: term ${i} has shape ${shapeToString(x.shape)}, expected a scalar`);
  for (const [i, w] of weights.entries())
    if (!Number.isFinite(w)) throw new Error(`${op}: weight ${i} must be finite, got ${w}`);
  const out = tape.tensor([1], tape.needsGrad(...xs));
  let sum = 0;
  for (const [i, x] of xs.entries()) sum += weights[i]! * x.data[0]!;
  out.data[0] = sum;
  tape.record(out, (dout) => {
    for (const [i, x] of xs.entries()) if (x.grad) x.grad[0] += weights[i]! * dout[0]!;
  });
  return out;
}
