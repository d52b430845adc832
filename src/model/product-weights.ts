/**
 * A model's weights as its products read them. Where the backend reads a matrix faster in a layout of its own
 * (Backend.prepareLinear: the native backend's f16 / bf16 panels), each matrix of the block, the module's input
 * projection and the LM head is copied into that layout once, here, and `weight(name)` hands out the copy; the
 * embedding lookups, norms and biases, and every reader outside the forward pass (writers, export, conversion)
 * keep the stored weights. The copies cost the memory of the matrices a second time. A view with some matrices
 * replaced again (`over`: the module's cheaper copies that verified's drafting calls read, model/module-dtype.ts)
 * shares the rest.
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

  constructor(
    readonly weights: Weights,
    private readonly under: ProductWeights = weights,
  ) {}

  weight(name: string): Weight {
    return this.copies.get(name) ?? this.under.weight(name);
  }

  get(name: string): Float32Array {
    return this.weights.get(name);
  }

  spec(name: string): ParamSpec {
    return this.weights.spec(name);
  }

  /** Matrices read as something other than what is under this table. */
  get size(): number {
    return this.copies.size;
  }

  /** `name` read as `w` from now on. */
  set(name: string, w: Weight): void {
    this.copies.set(name, w);
  }

  /** A view reading `copies` where it has them and this table's weights elsewhere. */
  over(copies: ReadonlyMap<string, Weight>): ProductTable {
    const view = new ProductTable(this.weights, this);
    for (const [name, w] of copies) view.set(name, w);
    return view;
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
    if (p !== w) table.set(spec.name, p);
  }
  return table;
}
