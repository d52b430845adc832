/** Argument-check helpers for validate.ts (and the tokenizers' id checks): errors name the op and the values. */

export function checkDims(op: string, dims: Record<string, number>): void {
  for (const name in dims) {
    const v = dims[name]!;
    if (!Number.isInteger(v) || v < 0) throw new Error(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
}

/**
 * Throws unless `arr` holds at least `need` elements. `shape` (e.g. "x[M=2,K=768]") is built only for the
 * message: these checks run on every kernel call, ~100 a decoded token, so the happy path builds no strings.
 */
export function checkLen(op: string, name: string, arr: ArrayLike<number>, need: number, shape: () => string): void {
  if (arr.length < need) {
    throw new Error(`${op}: ${name} has ${arr.length} elements but ${shape()} needs ${need}`);
  }
}

export function checkDivides(op: string, what: string, a: number, b: number): void {
  if (b === 0 || a % b !== 0) throw new Error(`${op}: ${what}: ${a} is not a multiple of ${b}`);
}

export function checkFinite(op: string, name: string, v: number): void {
  if (!Number.isFinite(v)) throw new Error(`${op}: ${name} must be a finite number, got ${v}`);
}

export function checkPositive(op: string, name: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${op}: ${name} must be a positive finite number, got ${v}`);
}

/** A norm over zero channels is undefined (division by C). */
export function checkChannels(op: string, N: number, C: number): void {
  if (N > 0 && C === 0) throw new Error(`${op}: C must be at least 1 when N=${N} > 0`);
}

export function checkIds(op: string, ids: Int32Array, T: number, V: number): void {
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (id < 0 || id >= V) throw new Error(`${op}: ids[${t}] = ${id} is outside [0, V=${V})`);
  }
}

export function checkTargets(op: string, targets: Int32Array, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t !== -1 && (t < 0 || t >= V)) throw new Error(`${op}: targets[${n}] = ${t} is outside [0, V=${V}) and is not -1 (ignore)`);
  }
}

export function checkAttentionHeads(op: string, H: number, G: number, D: number): void {
  checkDivides(op, `H=${H} must be a multiple of G=${G}`, H, G);
  if (D === 0) throw new Error(`${op}: D must be at least 1`);
}
