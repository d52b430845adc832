/**
 * Inference forward (no autograd) over KV caches: the base model's full call on M new tokens and the
 * recyclable module's call on M new (h_t, x_{t+1}) pairs (ARCHITECTURE.md §1.1). Every kernel used is
 * row-independent, so a row computed in an M-token call equals the same row computed alone, bit for bit.
 *
 * Shapes: M new rows, C width, H heads, G kv heads, D head dim, I MLP width, V vocab.
 */
import { heapAllocator, type Allocator, type Backend } from '../kernels/backend.js';
import { blockForward, normKind, type BlockOps, type ProductSlot } from './block.js';
import type { ModelConfig } from './config.js';
import { KVCache } from './kv-cache.js';
import { basePrefix, blockNames, modulePrefix, topNames, type BlockNames } from './names.js';
import { ropeFor, type RopeTable } from './rope.js';
import type { Weights } from './weights.js';

/**
 * Reusable activations for calls of up to `rows` rows; grows on demand, never shrinks. A forward's outputs (hidden,
 * logits) are views into it, so a caller that keeps them across other calls (a generation suspended at a `yield`
 * while another one runs) passes its own scratch to forwardBase / forwardModule.
 */
export class ForwardScratch {
  rows = 0;
  x: Float32Array = new Float32Array(0);
  norm: Float32Array = new Float32Array(0);
  q: Float32Array = new Float32Array(0);
  att: Float32Array = new Float32Array(0);
  tmp: Float32Array = new Float32Array(0);
  up: Float32Array = new Float32Array(0);
  gate: Float32Array = new Float32Array(0);
  logits: Float32Array = new Float32Array(0);
  cat: Float32Array = new Float32Array(0);
  qkv: Float32Array = new Float32Array(0);
  kNew: Float32Array = new Float32Array(0);
  vNew: Float32Array = new Float32Array(0);
  mean: Float32Array = new Float32Array(0);
  rstd: Float32Array = new Float32Array(0);
  pos: Int32Array = new Int32Array(0);
  ids: Int32Array = new Int32Array(0);

  constructor(
    private readonly c: ModelConfig,
    private readonly alloc: Allocator = heapAllocator,
  ) {}

  /**
   * Room for R rows of logits. Grown apart from the other arrays, by the rows a call asks for: a prompt's prefill
   * wants one row of logits, not one per prompt token (512 × 32000 floats would be 65 MB for nothing).
   */
  ensureLogits(R: number): Float32Array {
    const n = R * this.c.vocabSize;
    if (this.logits.length < n) this.logits = this.alloc.f32(n);
    return this.logits.subarray(0, n);
  }

  ensure(M: number): void {
    if (M <= this.rows) return;
    const { hidden: C, intermediate: I } = this.c;
    const kvw = this.c.nKvHeads * this.c.headDim,
      qw = this.c.nHeads * this.c.headDim;
    const f32 = (n: number): Float32Array => this.alloc.f32(n),
      i32 = (n: number): Int32Array => this.alloc.i32(n);
    this.rows = M;
    this.x = f32(M * C);
    this.norm = f32(M * C);
    this.q = f32(M * qw);
    this.att = f32(M * qw);
    this.tmp = f32(M * C);
    this.up = f32(M * I);
    this.gate = f32(M * I);
    this.cat = f32(M * 2 * C);
    this.qkv = f32(M * 3 * C);
    this.kNew = f32(M * kvw);
    this.vNew = f32(M * kvw);
    this.mean = f32(M);
    this.rstd = f32(M);
    this.pos = i32(M);
    this.ids = i32(M);
  }
}

export type LogitRows = 'all' | 'last' | 'none';

export interface BaseOutput {
  /** h: the last block's output (before the final norm), [M, C]. A view valid until the next call on its scratch. */
  hidden: Float32Array;
  /** Logits [R, V] for R = M ('all'), 1 ('last') or 0 rows. A view valid until the next call on its scratch. */
  logits: Float32Array;
}

