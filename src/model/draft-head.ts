/**
 * The module's head, the "draft head": what a module call multiplies its normed rows by to get draft logits. The
 * paper's module shares the LM head, and so do today's MTP drafters; where the head is a large share of a module
 * call (gpt2-small: 50257 × 768, 154 of the module call's 187.5 MB in f32) two things make it cheaper:
 *
 * - a draft vocabulary (model/draft-vocab.ts): only N chosen rows, every other id −Infinity;
 * - a cheaper dtype: a copy of the head in q8_0 (f32 / f16 / bf16 models) or q4_0 (q8_0 models; kernels/quant.ts),
 *   read by module calls only. Base calls always read the head as stored.
 *
 * verified stays lossless with either: the full model checks every draft with its own head, and the speculative
 * rule is exact for any draft distribution. recycle (lossy) emits the module's tokens, so a cheaper head can change
 * its text where the head's top logits are near ties: `eval --mode-quality` measures it.
 *
 * Shapes: R logit rows, N draft ids (V without a draft vocabulary), C width, V vocab.
 */
import type { Allocator, Backend, KernelWeightDtype, RowMajorWeight, Weight } from '../kernels/backend.js';
import { q8ToPanels } from '../kernels/panels.js';
import { Q4_BLOCK, Q8_BLOCK } from '../kernels/quant.js';
import { storeF32, weightToF32 } from './convert.js';
import type { RowProduct } from './decode-ops.js';
import { checkDraftIds, gatherRows } from './draft-vocab.js';

/** What a user asks for: `auto` (the default), `model` (the head as stored), or a dtype for the copy. */
export type DraftHeadDtype = 'auto' | 'model' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';
export const DRAFT_HEAD_DTYPES: readonly DraftHeadDtype[] = ['auto', 'model', 'f16', 'bf16', 'q8_0', 'q4_0'];

/** The dtypes a draft head copy can be stored in. */
export type CopyDtype = Exclude<DraftHeadDtype, 'auto' | 'model'>;

/**
 * The dtype the module's head copy takes, or null for the head as stored. `auto`: one step cheaper than the head —
 * q8_0 for f32 / f16 / bf16, q4_0 for q8_0 — when the backend reads it and rows are whole 32-blocks; else the head
 * as stored. An explicit dtype the backend cannot read, or a block dtype on rows that are not whole blocks, is an
 * error naming it.
 */
export function resolveDraftHeadDtype(
  want: DraftHeadDtype,
  head: RowMajorWeight['dtype'],
  C: number,
  readable: readonly KernelWeightDtype[],
): CopyDtype | null {
  if (want === 'model') return null;
  if (want === 'auto') {
    const cheaper: CopyDtype | null = head === 'q4_0' ? null : head === 'q8_0' ? 'q4_0' : 'q8_0';
    if (!cheaper || !readable.includes(cheaper) || C % Q8_BLOCK !== 0) return null;
    return cheaper;
  }
  if (!readable.includes(want))
    throw new Error(`draft head dtype ${want}: this backend reads ${readable.join(', ')} weights, not ${want}`);
  if ((want === 'q8_0' || want === 'q4_0') && C % Q8_BLOCK !== 0)
    throw new Error(`draft head dtype ${want}: the head's rows (${C}) are not a multiple of ${Q8_BLOCK} long`);
  return want === head ? null : want;
}

/** Rows r0..r1 of w [N, K] as a weight of its own (views). */
function rowsOf(w: RowMajorWeight, r0: number, r1: number, K: number): RowMajorWeight {
  switch (w.dtype) {
    case 'f32':
      return { dtype: 'f32', data: w.data.subarray(r0 * K, r1 * K) };
    case 'f16':
    case 'bf16':
      return { dtype: w.dtype, data: w.data.subarray(r0 * K, r1 * K) };
    case 'q8_0':
      return {
        dtype: 'q8_0',
        data: w.data.subarray(r0 * K, r1 * K),
        scales: w.scales.subarray((r0 * K) / Q8_BLOCK, (r1 * K) / Q8_BLOCK),
      };
    case 'q4_0':
      return {
        dtype: 'q4_0',
        data: w.data.subarray((r0 * K) / 2, (r1 * K) / 2),
        scales: w.scales.subarray((r0 * K) / Q4_BLOCK, (r1 * K) / Q4_BLOCK),
      };
  }
}

