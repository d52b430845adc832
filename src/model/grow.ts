/**
 * Depth up-scaling: a deeper model that computes exactly what a trained shallower one does, to train on from there
 * (progressive stacking, Gong et al. 2019; depth up-scaling, SOLAR 2023). Layer j of the L'-layer result copies
 * layer floor(j·L/L') of the L-layer source; the first copy of each source layer is the layer itself, every further
 * copy has its output projections (attention o, MLP down, and their biases) zeroed, so its residual branch adds
 * nothing: the grown model's hidden states, logits and recyclable module (unchanged, or grown the same way) equal the
 * source's, and training starts from the source's loss with the copies' features ready (a zeroed projection still
 * gets gradient).
 */
import type { ModelConfig } from './config.js';
import { allParamSpecs, basePrefix, blockNames, modulePrefix } from './names.js';

/** Where each layer of the grown model comes from. */
export interface GrownLayer {
  source: number;
  /** A later copy: its output projections are zero, the block is the identity until trained. */
  identity: boolean;
}

/** The source layer of each of `to` layers grown from `from` (to ≥ from ≥ 1), copies next to their source. */
export function growPlan(from: number, to: number, option = '--layers'): GrownLayer[] {
  if (!Number.isInteger(from) || from < 1) throw new Error(`grow: the source has ${from} layers`);
  if (!Number.isInteger(to) || to < from) {
    throw new Error(`grow: ${option} ${to} must be an integer ≥ the source's ${from} layers`);
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
  /** Where each base layer came from (growPlan). */
  plan: GrownLayer[];
  /** Where each module block came from (growPlan over the module's blocks); empty without a module. */
  modulePlan: GrownLayer[];
  /** Every tensor of `config` (internal names and layouts), new arrays where a copy differs from its source. */
  tensors: Map<string, Float32Array>;
}

/**
 * `source` grown to `layers` base layers and `moduleLayers` module blocks (default: the module's own; the same plan
 * of copies, so a grown module also computes what the source's does), or with the module dropped (`dropModule`).
 * `get` reads the source's tensors as float32 in internal layout.
 */
export function growDepth(
  source: ModelConfig,
  get: (name: string) => Float32Array,
  layers: number,
  opts: { dropModule?: boolean; moduleLayers?: number } = {},
): GrownModel {
  const plan = growPlan(source.nLayers, layers);
  const rec = source.recycle;
  if (opts.moduleLayers !== undefined && (rec === null || opts.dropModule)) {
    throw new Error(`grow: --module-layers needs a model with a recyclable module${rec ? ', kept' : ''}`);
  }
  const recycle = opts.dropModule || rec === null ? null : { ...rec, numLayers: opts.moduleLayers ?? rec.numLayers };
  const modulePlan = recycle && rec ? growPlan(rec.numLayers, recycle.numLayers, '--module-layers') : [];
  const config: ModelConfig = { ...source, nLayers: layers, recycle };
  // the stacks of blocks: a grown block's prefix, its plan, and the source's prefix of a layer
  const stacks = [
    { plan, prefix: (j: number) => basePrefix(config.arch, j), from: (j: number) => basePrefix(source.arch, j) },
    { plan: modulePlan, prefix: modulePrefix, from: modulePrefix },
  ];
  const tensors = new Map<string, Float32Array>();
  const blockOf = (name: string) => {
    for (const st of stacks) {
      for (let j = 0; j < st.plan.length; j++) {
        const p = st.prefix(j);
        if (name.startsWith(p)) return { p, rest: name.slice(p.length), at: st.plan[j]!, from: st.from };
      }
    }
    return null;
  };
  for (const spec of allParamSpecs(config)) {
    const b = blockOf(spec.name);
    if (b === null) {
      tensors.set(spec.name, get(spec.name));
      continue;
    }
    const from = get(b.from(b.at.source) + b.rest);
    const names = blockNames(config, b.p);
    const zeroed = [names.o, names.oBias, names.down, names.downBias];
    tensors.set(spec.name, b.at.identity && zeroed.includes(spec.name) ? new Float32Array(from.length) : from);
  }
  return { config, plan, modulePlan, tensors };
}
