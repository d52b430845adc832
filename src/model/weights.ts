/**
 * Inference weights: all tensors of a model in one Float32Array (llm.c style), addressed by name.
 * Training uses nn's ParamStore (weights + grads); `Weights` holds what decoding needs, nothing more.
 */
import type { ParamSpec } from './names.js';

export class Weights {
  readonly data: Float32Array;
  private readonly views = new Map<string, Float32Array>();
  private readonly specByName = new Map<string, ParamSpec>();

  constructor(readonly specs: readonly ParamSpec[]) {
    let total = 0;
    for (const s of specs) {
      if (this.specByName.has(s.name)) throw new Error(`Weights: parameter "${s.name}" declared twice`);
      this.specByName.set(s.name, s);
      total += s.shape.reduce((a, b) => a * b, 1);
    }
    this.data = new Float32Array(total);
    let off = 0;
    for (const s of specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      this.views.set(s.name, this.data.subarray(off, off + n));
      off += n;
    }
  }

  get(name: string): Float32Array {
    const v = this.views.get(name);
    if (!v) throw new Error(`Weights: no parameter named "${name}"`);
    return v;
  }

  has(name: string): boolean {
    return this.views.has(name);
  }

  spec(name: string): ParamSpec {
    const s = this.specByName.get(name);
    if (!s) throw new Error(`Weights: no parameter named "${name}"`);
    return s;
  }

  /** Bytes of float32 weights. */
  get bytes(): number {
    return this.data.byteLength;
  }
}