/** Rows converted per step: a large head is never widened to float32 whole (llama-1b's would be 262 MB). */
const CONVERT_ROWS = 256;

/** `w` [N, K] stored as `to`, from its float32 values (f16 / bf16 rounded to nearest even, q8_0 / q4_0 as ggml's). */
export function convertWeight(
  w: RowMajorWeight,
  N: number,
  K: number,
  to: CopyDtype,
  alloc: Allocator,
): RowMajorWeight {
  const out: RowMajorWeight =
    to === 'q8_0'
      ? { dtype: to, data: alloc.i8(N * K), scales: alloc.u16((N * K) / Q8_BLOCK) }
      : to === 'q4_0'
        ? { dtype: to, data: alloc.u8((N * K) / 2), scales: alloc.u16((N * K) / Q4_BLOCK) }
        : { dtype: to, data: alloc.u16(N * K) };
  for (let r0 = 0; r0 < N; r0 += CONVERT_ROWS) {
    const r1 = Math.min(N, r0 + CONVERT_ROWS),
      from = weightToF32(rowsOf(w, r0, r1, K)),
      dst = rowsOf(out, r0, r1, K);
    storeF32(from, r1 - r0, K, dst);
  }
  return out;
}

/** The module's head: its ids (null: every id) and the weight its module calls read. */
export class DraftHead {
  readonly ids: Int32Array | null;
  /** What module calls multiply by: the rows in `dtype`, row by row. */
  readonly weight: RowMajorWeight;
  /**
   * What checked module calls (verified's drafts, model/module-dtype.ts) multiply by: a q8_0 copy as q8_0 panels where
   * the backend reads them (the outer product, float32 x: faster on any number of rows), else `weight`. Unchecked
   * calls (recycle's tokens) keep `weight`, so recycle's text does not change with the drafting kernel.
   */
  readonly checkedWeight: Weight;
  /** The dtype of the copy's values (or of the stored head's rows). */
  readonly dtype: RowMajorWeight['dtype'];

  /**
   * From the LM head [V, C]: its rows `ids` (all when null), stored as `dtype` (as stored when null). At least one
   * of the two must be given: without either the module reads the LM head itself and needs no DraftHead. A q8_0 copy
   * is also packed as q8_0 panels where `readable` (the backend's weight dtypes) has them: `checkedWeight`.
   */
  constructor(
    head: RowMajorWeight,
    V: number,
    C: number,
    ids: ArrayLike<number> | null,
    dtype: CopyDtype | null,
    alloc: Allocator,
    where = 'draft head',
    readable: readonly KernelWeightDtype[] = [],
  ) {
    if (ids === null && dtype === null) throw new Error(`${where}: neither a draft vocabulary nor a dtype`);
    this.ids = ids === null ? null : checkDraftIds(ids, V, where);
    const N = this.ids?.length ?? V;
    const rows = this.ids === null ? head : gatherRows(head, C, this.ids, alloc);
    const copy = dtype === null ? rows : convertWeight(rows, N, C, dtype, alloc);
    this.dtype = copy.dtype;
    this.weight = copy;
    this.checkedWeight =
      copy.dtype === 'q8_0' && readable.includes('q8_0_panels') ? q8ToPanels(copy, N, C, alloc) : copy;
  }

  /** Rows of the head a module call reads: the draft vocabulary's size, or V. */
  rows(V: number): number {
    return this.ids?.length ?? V;
  }

  /** The draft vocabulary's size, or null when the whole vocabulary is drafted. */
  get vocabSize(): number | null {
    return this.ids?.length ?? null;
  }

  /** Bytes of the weight a module call (`checked` or not) reads for its head instead of the whole stored head. */
  bytes(checked = false): number {
    const w = checked ? this.checkedWeight : this.weight;
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
 * whole head, or the draft head's weight (`checked` calls: its checkedWeight) — into `logits` directly over the whole
 * vocabulary, or over a draft vocabulary into the scratch's draft logits, scattered into `logits`.
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
  checked = false,
): void {
  if (!draft) return product(b, R, V, C, x, head, null, logits);
  const w = checked ? draft.checkedWeight : draft.weight;
  if (draft.ids === null) return product(b, R, V, C, x, w, null, logits);
  const N = draft.ids.length,
    sub = scratch.ensureDraftLogits(R * N);
  product(b, R, N, C, x, w, null, sub);
  draft.scatter(R, V, sub, logits);
}
