/**
 * Attention of the k-step recycle loss (ARCHITECTURE.md §1.2, "training-time test" as EAGLE-3 calls it): a query row
 * (b, t) of module depth j ≥ 2 attends over
 *   - the depth-1 rows (b, 0..t): the module positions computed from real base states (the "prefix"), and
 *   - one row (b, t) of each extra: the chain's own depths 2..j at the same anchor t, the last being itself.
 * That is exactly what a chained draft sees at decode time, where it is appended to the module KV cache after the
 * positions computed from real base states. With no extras this is plain causal attention (nn.attention).
 *
 * The quadratic parts run through the backend's gemm per (sequence, head): S = Q·K1ᵀ, O = P·V1 and, backward,
 * dP = dO·V1ᵀ, dQ = dS·K1, dK1 = dSᵀ·Q, dV1 = Pᵀ·dO. The mask, the softmax over prefix + extras and the extras'
 * D-long products are plain loops (linear in T).
 */
import { type Tensor } from '../tensor/tensor.js';
import type { AttentionDims } from './ops.js';
import type { Tape } from './tape.js';

/** One extra key/value row per query row: [B·T, G·D] each, row (b, t) attended only by query row (b, t). */
export interface ChainExtra {
  k: Tensor;
  v: Tensor;
}

/** Gathers head `h` of rows b·T..b·T+T−1 of x [B·T, W·D] into out [T, D]. */
function gather(x: Float32Array, b: number, T: number, W: number, h: number, D: number, out: Float32Array): void {
  for (let t = 0; t < T; t++) {
    const off = ((b * T + t) * W + h) * D;
    for (let d = 0; d < D; d++) out[t * D + d] = x[off + d]!;
  }
}

/** The inverse of gather, adding. */
function scatterAdd(src: Float32Array, b: number, T: number, W: number, h: number, D: number, x: Float32Array): void {
  for (let t = 0; t < T; t++) {
    const off = ((b * T + t) * W + h) * D;
    for (let d = 0; d < D; d++) x[off + d] += src[t * D + d]!;
  }
}

function dot(a: Float32Array, aOff: number, b: Float32Array, bOff: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s += a[aOff + d]! * b[bOff + d]!;
  return s;
}