export interface ModuleOutput {
  /** u: the module's last block output (before the final norm), [M, C]. A view valid until the next call. */
  hidden: Float32Array;
  /** Logits [R, V] as in BaseOutput. */
  logits: Float32Array;
}

export class InferenceModel {
  /** The scratch of calls that bring none (one set per model: such callers must not interleave). */
  private readonly base: ForwardScratch;
  private readonly mod: ForwardScratch;
  private readonly baseBlocks: BlockNames[];
  private readonly moduleBlocks: BlockNames[];
  private readonly ops: DecodeBlockOps;

  constructor(
    readonly config: ModelConfig,
    readonly weights: Weights,
    readonly backend: Backend,
  ) {
    this.ops = new DecodeBlockOps(config, weights, backend);
    this.base = new ForwardScratch(config, backend.alloc);
    this.mod = new ForwardScratch(config, backend.alloc);
    this.baseBlocks = Array.from({ length: config.nLayers }, (_, l) => blockNames(config, basePrefix(config.arch, l)));
    this.moduleBlocks = Array.from({ length: config.recycle?.numLayers ?? 0 }, (_, l) =>
      blockNames(config, modulePrefix(l)),
    );
  }

  get hasModule(): boolean {
    return this.config.recycle !== null;
  }

  newBaseCache(maxT = this.config.maxPositions): KVCache {
    return new KVCache(
      this.config.nLayers,
      Math.min(maxT, this.config.maxPositions),
      this.config.nKvHeads * this.config.headDim,
      this.backend.alloc,
    );
  }

  newModuleCache(maxT = this.config.maxPositions): KVCache {
    if (!this.config.recycle)
      throw new Error('this model has no recyclable module (config.json has no "recycle" section)');
    return new KVCache(
      this.config.recycle.numLayers,
      Math.min(maxT, this.config.maxPositions),
      this.config.nKvHeads * this.config.headDim,
      this.backend.alloc,
    );
  }

  /** Scratch for one caller's calls (see ForwardScratch); it grows with the rows of the calls made with it. */
  newScratch(): ForwardScratch {
    return new ForwardScratch(this.config, this.backend.alloc);
  }

  /**
   * Full call: run the base on `ids` at positions cache.length … cache.length+M−1 and advance the cache. The outputs
   * live in `scratch` (default: the model's shared one).
   */
  forwardBase(
    ids: ArrayLike<number>,
    cache: KVCache,
    logitRows: LogitRows = 'last',
    scratch: ForwardScratch = this.base,
  ): BaseOutput {
    const c = this.config,
      b = this.backend,
      s = scratch,
      M = ids.length,
      C = c.hidden;
    const { pos0, idArr, pos } = this.rows('forwardBase', ids, cache, s);
    const t = topNames(c),
      x = s.x.subarray(0, M * C);
    b.embeddingForward(M, C, c.vocabSize, idArr, this.weights.weight(t.tokenEmbedding), x);
    if (t.positionEmbedding) {
      const wpe = this.weights.get(t.positionEmbedding);
      b.add(M * C, x, wpe.subarray(pos0 * C, (pos0 + M) * C), x);
    }
    for (let l = 0; l < c.nLayers; l++) blockForward(this.ops.at(s, M, pos0, pos, cache, l), this.baseBlocks[l]!, x);
    cache.advance(M);
    return { hidden: x, logits: this.head(s, M, logitRows) };
  }

  /**
   * Module call: rows i = 0..M−1 are (h[i], nextIds[i]) pairs for module positions cache.length + i; returns
   * the logits for the token after nextIds[i] ('all' rows or the 'last'), a view into `scratch` (default: the model's
   * shared module scratch; it must not be the one `hidden` lives in).
   */
  forwardModule(
    hidden: Float32Array,
    nextIds: ArrayLike<number>,
    cache: KVCache,
    logitRows: LogitRows = 'last',
    scratch: ForwardScratch = this.mod,
  ): Float32Array {
    return this.forwardModuleOut(hidden, nextIds, cache, logitRows, scratch).logits;
  }

