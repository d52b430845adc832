/**
 * The module's head, the "draft head": what a module call multiplies its normed rows by to get draft logits. The
 * paper's module shares the LM head, and so do today's MTP drafters; where the head is a large share of a module
 * call (gpt2-small: 50257 × 768, 154 of the module call's 187.5 MB in f32) two things make it cheaper:
 *
 * - a draft vocabulary (model/draft-vocab.ts): only N chosen rows, every other id −Infinity;
 * - a cheaper dtype: a copy of the head in q8_0 (f32 / f16 / bf16 models) or q4_0 (q8_0 models), read by module
 *   calls only. Base calls always read the head as stored.
 *
 * verified stays lossless with either: the full model checks every draft with its own head, and the speculative
 * rule is exact for any draft distribution. recycle (lossy) emits the module's tokens, so a cheaper head can change
 * its text where the head's top logits are near ties: `eval --mode-quality` measures it.
 *
 * Shapes: R logit rows, N draft ids (V without a draft vocabulary), C width, V vocab.
 */
import type { Allocator, Backend, Weight } from '../kernels/backend.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../kernels/half.js';
import { Q8_BLOCK, quantizeQ8 } from '../kernels/quant.js';
import { weightToF32 } from './convert.js';
import type { RowProduct } from './decode-ops.js';
import { checkDraftIds, gatherRows } from './draft-vocab.js';

/** What a user asks for: `auto` (the default), `model` (the head as stored), or a dtype for the copy. */
export type DraftHeadDtype = 'auto' | 'model' | 'f16' | 'bf16' | 'q8_0';
export const DRAFT_HEAD_DTYPES: readonly DraftHeadDtype[] = ['auto', 'model', 'f16', 'bf16', 'q8_0'];

/** The dtypes a draft head copy can be stored in. */
type CopyDtype = Exclude<DraftHeadDtype, 'auto' | 'model'>;

/**
 * The dtype the module's head copy takes, or null for the head as stored. `auto`: q8_0 for a wider head when the
 * backend reads q8_0 and rows are whole 32-blocks; the head as stored otherwise (a q8_0 head stays q8_0). An
 * explicit dtype the backend cannot read, or q8_0 on rows that are not whole blocks, is an error naming it.
 */
export function resolveDraftHeadDtype(
  want: DraftHeadDtype,
  head: Weight['dtype'],
  C: number,
  readable: readonly string[],
): CopyDtype | null {
  if (want === 'model') return null;
  if (want === 'auto') {
    const cheaper: CopyDtype | null = head === 'q8_0' ? null : 'q8_0';
    if (!cheaper || !readable.includes(cheaper) || C % Q8_BLOCK !== 0) return null;
    return cheaper;
  }
  if (!readable.includes(want))
    throw new Error(`draft head dtype ${want}: this backend reads ${readable.join(', ')} weights, not ${want}`);
  if (want === 'q8_0' && C % Q8_BLOCK !== 0)
    throw new Error(`draft head dtype q8_0: the head's rows (${C}) are not a multiple of ${Q8_BLOCK} long`);
  return want === head ? null : want;
}

/** `w` [N, K] stored as `to`, from its float32 values (f16 / bf16 rounded to nearest even, q8_0 as ggml's Q8_0). */
export function convertWeight(w: Weight, N: number, K: number, to: CopyDtype, alloc: Allocator): Weight {
  const from = weightToF32(w);
  switch (to) {
    case 'f16':
    case 'bf16': {
      const data = alloc.u16(N * K),
        round = to === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < N * K; i++) data[i] = round(from[i]!);
      return { dtype: to, data };
    }
    case 'q8_0': {
      const q = quantizeQ8(from, N, K, { data: alloc.i8(N * K), scales: alloc.u16((N * K) / Q8_BLOCK) });
      return { dtype: 'q8_0', data: q.data, scales: q.scales };
    }
  }
}

/** The module's head: its ids (null: every id) and the weight its module calls read. */
export class DraftHead {
  readonly ids: Int32Array | null;
  readonly weight: Weight;

  /**
   * From the LM head [V, C]: its rows `ids` (all when null), stored as `dtype` (as stored when null). At least one
   * of the two must be given: without either the module reads the LM head itself and needs no DraftHead.
   */
  constructor(
    head: Weight,
    V: number,
    C: number,
    ids: ArrayLike<number> | null,
    dtype: CopyDtype | null,
    alloc: Allocator,
    where = 'draft head',
  ) {
    if (ids === null && dtype === null) throw new Error(`${where}: neither a draft vocabulary nor a dtype`);
    this.ids = ids === null ? null : checkDraftIds(ids, V, where);
    const rows = this.ids === null ? head : gatherRows(head, C, this.ids, alloc);
    this.weight = dtype === null ? rows : convertWeight(rows, this.ids?.length ?? V, C, dtype, alloc);
  }

  /** Rows of the head a module call reads: the draft vocabulary's size, or V. */
  rows(V: number): number {
    return this.ids?.length ?? V;
  }

  /** The draft vocabulary's size, or null when the whole vocabulary is drafted. */
  get vocabSize(): number | null {
    return this.ids?.length ?? null;
  }

  get dtype(): Weight['dtype'] {
    return this.weight.dtype;
  }

  /** Bytes of the weight a module call reads for its head instead of the whole stored head. */
  get bytes(): number {
    const w = this.weight;
    return w.data.byteLength + ('scales' in w ? w.scales.byteLength : 0);
  }

  /** logits [R, V] = −Infinity, then row r's draft ids take sub [R, N]'s values. */
  scatter(R: number, V: number, sub: Float32Array, logits: Float32Array): void {
    const ids = this.ids;
    if (ids === null) throw new Error('DraftHead.scatter: no draft vocabulary to scatter from');
    const N = ids.length;
    logits.fill(-Infinity, 0, R * V);
    for (let r = 0; r < R; r++) {
      const o = r * V,
        s = r * N;
      for (let i = 0; i < N; i++) logits[o + ids[i]!] = sub[s + i]!;
    }
  }
}

/**
 * The LM head's logits [R, V] for R normed rows x [R, C] through `product` (the solo or the batched forward's): the
 * whole head, or the draft head's weight — into `logits` directly over the whole vocabulary, or over a draft
 * vocabulary into the scratch's draft logits, scattered into `logits`.
 */
export function headLogits(
  product: RowProduct,
  b: Backend,
  R: number,
  V: number,
  C: number,
  x: Float32Array,
  head: Weight,
  draft: DraftHead | null,
  scratch: { ensureDraftLogits(n: number): Float32Array },
  logits: Float32Array,
): void {
  if (!draft) return product(b, R, V, C, x, head, null, logits);
  if (draft.ids === null) return product(b, R, V, C, x, draft.weight, null, logits);
  const N = draft.ids.length,
    sub = scratch.ensureDraftLogits(R * N);
  product(b, R, N, C, x, draft.weight, null, sub);
  draft.scatter(R, V, sub, logits);
}
