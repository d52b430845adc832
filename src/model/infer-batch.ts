/**
 * Several sessions' decode calls as one forward (continuous batching, src/server/scheduler.ts): the rows of every
 * call are concatenated for each product, norm and activation, so a weight matrix is read once per chunk of rows
 * instead of once per session; attention and the KV writes run per call ("segment") on that call's own cache at its
 * own positions. Outputs are copied into each segment's own ForwardScratch, where the solo forward would have left
 * them (BaseOutput views), because the decoding modes keep those views across later yields.
 *
 * Bit-identity (ARCHITECTURE.md §4): a segment's hidden rows and logits equal InferenceModel.forwardBase /
 * forwardModule on that call alone, bit for bit, whatever else is in the batch. Norms, activations, RoPE, the
 * embedding and attentionDecode are row-independent for any row count; `linear` only for M ≤ 8 (above that it may
 * switch to the blocked GEMM). So every product here runs in chunks of at most ROW_CHUNK = 8 rows: each chunk still
 * reads the weights once, and 8 rows is where a CPU decode stops being bound by reading weights anyway. A call with
 * more than 8 rows (a prompt's prefill) is not batched: its solo forward uses the GEMM, and batching it would give
 * other bits; the scheduler runs such calls alone.
 */
import type { Backend } from '../kernels/backend.js';
import { blockForward } from './block.js';
import { DecodeBlockOps, normRows, type RowSpan } from './decode-ops.js';
import { headLogits, type DraftHead } from './draft-head.js';
import type { BaseOutput, ForwardScratch, InferenceModel, LogitRows } from './infer.js';
import type { KVCache } from './kv-cache.js';
import { basePrefix, blockNames, modulePrefix, topNames, type BlockNames } from './names.js';

/** Rows per product call: `linear` is row-bit-identical to a 1-row call for M ≤ 8 (ARCHITECTURE.md §4). */
export const ROW_CHUNK = 8;

/** One session's full call in a batch: ids at positions cache.length…, outputs copied into `out`. */
export interface BaseSegment {
  ids: ArrayLike<number>;
  cache: KVCache;
  rows: LogitRows;
  /** The session's own scratch: the outputs are views into it, as forwardBase(…, out) would give. */
  out: ForwardScratch;
}

/** One session's module call in a batch: rows (hidden[i], nextIds[i]); the outputs land in `out`. */
export interface ModuleSegment {
  hidden: Float32Array;
  nextIds: ArrayLike<number>;
  cache: KVCache;
  /** Logit rows wanted (default 'last', as forwardModule). */
  rows?: LogitRows;
  out: ForwardScratch;
  /** The full model checks this call's drafts (verified; forwardModule's `checked`). Default false. */
  checked?: boolean;
}

/** Where a segment's rows sit in the batch. */
type Span = RowSpan;

/**
 * The batched forward over one loaded model. It owns the scratch of the concatenated rows (grown to the largest
 * batch seen); one instance serves one driver (calls must not interleave).
 */
export class BatchedForward {
  private readonly s: ForwardScratch;
  private readonly ops: DecodeBlockOps;
  /** The block ops over the module's cheaper copy (model.moduleWeights), made on first use. */
  private copyOps: DecodeBlockOps | null = null;
  private readonly baseBlocks: BlockNames[];
  private readonly moduleBlocks: BlockNames[];

  constructor(readonly model: InferenceModel) {
    const c = model.config;
    this.s = model.newScratch();
    this.ops = new DecodeBlockOps(c, model.products, model.backend, linearRows);
    this.baseBlocks = Array.from({ length: c.nLayers }, (_, l) => blockNames(c, basePrefix(c.arch, l)));
    this.moduleBlocks = Array.from({ length: c.recycle?.numLayers ?? 0 }, (_, l) => blockNames(c, modulePrefix(l)));
  }

  /** Full calls of several sessions in one forward; result i is what forwardBase would give segment i alone. */
  base(segs: readonly BaseSegment[]): BaseOutput[] {
    const c = this.model.config,
      b = this.model.backend,
      w = this.model.weights,
      s = this.s,
      C = c.hidden;
    const { spans, rows } = this.layout(
      'forwardBaseBatch',
      segs.map((g) => g.ids),
      segs.map((g) => g.cache),
    );
    const t = topNames(c),
      x = s.x.subarray(0, rows * C);
    b.embeddingForward(rows, C, c.vocabSize, s.ids.subarray(0, rows), w.weight(t.tokenEmbedding), x);
    if (t.positionEmbedding) {
      const wpe = w.get(t.positionEmbedding);
      for (const { r0, M, pos0 } of spans) {
        const xs = x.subarray(r0 * C, (r0 + M) * C);
        b.add(M * C, xs, wpe.subarray(pos0 * C, (pos0 + M) * C), xs);
      }
    }
    for (let l = 0; l < c.nLayers; l++) blockForward(this.ops.at(s, spans, rows, l), this.baseBlocks[l]!, x);
    return this.finish(
      spans,
      segs.map((g) => g.rows),
      segs.map((g) => g.out),
      x,
    );
  }

