/**
 * Float64 oracles of the kernels' forwards, written from the formulas independently of src/kernels/ref.ts.
 * Tests take central differences of these to check every backward (float32 differences are too noisy).
 */
export function matmul64(M: number, N: number, K: number, a: Float64Array, b: Float64Array): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) for (let p = 0; p < K; p++) c[i * N + j] += a[i * K + p] * b[p * N + j];
  return c;
}
export function transpose64(rows: number, cols: number, a: ArrayLike<number>): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}
export function linear64(
  M: number,
  N: number,
  K: number,
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | null,
): Float64Array {
  const y = matmul64(M, N, K, x, transpose64(N, K, w));
  if (b) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) y[m * N + n] += b[n];
  return y;
}
export function layerNorm64(
  N: number,
  C: number,
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  eps: number,
): Float64Array {
  const out = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const row = x.subarray(n * C, n * C + C);
    const mu = row.reduce((s, v) => s + v, 0) / C;
    const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / C;
    for (let c = 0; c < C; c++) out[n * C + c] = ((row[c] - mu) / Math.sqrt(variance + eps)) * w[c] + b[c];
  }
  return out;
}
export function rmsNorm64(N: number, C: number, x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const out = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const row = x.subarray(n * C, n * C + C);
    const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / C + eps);
    for (let c = 0; c < C; c++) out[n * C + c] = (row[c] / rms) * w[c];
  }
  return out;
}
export const gelu64 = (x: Float64Array): Float64Array =>
  x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
export const swiglu64 = (g: Float64Array, u: Float64Array): Float64Array =>
  g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
export function rope64(
  R: number,
  H: number,
  D: number,
  x: Float64Array,
  pos: Int32Array,
  theta: number,
  sign: number,
): Float64Array {
  const out = new Float64Array(x);
  const half = D / 2;
  for (let r = 0; r < R; r++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < half; i++) {
        const angle = (sign * pos[r]) / theta ** ((2 * i) / D);
        const o = (r * H + h) * D;
        out[o + i] = x[o + i] * Math.cos(angle) - x[o + i + half] * Math.sin(angle);
        out[o + i + half] = x[o + i + half] * Math.cos(angle) + x[o + i] * Math.sin(angle);
      }
  return out;
}
export function attention64(
  B: number,
  T: number,
  H: number,
  G: number,
  D: number,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
): Float64Array {
  const out = new Float64Array(B * T * H * D);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor((h * G) / H);
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[((b * T + t) * H + h) * D + d] * k[((b * T + j) * G + g) * D + d];
          scores.push(s / Math.sqrt(D));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((s, x) => s + x, 0);
        for (let j = 0; j <= t; j++)
          for (let d = 0; d < D; d++)
            out[((b * T + t) * H + h) * D + d] += (e[j] / z) * v[((b * T + j) * G + g) * D + d];
      }
  return out;
}
export function crossEntropySum64(N: number, V: number, logits: Float64Array, targets: Int32Array): number {
  let total = 0;
  for (let n = 0; n < N; n++) {
    if (targets[n] === -1) continue;
    const row = Array.from(logits.subarray(n * V, n * V + V));
    const max = Math.max(...row);
    total += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[targets[n]];
  }
  return total;
}
