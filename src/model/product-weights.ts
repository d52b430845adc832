/**
 * A model's weights as its products read them. Where the backend reads a matrix faster in a layout of its own
 * (Backend.prepareLinear: the native backend's f16 / bf16 panels), each matrix of the block, the module's input
 * projection and the LM head is copied into that layout once, here, and `weight(name)` hands out the copy; the
 * embedding lookups, norms and biases, and every reader outside the forward pass (writers, export, conversion)
 * keep the stored weights. The copies cost the memory of the matrices a second time. The module's matrices can be
 * replaced by cheaper copies afterwards (model/module-dtype.ts): only module calls read them.
 */
import type { Backend, Weight } from '../kernels/backend.js';
import type { ModelConfig } from './config.js';
import { isProductWeight, topNames, type ParamSpec } from './names.js';
import type { Weights } from './weights.js';

/** What the forward pass reads weights through: the products' matrices, the float32 vectors, the shapes. */
export interface ProductWeights {
  weight(name: string): Weight;
  get(name: string): Float32Array;
  spec(name: string): ParamSpec;
}

/** The stored weights with some matrices replaced by copies (a backend's layout, a cheaper dtype). */
export class ProductTable implements ProductWeights {
  private readonly copies = new Map<string, Weight>();
  /** The copies made by the backend's prepareLinear (restored when a cheaper copy is dropped). */
  private readonly prepared = new Map<string, Weight>();

  constructor(readonly weights: Weights) {}

  weight(name: string): Weight {
    return this.copies.get(name) ?? this.weights.weight(name);
  }

  get(name: string): Float32Array {
    return this.weights.get(name);
  }

  spec(name: string): ParamSpec {
    return this.weights.spec(name);
  }

  /** `name` read as `w` from now on (null: as prepared, else as stored). */
  replace(name: string, w: Weight | null): void {
    const back = w ?? this.prepared.get(name);
    if (back) this.copies.set(name, back);
    else this.copies.delete(name);
  }

  /** Matrices read as something other than the stored weight. */
  get size(): number {
    return this.copies.size;
  }

  prepare(name: string, w: Weight): void {
    this.prepared.set(name, w);
    this.copies.set(name, w);
  }
}

/** `weights` with each product matrix as `backend` prepared it (the stored weights where it prepares nothing). */
export function productWeights(config: ModelConfig, weights: Weights, backend: Backend): ProductTable {
  const table = new ProductTable(weights);
  const prepare = backend.prepareLinear?.bind(backend);
  if (!prepare) return table;
  const t = topNames(config);
  for (const spec of weights.specs) {
    // The token table is a product weight only as a tied head; otherwise it is read by lookups alone.
    if (!isProductWeight(spec, config) || (spec.name === t.tokenEmbedding && t.head !== t.tokenEmbedding)) continue;
    const [N, K] = spec.shape as [number, number],
      w = weights.weight(spec.name),
      p = prepare(w, N, K);
    if (p !== w) table.prepare(spec.name, p);
  }
  return table;
}
