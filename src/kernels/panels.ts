/**
 * Panels: the layout the native products read f16 / bf16 matrices in (native/kernels.h kWF16Panels,
 * kernels_impl.h linear_panels). A matrix W [N, K] becomes ceil(N/32) panels of 32 rows, each stored column by
 * column: element (n, k) at ⌊n/32⌋·32·K + 32·k + n mod 32, the last panel zero-padded. One k of a panel is then 32
 * values in one 64-byte line, which the product multiplies by x[m, k] for every x row at once.
 */
import type { Allocator, PanelDtype, RowMajorWeight, StoredWeight, Weight } from './backend.js';
import { Q8_BLOCK } from './quant.js';

/** Rows of W per panel. */
export const PANEL_ROWS = 32;

/** The panel dtype holding `dtype`'s bits, or null where there is none (f32, q8_0: see q8ToPanels). */
export function panelDtypeOf(dtype: StoredWeight['dtype']): Exclude<PanelDtype, 'q8_0_panels'> | null {
  return dtype === 'f16' ? 'f16_panels' : dtype === 'bf16' ? 'bf16_panels' : null;
}

/** `w` [N, K] (f16 or bf16) as panels, in memory from `alloc`; any other dtype is returned as it is. */
export function toPanels(w: StoredWeight, N: number, K: number, alloc: Allocator): Weight {
  const dtype = panelDtypeOf(w.dtype);
  if (dtype === null) return w;
  const src = w.data as Uint16Array;
  if (src.length < N * K) throw new Error(`toPanels: a [${N}, ${K}] matrix needs ${N * K} values, got ${src.length}`);
  const P = Math.ceil(N / PANEL_ROWS),
    out = alloc.u16(P * PANEL_ROWS * K);
  for (let n = 0; n < N; n++) {
    const row = src.subarray(n * K, (n + 1) * K),
      base = Math.floor(n / PANEL_ROWS) * PANEL_ROWS * K + (n % PANEL_ROWS);
    for (let k = 0; k < K; k++) out[base + k * PANEL_ROWS] = row[k]!;
  }
  return { dtype, data: out };
}

/**
 * A q8_0 matrix [N, K] as q8_0 panels: its quants in the panels' layout, its scales [N, K/32] as
 * [ceil(N/32)][K/32][32] (a block's 32 rows side by side, as the kernel scales a panel's 32 partial sums at once).
 */
export function q8ToPanels(
  w: Extract<RowMajorWeight, { dtype: 'q8_0' }>,
  N: number,
  K: number,
  alloc: Allocator,
): Weight {
  const { data: q, scales: d } = w;
  if (K % Q8_BLOCK !== 0) throw new Error(`q8ToPanels: q8_0 rows of ${K} are not whole blocks of ${Q8_BLOCK}`);
  if (q.length < N * K || d.length < (N * K) / Q8_BLOCK)
    throw new Error(`q8ToPanels: a [${N}, ${K}] q8_0 matrix needs ${N * K} quants and ${(N * K) / Q8_BLOCK} scales`);
  const P = Math.ceil(N / PANEL_ROWS),
    KB = K / Q8_BLOCK,
    data = alloc.i8(P * PANEL_ROWS * K),
    scales = alloc.u16(P * PANEL_ROWS * KB);
  for (let n = 0; n < N; n++) {
    const p = Math.floor(n / PANEL_ROWS),
      c = n % PANEL_ROWS,
      base = p * PANEL_ROWS * K + c,
      sBase = p * PANEL_ROWS * KB + c;
    for (let k = 0; k < K; k++) data[base + k * PANEL_ROWS] = q[n * K + k]!;
    for (let b = 0; b < KB; b++) scales[sBase + b * PANEL_ROWS] = d[n * KB + b]!;
  }
  return { dtype: 'q8_0_panels', data, scales };
}

/** Row n of panel bits as its row-major values (tests, and readers that want rows back). */
export function panelRow(data: Uint16Array, n: number, K: number): Uint16Array {
  const out = new Uint16Array(K),
    base = Math.floor(n / PANEL_ROWS) * PANEL_ROWS * K + (n % PANEL_ROWS);
  for (let k = 0; k < K; k++) out[k] = data[base + k * PANEL_ROWS]!;
  return out;
}
