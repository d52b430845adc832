/**
 * Depth up-scaling: a deeper model that computes exactly what a trained shallower one does, to train on from there
 * (progressive stacking, Gong et al. 2019; depth up-scaling, SOLAR 2023). Layer j of the L'-layer result copies
 * layer floor(j·L/L') of the L-layer source; the first copy of each source layer is the layer itself, every further
 * copy has its output projections (attention o, MLP down, and their biases) zeroed, so its residual branch adds
 * nothing: the grown model's hidden states, logits and recyclable module (unchanged) equal the source's, and
 * training starts from the source's loss with the copies' features ready (a zeroed projection still gets gradient).
 */
import type { ModelConfig } from './config.js';
import { allParamSpecs, basePrefix, blockNames } from './names.js';

/** Where each layer of the grown model comes from. */
export interface GrownLayer {
  source: number;
  /** A later copy: its output projections are zero, the block is the identity until trained. */
  identity: boolean;
}

/** The source layer of each of `to` layers grown from `from` (to ≥ from ≥ 1), copies next to their source. */
export function growPlan(from: number, to: number): GrownLayer[] {
  if (!Number.isInteger(from) || from < 1) throw new Error(`grow: the source has ${from} layers`);
  if (!Number.isInteger(to) || to < from) {
    throw new Error(`grow: --layers ${to} must be an integer ≥ the source's ${from} layers`);
  }
  const plan: GrownLayer[] = [];
  for (let j = 0; j < to; j++) {
    const source = Math.floor((j * from) / to);
    plan.push({ source, identity: j > 0 && plan[j - 1]!.source === source });
  }
  return plan;
}

export interface GrownModel {
  config: ModelConfig;
  /** Where each layer came from (growPlan). */
  plan: GrownLayer[];
  /** Every tensor of `config` (internal names and layouts), new arrays where a copy differs from its source. */
  tensors: Map<string, Float32Array>;
}

/**
 * `source` grown to `layers` base layers (the module kept as it is, or dropped with `dropModule`).
 * `get` reads the source's tensors as float32 in internal layout.
 */
export function growDepth(
  source: ModelConfig,
  get: (name: string) => Float32Array,
  layers: number,
  opts: { dropModule?: boolean } = {},
): GrownModel {
  const plan = growPlan(source.nLayers, layers);
  const config: ModelConfig = { ...source, nLayers: layers, recycle: opts.dropModule ? null : source.recycle };
  const tensors = new Map<string, Float32Array>();
  const layerPrefix = (name: string): { layer: number; rest: string } | null => {
    for (let j = 0; j < layers; j++) {
      const p = basePrefix(config.arch, j);
      if (name.startsWith(p)) return { layer: j, rest: name.slice(p.length) };
    }
    return null;
  };
  for (const spec of allParamSpecs(config)) {
    const at = layerPrefix(spec.name);
    if (at === null) {
      tensors.set(spec.name, get(spec.name));
      continue;
    }
    const { source: src, identity } = plan[at.layer]!;
    const from = get(basePrefix(source.arch, src) + at.rest);
    const names = blockNames(config, basePrefix(config.arch, at.layer));
    const zeroed = [names.o, names.oBias, names.down, names.downBias];
    tensors.set(spec.name, identity && zeroed.includes(spec.name) ? new Float32Array(from.length) : from);
  }
  return { config, plan, tensors };
}