  /**
   * Module calls of several sessions in one forward; result i holds what forwardModule gives segment i alone
   * (`logits`) and the module's last block output u (`hidden`, before the final norm: what a chained draft feeds
   * back). `hidden` of a segment may be a view of its own `out` (read before anything is written there).
   */
  module(segs: readonly ModuleSegment[]): BaseOutput[] {
    const c = this.model.config,
      b = this.model.backend,
      w = this.model.weights,
      s = this.s,
      C = c.hidden;
    if (!c.recycle) throw new Error('this model has no recyclable module (config.json has no "recycle" section)');
    segs.forEach((g, i) => {
      if (g.hidden.length < g.nextIds.length * C) {
        throw new Error(
          `forwardModuleBatch: segment ${i}: hidden has ${g.hidden.length} values, ` +
            `${g.nextIds.length} rows of ${C} need ${g.nextIds.length * C}`,
        );
      }
    });
    const checks = segs.map((g) => g.checked ?? false);
    if (checks.some((r) => r !== checks[0])) return this.moduleGroups(segs, checks);
    const checked = checks[0]!;
    const { spans, rows } = this.layout(
      'forwardModuleBatch',
      segs.map((g) => g.nextIds),
      segs.map((g) => g.cache),
    );
    // m = W_in · concat(h, e(x_{t+1})) + b_in; concat order: h first, then e (as forwardModule).
    const emb = s.tmp.subarray(0, rows * C),
      cat = s.cat.subarray(0, rows * 2 * C),
      x = s.x.subarray(0, rows * C);
    b.embeddingForward(rows, C, c.vocabSize, s.ids.subarray(0, rows), w.weight(topNames(c).tokenEmbedding), emb);
    segs.forEach((g, i) => {
      const { r0, M } = spans[i]!;
      for (let j = 0; j < M; j++) {
        const r = r0 + j;
        cat.set(g.hidden.subarray(j * C, (j + 1) * C), r * 2 * C);
        cat.set(emb.subarray(r * C, (r + 1) * C), r * 2 * C + C);
      }
    });
    const mw = this.model.moduleWeights(checked),
      ops = mw === this.model.products ? this.ops : (this.copyOps ??= new DecodeBlockOps(c, mw, b, linearRows));
    const inProj = mw.weight('recycle.in_proj.weight');
    linearRows(b, rows, C, 2 * C, cat, inProj, w.get('recycle.in_proj.bias'), x);
    for (let l = 0; l < this.moduleBlocks.length; l++)
      blockForward(ops.at(s, spans, rows, l), this.moduleBlocks[l]!, x);
    return this.finish(
      spans,
      segs.map((g) => g.rows ?? 'last'),
      segs.map((g) => g.out),
      x,
      this.model.draftHead,
      checked,
    );
  }

  /**
   * A batch of checked and unchecked segments, which read different module weights (verified's drafts the cheaper
   * copies, recycle's the module as stored: model/module-dtype.ts, draft-head.ts): one forward a group, the results
   * in the segments' order. Every segment is checked first, so a bad one fails the batch before any cache has moved
   * (the driver then runs each call alone).
   */
  private moduleGroups(segs: readonly ModuleSegment[], checks: readonly boolean[]): BaseOutput[] {
    this.layout(
      'forwardModuleBatch',
      segs.map((g) => g.nextIds),
      segs.map((g) => g.cache),
    );
    const out: BaseOutput[] = [];
    for (const group of [true, false]) {
      const at = segs.flatMap((_, i) => (checks[i] === group ? [i] : []));
      this.module(at.map((i) => segs[i]!)).forEach((o, j) => (out[at[j]!] = o));
    }
    return out;
  }

  /**
   * After the blocks: each cache advances by its rows, the head runs on the rows wanted, and each segment's hidden
   * rows and logits are copied into its own scratch (where the solo forward would leave them).
   */
  private finish(
    spans: readonly Span[],
    want: readonly LogitRows[],
    outs: readonly ForwardScratch[],
    x: Float32Array,
    draft: DraftHead | null = null,
    checked = false,
  ): BaseOutput[] {
    const C = this.model.config.hidden;
    for (const sp of spans) sp.cache.advance(sp.M);
    const logits = this.head(spans, want, draft, checked);
    return outs.map((out, i) => {
      const { r0, M } = spans[i]!;
      out.ensure(M);
      const hidden = out.x.subarray(0, M * C);
      hidden.set(x.subarray(r0 * C, (r0 + M) * C));
      return { hidden, logits: copyLogits(logits[i]!, out, this.model.config.vocabSize) };
    });
  }

