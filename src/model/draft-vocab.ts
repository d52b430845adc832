/**
 * A draft vocabulary for the recyclable module's head (EAGLE-3's draft vocabulary, FR-Spec's frequency-ranked
 * subset): the module's logits are computed over N chosen token ids only, from a copy of those N rows of the LM
 * head (in the draft head's dtype: model/draft-head.ts holds it), and every other id gets −Infinity. Where the head
 * is a large share of a module call (gpt2-small: 50257 × 768, 154 of the module call's 187.5 MB in f32), a draft
 * vocabulary of the most frequent tokens cuts the module call to a fraction at a small cost in acceptance.
 *
 * verified stays lossless: the full model checks every draft, and the speculative rule is exact for any draft
 * distribution, one that is zero outside the subset included. recycle (lossy) can then only recycle subset tokens:
 * a quality change (`eval --mode-quality --draft-vocab N` measures it).
 *
 * Shapes: N draft ids, C width, V vocab.
 */
import type { Allocator, RowMajorWeight } from '../kernels/backend.js';
import { Q4_BLOCK, Q8_BLOCK } from '../kernels/quant.js';

/** The ids checked (integers in 0..V−1, none twice, at least one), as an Int32Array; errors name `where`. */
export function checkDraftIds(ids: ArrayLike<number>, V: number, where: string): Int32Array {
  if (ids.length === 0) throw new Error(`${where}: the draft vocabulary is empty`);
  if (ids.length > V) throw new Error(`${where}: ${ids.length} draft ids for a vocabulary of ${V}`);
  const out = new Int32Array(ids.length);
  const seen = new Uint8Array(V);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V)
      throw new Error(`${where}: draft id ${id} at index ${i} is outside the vocabulary (0..${V - 1})`);
    if (seen[id]) throw new Error(`${where}: draft id ${id} appears twice (again at index ${i})`);
    seen[id] = 1;
    out[i] = id;
  }
  return out;
}

/**
 * The LM head's rows `ids` [N, C] as a weight of the head's own dtype (q8_0 / q4_0 blocks lie along C: whole rows
 * copy).
 */
export function gatherRows(head: RowMajorWeight, C: number, ids: Int32Array, alloc: Allocator): RowMajorWeight {
  const N = ids.length;
  switch (head.dtype) {
    case 'f32': {
      const data = alloc.f32(N * C);
      ids.forEach((id, i) => data.set(head.data.subarray(id * C, (id + 1) * C), i * C));
      return { dtype: 'f32', data };
    }
    case 'f16':
    case 'bf16': {
      const data = alloc.u16(N * C);
      ids.forEach((id, i) => data.set(head.data.subarray(id * C, (id + 1) * C), i * C));
      return { dtype: head.dtype, data };
    }
    case 'q8_0': {
      const S = C / Q8_BLOCK;
      const data = alloc.i8(N * C),
        scales = alloc.u16(N * S);
      ids.forEach((id, i) => {
        data.set(head.data.subarray(id * C, (id + 1) * C), i * C);
        scales.set(head.scales.subarray(id * S, (id + 1) * S), i * S);
      });
      return { dtype: 'q8_0', data, scales };
    }
    case 'q4_0': {
      // whole rows of whole blocks, as q8_0: C/2 bytes of packed quants and C/32 scales a row
      const B = C / 2,
        S = C / Q4_BLOCK;
      const data = alloc.u8(N * B),
        scales = alloc.u16(N * S);
      ids.forEach((id, i) => {
        data.set(head.data.subarray(id * B, (id + 1) * B), i * B);
        scales.set(head.scales.subarray(id * S, (id + 1) * S), i * S);
      });
      return { dtype: 'q4_0', data, scales };
    }
  }
}

/**
 * Every id 0..V−1 ranked by its count in `tokens`, most frequent first (ties: the lower id first): the order a
 * draft vocabulary of size N takes its first N ids from (FR-Spec's frequency ranking).
 */
export function rankByFrequency(tokens: ArrayLike<number>, V: number): Int32Array {
  const counts = new Float64Array(V);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (id >= 0 && id < V) counts[id]! += 1;
  }
  const ids = Int32Array.from({ length: V }, (_, i) => i);
  return ids.sort((a, b) => counts[b]! - counts[a]! || a - b);
}
