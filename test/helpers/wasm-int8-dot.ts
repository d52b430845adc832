/**
 * An independent model of the wasm kernels' int8-dot product (native/kernels_impl.h linear_q8_int on
 * native/simd_wasm.h's primitives), which q8_0 and q4_0 weights take at M ≤ 8, exact to the bit: every float32
 * operation the kernel performs, in its order, with Math.fround.
 *  - x quantized per block of 32 (vb_quantize): a block with a NaN or ±inf gives d = NaN (and quants 0); else
 *    d = amax/127, id = d ≠ 0 ? 1/d : 0, q = round-half-even(x·id) (a NaN product, 0·inf, gives 0), clamped to
 *    [-127, 127], all in float32.
 *  - each output: per block b, dd = dx_b·dw_b, and 4 int32 lanes (lane l sums weights 8g + 2l and 8g + 2l + 1 of
 *    the 4 groups g of 8: i32x4.dot_i16x8_s, then adds) taken as float32; acc[b % 2][l] = (dd·s_l) + acc[b % 2][l]
 *    rounded twice (no fused multiply-add); then t = acc[0] + acc[1] lane by lane, s = (t0 + t2) + (t1 + t3), and
 *    s + bias.
 * `bound` is how far the exact product on the stored weights may be from it because of x's rounding:
 * Σ_b dx_b/2 · |dw_b| · Σ_j |w_bj| (the bound test/kernels-dtypes.test.ts holds native x86's q8_0 to).
 */
const f = Math.fround;

/** Round half to even (f32x4.nearest). */
export function rint(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x [M, K] quantized per block of 32 as the wasm vb_quantize does: quants (int16 storage) and block scales. */
export function quantizeXWasm(M: number, K: number, x: Float32Array): { xq: Int16Array; dx: Float32Array } {
  const nb = K / 32;
  const xq = new Int16Array(M * K),
    dx = new Float32Array(M * nb);
  for (let m = 0; m < M; m++)
    for (let b = 0; b < nb; b++) {
      const o = m * K + b * 32;
      let amax = 0,
        finite = true;
      for (let j = 0; j < 32; j++) {
        const v = x[o + j]!;
        if (!Number.isFinite(v)) finite = false;
        else amax = Math.max(amax, Math.abs(v));
      }
      if (!finite) {
        dx[m * nb + b] = NaN;
        continue;
      }
      const d = f(amax / 127),
        id = d !== 0 ? f(1 / d) : 0;
      dx[m * nb + b] = d;
      for (let j = 0; j < 32; j++) {
        const r = rint(f(x[o + j]! * id));
        xq[o + j] = Number.isNaN(r) ? 0 : Math.max(-127, Math.min(127, r));
      }
    }
  return { xq, dx };
}

/**
 * y [M, N] = x [M, K] · Wᵀ as the wasm int8 dot computes it, for weights given as integer quants `wq(n, k)` (q8_0:
 * the int8 value; q4_0: q − 8) and float32 block scales `dw` [N, K/32]; and the bound of x's rounding.
 */
export function wasmInt8DotModel(
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  wq: (n: number, k: number) => number,
  dw: Float32Array,
  bias: Float32Array | null,
): { y: Float32Array; bound: Float64Array } {
  const nb = K / 32;
  const { xq, dx } = quantizeXWasm(M, K, x);
  const y = new Float32Array(M * N),
    bound = new Float64Array(M * N);
  const w = new Int32Array(K),
    wabs = new Float64Array(nb);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) w[k] = wq(n, k);
    for (let b = 0; b < nb; b++) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += Math.abs(w[b * 32 + j]!);
      wabs[b] = s;
    }
    for (let m = 0; m < M; m++) {
      const acc = [
        [0, 0, 0, 0],
        [0, 0, 0, 0],
      ];
      let err = 0;
      for (let b = 0; b < nb; b++) {
        const d = dx[m * nb + b]!,
          s = dw[n * nb + b]!;
        const dd = f(d * s),
          a = acc[b % 2]!;
        for (let l = 0; l < 4; l++) {
          let lane = 0;
          for (let g = 0; g < 4; g++)
            for (const j of [b * 32 + 8 * g + 2 * l, b * 32 + 8 * g + 2 * l + 1]) lane += w[j]! * xq[m * K + j]!;
          a[l] = f(f(dd * lane) + a[l]!);
        }
        err += (d / 2) * Math.abs(s) * wabs[b]!;
      }
      const t = [0, 1, 2, 3].map((l) => f(acc[0]![l]! + acc[1]![l]!));
      const sum = f(f(t[0]! + t[2]!) + f(t[1]! + t[3]!));
      y[m * N + n] = bias ? f(sum + bias[n]!) : sum;
      bound[m * N + n] = err;
    }
  }
  return { y, bound };
}

/** |got − want| ≤ bound + rtol·(|want| + rms(want)) elementwise (ref vs a product on int8 x). */
export function assertWithin(
  got: Float32Array,
  want: Float32Array,
  bound: Float64Array,
  rtol: number,
  what: string,
): void {
  let rms = 0;
  for (const v of want) rms += v * v;
  rms = Math.sqrt(rms / Math.max(1, want.length));
  for (let i = 0; i < want.length; i++) {
    const lim = bound[i]! + rtol * (Math.abs(want[i]!) + rms);
    if (!(Math.abs(got[i]! - want[i]!) <= lim))
      throw new Error(`${what}: element ${i} is ${got[i]}, want ${want[i]} within ${lim.toExponential(3)}`);
  }
}
