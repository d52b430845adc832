/**
 * Panels: the layout the native products read f16 / bf16 matrices in (native/kernels.h kWF16Panels,
 * kernels_impl.h linear_panels). A matrix W [N, K] becomes ceil(N/32) panels of 32 rows, each stored column by
 * column: element (n, k) at ⌊n/32⌋·32·K + 32·k + n mod 32, the last panel zero-padded. One k of a panel is then 32
 * values in one 64-byte line, which the product multiplies by x[m, k] for every x row at once.
 */
import type { Allocator, PanelDtype, StoredWeight, Weight } from './backend.js';

/** Rows of W per panel. */
export const PANEL_ROWS = 32;

/** The panel dtype holding `dtype`'s values, or null where there is none (f32, q8_0). */
export function panelDtypeOf(dtype: StoredWeight['dtype']): PanelDtype | null {
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

/** Row n of panel bits as its row-major values (tests, and readers that want rows back). */
export function panelRow(data: Uint16Array, n: number, K: number): Uint16Array {
  const out = new Uint16Array(K),
    base = Math.floor(n / PANEL_ROWS) * PANEL_ROWS * K + (n % PANEL_ROWS);
  for (let k = 0; k < K; k++) out[k] = data[base + k * PANEL_ROWS]!;
  return out;
}
