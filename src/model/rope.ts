/**
 * Rotary position embedding of a Llama-family config. Unscaled RoPE (inverse frequencies theta^(−2i/D)) runs on the
 * backend's `rope` kernel. Scaled RoPE (config.ropeScaling: "llama3", "linear") has per-dimension inverse
 * frequencies the kernel cannot express, so it rotates here, in TypeScript, by a cos/sin table of those frequencies:
 * the same rotate-half rule, angles in float64 and cos/sin rounded to float32 as the kernels do, so a row's result is
 * independent of the rows around it and identical in decoding (infer.ts) and training (graph.ts via nn.rope).
 *
 * Frequencies follow transformers' modeling_rope_utils (_compute_default_rope_parameters, then
 * _compute_linear_scaling_rope_parameters or _compute_llama3_parameters), in float64.
 */
import type { F32 } from '../kernels/backend.js';
import type { RopeRotation } from '../nn/ops.js';
import type { ModelConfig } from './config.js';

/** The D/2 inverse frequencies of the config's RoPE (scaled when config.ropeScaling says so). */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const D = c.headDim,
    half = D / 2;
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.pow(c.ropeTheta, (-2 * i) / D);
  const s = c.ropeScaling;
  if (!s) return f;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) f[i] = f[i]! / s.factor;
    return f;
  }
  // llama3: wavelengths below L₀/high_freq_factor keep their frequency, above L₀/low_freq_factor it is divided by
  // factor, in between it is interpolated by smooth = (L₀/λ − low) / (high − low).
  const L0 = s.originalMaxPositions;
  const lowWavelen = L0 / s.lowFreqFactor,
    highWavelen = L0 / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const inv = f[i]!,
      wavelen = (2 * Math.PI) / inv;
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      f[i] = inv / s.factor;
      continue;
    }
    const smooth = (L0 / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    f[i] = ((1 - smooth) * inv) / s.factor + smooth * inv;
  }
  return f;
}

/** Floats a cos (and a sin) table may hold; rows of positions beyond are computed per call instead. */
const CACHE_FLOATS = 1 << 22;

/**
 * Rotate-half RoPE by a table of inverse frequencies, in place on x[R, H, D]: pair (i, i + D/2) of each head rotated
 * by pos[r]·invFreq[i]; `inverse` rotates by the negative angle (the transpose: the backward of the forward).
 * cos/sin rows are cached per position, grown on demand.
 */
export class RopeTable implements RopeRotation {
  readonly half: number;
  private cos: Float32Array = new Float32Array(0);
  private sin: Float32Array = new Float32Array(0);
  private rows = 0;

  constructor(readonly invFreq: Float64Array) {
    this.half = invFreq.length;
  }

  rotate(R: number, H: number, D: number, x: F32, pos: Int32Array, inverse: boolean): void {
    const half = this.half;
    if (D !== 2 * half) throw new Error(`rope: head dim D=${D}, the frequency table has ${half} pairs (D=${2 * half})`);
    if (x.length !== R * H * D) throw new Error(`rope: x has ${x.length} elements, expected R·H·D = ${R}·${H}·${D}`);
    if (pos.length !== R) throw new Error(`rope: pos has ${pos.length} entries, expected R = ${R}`);
    let maxPos = 0;
    for (let r = 0; r < R; r++) {
      const p = pos[r]!;
      if (p < 0) throw new Error(`rope: position ${p} at row ${r} is negative`);
      if (p > maxPos) maxPos = p;
    }
    const cached = this.ensure(maxPos);
    const cosRow = new Float32Array(half),
      sinRow = new Float32Array(half);
    const sign = inverse ? -1 : 1;
    for (let r = 0; r < R; r++) {
      const p = pos[r]!;
      let cs: Float32Array, sn: Float32Array;
      if (cached) {
        cs = this.cos.subarray(p * half, (p + 1) * half);
        sn = this.sin.subarray(p * half, (p + 1) * half);
      } else {
        this.fill(p, cosRow, sinRow, 0);
        cs = cosRow;
        sn = sinRow;
      }
      for (let h = 0; h < H; h++) {
        const o = (r * H + h) * D;
        for (let i = 0; i < half; i++) {
          const c = cs[i]!,
            s = sign * sn[i]!;
          const x0 = x[o + i]!,
            x1 = x[o + i + half]!;
          x[o + i] = x0 * c - x1 * s;
          x[o + i + half] = x1 * c + x0 * s;
        }
      }
    }
  }

  /** cos/sin of position p into c, s at offset o (angles in float64, rounded to float32). */
  private fill(p: number, c: Float32Array, s: Float32Array, o: number): void {
    for (let i = 0; i < this.half; i++) {
      const angle = p * this.invFreq[i]!;
      c[o + i] = Math.cos(angle);
      s[o + i] = Math.sin(angle);
    }
  }

  /** Cache rows 0..maxPos (doubling); false when that would exceed the cache bound (rows computed per call). */
  private ensure(maxPos: number): boolean {
    if (maxPos < this.rows) return true;
    const half = Math.max(1, this.half);
    if ((maxPos + 1) * half > CACHE_FLOATS) return false;
    const n = Math.min(Math.max(maxPos + 1, 2 * this.rows, 64), Math.floor(CACHE_FLOATS / half));
    const cos = new Float32Array(n * this.half),
      sin = new Float32Array(n * this.half);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let p = this.rows; p < n; p++) this.fill(p, cos, sin, p * this.half);
    this.cos = cos;
    this.sin = sin;
    this.rows = n;
    return true;
  }
}

/**
 * The rotation of a config's q/k: its rope_theta for the backend kernel when unscaled, else a frequency table (one
 * per model: the table caches cos/sin rows).
 */
export function ropeFor(c: ModelConfig): number | RopeTable {
  return c.ropeScaling ? new RopeTable(ropeInvFreq(c)) : c.ropeTheta;
}
