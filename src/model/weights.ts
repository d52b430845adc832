/**
 * Inference weights: every tensor of a model addressed by name, each stored in its own dtype (Weight handles,
 * kernels/backend.ts) inside one allocation per dtype from the backend's allocator (llm.c style: one block of
 * memory, views into it). Training uses nn's ParamStore (float32 weights + grads); `Weights` holds what decoding
 * needs, nothing more.
 */
import { heapAllocator, type Allocator, type StoredWeight, type WeightDtype } from '../kernels/backend.js';
import { Q8_BLOCK } from '../kernels/quant.js';
import type { ParamSpec } from './names.js';

export class Weights {
  private readonly handles = new Map<string, StoredWeight>();
  private readonly specByName = new Map<string, ParamSpec>();
  /** Bytes of storage over all dtypes. */
  readonly bytes: number;
  /** The allocations every handle is a view into (one per storage kind: f32, float16 bits, int8 quants). */
  readonly storage: readonly (Float32Array | Uint16Array | Int8Array)[];

  /**
   * `dtypeOf` chooses each tensor's storage (default f32 for all); `alloc` gives the memory (default plain
   * JavaScript arrays; a model for a backend passes the backend's allocator).
   */
  constructor(
    readonly specs: readonly ParamSpec[],
    alloc: Allocator = heapAllocator,
    dtypeOf: (spec: ParamSpec) => WeightDtype = () => 'f32',
  ) {
    const sizes = { f32: 0, half: 0, q8: 0 };
    const size = (s: ParamSpec): number => s.shape.reduce((a, b) => a * b, 1);
    const kind = (d: WeightDtype): keyof typeof sizes => (d === 'f32' ? 'f32' : d === 'q8_0' ? 'q8' : 'half');
    for (const s of specs) {
      if (this.specByName.has(s.name)) throw new Error(`Weights: parameter "${s.name}" declared twice`);
      this.specByName.set(s.name, s);
      const d = dtypeOf(s);
      if (d === 'q8_0' && (s.shape.length !== 2 || s.shape[1]! % Q8_BLOCK !== 0)) {
        throw new Error(`Weights: "${s.name}" [${s.shape.join(', ')}] cannot be q8_0 (rows of a multiple of 32)`);
      }
      sizes[kind(d)] += size(s);
    }
    const f32 = alloc.f32(sizes.f32);
    // float16 bits of both half weights and q8_0 scales share one allocation
    const half = alloc.u16(sizes.half + sizes.q8 / Q8_BLOCK);
    const q8 = alloc.i8(sizes.q8);
    const off = { f32: 0, half: 0, q8: 0 };
    for (const s of specs) {
      const n = size(s);
      const dtype = dtypeOf(s);
      if (dtype === 'f32') this.handles.set(s.name, { dtype, data: f32.subarray(off.f32, (off.f32 += n)) });
      else if (dtype === 'q8_0') {
        const data = q8.subarray(off.q8, (off.q8 += n));
        const scales = half.subarray(off.half, (off.half += n / Q8_BLOCK));
        this.handles.set(s.name, { dtype, data, scales });
      } else this.handles.set(s.name, { dtype, data: half.subarray(off.half, (off.half += n)) });
    }
    this.bytes = f32.byteLength + half.byteLength + q8.byteLength;
    this.storage = [f32, half, q8];
  }

  /** The weight handle (storage dtype and elements), as kernels take it. */
  weight(name: string): StoredWeight {
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
