/**
 * The token sequence of one generation (prompt + generated), with the set of distinct ids the repetition
 * penalty needs kept up to date incrementally (O(1) per token instead of a pass over the whole sequence).
 */
export class TokenHistory {
  readonly ids: number[] = [];
  /** Distinct ids in order of first appearance. */
  readonly distinct: number[] = [];
  private readonly seen: Uint8Array;
  /** Per position: whether that push added the id to `distinct` (so `pop` can undo it). */
  private readonly added: boolean[] = [];

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
    const fresh = !this.seen[id];
    this.added.push(fresh);
    if (fresh) {
      this.seen[id] = 1;
      this.distinct.push(id);
    }
  }

  /** Remove the last id (chained drafting pushes its drafts for the draft steps' processors, then pops them). */
  pop(): void {
    const id = this.ids.pop();
    if (id === undefined) throw new Error('TokenHistory.pop: the history is empty');
    if (this.added.pop()) {
      this.seen[id] = 0;
      this.distinct.pop();
    }
  }

  has(id: number): boolean {
    return this.seen[id] === 1;
  }

  get length(): number {
    return this.ids.length;
  }
}
