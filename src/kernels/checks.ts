/** Argument-check helpers for validate.ts (and the tokenizers' id checks): errors name the op and the values. */
import type { KernelWeightDtype } from './backend.js';

/**
 * The largest dimension (size letter, element count, pos0) any kernel accepts. The native addon enforces the same
 * bound (kMaxDim in native/addon.cc): its kernels index in int64, but thread, chunk and tail counts pass through
 * int. With every dimension bounded, each size product fits a float64 exactly or is far above any array length,
 * so the length checks below cannot be fooled by rounding.
 */
export const MAX_DIM = 2 ** 31 - 1;

/** How a value that is not the expected array is named in messages (the addon names them the same way). */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

export function checkDims(op: string, dims: Record<string, number>): void {
  for (const name in dims) {
    const v = dims[name]!;
    if (!(Number.isInteger(v) && v >= 0 && v <= MAX_DIM)) {
      const msg = `${op}: ${name} must be an integer in [0, ${MAX_DIM}], got`;
      throw typeof v === 'number' ? new RangeError(`${msg} ${v}`) : new TypeError(`${msg} ${describeValue(v)}`);
    }
  }
}

/**
 * Throws unless `arr` is a Float32Array (or, with `nullable`, null) of at least `need` elements. `shape` (e.g.
 * "x[M=2,K=768]") is built only for the message: these checks run on every kernel call, ~100 a decoded token,
 * so the happy path builds no strings.
 */
export function checkF32(op: string, name: string, arr: unknown, need: number, shape: () => string): void {
  if (!(arr instanceof Float32Array)) throw typeError(op, name, 'a Float32Array', arr);
  if (arr.length < need) throw lengthError(op, name, arr.length, need, shape);
}

/** checkF32 for Int32Array arguments (ids, positions, targets). */
export function checkI32(op: string, name: string, arr: unknown, need: number, shape: () => string): void {
  if (!(arr instanceof Int32Array)) throw typeError(op, name, 'an Int32Array', arr);
  if (arr.length < need) throw lengthError(op, name, arr.length, need, shape);
}

function dtypeIsPanels(w: unknown): boolean {
  if (typeof w !== 'object' || w === null || !('dtype' in w)) return false;
  const d = (w as { dtype: unknown }).dtype;
  return d === 'f16_panels' || d === 'bf16_panels' || d === 'q8_0_panels';
}

/**
 * A weight argument [rows, cols]: a Float32Array (f32), or a handle {dtype, data} whose dtype is one of `dtypes`
 * (what the backend reads) with storage of that dtype, long enough (q8_0 / q4_0: cols a multiple of 32, and the
 * scales; q4_0's data holds two quants a byte, rows·cols/2 bytes).
 */
export function checkWeight(
  op: string,
  name: string,
  w: unknown,
  rows: number,
  cols: number,
  shape: () => string,
  dtypes: readonly KernelWeightDtype[],
): void {
  const panels = dtypeIsPanels(w),
    need = panels ? Math.ceil(rows / 32) * 32 * cols : rows * cols;
  if (w instanceof Float32Array) return checkF32(op, name, w, need, shape);
  if (typeof w !== 'object' || w === null || !('dtype' in w) || !('data' in w)) {
    throw typeError(op, name, 'a Float32Array or a weight {dtype, data}', w);
  }
  const { dtype, data } = w as { dtype: unknown; data: unknown };
  if (!dtypes.includes(dtype as KernelWeightDtype)) {
    throw new TypeError(
      `${op}: weight ${name} is ${typeof dtype === 'string' ? JSON.stringify(dtype) : describeValue(dtype)}; ` +
        `this backend reads ${dtypes.join(', ')}`,
    );
  }
  const blocked = dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q8_0_panels';
  const want =
    dtype === 'f32'
      ? Float32Array
      : dtype === 'q8_0' || dtype === 'q8_0_panels'
        ? Int8Array
        : dtype === 'q4_0'
          ? Uint8Array
          : Uint16Array;
  if (!(data instanceof want)) {
    const bits =
      dtype === 'q8_0'
        ? 'quants'
        : dtype === 'q8_0_panels'
          ? 'q8_0_panels quants'
          : dtype === 'q4_0'
            ? 'packed 4-bit quants'
            : dtype === 'f32'
              ? ''
              : `${String(dtype)} bits`;
    throw typeError(op, `${name}.data`, `a ${want.name}${bits ? ` (${bits})` : ''}`, data);
  }
  const len = (data as Float32Array | Uint16Array | Int8Array | Uint8Array).length;
  if (dtype === 'q4_0') {
    // its byte count is rows·cols/2 of whole blocks: the row length first
    if (cols % 32 !== 0)
      throw new RangeError(`${op}: q4_0 weight ${name} needs a row length that is a multiple of 32 (${shape()})`);
    if (len < need / 2) throw lengthError(op, `${name}.data`, len, need / 2, () => `${shape()} in q4_0 (2 a byte)`);
  } else if (panels) {
    if (len < need) throw lengthError(op, `${name}.data`, len, need, () => `${shape()} in panels of 32 rows`);
  } else if (len < need) throw lengthError(op, name, len, need, shape);
  if (blocked) {
    const scales = (w as { scales?: unknown }).scales;
    if (!(scales instanceof Uint16Array)) throw typeError(op, `${name}.scales`, 'a Uint16Array (float16 bits)', scales);
    if (cols % 32 !== 0)
      throw new RangeError(`${op}: q8_0 weight ${name} needs a row length that is a multiple of 32 (${shape()})`);
    if (scales.length < need / 32) {
      const within = panels ? () => `${shape()} in panels of 32 rows` : shape;
      throw lengthError(op, `${name}.scales`, scales.length, need / 32, within);
    }
  }
}

/** checkF32 for an optional array: null (or undefined) passes. */
export function checkF32OrNull(op: string, name: string, arr: unknown, need: number, shape: () => string): void {
  if (arr === null || arr === undefined) return;
  if (!(arr instanceof Float32Array)) throw typeError(op, name, 'a Float32Array or null', arr);
  if (arr.length < need) throw lengthError(op, name, arr.length, need, shape);
}

function typeError(op: string, name: string, want: string, got: unknown): TypeError {
  return new TypeError(`${op}: argument ${name} must be ${want}, got ${describeValue(got)}`);
}

function lengthError(op: string, name: string, len: number, need: number, shape: () => string): RangeError {
  // a product of dimensions above 2^53 is rounded: say only that it is out of reach
  const needs = Number.isSafeInteger(need) ? String(need) : `more than ${Number.MAX_SAFE_INTEGER}`;
  return new RangeError(`${op}: ${name} has ${len} elements but ${shape()} needs ${needs}`);
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
    if (t !== -1 && (t < 0 || t >= V))
      throw new Error(`${op}: targets[${n}] = ${t} is outside [0, V=${V}) and is not -1 (ignore)`);
  }
}

export function checkAttentionHeads(op: string, H: number, G: number, D: number): void {
  checkDivides(op, `H=${H} must be a multiple of G=${G}`, H, G);
  if (D === 0) throw new Error(`${op}: D must be at least 1`);
}
