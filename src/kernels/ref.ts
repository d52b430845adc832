/**
 * The "ref" backend: every kernel of the Backend interface in plain TypeScript. It is the oracle the native
 * addon is tested against, so it favours the obvious formula over speed. Sums are accumulated in float64 (JS
 * numbers) and rounded to float32 once on store; loops always run in the same order, so results are
 * deterministic and one row never depends on the others (row independence holds trivially). Arguments are
 * validated by validate.ts, as for every backend.
 */
import { heapAllocator, type Backend, type F32, type WeightArg } from './backend.js';
import { bf16ToF32Array, f16ToF32Array } from './half.js';
import { dequantizeQ4, dequantizeQ8, Q4_BLOCK, Q8_BLOCK } from './quant.js';
import { refAttentionKernels } from './ref-attention.js';
import { withArgChecks } from './validate.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

/**
 * Row `r` of a weight [rows, n] as float32 (a view for f32 storage, else decoded into `buf`). Decoding is exact, so
 * results do not depend on the storage of the same values.
 */
function weightRow(w: WeightArg, r: number, n: number, buf: Float32Array): Float32Array {
  if (w instanceof Float32Array) return w.subarray(r * n, r * n + n);
  if (w.dtype === 'f32') return w.data.subarray(r * n, r * n + n);
  if (w.dtype === 'q8_0') {
    const blocks = n / Q8_BLOCK;
    const q = { data: w.data.subarray(r * n, r * n + n), scales: w.scales.subarray(r * blocks, (r + 1) * blocks) };
    return dequantizeQ8(q, buf);
  }
  if (w.dtype === 'q4_0') {
    const blocks = n / Q4_BLOCK;
    const q = {
      data: w.data.subarray((r * n) / 2, ((r + 1) * n) / 2),
      scales: w.scales.subarray(r * blocks, (r + 1) * blocks),
    };
    return dequantizeQ4(q, buf);
  }
  if (w.dtype !== 'f16' && w.dtype !== 'bf16') throw new Error(`ref: ${w.dtype} weights are not read here`);
  const bits = w.data.subarray(r * n, r * n + n);
  return w.dtype === 'f16' ? f16ToF32Array(bits, buf) : bf16ToF32Array(bits, buf);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function createRefBackend(): Backend {
  return withArgChecks<Backend>({
    name: 'ref',
    weightDtypes: ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'],
    alloc: heapAllocator,
    threads: () => 1,
    setThreads(n: number): void {
      if (!Number.isInteger(n) || n < 1 || n > 256)
        throw new Error(`setThreads: n must be an integer 1..256, got ${n}`);
      // single-threaded by design: the count is accepted and ignored
    },

    // ---- matrix products ----------------------------------------------------------------------------------
    gemm(M, N, K, a, transA, b, transB, c, accumulate) {
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
      const row = new Float32Array(K);
      for (let n = 0; n < N; n++) {
        const wn = weightRow(w, n, K, row);
        for (let m = 0; m < M; m++) {
          let s = 0;
          for (let p = 0; p < K; p++) s += x[m * K + p] * wn[p];
          y[m * N + n] = bias ? s + bias[n] : s;
        }
      }
    },

    biasBackward(M, N, dy, db) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let m = 0; m < M; m++) s += dy[m * N + n];
        db[n] += s;
      }
    },

    // ---- embedding ------------------------------------------------------------------------------------------
    embeddingForward(T, C, _V, ids, table, out) {
      const row = new Float32Array(C);
      for (let t = 0; t < T; t++) out.set(weightRow(table, ids[t], C, row), t * C);
    },

    embeddingBackward(T, C, _V, ids, dout, dtable) {
      for (let t = 0; t < T; t++) {
        const row = ids[t] * C;
        for (let c = 0; c < C; c++) dtable[row + c] += dout[t * C + c];
      }
    },

    // ---- norms ----------------------------------------------------------------------------------------------
    layerNormForward(N, C, x, w, b, eps, out, mean, rstd) {
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
      for (let i = 0; i < n; i++) {
        const v = x[i];
        out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
      }
    },

    geluBackward(n, x, dout, dx) {
      for (let i = 0; i < n; i++) {
        const v = x[i];
        const th = Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
        const dInner = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v);
        dx[i] += dout[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * dInner);
      }
    },

    swigluForward(n, gate, up, out) {
      for (let i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
    },

    swigluBackward(n, gate, up, dout, dgate, dup) {
      for (let i = 0; i < n; i++) {
        const g = gate[i];
        const s = sigmoid(g);
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
        dup[i] += dout[i] * g * s;
      }
    },

    // ---- rotary embedding -----------------------------------------------------------------------------------
    rope(R, H, D, x, pos, theta, inverse) {
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

    // ---- attention (ref-attention.ts) ---------------------------------------------------------------------
    ...refAttentionKernels,

    // ---- loss -----------------------------------------------------------------------------------------------
    crossEntropyForward(N, V, logits, targets, losses) {
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
      for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    },

    axpy(n, alpha, x, y) {
      for (let i = 0; i < n; i++) y[i] += alpha * x[i];
    },

    scale(n, x, alpha) {
      for (let i = 0; i < n; i++) x[i] *= alpha;
    },

    sumSquares(n, x) {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i] * x[i];
      return s;
    },
  });
}

function logSumExp(x: F32, off: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[off + i] - max);
  return max + Math.log(sum);
}
