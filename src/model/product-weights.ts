/**
 * A model's weights as its products read them. Where the backend reads a matrix faster in a layout of its own
 * (Backend.prepareLinear: the native backend's f16 / bf16 panels), each matrix of the block, the module's input
 * projection and the LM head is copied into that layout once, here, and `weight(name)` hands out the copy; the
 * embedding lookups, norms and biases, and every reader outside the forward pass (writers, export, conversion)
 * keep the stored weights. The copies cost the memory of the matrices a second time.
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

/** `weights` with each product matrix as `backend` prepared it (the stored weights where it prepares nothing). */
export function productWeights(config: ModelConfig, weights: Weights, backend: Backend): ProductWeights {
  const prepare = backend.prepareLinear?.bind(backend);
  if (!prepare) return weights;
  const t = topNames(config),
    prepared = new Map<string, Weight>();
  for (const spec of weights.specs) {
    // The token table is a product weight only as a tied head; otherwise it is read by lookups alone.
    if (!isProductWeight(spec, config) || (spec.name === t.tokenEmbedding && t.head !== t.tokenEmbedding)) continue;
    const [N, K] = spec.shape as [number, number],
      w = weights.weight(spec.name),
      p = prepare(w, N, K);
    if (p !== w) prepared.set(spec.name, p);
  }
  if (prepared.size === 0) return weights;
  return {
    weight: (name) => prepared.get(name) ?? weights.weight(name),
    get: (name) => weights.get(name),
    spec: (name) => weights.spec(name),
  };
}
