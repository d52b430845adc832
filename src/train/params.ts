/**
 * The parameters of a model being trained. Trainable tensors live in one nn ParamStore (data + grad, one
 * allocation each, what AdamW and clipping see); with a frozen base, the base tensors live apart in a plain
 * buffer without gradients, so the optimizer cannot touch them (not even weight decay) and no base gradient
 * is ever computed.
 */
import { heapAllocator, type Allocator } from '../kernels/backend.js';
import { bf16ToF32Array, f16ToF32Array } from '../kernels/half.js';
import { ParamStore } from '../nn/params.js';
import { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamSource } from '../model/graph.js';
import { allParamSpecs, baseParamSpecs, moduleParamSpecs, type ParamSpec } from '../model/names.js';
import { Weights } from '../model/weights.js';

export class TrainParams implements ParamSource {
  /** The trainable parameters (all of them, or only recycle.* with a frozen base). */
  readonly store: ParamStore;
  readonly specs: readonly ParamSpec[];
  readonly trainableSpecs: readonly ParamSpec[];
  /** The frozen base (null unless freezeBase). */
  readonly frozen: Weights | null;
  private readonly frozenTensors = new Map<string, Tensor>();

  /**
   * `base` (frozen base only): the loaded base weights, used in place (any stored dtype) instead of a float32 copy;
   * the tape then sees only the tensors the module reads (embedding, final norm, head), as float32 views, or widened
   * copies of half weights made on first use. This is the module-only trainer's layout (module-graph.ts).
   */
  constructor(
    readonly config: ModelConfig,
    readonly freezeBase: boolean,
    alloc: Allocator = heapAllocator,
    base?: Weights,
  ) {
    if (freezeBase && !config.recycle) throw new Error('freezeBase: the model has no recyclable module to train');
    if (base && !freezeBase) throw new Error('TrainParams: a base in place needs freezeBase');
    this.specs = allParamSpecs(config);
    this.trainableSpecs = freezeBase ? moduleParamSpecs(config) : this.specs;
    this.store = new ParamStore();
    for (const s of this.trainableSpecs) this.store.declare(s.name, s.shape);
    this.store.finalize(alloc);
    this.baseInPlace = base !== undefined;
    this.frozen = base ?? (freezeBase ? new Weights(baseParamSpecs(config), alloc) : null);
    if (this.frozen && !base)
      for (const s of this.frozen.specs) this.frozenTensors.set(s.name, new Tensor(s.shape, this.frozen.get(s.name)));
  }

  /** True when the frozen base is the loaded Weights themselves (module-only training). */
  readonly baseInPlace: boolean;

  /** The tensor of a parameter: with a grad when it trains, without when frozen. */
  get(name: string): Tensor {
    const t = this.frozenTensors.get(name);
    if (t) return t;
    if (this.store.has(name) || !this.baseInPlace) return this.store.get(name);
    const w = this.frozen!.weight(name);
    const shape = this.frozen!.spec(name).shape;
    let data: Float32Array;
    if (w.dtype === 'f32') data = w.data;
    else if (w.dtype === 'bf16') data = bf16ToF32Array(w.data);
    else if (w.dtype === 'f16') data = f16ToF32Array(w.data);
    else throw new Error(`TrainParams: frozen "${name}" is ${w.dtype}; the module reads it as float32 (f32/f16/bf16)`);
    const tensor = new Tensor(shape, data);
    this.frozenTensors.set(name, tensor);
    return tensor;
  }

  /** The values of a parameter (internal layout). */
  data(name: string): Float32Array {
    return this.get(name).data;
  }

  isTrainable(name: string): boolean {
    return this.store.has(name);
  }

  /** Copy every parameter from `get` (e.g. loaded Weights). */
  copyFrom(get: (name: string) => Float32Array): void {
    // with the base in place only the trainable tensors are copied (the base is already where it is read)
    for (const s of this.baseInPlace ? this.trainableSpecs : this.specs) this.data(s.name).set(get(s.name));
  }

  /** Index of the first non-finite value among the trainable parameters, or −1. */
  firstNonFinite(): number {
    const d = this.store.data;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
    return -1;
  }
}
