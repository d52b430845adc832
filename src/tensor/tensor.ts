/**
 * A dense float32 tensor: a shape over a Float32Array (row-major), plus an optional gradient buffer of the same
 * size. No autograd here (that is nn/tape.ts); views share storage with their source.
 */

export type Shape = readonly number[];

/** Number of elements of `shape`; throws on a dimension that is not a non-negative integer. */
export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`Tensor: bad shape ${shapeToString(shape)}: dimensions must be non-negative integers`);
    n *= d;
  }
  return n;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export class Tensor {
  readonly shape: Shape;
  readonly data: Float32Array;
  /** Gradient of the loss w.r.t. this tensor (same size as data), or null when no gradient is wanted. */
  grad: Float32Array | null;

  constructor(shape: Shape, data?: Float32Array, grad: Float32Array | null = null) {
    const size = shapeSize(shape);
    this.shape = Object.freeze([...shape]);
    this.data = data ?? new Float32Array(size);
    if (this.data.length !== size) {
      throw new Error(`Tensor: data has ${this.data.length} elements but shape ${shapeToString(shape)} needs ${size}`);
    }
    if (grad && grad.length !== size) {
      throw new Error(`Tensor: grad has ${grad.length} elements but shape ${shapeToString(shape)} needs ${size}`);
    }
    this.grad = grad;
  }

  get size(): number {
    return this.data.length;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Size of the last dimension (the row width for "rows × last dim" ops); 1 for a scalar shape []. */
  get lastDim(): number {
    return this.shape.length === 0 ? 1 : this.shape[this.shape.length - 1];
  }

  toString(): string {
    return `Tensor${shapeToString(this.shape)}`;
  }
}

/** A zero-filled tensor; `withGrad` also allocates a zero gradient. */
export function zeros(shape: Shape, withGrad = false): Tensor {
  const size = shapeSize(shape);
  return new Tensor(shape, new Float32Array(size), withGrad ? new Float32Array(size) : null);
}

/** A tensor holding a copy of `values` (length must match the shape). */
export function fromArray(shape: Shape, values: ArrayLike<number>): Tensor {
  const size = shapeSize(shape);
  if (values.length !== size)
    throw new Error(`fromArray: ${values.length} values for shape ${shapeToString(shape)} (${size} elements)`);
  return new Tensor(shape, Float32Array.from(values));
}

/** Same storage (data and grad) under another shape with the same number of elements. */
export function reshape(t: Tensor, shape: Shape): Tensor {
  const size = shapeSize(shape);
  if (size !== t.size)
    throw new Error(`reshape: cannot view ${t} (${t.size} elements) as ${shapeToString(shape)} (${size})`);
  return new Tensor(shape, t.data, t.grad);
}

/** Same data, no gradient: gradients stop here (frozen parameters, inputs). */
export function detach(t: Tensor): Tensor {
  return new Tensor(t.shape, t.data, null);
}

/** Rows [start, start + count) of the first dimension, sharing data and grad (e.g. the q rows of a fused W). */
export function rowsView(t: Tensor, start: number, count: number): Tensor {
  if (t.rank === 0) throw new Error(`rowsView: ${t} has no rows`);
  const rows = t.shape[0];
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
    throw new Error(`rowsView: rows [${start}, ${start + count}) are outside the ${rows} rows of ${t}`);
  }
  const rowSize = rows === 0 ? 0 : t.size / rows;
  const from = start * rowSize;
  const to = from + count * rowSize;
  return new Tensor([count, ...t.shape.slice(1)], t.data.subarray(from, to), t.grad ? t.grad.subarray(from, to) : null);
}

/**
 * Throws unless `t` has the `expected` shape; a null entry matches any size. The error names the op, the
 * argument, and both shapes.
 */
export function checkShape(op: string, name: string, t: Tensor, expected: readonly (number | null)[]): void {
  const ok = t.rank === expected.length && expected.every((d, i) => d === null || d === t.shape[i]);
  if (!ok) {
    const want = `[${expected.map((d) => (d === null ? '*' : String(d))).join(',')}]`;
    throw new Error(`${op}: ${name} has shape ${shapeToString(t.shape)}, expected ${want}`);
  }
}

/** Throws unless `a` and `b` have identical shapes. */
export function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes differ: ${shapeToString(a.shape)} vs ${shapeToString(b.shape)}`);
  }
}

/** Rows of a "rows × last dim" view: size / lastDim. Throws for a rank-0 tensor used as a matrix. */
export function rowCount(op: string, name: string, t: Tensor): number {
  if (t.rank === 0) throw new Error(`${op}: ${name} is a scalar, expected at least one dimension`);
  return t.lastDim === 0 ? 0 : t.size / t.lastDim;
}
