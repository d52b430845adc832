/**
 * The transformer block's decode-time operations over KV caches (block.ts BlockOps), shared by the solo forward
 * (infer.ts) and the batched one (infer-batch.ts), and the model's norm on rows.
 *
 * Shapes: rows new rows in all spans, C width, H heads, G kv heads, D head dim.
 */
import type { Backend } from '../kernels/backend.js';
import { normKind, type BlockOps, type ProductSlot } from './block.js';
import type { ModelConfig } from './config.js';
import type { ForwardScratch } from './infer.js';
import type { KVCache } from './kv-cache.js';
import type { BlockNames } from './names.js';
import { ropeFor, type RopeTable } from './rope.js';
import type { ProductWeights } from './product-weights.js';

/** Where one call's rows sit among a forward's rows: rows r0..r0+M−1, at positions pos0.. of `cache`. */
export interface RowSpan {
  r0: number;
  M: number;
  pos0: number;
  cache: KVCache;
}

/** y[M, N] = x · Wᵀ + bias over M rows (the backend's linear, or a row-chunked one). */
export type RowProduct = (
  b: Backend,
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  w: Parameters<Backend['linear']>[4],
  bias: Float32Array | null,
  y: Float32Array,
) => void;

/** The backend's linear over all rows in one call. */
export const plainProduct: RowProduct = (b, M, N, K, x, w, bias, y) => b.linear(M, N, K, x, w, bias, y);

/**
 * The block's operations for decoding (block.ts), written once for a solo call (one span) and for a batch of
 * several sessions' calls (infer-batch.ts): products, norms and activations on all rows at once, through `product`
 * (the backend's linear, or infer-batch's ≤ 8-row chunks); each span's K/V rows written into its own cache at its
 * positions, attention per span. Set `at` before each block; one instance serves every block of a call.
 */
export class DecodeBlockOps implements BlockOps<Float32Array> {
  private s!: ForwardScratch;
  private spans: readonly RowSpan[] = [];
  private rows = 0;
  private layer = 0;
  private readonly rope: number | RopeTable;

  constructor(
    private readonly c: ModelConfig,
    private readonly w: ProductWeights,
    private readonly b: Backend,
    private readonly product: RowProduct = plainProduct,
  ) {
    this.rope = ropeFor(c);
  }

  at(s: ForwardScratch, spans: readonly RowSpan[], rows: number, layer: number): this {
    this.s = s;
    this.spans = spans;
    this.rows = rows;
    this.layer = layer;
    return this;
  }

  norm(x: Float32Array, w: string, bias: string | null): Float32Array {
    const out = this.s.norm.subarray(0, x.length);
    normRows(this.c, this.w, this.b, x.length / this.c.hidden, x, w, bias, out, this.s);
    return out;
  }

  attention(nrm: Float32Array, n: BlockNames): Float32Array {
    const { c, b, w, s, rows, layer } = this;
    const C = c.hidden,
      H = c.nHeads,
      G = c.nKvHeads,
      D = c.headDim,
      qw = H * D,
      kvw = G * D;
    const q = s.q.subarray(0, rows * qw);
    if (n.qkv) {
      // GPT-2's fused c_attn [3C, C]: one product (one pass over W), then each row's q to q and its k, v to its
      // span's cache.
      const qkv = s.qkv.subarray(0, rows * 3 * C);
      this.product(b, rows, 3 * C, C, nrm, w.weight(n.qkv), w.get(n.qkvBias!), qkv);
      for (const { r0, M, pos0, cache } of this.spans) {
        for (let i = 0; i < M; i++) {
          const r = (r0 + i) * 3 * C,
            p = (pos0 + i) * C;
          q.set(qkv.subarray(r, r + C), (r0 + i) * C);
          cache.k[layer]!.set(qkv.subarray(r + C, r + 2 * C), p);
          cache.v[layer]!.set(qkv.subarray(r + 2 * C, r + 3 * C), p);
        }
      }
    } else {
      const bias = (name: string | null): Float32Array | null => (name ? w.get(name) : null);
      const k = s.kNew.subarray(0, rows * kvw),
        v = s.vNew.subarray(0, rows * kvw);
      this.product(b, rows, qw, C, nrm, w.weight(n.q!), bias(n.qBias), q);
      this.product(b, rows, kvw, C, nrm, w.weight(n.k!), bias(n.kBias), k);
      this.product(b, rows, kvw, C, nrm, w.weight(n.v!), bias(n.vBias), v);
      this.rotate(H, q);
      this.rotate(G, k);
      for (const { r0, M, pos0, cache } of this.spans) {
        cache.k[layer]!.set(k.subarray(r0 * kvw, (r0 + M) * kvw), pos0 * kvw);
        cache.v[layer]!.set(v.subarray(r0 * kvw, (r0 + M) * kvw), pos0 * kvw);
      }
    }
    const att = s.att.subarray(0, rows * qw);
    for (const { r0, M, pos0, cache } of this.spans) {
      const qs = q.subarray(r0 * qw, (r0 + M) * qw),
        out = att.subarray(r0 * qw, (r0 + M) * qw);
      b.attentionDecode(M, H, G, D, qs, cache.k[layer]!, cache.v[layer]!, pos0, out);
    }
    return att;
  }

  /** RoPE in place on x[rows, heads, D], each row at its own segment's position (s.pos). */
  private rotate(heads: number, x: Float32Array): void {
    const { rows, rope } = this,
      D = this.c.headDim,
      pos = this.s.pos.subarray(0, rows);
    if (typeof rope === 'number') this.b.rope(rows, heads, D, x, pos, rope, false);
    else rope.rotate(rows, heads, D, x, pos, false);
  }

  linear(x: Float32Array, w: string, bias: string | null, slot: ProductSlot): Float32Array {
    const [N, K] = this.w.spec(w).shape as [number, number];
    const M = this.rows,
      s = this.s;
    const y = (slot === 'proj' ? s.tmp : slot === 'up' ? s.up : s.gate).subarray(0, M * N);
    this.product(this.b, M, N, K, x, this.w.weight(w), bias ? this.w.get(bias) : null, y);
    return y;
  }

  gelu(x: Float32Array): Float32Array {
    this.b.geluForward(x.length, x, x);
    return x;
  }

  swiglu(gate: Float32Array, up: Float32Array): Float32Array {
    this.b.swigluForward(up.length, gate, up, up);
    return up;
  }

  residual(x: Float32Array, y: Float32Array): Float32Array {
    this.b.add(x.length, x, y, x);
    return x;
  }
}

/** The model's norm (block.ts normKind) on M rows of x into out; statistics go to the scratch. */
export function normRows(
  c: ModelConfig,
  weights: ProductWeights,
  b: Backend,
  M: number,
  x: Float32Array,
  w: string,
  bias: string | null,
  out: Float32Array,
  s: ForwardScratch,
): void {
  if (normKind(c) === 'layer') {
    b.layerNormForward(M, c.hidden, x, weights.get(w), weights.get(bias!), c.normEps, out, s.mean, s.rstd);
  } else {
    b.rmsNormForward(M, c.hidden, x, weights.get(w), c.normEps, out, s.rstd);
  }
}
