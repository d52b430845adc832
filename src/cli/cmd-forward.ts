/**
 * `recyclegpt forward --model DIR --ids 1,2,3 [--json]`: the base logits for every position and, when the model
 * has a module, the recycle logits for t = 0..T−2 (predicting ids[t+2] from h_t and e(ids[t+1])). For debugging
 * and for checks against PyTorch (same layout as the fixtures' expected.json).
 */
import type { Command } from 'commander';
import { InferenceModel } from '../model/infer.js';
import { loadModelDir } from '../io/model-dir.js';
import { resolveModelDir } from './default-model.js';
import { printJson, cliBackend } from './options.js';

function parseIds(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  return parts.map((p, i) => {
    const n = Number(p);
    if (p === '' || !Number.isInteger(n) || n < 0)
      throw new Error(`--ids: item ${i} ("${p}") is not a non-negative integer`);
    return n;
  });
}

function rows(data: Float32Array, R: number, V: number): number[][] {
  return Array.from({ length: R }, (_, r) =>
    Array.from(data.subarray(r * V, (r + 1) * V), (v) => Math.round(v * 1e6) / 1e6),
  );
}

export function register(program: Command): void {
  program
    .command('forward')
    .description('print the logits (and recycle logits) of a model for a list of token ids')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption('--ids <list>', 'comma-separated token ids, e.g. 1,2,3')
    .option('--json', 'print one JSON object {logits, recycle_logits?}')
    .action((opts: { model?: string; ids: string; json?: boolean }) => {
      const ids = parseIds(opts.ids);
      const { config, weights } = loadModelDir(resolveModelDir(opts.model));
      if (ids.length > config.maxPositions)
        throw new Error(`--ids: ${ids.length} tokens exceed the context length ${config.maxPositions}`);
      const model = new InferenceModel(config, weights, cliBackend());
      const V = config.vocabSize,
        C = config.hidden,
        T = ids.length;
      const out = model.forwardBase(ids, model.newBaseCache(), 'all');
      const result: { logits: number[][]; recycle_logits?: number[][] } = { logits: rows(out.logits, T, V) };
      if (model.hasModule && T >= 2) {
        const hidden = out.hidden.slice(0, (T - 1) * C);
        result.recycle_logits = rows(
          model.forwardModule(hidden, ids.slice(1), model.newModuleCache(), 'all'),
          T - 1,
          V,
        );
      }
      if (opts.json) printJson(result);
      else {
        for (let t = 0; t < T; t++) {
          const l = result.logits[t]!;
          const arg = l.indexOf(Math.max(...l));
          const r = result.recycle_logits?.[t];
          const rarg = r ? r.indexOf(Math.max(...r)) : null;
          process.stdout.write(
            `t=${t} id=${ids[t]} argmax_next=${arg}${rarg !== null ? ` argmax_recycle=${rarg}` : ''}\n`,
          );
        }
      }
    });
}
