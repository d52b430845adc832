/**
 * The "ref" backend: every kernel of the Backend interface in plain TypeScript. It is the oracle the native
 * addon is tested against, so it favours the obvious formula over speed. Sums are accumulated in float64 (JS
 * numbers) and rounded to float32 once on store; loops always run in the same order, so results are
 * deterministic and one row never depends on the others (row independence holds trivially).
 */
import type { Backend, F32 } from './backend.js';
import { checkDims, checkDivides, checkLen } from './checks.js';

function checkFinite(op: string, name: string, v: number): void {
  if (!Number.isFinite(v)) throw new Error(`${op}: ${name} must be a finite number, got ${v}`);
}

function checkPositive(op: string, name: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${op}: ${name} must be a positive finite number, got ${v}`);
}

/** A norm over zero channels is undefined (division by C). */
function checkChannels(op: string, N: number, C: number): void {
  if (N > 0 && C === 0) throw new Error(`${op}: C must be at least 1 when N=${N} > 0`);
}

function checkIds(op: string, ids: Int32Array, T: number, V: number): void {
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (id < 0 || id >= V) throw new Error(`${op}: ids[${t}] = ${id} is outside [0, V=${V})`);
  }
}

function checkAttentionHeads(op: string, H: number, G: number, D: number): void {
  checkDivides(op, `H=${H} must be a multiple of G=${G}`, H, G);
  if (D === 0) throw new Error(`${op}: D must be at least 1`);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Attention of one query row over n keys (positions 0..n−1, rows `kvStride` apart starting at `kvOff`):
 * scores·scale → softmax → weighted sum of values. Shared by attentionForward and attentionDecode so that a
 * decode row is bit-identical to the same row of the training forward.
 */
function attendRow(
  D: number, scale: number, q: F32, qOff: number, k: F32, v: F32, kvOff: number, kvStride: number, n: number,
  out: F32, outOff: number, weights: Float64Array,
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

export function createRefBackend(): Backend {
  return {
    name: 'ref',
    threads: () => 1,
    setThreads(n: number): void {
      if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`setThreads: n must be an integer 1..256, got ${n}`);
      // single-threaded by design: the count is accepted and ignored
    },

    // ---- matrix products ----------------------------------------------------------------------------------
    gemm(M, N, K, a, transA, b, transB, c, accumulate) {
      const op = 'gemm';
      checkDims(op, { M, N, K });
      checkLen(op, 'a', a, M * K, transA ? `A[K=${K},M=${M}]` : `A[M=${M},K=${K}]`);
      checkLen(op, 'b', b, K * N, transB ? `B[N=${N},K=${K}]` : `B[K=${K},N=${N}]`);
      checkLen(op, 'c', c, M * N, `C[M=${M},N=${N}]`);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let p = 0; p < K; p++) {
            const av = transA ? a[p * M + i] : a[i * K + p];
            const bv = transB ? b[j * K + p] : b[p * N + j];
            s += av * bv;
          }
          c[i * N + j] = accumulate ? c[i * N + j] + s : s;
        }
      }
    },

    linear(M, N, K, x, w, bias, y) {
      const op = 'linear';
      checkDims(op, { M, N, K });
      checkLen(op, 'x', x, M * K, `x[M=${M},K=${K}]`);
      checkLen(op, 'w', w, N * K, `w[N=${N},K=${K}]`);
      if (bias) checkLen(op, 'bias', bias, N, `bias[N=${N}]`);
      checkLen(op, 'y', y, M * N, `y[M=${M},N=${N}]`);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let p = 0; p < K; p++) s += x[m * K + p] * w[n * K + p];
          y[m * N + n] = bias ? s + bias[n] : s;
        }
      }
    },

    biasBackward(M, N, dy, db) {
      const op = 'biasBackward';
      checkDims(op, { M, N });
      checkLen(op, 'dy', dy, M * N, `dy[M=${M},N=${N}]`);
      checkLen(op, 'db', db, N, `db[N=${N}]`);
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let m = 0; m < M; m++) s += dy[m * N + n];
        db[n] += s;
      }
    },

    // ---- embedding ------------------------------------------------------------------------------------------
    embeddingForward(T, C, V, ids, table, out) {
      const op = 'embeddingForward';
      checkDims(op, { T, C, V });
      checkLen(op, 'ids', ids, T, `ids[T=${T}]`);
      checkLen(op, 'table', table, V * C, `table[V=${V},C=${C}]`);
      checkLen(op, 'out', out, T * C, `out[T=${T},C=${C}]`);
      checkIds(op, ids, T, V);
      for (let t = 0; t < T; t++) out.set(table.subarray(ids[t] * C, ids[t] * C + C), t * C);
    },

    embeddingBackward(T, C, V, ids, dout, dtable) {
      const op = 'embeddingBackward';
      checkDims(op, { T, C, V });
      checkLen(op, 'ids', ids, T, `ids[T=${T}]`);
      checkLen(op, 'dout', dout, T * C, `dout[T=${T},C=${C}]`);
      checkLen(op, 'dtable', dtable, V * C, `dtable[V=${V},C=${C}]`);
      checkIds(op, ids, T, V);
      for (let t = 0; t < T; t++) {
        const row = ids[t] * C;
        for (let c = 0; c < C; c++) dtable[row + c] += dout[t * C + c];
      }
    },

    // ---- norms ----------------------------------------------------------------------------------------------
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
      for (let n = 0; n < N; n++) {
        const o = n * C;
        let sum = 0;
        for (let c = 0; c < C; c++) sum += x[o + c];
        const mu = sum / C;
        let sq = 0;
        for (let c = 0; c < C; c++) sq += (x[o + c] - mu) ** 2;
        const rs = 1 / Math.sqrt(sq / C + eps);
        for (let c = 0; c < C; c++) out[o + c] = (x[o + c] - mu) * rs * w[c] + b[c];
        mean[n] = mu;
        rstd[n] = rs;
      }
    },

    layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db) {
      const op = 'layerNormBackward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      for (const [name, arr] of [['dout', dout], ['x', x], ['dx', dx]] as const) checkLen(op, name, arr, N * C, `${name}[N=${N},C=${C}]`);
      for (const [name, arr] of [['w', w], ['dw', dw], ['db', db]] as const) checkLen(op, name, arr, C, `${name}[C=${C}]`);
      checkLen(op, 'mean', mean, N, `mean[N=${N}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      const dwAcc = new Float64Array(C);
      const dbAcc = new Float64Array(C);
      for (let n = 0; n < N; n++) {
        const o = n * C;
        const mu = mean[n];
        const rs = rstd[n];
        // dx = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)), dnorm = dout·w
        let dnormMean = 0;
        let dnormNormMean = 0;
        for (let c = 0; c < C; c++) {
          const norm = (x[o + c] - mu) * rs;
          const dnorm = dout[o + c] * w[c];
          dnormMean += dnorm;
          dnormNormMean += dnorm * norm;
        }
        dnormMean /= C;
        dnormNormMean /= C;
        for (let c = 0; c < C; c++) {
          const norm = (x[o + c] - mu) * rs;
          const dnorm = dout[o + c] * w[c];
          dx[o + c] += (dnorm - dnormMean - norm * dnormNormMean) * rs;
          dwAcc[c] += dout[o + c] * norm;
          dbAcc[c] += dout[o + c];
        }
      }
      for (let c = 0; c < C; c++) {
        dw[c] += dwAcc[c];
        db[c] += dbAcc[c];
      }
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
      for (let n = 0; n < N; n++) {
        const o = n * C;
        let sq = 0;
        for (let c = 0; c < C; c++) sq += x[o + c] * x[o + c];
        const rs = 1 / Math.sqrt(sq / C + eps);
        for (let c = 0; c < C; c++) out[o + c] = x[o + c] * rs * w[c];
        rstd[n] = rs;
      }
    },

    rmsNormBackward(N, C, dout, x, w, rstd, dx, dw) {
      const op = 'rmsNormBackward';
      checkDims(op, { N, C });
      checkChannels(op, N, C);
      for (const [name, arr] of [['dout', dout], ['x', x], ['dx', dx]] as const) checkLen(op, name, arr, N * C, `${name}[N=${N},C=${C}]`);
      checkLen(op, 'w', w, C, `w[C=${C}]`);
      checkLen(op, 'dw', dw, C, `dw[C=${C}]`);
      checkLen(op, 'rstd', rstd, N, `rstd[N=${N}]`);
      const dwAcc = new Float64Array(C);
      for (let n = 0; n < N; n++) {
        const o = n * C;
        const rs = rstd[n];
        // out_i = x_i·r·w_i, r = (mean(x²)+eps)^−½  ⇒  dx_i = r·w_i·dout_i − x_i·r³·mean(dout·w·x)
        let dot = 0;
        for (let c = 0; c < C; c++) dot += dout[o + c] * w[c] * x[o + c];
        const k = (rs * rs * rs * dot) / C;
        for (let c = 0; c < C; c++) {
          dx[o + c] += rs * w[c] * dout[o + c] - x[o + c] * k;
          dwAcc[c] += dout[o + c] * x[o + c] * rs;
        }
      }
      for (let c = 0; c < C; c++) dw[c] += dwAcc[c];
    },

    // ---- activations ----------------------------------------------------------------------------------------
    geluForward(n, x, out) {
      const op = 'geluForward';
      checkDims(op, { n });
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      checkLen(op, 'out', out, n, `out[n=${n}]`);
      for (let i = 0; i < n; i++) {
        const v = x[i];
        out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
      }
    },

    geluBackward(n, x, dout, dx) {
      const op = 'geluBackward';
      checkDims(op, { n });
      for (const [name, arr] of [['x', x], ['dout', dout], ['dx', dx]] as const) checkLen(op, name, arr, n, `${name}[n=${n}]`);
      for (let i = 0; i < n; i++) {
        const v = x[i];
        const th = Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
        const dInner = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v);
        dx[i] += dout[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * dInner);
      }
    },

    swigluForward(n, gate, up, out) {
      const op = 'swigluForward';
      checkDims(op, { n });
      for (const [name, arr] of [['gate', gate], ['up', up], ['out', out]] as const) checkLen(op, name, arr, n, `${name}[n=${n}]`);
      for (let i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
    },

    swigluBackward(n, gate, up, dout, dgate, dup) {
      const op = 'swigluBackward';
      checkDims(op, { n });
      for (const [name, arr] of [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const) {
        checkLen(op, name, arr, n, `${name}[n=${n}]`);
      }
      for (let i = 0; i < n; i++) {
        const g = gate[i];
        const s = sigmoid(g);
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
        dup[i] += dout[i] * g * s;
      }
    },

    // ---- rotary embedding -----------------------------------------------------------------------------------
    rope(R, H, D, x, pos, theta, inverse) {
      const op = 'rope';
      checkDims(op, { R, H, D });
      checkDivides(op, `D=${D} must be even`, D, 2);
      checkPositive(op, 'theta', theta);
      checkLen(op, 'x', x, R * H * D, `x[R=${R},H=${H},D=${D}]`);
      checkLen(op, 'pos', pos, R, `pos[R=${R}]`);
      const half = D / 2;
      const sign = inverse ? -1 : 1;
      for (let r = 0; r < R; r++) {
        for (let i = 0; i < half; i++) {
          // angle in float64, cos/sin rounded to float32 as a float32 table would hold them
          const angle = sign * pos[r] * Math.pow(theta, (-2 * i) / D);
          const cos = Math.fround(Math.cos(angle));
          const sin = Math.fround(Math.sin(angle));
          for (let h = 0; h < H; h++) {
            const o = (r * H + h) * D;
            const x0 = x[o + i];
            const x1 = x[o + i + half];
            x[o + i] = x0 * cos - x1 * sin;
            x[o + i + half] = x1 * cos + x0 * sin;
          }
        }
      }
    },

    // ---- attention ------------------------------------------------------------------------------------------
    attentionForward(B, T, H, G, D, q, k, v, out, probs) {
      const op = 'attentionForward';
      checkDims(op, { B, T, H, G, D });
      checkAttentionHeads(op, H, G, D);
      checkLen(op, 'q', q, B * T * H * D, `q[B=${B},T=${T},H=${H},D=${D}]`);
      checkLen(op, 'k', k, B * T * G * D, `k[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'v', v, B * T * G * D, `v[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'out', out, B * T * H * D, `out[B=${B},T=${T},H=${H},D=${D}]`);
      checkLen(op, 'probs', probs, B * H * T * T, `probs[B=${B},H=${H},T=${T}]`);
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
      const op = 'attentionBackward';
      checkDims(op, { B, T, H, G, D });
      checkAttentionHeads(op, H, G, D);
      for (const [name, arr] of [['q', q], ['dout', dout], ['dq', dq]] as const) checkLen(op, name, arr, B * T * H * D, `${name}[B=${B},T=${T},H=${H},D=${D}]`);
      for (const [name, arr] of [['k', k], ['v', v], ['dk', dk], ['dv', dv]] as const) checkLen(op, name, arr, B * T * G * D, `${name}[B=${B},T=${T},G=${G},D=${D}]`);
      checkLen(op, 'probs', probs, B * H * T * T, `probs[B=${B},H=${H},T=${T}]`);
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
      const op = 'attentionDecode';
      checkDims(op, { M, H, G, D, pos0 });
      checkAttentionHeads(op, H, G, D);
      const len = pos0 + M;
      checkLen(op, 'q', q, M * H * D, `q[M=${M},H=${H},D=${D}]`);
      checkLen(op, 'kCache', kCache, len * G * D, `kCache[pos0+M=${len},G=${G},D=${D}]`);
      checkLen(op, 'vCache', vCache, len * G * D, `vCache[pos0+M=${len},G=${G},D=${D}]`);
      checkLen(op, 'out', out, M * H * D, `out[M=${M},H=${H},D=${D}]`);
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

    // ---- loss -----------------------------------------------------------------------------------------------
    crossEntropyForward(N, V, logits, targets, losses) {
      const op = 'crossEntropyForward';
      checkDims(op, { N, V });
      checkLen(op, 'logits', logits, N * V, `logits[N=${N},V=${V}]`);
      checkLen(op, 'targets', targets, N, `targets[N=${N}]`);
      checkLen(op, 'losses', losses, N, `losses[N=${N}]`);
      checkTargets(op, targets, N, V);
      let total = 0;
      for (let n = 0; n < N; n++) {
        const target = targets[n];
        if (target === -1) {
          losses[n] = 0;
          continue;
        }
        const loss = logSumExp(logits, n * V, V) - logits[n * V + target];
        losses[n] = loss;
        total += loss;
      }
      return total;
    },

    crossEntropyBackward(N, V, logits, targets, scale, dlogits) {
      const op = 'crossEntropyBackward';
      checkDims(op, { N, V });
      checkFinite(op, 'scale', scale);
      checkLen(op, 'logits', logits, N * V, `logits[N=${N},V=${V}]`);
      checkLen(op, 'targets', targets, N, `targets[N=${N}]`);
      checkLen(op, 'dlogits', dlogits, N * V, `dlogits[N=${N},V=${V}]`);
      checkTargets(op, targets, N, V);
      for (let n = 0; n < N; n++) {
        const target = targets[n];
        if (target === -1) continue;
        const o = n * V;
        const lse = logSumExp(logits, o, V);
        for (let i = 0; i < V; i++) {
          const p = Math.exp(logits[o + i] - lse);
          dlogits[o + i] += scale * (p - (i === target ? 1 : 0));
        }
      }
    },

    // ---- optimizer and elementwise ----------------------------------------------------------------------
    adamw(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step) {
      const op = 'adamw';
      checkDims(op, { n });
      for (const [name, arr] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) checkLen(op, name, arr, n, `${name}[n=${n}]`);
      for (const [name, val] of [['lr', lr], ['eps', eps], ['weightDecay', weightDecay]] as const) checkFinite(op, name, val);
      for (const [name, beta] of [['beta1', beta1], ['beta2', beta2]] as const) {
        if (!(beta >= 0 && beta < 1)) throw new Error(`${op}: ${name} must be in [0, 1), got ${beta}`);
      }
      if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer >= 1, got ${step}`);
      const bc1 = 1 - Math.pow(beta1, step);
      const bc2 = 1 - Math.pow(beta2, step);
      for (let i = 0; i < n; i++) {
        const g = grad[i];
        // the update uses the float32 moments as stored, so it is reproducible from a saved optimizer state
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        const mHat = m[i] / bc1;
        const vHat = v[i] / bc2;
        param[i] -= lr * (mHat / (Math.sqrt(vHat) + eps) + weightDecay * param[i]);
      }
    },

    add(n, a, b, out) {
      const op = 'add';
      checkDims(op, { n });
      for (const [name, arr] of [['a', a], ['b', b], ['out', out]] as const) checkLen(op, name, arr, n, `${name}[n=${n}]`);
      for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    },

    axpy(n, alpha, x, y) {
      const op = 'axpy';
      checkDims(op, { n });
      checkFinite(op, 'alpha', alpha);
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      checkLen(op, 'y', y, n, `y[n=${n}]`);
      for (let i = 0; i < n; i++) y[i] += alpha * x[i];
    },

    scale(n, x, alpha) {
      const op = 'scale';
      checkDims(op, { n });
      checkFinite(op, 'alpha', alpha);
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      for (let i = 0; i < n; i++) x[i] *= alpha;
    },

    sumSquares(n, x) {
      const op = 'sumSquares';
      checkDims(op, { n });
      checkLen(op, 'x', x, n, `x[n=${n}]`);
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i] * x[i];
      return s;
    },
  };
}

function checkTargets(op: string, targets: Int32Array, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t !== -1 && (t < 0 || t >= V)) throw new Error(`${op}: targets[${n}] = ${t} is outside [0, V=${V}) and is not -1 (ignore)`);
  }
}

function logSumExp(x: F32, off: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[off + i] - max);
  return max + Math.log(sum);
}
