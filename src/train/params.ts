/**
 * The parameters of a model being trained. Trainable tensors live in one nn ParamStore (data + grad, one
 * allocation each, what AdamW and clipping see); with a frozen base, the base tensors live apart in a plain
 * buffer without gradients, so the optimizer cannot touch them (not even weight decay) and no base gradient
 * is ever computed.
 */
import { heapAllocator, type Allocator } from '../kernels/backend.js';
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

  constructor(
    readonly config: ModelConfig,
    readonly freezeBase: boolean,
    alloc: Allocator = heapAllocator,
  ) {
    if (freezeBase && !config.recycle) throw new Error('freezeBase: the model has no recyclable module to train');
    this.specs = allParamSpecs(config);
    this.trainableSpecs = freezeBase ? moduleParamSpecs(config) : this.specs;
    this.store = new ParamStore();
    for (const s of this.trainableSpecs) this.store.declare(s.name, s.shape);
    this.store.finalize(alloc);
    this.frozen = freezeBase ? new Weights(baseParamSpecs(config), alloc) : null;
    if (this.frozen)
      for (const s of this.frozen.specs) this.frozenTensors.set(s.name, new Tensor(s.shape, this.frozen.get(s.name)));
  }

  /** The tensor of a parameter: with a grad when it trains, without when frozen. */
  get(name: string): Tensor {
    return this.frozenTensors.get(name) ?? this.store.get(name);
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
    for (const s of this.specs) this.data(s.name).set(get(s.name));
  }

  /** Index of the first non-finite value among the trainable parameters, or −1. */
  firstNonFinite(): number {
    const d = this.store.data;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
    return -1;
  }
}
