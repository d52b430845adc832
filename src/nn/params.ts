/**
 * All trainable parameters in ONE Float32Array and all their gradients in another (llm.c style), so the
 * optimizer, gradient clipping and checkpointing each touch a single allocation. Declaration order is memory
 * order; parameters are usable only after finalize().
 */
import { heapAllocator, type Allocator } from '../kernels/backend.js';
import { Tensor, shapeSize, type Shape } from '../tensor/tensor.js';

export interface ParamInfo {
  readonly name: string;
  readonly shape: Shape;
  /** Offset of the first element in `data` / `grad`. */
  readonly offset: number;
  readonly size: number;
}

export class ParamStore {
  private readonly infos: ParamInfo[] = [];
  private readonly byName = new Map<string, ParamInfo>();
  private readonly tensors = new Map<string, Tensor>();
  private total = 0;
  private allData: Float32Array | null = null;
  private allGrad: Float32Array | null = null;

  declare(name: string, shape: Shape): void {
    if (this.allData) throw new Error(`ParamStore: cannot declare "${name}" after finalize()`);
    if (name.length === 0) throw new Error('ParamStore: a parameter name must not be empty');
    if (this.byName.has(name)) throw new Error(`ParamStore: parameter "${name}" declared twice`);
    const size = shapeSize(shape);
    const info: ParamInfo = { name, shape: Object.freeze([...shape]), offset: this.total, size };
    this.infos.push(info);
    this.byName.set(name, info);
    this.total += size;
  }

  /** Allocates the two buffers (from `alloc`: the backend's memory) and the per-parameter views. */
  finalize(alloc: Allocator = heapAllocator): void {
    if (this.allData) throw new Error('ParamStore: finalize() called twice');
    const data = alloc.f32(this.total);
    const grad = alloc.f32(this.total);
    for (const p of this.infos) {
      const end = p.offset + p.size;
      this.tensors.set(p.name, new Tensor(p.shape, data.subarray(p.offset, end), grad.subarray(p.offset, end)));
    }
    this.allData = data;
    this.allGrad = grad;
  }

  get finalized(): boolean {
    return this.allData !== null;
  }

  /** The parameter as a Tensor whose data and grad are views into the store's buffers. */
  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (t) return t;
    if (!this.byName.has(name)) throw new Error(`ParamStore: unknown parameter "${name}"${this.suggest(name)}`);
    throw new Error(`ParamStore: parameter "${name}" used before finalize()`);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Names in declaration (= memory) order. */
  names(): string[] {
    return this.infos.map((p) => p.name);
  }

  /** Name, shape, offset and size of every parameter, in memory order. */
  layout(): readonly ParamInfo[] {
    return this.infos;
  }

  info(name: string): ParamInfo {
    const p = this.byName.get(name);
    if (!p) throw new Error(`ParamStore: unknown parameter "${name}"${this.suggest(name)}`);
    return p;
  }

  /** Total number of parameter elements. */
  get size(): number {
    return this.total;
  }

  get data(): Float32Array {
    if (!this.allData) throw new Error('ParamStore: data used before finalize()');
    return this.allData;
  }

  get grad(): Float32Array {
    if (!this.allGrad) throw new Error('ParamStore: grad used before finalize()');
    return this.allGrad;
  }

  zeroGrad(): void {
    this.grad.fill(0);
  }

  private suggest(name: string): string {
    const close = this.infos
      .map((p) => p.name)
      .filter((n) => n.endsWith(name.split('.').pop() ?? name))
      .slice(0, 3);
    return close.length > 0 ? ` (similar: ${close.join(', ')})` : ` (${this.infos.length} parameters declared)`;
  }
}
