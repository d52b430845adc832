/**
 * The dtype module calls read the module's own matrices in (its input projection W_in and its blocks'): the stored
 * ones, or a q8_0 copy — as q8_0 panels where the backend reads them (native: kernels/panels.ts q8ToPanels, the
 * outer-product kernel on half the bytes of f16). A module call reads ~7 MB of recycle-large's weights against a full
 * call's 42 MB, in the chain of k calls that make verified's drafts: fewer bytes there are fewer microseconds a
 * draft. Base calls never read these matrices; the head module calls read is the draft head's (model/draft-head.ts).
 *
 * Under `auto` only verified's module calls read the copy: it stays lossless with any copy (the full model checks
 * each draft). Recycle (lossy) emits the module's tokens unchecked, so its calls read the module as stored unless
 * `q8_0` asks for the copy (its text can then change where the module's top logits are near ties: `eval
 * --mode-quality` measures it).
 */
import type { Allocator, KernelWeightDtype, RowMajorWeight, Weight } from '../kernels/backend.js';
import { q8ToPanels } from '../kernels/panels.js';
import { Q8_BLOCK } from '../kernels/quant.js';
import { convertWeight } from './draft-head.js';

/** What a user asks for: `auto` (the default), `model` (as stored) or `q8_0`. */
export type ModuleDtype = 'auto' | 'model' | 'q8_0';
export const MODULE_DTYPES: readonly ModuleDtype[] = ['auto', 'model', 'q8_0'];

/** A module matrix: its name, shape [N, K] and stored weight. */
export interface ModuleMatrix {
  name: string;
  N: number;
  K: number;
  w: RowMajorWeight;
}

/**
 * Whether the module's matrices get a q8_0 copy. `auto`: where the backend reads q8_0 panels (the copy is then
 * faster to read) and every matrix is wider than q8_0 with rows of whole 32-blocks; else as stored. `q8_0`: a copy
 * wherever the backend reads q8_0 (as panels where it reads those), an error naming why where it cannot.
 */
export function resolveModuleDtype(
  want: ModuleDtype,
  matrices: readonly ModuleMatrix[],
  readable: readonly KernelWeightDtype[],
): boolean {
  if (want === 'model' || matrices.length === 0) return false;
  const wider = matrices.every((m) => m.w.dtype === 'f32' || m.w.dtype === 'f16' || m.w.dtype === 'bf16');
  const blocks = matrices.every((m) => m.K % Q8_BLOCK === 0);
  if (want === 'auto') return wider && blocks && readable.includes('q8_0_panels');
  if (!readable.includes('q8_0'))
    throw new Error(`module dtype q8_0: this backend reads ${readable.join(', ')} weights, not q8_0`);
  const ragged = matrices.find((m) => m.K % Q8_BLOCK !== 0);
  if (ragged)
    throw new Error(`module dtype q8_0: ${ragged.name}'s rows (${ragged.K}) are not a multiple of ${Q8_BLOCK} long`);
  return matrices.some((m) => m.w.dtype !== 'q8_0');
}

/** The q8_0 copy of one module matrix, as panels where the backend reads them. */
export function moduleCopy(m: ModuleMatrix, readable: readonly KernelWeightDtype[], alloc: Allocator): Weight {
  const q = m.w.dtype === 'q8_0' ? m.w : convertWeight(m.w, m.N, m.K, 'q8_0', alloc);
  if (q.dtype !== 'q8_0' || !readable.includes('q8_0_panels')) return q;
  return q8ToPanels(q, m.N, m.K, alloc);
}
