/**
 * Inference weights: every tensor of a model addressed by name, each stored in its own dtype (Weight handles,
 * kernels/backend.ts) inside one allocation per dtype from the backend's allocator (llm.c style: one block of
 * memory, views into it). Training uses nn's ParamStore (float32 weights + grads); `Weights` holds what decoding
 * needs, nothing more.
 */
import { heapAllocator, type Allocator, type Weight, type WeightDtype } from '../kernels/backend.js';
import type { ParamSpec } from './names.js';

export class Weights {
  private readonly handles = new Map<string, Weight>();
  private readonly specByName = new Map<string, ParamSpec>();
  /** Bytes of storage over all dtypes. */
  readonly bytes: number;

  /**
   * `dtypeOf` chooses each tensor's storage (default f32 for all); `alloc` gives the memory (default plain
   * JavaScript arrays; a model for a backend passes the backend's allocator).
   */
  constructor(
    readonly specs: readonly ParamSpec[],
    alloc: Allocator = heapAllocator,
    dtypeOf: (spec: ParamSpec) => WeightDtype = () => 'f32',
  ) {
    const sizes = { f32: 0, half: 0 };
    const size = (s: ParamSpec): number => s.shape.reduce((a, b) => a * b, 1);
    for (const s of specs) {
      if (this.specByName.has(s.name)) throw new Error(`Weights: parameter "${s.name}" declared twice`);
      this.specByName.set(s.name, s);
      sizes[dtypeOf(s) === 'f32' ? 'f32' : 'half'] += size(s);
    }
    const f32 = alloc.f32(sizes.f32);
    const half = alloc.u16(sizes.half);
    const off = { f32: 0, half: 0 };
    for (const s of specs) {
      const n = size(s);
      const dtype = dtypeOf(s);
      if (dtype === 'f32') this.handles.set(s.name, { dtype, data: f32.subarray(off.f32, (off.f32 += n)) });
      else this.handles.set(s.name, { dtype, data: half.subarray(off.half, (off.half += n)) });
    }
    this.bytes = f32.byteLength + half.byteLength;
  }

  /** The weight handle (storage dtype and elements), as kernels take it. */
  weight(name: string): Weight {
    const w = this.handles.get(name);
    if (!w) throw new Error(`Weights: no parameter named "${name}"`);
    return w;
  }

  /** The float32 storage of a weight kept as f32 (norms, biases, and every weight a caller needs as numbers). */
  get(name: string): Float32Array {
    const w = this.weight(name);
    if (w.dtype !== 'f32') throw new Error(`Weights: "${name}" is stored as ${w.dtype}, not f32`);
    return w.data;
  }

  has(name: string): boolean {
    return this.handles.has(name);
  }

  spec(name: string): ParamSpec {
    const s = this.specByName.get(name);
    if (!s) throw new Error(`Weights: no parameter named "${name}"`);
    return s;
  }
}
