/**
 * Bytes of weights one call streams from memory (float32): a full call reads every base matrix once (the tied
 * embedding once, as the head; the position table and the embedding lookup only touch rows), a module call reads
 * W_in, the module's blocks and the shared head. Decoding at batch 1 is bound by these bytes (ARCHITECTURE.md §1.3).
 */
import type { ModelConfig } from '../model/config.js';
import { baseParamSpecs, moduleParamSpecs, topNames, type ParamSpec } from '../model/names.js';

const bytesOf = (specs: readonly ParamSpec[]): number =>
  4 * specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);

export interface CallBytes {
  full: number;
  module: number;
}

export function callBytes(c: ModelConfig): CallBytes {
  const t = topNames(c);
  const rowOnly = new Set([t.positionEmbedding, c.tieEmbeddings ? null : t.tokenEmbedding]);
  const full = bytesOf(baseParamSpecs(c).filter((s) => !rowOnly.has(s.name)));
  const head = bytesOf(
    baseParamSpecs(c).filter((s) => s.name === t.head || s.name === t.finalNorm || s.name === t.finalNormBias),
  );
  const module = c.recycle ? bytesOf(moduleParamSpecs(c)) + head : 0;
  return { full, module };
}