/** q [B·T, H·D], k1 / v1 [B·T, G·D], extras' k / v [B·T, G·D] → out [B·T, H·D] (see the file comment). */
export function chainAttention(
  tape: Tape,
  q: Tensor,
  k1: Tensor,
  v1: Tensor,
  extras: readonly ChainExtra[],
  dims: AttentionDims,
): Tensor {
  const op = 'chainAttention';
  const { B, T, H, G, D } = dims;
  if (!(H % G === 0 && H >= G && G >= 1)) throw new Error(`${op}: ${H} query heads are not a multiple of ${G}`);
  if (q.size !== B * T * H * D) throw new Error(`${op}: q has ${q.size} elements, B·T·H·D = ${B * T * H * D}`);
  const kvs: [string, Tensor][] = [
    ['k1', k1],
    ['v1', v1],
    ...extras.flatMap((e, i): [string, Tensor][] => [
      [`extras[${i}].k`, e.k],
      [`extras[${i}].v`, e.v],
    ]),
  ];
  for (const [name, t] of kvs)
    if (t.size !== B * T * G * D) throw new Error(`${op}: ${name} has ${t.size} elements, B·T·G·D = ${B * T * G * D}`);
  const be = tape.backend;
  const E = extras.length;
  const scale = 1 / Math.sqrt(D);
  const perKv = H / G;
  const needs = tape.needsGrad(q, k1, v1, ...extras.flatMap((e) => [e.k, e.v]));
  const out = tape.tensor(q.shape, needs);
  // probabilities: prefix [B, H, T, T] (zero above the diagonal) and extras [B, H, T, E], kept for backward
  const P = tape.scratch(B * H * T * T);
  const Pe = tape.scratch(Math.max(1, B * H * T * E));
  const Qh = new Float32Array(T * D),
    Kg = new Float32Array(T * D),
    Vg = new Float32Array(T * D),
    Oh = new Float32Array(T * D);
  const row = new Float64Array(T + E);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / perKv);
      gather(q.data, b, T, H, h, D, Qh);
      gather(k1.data, b, T, G, g, D, Kg);
      gather(v1.data, b, T, G, g, D, Vg);
      const pOff = (b * H + h) * T * T;
      const S = P.subarray(pOff, pOff + T * T);
      be.gemm(T, T, D, Qh, false, Kg, true, S, false);
      for (let t = 0; t < T; t++) {
        let max = -Infinity;
        for (let s = 0; s <= t; s++) max = Math.max(max, (row[s] = S[t * T + s]! * scale));
        const eOff = (b * T + t) * G * D + g * D;
        for (let i = 0; i < E; i++)
          max = Math.max(max, (row[T + i] = dot(Qh, t * D, extras[i]!.k.data, eOff, D) * scale));
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += row[s] = Math.exp(row[s]! - max);
        for (let i = 0; i < E; i++) sum += row[T + i] = Math.exp(row[T + i]! - max);
        for (let s = 0; s < T; s++) S[t * T + s] = s <= t ? row[s]! / sum : 0;
        for (let i = 0; i < E; i++) Pe[((b * H + h) * T + t) * E + i] = row[T + i]! / sum;
      }
      be.gemm(T, D, T, S, false, Vg, false, Oh, false);
      for (let i = 0; i < E; i++) {
        const ev = extras[i]!.v.data;
        for (let t = 0; t < T; t++) {
          const p = Pe[((b * H + h) * T + t) * E + i]!,
            eOff = (b * T + t) * G * D + g * D;
          for (let d = 0; d < D; d++) Oh[t * D + d] += p * ev[eOff + d]!;
        }
      }
      for (let t = 0; t < T; t++) out.data.set(Oh.subarray(t * D, t * D + D), ((b * T + t) * H + h) * D);
    }
  }
  tape.record(out, (dout) => {
    const dO = new Float32Array(T * D),
      dP = new Float32Array(T * T),
      tmp = new Float32Array(T * D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / perKv);
        gather(q.data, b, T, H, h, D, Qh);
        gather(k1.data, b, T, G, g, D, Kg);
        gather(v1.data, b, T, G, g, D, Vg);
        gather(out.data, b, T, H, h, D, Oh);
        gather(dout, b, T, H, h, D, dO);
        const pOff = (b * H + h) * T * T;
        const Ph = P.subarray(pOff, pOff + T * T);
        be.gemm(T, T, D, dO, false, Vg, true, dP, false);
        // dS = P ⊙ (dP − rowdot), rowdot = dO·O (= Σ P·dP over prefix and extras); dP becomes dS in place
        for (let t = 0; t < T; t++) {
          const rd = dot(dO, t * D, Oh, t * D, D);
          for (let s = 0; s < T; s++) dP[t * T + s] = s <= t ? Ph[t * T + s]! * (dP[t * T + s]! - rd) : 0;
          const eOff = (b * T + t) * G * D + g * D;
          for (let i = 0; i < E; i++) {
            const x = extras[i]!,
              pi = ((b * H + h) * T + t) * E + i,
              p = Pe[pi]!;
            const dS = p * (dot(dO, t * D, x.v.data, eOff, D) - rd);
            // the extra's key and value rows get this query's share; dq gets the key's
            const dk = x.k.grad,
              dv = x.v.grad;
            for (let d = 0; d < D; d++) {
              if (dk) dk[eOff + d] += scale * dS * Qh[t * D + d]!;
              if (dv) dv[eOff + d] += p * dO[t * D + d]!;
            }
            Pe[pi] = dS; // the probability is no longer needed (a tape runs backward once): keep dS for dq
          }
        }
        if (q.grad) {
          be.gemm(T, D, T, dP, false, Kg, false, tmp, false);
          for (let t = 0; t < T; t++) {
            const eOff = (b * T + t) * G * D + g * D;
            for (let i = 0; i < E; i++) {
              const dS = Pe[((b * H + h) * T + t) * E + i]!,
                ek = extras[i]!.k.data;
              for (let d = 0; d < D; d++) tmp[t * D + d] += dS * ek[eOff + d]!;
            }
          }
          for (let n = 0; n < T * D; n++) tmp[n] *= scale;
          scatterAdd(tmp, b, T, H, h, D, q.grad);
        }
        if (k1.grad) {
          be.gemm(T, D, T, dP, true, Qh, false, tmp, false);
          for (let n = 0; n < T * D; n++) tmp[n] *= scale;
          scatterAdd(tmp, b, T, G, g, D, k1.grad);
        }
        if (v1.grad) {
          be.gemm(T, D, T, Ph, true, dO, false, tmp, false);
          scatterAdd(tmp, b, T, G, g, D, v1.grad);
        }
      }
    }
  });
  return out;
}
