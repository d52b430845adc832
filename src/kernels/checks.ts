/** Argument validation shared by all backends: every error names the kernel and the sizes that disagree. */

export function checkDims(op: string, dims: Record<string, number>): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
}

/** Throws unless `arr` holds at least `need` elements. */
export function checkLen(op: string, name: string, arr: ArrayLike<number>, need: number, shape: string): void {
  if (arr.length < need) {
    throw new Error(`${op}: ${name} has ${arr.length} elements but ${shape} needs ${need}`);
  }
}

export function checkDivides(op: string, what: string, a: number, b: number): void {
  if (b === 0 || a % b !== 0) throw new Error(`${op}: ${what}: ${a} is not a multiple of ${b}`);
}
