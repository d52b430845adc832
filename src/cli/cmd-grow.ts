/**
 * `recyclegpt grow [--model DIR] --layers N [--module-layers M] --out DIR [--drop-module] [--force] [--json]`: a deeper
 * copy of a model (base, and module with --module-layers) that computes exactly what it does (src/model/grow.ts), to
 * train further with `train --base OUT`. Weights are written as float32 (exact from any stored dtype); config.json gets
 * the new n_layer (and loses its "recycle" section with --drop-module); the tokenizer files are copied. Written
 * atomically (staged, then renamed in).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { replaceDirAtomic } from '../io/atomic.js';
import { loadModelDir, saveWeights } from '../io/model-dir.js';
import { CONFIG_LIMITS, toHfConfig } from '../model/config.js';
import { growDepth } from '../model/grow.js';
import { resolveModelDir } from './default-model.js';
import { checkOutDir, TOKENIZER_FILES } from './cmd-quantize.js';
import { intOption, printJson } from './options.js';

export interface GrowResult {
  model: string;
  out: string;
  layers_in: number;
  layers_out: number;
  /** The source layer of each new layer; `identity`: a copy whose output projections are zero. */
  plan: { source: number; identity: boolean }[];
  module: 'kept' | 'dropped' | 'none';
  /** The module's blocks before and after, and where each came from (absent without a module kept). */
  module_layers_in?: number;
  module_layers_out?: number;
  module_plan?: { source: number; identity: boolean }[];
  copied: string[];
}

export function growModelDir(
  dir: string,
  layers: number,
  out: string,
  dropModule = false,
  force = false,
  moduleLayers?: number,
): GrowResult {
  checkOutDir(dir, out, force);
  const { config, weights } = loadModelDir(dir);
  const grown = growDepth(config, (n) => weights.get(n), layers, { dropModule, moduleLayers });
  const copied = TOKENIZER_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  replaceDirAtomic(out, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(toHfConfig(grown.config), null, 2)}\n`);
    for (const f of copied) fs.copyFileSync(path.join(dir, f), path.join(tmp, f));
    saveWeights(path.join(tmp, 'model.safetensors'), grown.config, (n) => grown.tensors.get(n)!);
  });
  const module = config.recycle === null ? 'none' : dropModule ? 'dropped' : 'kept';
  const r: GrowResult = {
    model: dir,
    out,
    layers_in: config.nLayers,
    layers_out: layers,
    plan: grown.plan,
    module,
    copied,
  };
  if (module === 'kept') {
    r.module_layers_in = config.recycle!.numLayers;
    r.module_layers_out = grown.config.recycle!.numLayers;
    r.module_plan = grown.modulePlan;
  }
  return r;
}

export function register(program: Command): void {
  program
    .command('grow')
    .description('write a deeper copy of a model (new layers start as identities) to train further from')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption(
      '--layers <n>',
      "base layers of the copy (≥ the model's)",
      intOption('--layers', 1, CONFIG_LIMITS.layers),
    )
    .option(
      '--module-layers <n>',
      "module blocks of the copy (≥ the module's; new ones start as identities)",
      intOption('--module-layers', 1, CONFIG_LIMITS.layers),
    )
    .requiredOption('--out <dir>', 'output model directory')
    .option('--drop-module', 'leave the recyclable module out (train --base adds a new one)')
    .option('--force', 'replace --out when it exists and is not empty')
    .option('--json', 'print one JSON object {out, layers_in, layers_out, plan, module, copied, module_layers_…}')
    .action(
      (o: {
        model?: string;
        layers: number;
        moduleLayers?: number;
        out: string;
        dropModule?: boolean;
        force?: boolean;
        json?: boolean;
      }) => {
        const dir = resolveModelDir(o.model);
        const r = growModelDir(dir, o.layers, o.out, o.dropModule === true, o.force === true, o.moduleLayers);
        if (o.json) printJson(r);
        else {
          const copies = r.plan.filter((p) => p.identity).length;
          process.stdout.write(
            `wrote ${r.out}: ${r.layers_in} → ${r.layers_out} layers (${copies} identity copies), module ${r.module}` +
              (r.module_layers_out !== undefined ? ` (${r.module_layers_in} → ${r.module_layers_out} blocks)` : '') +
              '\n',
          );
        }
      },
    );
}
