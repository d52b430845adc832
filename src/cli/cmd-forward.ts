/**
 * `recyclegpt forward [--model DIR|NAME] (--ids 1,2,3 | --text TEXT) [--json]`: the base logits for every position
 * and, when the model has a module, the recycle logits for t = 0..T−2 (predicting ids[t+2] from h_t and
 * e(ids[t+1])). --text is tokenized as generate's prompts are (the model's special tokens added). Without --json,
 * one line per position with the token and the argmax of each head, as ids and as text. For debugging and for
 * checks against PyTorch (--json: the same layout as the fixtures' expected.json, plus the ids).
 */
import type { Command } from 'commander';
import { InferenceModel } from '../model/infer.js';
import { loadCliModel } from './load-model.js';
import { loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
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

/** The directory's tokenizer, or null when it has none (token ids only). */
function tokenizerOrNull(dir: string): Tokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch {
    return null;
  }
}

/** One token as text (a piece of a multi-byte character shows as U+FFFD). */
function tokenText(tok: Tokenizer, id: number): string {
  return id < tok.vocabSize ? tok.decode([id]) : '';
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
    .option('--model <dir|name>', 'model directory or shipped model name (default: the shipped model)')
    .option('--ids <list>', 'comma-separated token ids, e.g. 1,2,3')
    .option('--text <text>', "text, tokenized with the model's tokenizer")
    .option('--json', 'print one JSON object {ids, logits, recycle_logits?}')
    .action((opts: { model?: string; ids?: string; text?: string; json?: boolean }) => {
      if ((opts.ids === undefined) === (opts.text === undefined))
        throw new Error('give exactly one of --ids and --text');
      const dir = resolveModelDir(opts.model);
      const { config, weights, tokenizerDir } = loadCliModel(dir);
      const tok = opts.text !== undefined || !opts.json ? tokenizerOrNull(tokenizerDir) : null;
      if (opts.text !== undefined && !tok) throw new Error(`--text: ${dir} has no tokenizer; give --ids`);
      const ids = opts.text !== undefined ? tok!.encode(opts.text, { addSpecialTokens: true }) : parseIds(opts.ids!);
      if (ids.length === 0) throw new Error('--text: the text gives no tokens');
      if (ids.length > config.maxPositions)
        throw new Error(`--ids: ${ids.length} tokens exceed the context length ${config.maxPositions}`);
      const model = new InferenceModel(config, weights, cliBackend());
      const V = config.vocabSize,
        C = config.hidden,
        T = ids.length;
      const out = model.forwardBase(ids, model.newBaseCache(), 'all');
      const result: { ids: number[]; logits: number[][]; recycle_logits?: number[][] } = {
        ids,
        logits: rows(out.logits, T, V),
      };
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
          const show = (id: number): string => (tok ? `${id} ${JSON.stringify(tokenText(tok, id))}` : `${id}`);
          process.stdout.write(
            `t=${t} id=${show(ids[t]!)} argmax_next=${show(arg)}` +
              `${rarg !== null ? ` argmax_recycle=${show(rarg)}` : ''}\n`,
          );
        }
      }
    });
}
