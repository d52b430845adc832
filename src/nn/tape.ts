/**
 * A small reverse-mode tape (llm.c spirit): every op in ops.ts runs its forward kernel at once and, when the
 * tape records gradients, pushes a closure that runs its backward kernels. backward() replays the closures in
 * reverse order.
 *
 * Memory: activations, their gradients and saved statistics come from an arena. A training step asks for
 * buffers in the same order every time, so after reset() the n-th request gets the n-th buffer of the previous
 * step again: once the graph repeats, a step allocates no typed arrays (see `allocations`). The price: a tensor
 * made by the tape is valid only until the next reset(); copy out what must outlive the step (logits, loss).
 */
import type { Allocator, Backend } from '../kernels/backend.js';
import { Tensor, shapeSize, type Shape } from '../tensor/tensor.js';

/** Buffers handed out in request order; rewind() makes the next sequence of requests reuse them. */
class Arena {
  private readonly slots: Float32Array[] = [];

  constructor(private readonly alloc: Allocator) {}

  private cursor = 0;
  /** Typed arrays created so far (stays flat once the graph repeats). */
  allocations = 0;

  take(n: number, zero: boolean): Float32Array {
    let buf = this.slots[this.cursor];
    if (buf === undefined || buf.length !== n) {
      // first step, or the graph changed shape at this point: replace the slot
      buf = this.alloc.f32(n);
      this.slots[this.cursor] = buf;
      this.allocations++;
    } else if (zero) {
      buf.fill(0);
    }
    this.cursor++;
    return buf;
  }

  rewind(): void {
    this.cursor = 0;
  }

  get bytes(): number {
    return this.slots.reduce((s, b) => s + b.byteLength, 0);
  }
}

export interface TapeOptions {
  /** Record backward closures and allocate activation gradients (default true). false: evaluation. */
  grad?: boolean;
}

export class Tape {
  readonly backend: Backend;
  /** Whether ops record their backward (false for an evaluation tape, which records nothing). */
  readonly gradEnabled: boolean;
  private readonly arena: Arena;
  private readonly backwardOps: (() => void)[] = [];
  private backwardRan = false;

  constructor(backend: Backend, opts: TapeOptions = {}) {
    this.backend = backend;
    this.gradEnabled = opts.grad ?? true;
    this.arena = new Arena(backend.alloc);
  }

  /** True when an op over these inputs must produce a gradient: the tape records and some input has a grad. */
  needsGrad(...inputs: (Tensor | null)[]): boolean {
    return this.gradEnabled && inputs.some((t) => t !== null && t.grad !== null);
  }

  /** An output tensor from the arena (data not cleared); with `withGrad`, a zeroed gradient too. */
  tensor(shape: Shape, withGrad: boolean): Tensor {
    const n = shapeSize(shape);
    const data = this.arena.take(n, false);
    return new Tensor(shape, data, withGrad ? this.arena.take(n, true) : null);
  }

  /** A scratch buffer from the arena (saved statistics, probabilities); cleared when `zero`. */
  scratch(n: number, zero = false): Float32Array {
    return this.arena.take(n, zero);
  }

  /**
   * Registers `backwardFn(dout)` for `out`. Nothing is recorded when `out` has no gradient (the op's inputs
   * need none, or the tape does not record).
   */
  record(out: Tensor, backwardFn: (dout: Float32Array) => void): void {
    const dout = out.grad;
    if (!this.gradEnabled || dout === null) return;
    if (this.backwardRan) throw new Error('Tape: an op was recorded after backward(); call reset() first');
    this.backwardOps.push(() => backwardFn(dout));
  }

  /**
   * Backpropagates from a scalar `loss` ([1] or []): dloss = `seed` (e.g. 1/microBatches for gradient
   * accumulation), then every recorded backward in reverse order. Parameter gradients accumulate (+=).
   */
  backward(loss: Tensor, seed = 1): void {
    if (!this.gradEnabled) throw new Error('Tape: backward() on a tape created with {grad: false}');
    if (loss.size !== 1) throw new Error(`Tape: backward() needs a scalar loss, got ${loss}`);
    if (loss.grad === null) throw new Error('Tape: the loss has no gradient (no input to it needs one)');
    if (this.backwardRan) throw new Error('Tape: backward() called twice for one forward; call reset() between steps');
    if (!Number.isFinite(seed)) throw new Error(`Tape: backward() seed must be finite, got ${seed}`);
    this.backwardRan = true;
    loss.grad[0] = seed;
    for (let i = this.backwardOps.length - 1; i >= 0; i--) this.backwardOps[i]();
  }

  /** Forget the recorded graph and rewind the arena: every tensor this tape made is now invalid. */
  reset(): void {
    this.backwardOps.length = 0;
    this.backwardRan = false;
    this.arena.rewind();
  }

  /** Typed arrays the arena has created so far; flat across steps once the graph repeats. */
  get allocations(): number {
    return this.arena.allocations;
  }

  /** Bytes held by the arena. */
  get arenaBytes(): number {
    return this.arena.bytes;
  }

  /** Backward closures recorded since the last reset(). */
  get recorded(): number {
    return this.backwardOps.length;
  }
}
