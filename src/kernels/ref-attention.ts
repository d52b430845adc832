/**
 * The ref backend's attention kernels (split from ref.ts for size). attentionForward and attentionDecode share
 * attendRow, so a decode row is bit-identical to the same row of the training forward.
 */
import type { Backend, F32 } from './backend.js';

/**
 * Attention of one query row over n keys (positions 0..n−1, rows `kvStride` apart starting at `kvOff`):
 * scores·scale → softmax → weighted sum of values. Shared by attentionForward and attentionDecode so that a
 * decode row is bit-identical to the same row of the training forward.
 */
function attendRow(
  D: number,
  scale: number,
  q: F32,
  qOff: number,
  k: F32,
  v: F32,
  kvOff: number,
  kvStride: number,
  n: number,
  out: F32,
  outOff: number,
  weights: Float64Array,
): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const kOff = kvOff + j * kvStride;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qOff + d] * k[kOff + d];
    const s = dot * scale;
    weights[j] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const e = Math.exp(weights[j] - max);
    weights[j] = e;
    sum += e;
  }
  for (let j = 0; j < n; j++) weights[j] /= sum;
  for (let d = 0; d < D; d++) {
    let acc = 0;
    for (let j = 0; j < n; j++) acc += weights[j] * v[kvOff + j * kvStride + d];
    out[outOff + d] = acc;
  }
}

export const refAttentionKernels: Pick<Backend, 'attentionForward' | 'attentionBackward' | 'attentionDecode'> = {
  attentionForward(B, T, H, G, D, q, k, v, out, probs) {
    const scale = 1 / Math.sqrt(D);
    const headsPerKv = H / G;
    const weights = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvOff = (b * T * G + Math.floor(h / headsPerKv)) * D;
        for (let t = 0; t < T; t++) {
          const qOff = ((b * T + t) * H + h) * D;
          attendRow(D, scale, q, qOff, k, v, kvOff, G * D, t + 1, out, qOff, weights);
          const pOff = ((b * H + h) * T + t) * T;
          for (let j = 0; j < T; j++) probs[pOff + j] = j <= t ? weights[j] : 0;
        }
      }
    }
  },

  attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv) {
    const scale = 1 / Math.sqrt(D);
    const headsPerKv = H / G;
    const dkAcc = new Float64Array(B * T * G * D);
    const dvAcc = new Float64Array(B * T * G * D);
    const dScore = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvBase = (b * T * G + Math.floor(h / headsPerKv)) * D;
        for (let t = 0; t < T; t++) {
          const qOff = ((b * T + t) * H + h) * D;
          const pOff = ((b * H + h) * T + t) * T;
          // dp_j = dout·v_j ; dv_j += p_j·dout ; dscore_j = p_j·(dp_j − Σ p·dp)
          let pDotDp = 0;
          for (let j = 0; j <= t; j++) {
            const vOff = kvBase + j * G * D;
            const p = probs[pOff + j];
            let dp = 0;
            for (let d = 0; d < D; d++) {
              dp += dout[qOff + d] * v[vOff + d];
              dvAcc[vOff + d] += p * dout[qOff + d];
            }
            dScore[j] = dp;
            pDotDp += p * dp;
          }
          for (let j = 0; j <= t; j++) dScore[j] = probs[pOff + j] * (dScore[j] - pDotDp) * scale;
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let j = 0; j <= t; j++) acc += dScore[j] * k[kvBase + j * G * D + d];
            dq[qOff + d] += acc;
          }
          for (let j = 0; j <= t; j++) {
            const kOff = kvBase + j * G * D;
            for (let d = 0; d < D; d++) dkAcc[kOff + d] += dScore[j] * q[qOff + d];
          }
        }
      }
    }
    for (let i = 0; i < dkAcc.length; i++) {
      dk[i] += dkAcc[i];
      dv[i] += dvAcc[i];
    }
  },

  attentionDecode(M, H, G, D, q, kCache, vCache, pos0, out) {
    const len = pos0 + M;
    const scale = 1 / Math.sqrt(D);
    const headsPerKv = H / G;
    const weights = new Float64Array(len);
    for (let i = 0; i < M; i++) {
      for (let h = 0; h < H; h++) {
        const off = (i * H + h) * D;
        const kvOff = Math.floor(h / headsPerKv) * D;
        attendRow(D, scale, q, off, kCache, vCache, kvOff, G * D, pos0 + i + 1, out, off, weights);
      }
    }
  },
};
