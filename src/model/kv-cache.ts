/**
 * Key/value cache for one stack of blocks (the base, or the recyclable module), preallocated to the context
 * length: per layer k, v of [maxT, G, D]. `length` is the number of filled positions; `rollback(n)` drops the
 * last n (a rejected draft in verified decoding) without touching memory.
 */
import { heapAllocator, type Allocator } from '../kernels/backend.js';

export class KVCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  private len = 0;

  constructor(
    readonly nLayers: number,
    readonly maxT: number,
    readonly kvWidth: number,
    alloc: Allocator = heapAllocator,
  ) {
    this.k = Array.from({ length: nLayers }, () => alloc.f32(maxT * kvWidth));
    this.v = Array.from({ length: nLayers }, () => alloc.f32(maxT * kvWidth));
  }

  get length(): number {
    return this.len;
  }

  /** Throws unless `m` more positions fit. */
  ensureRoom(m: number): void {
    if (this.len + m > this.maxT) {
      throw new Error(`KV cache full: ${this.len} + ${m} positions exceed the context length ${this.maxT}`);
    }
  }

  /** Mark `m` positions (already written by the forward) as filled. */
  advance(m: number): void {
    this.ensureRoom(m);
    this.len += m;
  }

  rollback(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.len) {
      throw new Error(`KV cache rollback(${n}): only ${this.len} positions are filled`);
    }
    this.len -= n;
  }

  reset(): void {
    this.len = 0;
  }
}
