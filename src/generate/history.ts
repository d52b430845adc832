/**
 * The token sequence of one generation (prompt + generated), with the set of distinct ids the repetition
 * penalty needs kept up to date incrementally (O(1) per token instead of a pass over the whole sequence).
 */
export class TokenHistory {
  readonly ids: number[] = [];
  /** Distinct ids in order of first appearance. */
  readonly distinct: number[] = [];
  private readonly seen: Uint8Array;

  constructor(
    readonly vocabSize: number,
    initial: readonly number[] = [],
  ) {
    this.seen = new Uint8Array(vocabSize);
    for (const id of initial) this.push(id);
  }

  push(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new RangeError(`token id ${id} is outside the vocabulary (${this.vocabSize})`);
    this.ids.push(id);
    if (!this.seen[id]) {
      this.seen[id] = 1;
      this.distinct.push(id);
    }
  }

  has(id: number): boolean {
    return this.seen[id] === 1;
  }

  get length(): number {
    return this.ids.length;
  }
}