  /**
   * forwardModule, also returning the module's hidden rows u [M, C] (its last block's output, before the final norm)
   * as `hidden`: what a chained draft step feeds back in place of h (ARCHITECTURE.md §1.3). `hidden` may be a view
   * of this same scratch's previous module output (it is copied into the concat buffer before anything is written).
   */
  forwardModuleOut(
    hidden: Float32Array,
    nextIds: ArrayLike<number>,
    cache: KVCache,
    logitRows: LogitRows = 'last',
    scratch: ForwardScratch = this.mod,
  ): ModuleOutput {
    const c = this.config,
      b = this.backend,
      s = scratch,
      M = nextIds.length,
      C = c.hidden;
    if (!c.recycle) throw new Error('this model has no recyclable module (config.json has no "recycle" section)');
    if (hidden.length < M * C)
      throw new Error(`forwardModule: hidden has ${hidden.length} values, ${M} rows of ${C} need ${M * C}`);
    const { pos0, idArr, pos } = this.rows('forwardModule', nextIds, cache, s);
    // m = W_in · concat(h, e(x_{t+1})) + b_in; concat order: h first, then e.
    const emb = s.tmp.subarray(0, M * C),
      cat = s.cat.subarray(0, M * 2 * C),
      x = s.x.subarray(0, M * C);
    b.embeddingForward(M, C, c.vocabSize, idArr, this.weights.weight(topNames(c).tokenEmbedding), emb);
    for (let i = 0; i < M; i++) {
      cat.set(hidden.subarray(i * C, (i + 1) * C), i * 2 * C);
      cat.set(emb.subarray(i * C, (i + 1) * C), i * 2 * C + C);
    }
    b.linear(
      M,
      C,
      2 * C,
      cat,
      this.weights.weight('recycle.in_proj.weight'),
      this.weights.get('recycle.in_proj.bias'),
      x,
    );
    for (let l = 0; l < this.moduleBlocks.length; l++)
      blockForward(this.ops.at(s, M, pos0, pos, cache, l), this.moduleBlocks[l]!, x);
    cache.advance(M);
    return { hidden: x, logits: this.head(s, M, logitRows) };
  }

  /** The M new rows of a call: room in the cache and scratch, ids checked into s.ids, positions pos0.. in s.pos. */
  private rows(
    op: string,
    ids: ArrayLike<number>,
    cache: KVCache,
    s: ForwardScratch,
  ): { pos0: number; idArr: Int32Array; pos: Int32Array } {
    const M = ids.length,
      V = this.config.vocabSize;
    if (M === 0) throw new Error(`${op}: no rows`);
    cache.ensureRoom(M);
    s.ensure(M);
    const pos0 = cache.length,
      idArr = s.ids.subarray(0, M),
      pos = s.pos.subarray(0, M);
    for (let i = 0; i < M; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new Error(`${op}: token id ${id} at index ${i} is outside the vocabulary (${V})`);
      idArr[i] = id;
      pos[i] = pos0 + i;
    }
    return { pos0, idArr, pos };
  }

  /** Final norm + LM head on the rows of s.x that are asked for. */
  private head(s: ForwardScratch, M: number, rows: LogitRows): Float32Array {
    if (rows === 'none') return s.logits.subarray(0, 0);
    const c = this.config,
      C = c.hidden,
      t = topNames(c);
    const first = rows === 'last' ? M - 1 : 0,
      R = M - first;
    const xin = s.x.subarray(first * C, M * C),
      nrm = s.norm.subarray(0, R * C);
    normRows(c, this.weights, this.backend, R, xin, t.finalNorm, t.finalNormBias, nrm, s);
    const logits = s.ensureLogits(R);
    this.backend.linear(R, c.vocabSize, C, nrm, this.weights.weight(t.head), null, logits);
    return logits;
  }
}

/**
 * The block's operations for decoding (block.ts): kernels on the rows of one forward's scratch, in place where the
 * data allows, with this layer's K/V written into the cache at positions pos0.. and attention over the cache. Set
 * `at` before each block; one instance serves every block of a call.
 */
