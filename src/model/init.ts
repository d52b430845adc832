/**
 * Initialisation (GPT-2 / nanoGPT scheme): N(0, 0.02) for matrices and embeddings, residual projections scaled by
 * 1/sqrt(2·L), norms at 1, biases at 0. The module's W_in starts as [I | 0.01·N] so that m_t ≈ h_t
 * (ARCHITECTURE.md §1.1): identity on the h half, small on the e half.
 */
import type { ModelConfig } from './config.js';
import type { ParamSpec } from './names.js';

/** Seeded normal generator (mulberry32 + Box–Muller): init depends only on the seed. */
export function normalSource(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

export function initParam(spec: ParamSpec, dst: Float32Array, c: ModelConfig, normal: () => number): void {
  const std = 0.02;
  switch (spec.init) {
    case 'ones':
      dst.fill(1);
      return;
    case 'zeros':
      dst.fill(0);
      return;
    case 'normal':
      for (let i = 0; i < dst.length; i++) dst[i] = std * normal();
      return;
    case 'residual': {
      const s = std / Math.sqrt(2 * (c.nLayers + (c.recycle?.numLayers ?? 0)));
      for (let i = 0; i < dst.length; i++) dst[i] = s * normal();
      return;
    }
    case 'in_proj': {
      const C = c.hidden;
      for (let r = 0; r < C; r++) {
        for (let k = 0; k < 2 * C; k++) dst[r * 2 * C + k] = k < C ? (k === r ? 1 : 0) : 0.01 * normal();
      }
      return;
    }
  }
}

/** Initialise every spec through a getter of its storage. */
export function initParams(
  specs: readonly ParamSpec[],
  get: (name: string) => Float32Array,
  c: ModelConfig,
  seed: number,
): void {
  const normal = normalSource(seed);
  for (const s of specs) initParam(s, get(s.name), c, normal);
}