  /** Checks every segment (rows, room, distinct caches, ids) and writes ids and positions into the batch scratch. */
  private layout(
    op: string,
    idLists: readonly ArrayLike<number>[],
    caches: readonly KVCache[],
  ): { spans: Span[]; rows: number } {
    if (idLists.length === 0) throw new Error(`${op}: no segments`);
    const V = this.model.config.vocabSize;
    let rows = 0;
    const seen = new Set<KVCache>();
    idLists.forEach((ids, i) => {
      const cache = caches[i]!;
      if (ids.length === 0) throw new Error(`${op}: segment ${i} has no rows`);
      if (ids.length > ROW_CHUNK)
        throw new Error(`${op}: segment ${i} has ${ids.length} rows; calls above ${ROW_CHUNK} rows run alone`);
      if (seen.has(cache)) throw new Error(`${op}: segment ${i} shares its KV cache with another segment`);
      seen.add(cache);
      cache.ensureRoom(ids.length);
      rows += ids.length;
    });
    this.s.ensure(rows);
    const spans: Span[] = [];
    let r = 0;
    idLists.forEach((ids, i) => {
      const cache = caches[i]!,
        pos0 = cache.length;
      spans.push({ r0: r, M: ids.length, pos0, cache });
      for (let j = 0; j < ids.length; j++, r++) {
        const id = ids[j]!;
        if (!Number.isInteger(id) || id < 0 || id >= V)
          throw new Error(`${op}: segment ${i}: token id ${id} at index ${j} is outside the vocabulary (${V})`);
        this.s.ids[r] = id;
        this.s.pos[r] = pos0 + j;
      }
    });
    return { spans, rows };
  }

  /**
   * Final norm + LM head on the rows each segment asks for (over the module's draft vocabulary when `draft` is
   * given, as the solo forwardModule); returns each segment's logits (batch scratch views).
   */
  private head(
    spans: readonly Span[],
    want: readonly LogitRows[],
    draft: DraftHead | null,
    checked: boolean,
  ): Float32Array[] {
    const c = this.model.config,
      s = this.s,
      C = c.hidden,
      V = c.vocabSize,
      t = topNames(c);
    // Gather the wanted rows of x into tmp (contiguous), then one norm and the chunked head product over them.
    const picks: { first: number; R: number }[] = [];
    let R = 0;
    spans.forEach(({ r0, M }, i) => {
      const rows = want[i]!;
      const first = rows === 'last' ? r0 + M - 1 : r0,
        n = rows === 'none' ? 0 : r0 + M - first;
      s.tmp.set(s.x.subarray(first * C, (first + n) * C), R * C);
      picks.push({ first: R, R: n });
      R += n;
    });
    if (R > 0) {
      const nrm = s.norm.subarray(0, R * C);
      normRows(
        c,
        this.model.weights,
        this.model.backend,
        R,
        s.tmp.subarray(0, R * C),
        t.finalNorm,
        t.finalNormBias,
        nrm,
        s,
      );
      const head = this.model.products.weight(t.head);
      headLogits(linearRows, this.model.backend, R, V, C, nrm, head, draft, s, s.ensureLogits(R), checked);
    }
    return picks.map((p) => s.logits.subarray(p.first * V, (p.first + p.R) * V));
  }
}

/** Copies a segment's logits (rows of V) into its own scratch; the view there. */
function copyLogits(src: Float32Array, out: ForwardScratch, V: number): Float32Array {
  const dst = out.ensureLogits(src.length / V);
  dst.set(src);
  return dst;
}

/** y[M, N] = x · Wᵀ + bias in chunks of ≤ ROW_CHUNK rows, each chunk reading W once (row-bit-identical, §4). */
function linearRows(
  b: Backend,
  M: number,
  N: number,
  K: number,
  x: Float32Array,
  w: Parameters<Backend['linear']>[4],
  bias: Float32Array | null,
  y: Float32Array,
): void {
  for (let r0 = 0; r0 < M; r0 += ROW_CHUNK) {
    const m = Math.min(ROW_CHUNK, M - r0);
    b.linear(m, N, K, x.subarray(r0 * K, (r0 + m) * K), w, bias, y.subarray(r0 * N, (r0 + m) * N));
  }
}
