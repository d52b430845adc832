/**
 * Inference forward (no autograd) over KV caches: the base model's full call on M new tokens and the
 * recyclable module's call on M new (h_t, x_{t+1}) pairs (ARCHITECTURE.md §1.1). Every kernel used is
 * row-independent, so a row computed in an M-token call equals the same row computed alone, bit for bit.
 *
 * Shapes: M new rows, C width, H heads, G kv heads, D head dim, I MLP width, V vocab.
 */
import { heapAllocator, type Allocator, type Backend, type Weight } from '../kernels/backend.js';
import { blockForward } from './block.js';
import { DecodeBlockOps, normRows, plainProduct, type RowSpan } from './decode-ops.js';
import { DraftHead, headLogits, resolveDraftHeadDtype, type DraftHeadDtype } from './draft-head.js';
import type { ModelConfig } from './config.js';
import { KVCache } from './kv-cache.js';
import { basePrefix, blockNames, modulePrefix, topNames, type BlockNames } from './names.js';
import type { Weights } from './weights.js';
import { productWeights, type ProductTable } from './product-weights.js';
import { moduleCopy, resolveModuleDtype, type ModuleDtype, type ModuleMatrix } from './module-dtype.js';

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
  /** The module head's logits over a draft vocabulary [R, N] before they are scattered into `logits`. */
  draftLogits: Float32Array = new Float32Array(0);
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

  /** Room for n values of draft-vocabulary logits (model/draft-vocab.ts). */
  ensureDraftLogits(n: number): Float32Array {
    if (this.draftLogits.length < n) this.draftLogits = this.alloc.f32(n);
    return this.draftLogits.subarray(0, n);
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
  /**
   * The weights as the products read them (model/product-weights.ts: the backend's own layout of the matrices). The
   * module's cheaper copy, where one is made, is a view over these (moduleWeights).
   */
  readonly products: ProductTable;
  /** The module's head: undefined until built (draftHead), null when it is the LM head as stored. */
  private draft: DraftHead | null | undefined = undefined;
  private draftIds: Int32Array | null = null;
  private draftDtype: DraftHeadDtype = 'auto';
  private moduleWant: ModuleDtype = 'auto';
  /** Whether moduleWant gives the module a q8_0 copy (resolved on first use); the view that reads it, when built. */
  private moduleCopies: boolean | undefined = undefined;
  private copyView: ProductTable | null = null;
  private copyOps: DecodeBlockOps | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly weights: Weights,
    readonly backend: Backend,
  ) {
    this.products = productWeights(config, weights, backend);
    this.ops = new DecodeBlockOps(config, this.products, backend);
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

  /**
   * Restricts the module's head to a draft vocabulary (model/draft-vocab.ts): module calls then give −Infinity for
   * every id outside `ids`; null restores the whole vocabulary. Base calls are never affected.
   */
  setDraftVocab(ids: ArrayLike<number> | null): void {
    if (ids !== null && !this.config.recycle)
      throw new Error('setDraftVocab: this model has no recyclable module (config.json has no "recycle" section)');
    const draft = ids === null ? undefined : this.buildDraftHead(ids, this.draftDtype, 'setDraftVocab');
    this.draftIds = draft?.ids ?? null;
    this.draft = draft;
  }

  /**
   * The dtype of the module head's copy (model/draft-head.ts): `auto` (the default: q8_0 for a wider head), `model`
   * (the head as stored), or a dtype. Built now, so that an impossible dtype fails here; base calls are unaffected.
   */
  setDraftHeadDtype(dtype: DraftHeadDtype): void {
    this.draft = this.config.recycle ? this.buildDraftHead(this.draftIds, dtype, 'setDraftHeadDtype') : null;
    this.draftDtype = dtype;
  }

  /**
   * The module's head when it is not the LM head as stored (a draft vocabulary, a cheaper dtype), else null. Built
   * on first use (quantizing a large head takes a moment, and standard decoding never needs it).
   */
  get draftHead(): DraftHead | null {
    if (this.draft === undefined)
      this.draft = this.config.recycle ? this.buildDraftHead(this.draftIds, this.draftDtype, 'draft head') : null;
    return this.draft;
  }

  get draftHeadDtype(): DraftHeadDtype {
    return this.draftDtype;
  }

  private buildDraftHead(ids: ArrayLike<number> | null, want: DraftHeadDtype, where: string): DraftHead | null {
    const c = this.config,
      head = this.weights.weight(topNames(c).head);
    const dtype = resolveDraftHeadDtype(want, head.dtype, c.hidden, this.backend.weightDtypes);
    if (ids === null && dtype === null) return null;
    const make = (as: typeof dtype): DraftHead =>
      new DraftHead(head, c.vocabSize, c.hidden, ids, as, this.backend.alloc, where, this.backend.weightDtypes);
    try {
      return make(dtype);
    } catch (e) {
      // auto is only a speed choice: a head its dtype cannot hold (q4_0's float16 scales overflow) stays as stored
      if (want !== 'auto' || dtype === null) throw e;
      return ids === null ? null : make(null);
    }
  }

  /**
   * The dtype module calls read the module's own matrices in (model/module-dtype.ts): `auto` (the default: verified's
   * drafting calls read a q8_0 copy where the backend reads it as panels; recycle's the module as stored), `model`
   * (as stored) or `q8_0` (every module call reads the copy). Resolved now, so that an impossible dtype fails here;
   * base calls are unaffected.
   */
  setModuleDtype(dtype: ModuleDtype): void {
    if (!this.config.recycle) return;
    const copy = resolveModuleDtype(dtype, this.moduleMatrices(), this.backend.weightDtypes);
    this.moduleWant = dtype;
    this.moduleCopies = copy;
  }

  get moduleDtype(): ModuleDtype {
    return this.moduleWant;
  }

  /**
   * Whether module calls read the module's q8_0 copy: `checked` ones (verified's drafts, which the full model checks)
   * under auto or q8_0, unchecked ones (recycle's tokens, emitted as they are) under q8_0 only.
   */
  moduleReadsCopy(checked: boolean): boolean {
    if (!this.config.recycle || this.moduleWant === 'model') return false;
    this.moduleCopies ??= resolveModuleDtype(this.moduleWant, this.moduleMatrices(), this.backend.weightDtypes);
    return this.moduleCopies && (checked || this.moduleWant === 'q8_0');
  }

  /** The weights module calls read (`checked`: as in moduleReadsCopy): products, or a view with the module's copy. */
  moduleWeights(checked: boolean): ProductTable {
    if (!this.moduleReadsCopy(checked)) return this.products;
    if (!this.copyView) {
      const readable = this.backend.weightDtypes,
        alloc = this.backend.alloc;
      const copies = new Map(this.moduleMatrices().map((m) => [m.name, moduleCopy(m, readable, alloc)] as const));
      this.copyView = this.products.over(copies);
    }
    return this.copyView;
  }

  /** The dtype module calls (`checked` or not) read the module's matrices in; null without a module. */
  moduleWeightDtype(checked: boolean): Weight['dtype'] | null {
    return this.config.recycle ? this.moduleWeights(checked).weight('recycle.in_proj.weight').dtype : null;
  }

  private moduleMatrices(): ModuleMatrix[] {
    return this.weights.specs
      .filter((s) => s.name.startsWith('recycle.') && s.shape.length === 2)
      .map((s) => ({ name: s.name, N: s.shape[0]!, K: s.shape[1]!, w: this.weights.weight(s.name) }));
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
    const { pos0, idArr } = this.rows('forwardBase', ids, cache, s);
    const t = topNames(c),
      x = s.x.subarray(0, M * C);
    b.embeddingForward(M, C, c.vocabSize, idArr, this.weights.weight(t.tokenEmbedding), x);
    if (t.positionEmbedding) {
      const wpe = this.weights.get(t.positionEmbedding);
      b.add(M * C, x, wpe.subarray(pos0 * C, (pos0 + M) * C), x);
    }
    const spans: RowSpan[] = [{ r0: 0, M, pos0, cache }];
    for (let l = 0; l < c.nLayers; l++) blockForward(this.ops.at(s, spans, M, l), this.baseBlocks[l]!, x);
    cache.advance(M);
    return { hidden: x, logits: this.head(s, M, logitRows) };
  }

  /**
   * Module call: rows i = 0..M−1 are (h[i], nextIds[i]) pairs for module positions cache.length + i; returns
   * the logits for the token after nextIds[i] ('all' rows or the 'last'), a view into `scratch` (default: the model's
   * shared module scratch; it must not be the one `hidden` lives in). `checked`: the full model checks what this
   * call drafts (verified), so it may read the module's cheaper copy (moduleReadsCopy).
   */
  forwardModule(
    hidden: Float32Array,
    nextIds: ArrayLike<number>,
    cache: KVCache,
    logitRows: LogitRows = 'last',
    scratch: ForwardScratch = this.mod,
    checked = false,
  ): Float32Array {
    return this.forwardModuleOut(hidden, nextIds, cache, logitRows, scratch, checked).logits;
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
    checked = false,
  ): ModuleOutput {
    const c = this.config,
      b = this.backend,
      s = scratch,
      M = nextIds.length,
      C = c.hidden;
    if (!c.recycle) throw new Error('this model has no recyclable module (config.json has no "recycle" section)');
    if (hidden.length < M * C)
      throw new Error(`forwardModule: hidden has ${hidden.length} values, ${M} rows of ${C} need ${M * C}`);
    const { pos0, idArr } = this.rows('forwardModule', nextIds, cache, s);
    const w = this.moduleWeights(checked),
      ops = w === this.products ? this.ops : (this.copyOps ??= new DecodeBlockOps(c, w, b));
    // m = W_in · concat(h, e(x_{t+1})) + b_in; concat order: h first, then e.
    const emb = s.tmp.subarray(0, M * C),
      cat = s.cat.subarray(0, M * 2 * C),
      x = s.x.subarray(0, M * C);
    b.embeddingForward(M, C, c.vocabSize, idArr, this.weights.weight(topNames(c).tokenEmbedding), emb);
    for (let i = 0; i < M; i++) {
      cat.set(hidden.subarray(i * C, (i + 1) * C), i * 2 * C);
      cat.set(emb.subarray(i * C, (i + 1) * C), i * 2 * C + C);
    }
    b.linear(M, C, 2 * C, cat, w.weight('recycle.in_proj.weight'), this.weights.get('recycle.in_proj.bias'), x);
    const spans: RowSpan[] = [{ r0: 0, M, pos0, cache }];
    for (let l = 0; l < this.moduleBlocks.length; l++) blockForward(ops.at(s, spans, M, l), this.moduleBlocks[l]!, x);
    cache.advance(M);
    return { hidden: x, logits: this.head(s, M, logitRows, this.draftHead, checked) };
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

  /** Final norm + LM head on the rows of s.x that are asked for; through the draft head when `draft` is given. */
  private head(
    s: ForwardScratch,
    M: number,
    rows: LogitRows,
    draft: DraftHead | null = null,
    checked = false,
  ): Float32Array {
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
    const head = this.products.weight(t.head);
    headLogits(plainProduct, this.backend, R, c.vocabSize, C, nrm, head, draft, s, logits, checked);
    return logits;
  }
}