class DecodeBlockOps implements BlockOps<Float32Array> {
  private s!: ForwardScratch;
  private M = 0;
  private pos0 = 0;
  private pos!: Int32Array;
  private cache!: KVCache;
  private layer = 0;
  /** rope_theta for the kernel, or the scaled frequencies' table (rope.ts). */
  private readonly rope: number | RopeTable;

  constructor(
    private readonly c: ModelConfig,
    private readonly w: Weights,
    private readonly b: Backend,
  ) {
    this.rope = ropeFor(c);
  }

  at(s: ForwardScratch, M: number, pos0: number, pos: Int32Array, cache: KVCache, layer: number): this {
    this.s = s;
    this.M = M;
    this.pos0 = pos0;
    this.pos = pos;
    this.cache = cache;
    this.layer = layer;
    return this;
  }

  norm(x: Float32Array, w: string, bias: string | null): Float32Array {
    const out = this.s.norm.subarray(0, x.length);
    normRows(this.c, this.w, this.b, x.length / this.c.hidden, x, w, bias, out, this.s);
    return out;
  }

  attention(nrm: Float32Array, n: BlockNames): Float32Array {
    const { c, b, w, s, M, pos0, cache, layer } = this;
    const C = c.hidden,
      H = c.nHeads,
      G = c.nKvHeads,
      D = c.headDim,
      qw = H * D,
      kvw = G * D;
    const q = s.q.subarray(0, M * qw);
    const kDst = cache.k[layer]!.subarray(pos0 * kvw, (pos0 + M) * kvw);
    const vDst = cache.v[layer]!.subarray(pos0 * kvw, (pos0 + M) * kvw);
    if (n.qkv) {
      // GPT-2's fused c_attn [3C, C]: one product (one pass over W, one kernel call), then each row's q, k, v
      // parts go to q and to this layer's cache rows.
      const qkv = s.qkv.subarray(0, M * 3 * C);
      b.linear(M, 3 * C, C, nrm, w.weight(n.qkv), w.get(n.qkvBias!), qkv);
      for (let i = 0; i < M; i++) {
        const r = i * 3 * C;
        q.set(qkv.subarray(r, r + C), i * C);
        kDst.set(qkv.subarray(r + C, r + 2 * C), i * C);
        vDst.set(qkv.subarray(r + 2 * C, r + 3 * C), i * C);
      }
    } else {
      const bias = (name: string | null): Float32Array | null => (name ? w.get(name) : null);
      b.linear(M, qw, C, nrm, w.weight(n.q!), bias(n.qBias), q);
      b.linear(M, kvw, C, nrm, w.weight(n.k!), bias(n.kBias), kDst);
      b.linear(M, kvw, C, nrm, w.weight(n.v!), bias(n.vBias), vDst);
      this.rotate(H, q);
      this.rotate(G, kDst);
    }
    const att = s.att.subarray(0, M * qw);
    b.attentionDecode(M, H, G, D, q, cache.k[layer]!, cache.v[layer]!, pos0, att);
    return att;
  }

  /** RoPE in place on x[M, heads, D] at this call's positions: the backend kernel, or the scaled table. */
  private rotate(heads: number, x: Float32Array): void {
    const { M, pos, rope } = this,
      D = this.c.headDim;
    if (typeof rope === 'number') this.b.rope(M, heads, D, x, pos, rope, false);
    else rope.rotate(M, heads, D, x, pos, false);
  }

  linear(x: Float32Array, w: string, bias: string | null, slot: ProductSlot): Float32Array {
    const [N, K] = this.w.spec(w).shape as [number, number];
    const M = this.M,
      s = this.s;
    const y = (slot === 'proj' ? s.tmp : slot === 'up' ? s.up : s.gate).subarray(0, M * N);
    this.b.linear(M, N, K, x, this.w.weight(w), bias ? this.w.get(bias) : null, y);
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

/** The model's norm (block.ts normKind) on M rows of x into out; statistics go to the scratch (also infer-batch.ts). */
export function normRows(
  c: ModelConfig,
  weights: Weights,
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
