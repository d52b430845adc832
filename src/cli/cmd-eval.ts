/**
 * `recyclegpt eval [--model DIR] --data SPEC [--json]`: held-out perplexity of both heads and the top-1
 * agreement of the module with the base (src/train/eval.ts). --json prints
 * {ppl_next, ppl_recycle, agreement_top1, tokens, …} on the last line of stdout.
 */
import type { Command } from 'commander';
import { loadCorpus } from '../data/corpus.js';
import { tokenizeDocuments } from '../data/dataset.js';
import { getBackend } from '../kernels/index.js';
import { loadModelDir } from '../model/load.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { evaluateModel } from '../train/eval.js';
import { resolveModelDir } from './default-model.js';
import { intOption, printJson } from './options.js';

interface EvalFlags { model?: string; data: string; seqLen?: number; batchSize: number; maxBatches?: number; threads?: number; json?: boolean }

export function register(program: Command): void {
  program
    .command('eval')
    .description('held-out perplexity of the next-token and recycle heads, and their top-1 agreement')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption('--data <spec>', 'text file, folder of .txt files, "brown" or "nlp-corpus" (its held-out split is used)')
    .option('--seq-len <n>', 'window length (default: the model\'s context)', intOption('--seq-len', 2))
    .option('--batch-size <n>', 'windows per forward', intOption('--batch-size', 1, 1024), 4)
    .option('--max-batches <n>', 'stop after N batches (default: the whole split)', intOption('--max-batches', 1))
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--json', 'print one JSON object on the last line of stdout')
    .action((o: EvalFlags) => {
      const dir = resolveModelDir(o.model);
      const { config, weights } = loadModelDir(dir);
      const tok = loadTokenizer(dir);
      const backend = getBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      const val = loadCorpus(o.data).val;
      if (val.length === 0) throw new Error(`data spec "${o.data}": the held-out split is empty`);
      const tokens = tokenizeDocuments(val, tok);
      const seqLen = o.seqLen ?? config.maxPositions;
      if (seqLen > config.maxPositions) throw new Error(`--seq-len ${seqLen} exceeds the model's context length ${config.maxPositions}`);
      const t0 = performance.now();
      const r = evaluateModel(config, weights, tokens, { backend, seqLen, batchSize: o.batchSize, maxBatches: o.maxBatches });
      const result = { ...r, model: dir, seq_len: seqLen, seconds: (performance.now() - t0) / 1000 };
      if (o.json) printJson(result);
      else {
        const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
        process.stdout.write(`${dir} on ${o.data} (held-out, ${r.tokens} tokens, windows of ${seqLen}):\n` +
          `  ppl next    ${f(r.ppl_next, 3)}\n  ppl recycle ${f(r.ppl_recycle, 3)}\n  agreement   ${f(r.agreement_top1, 4)}\n`);
      }
    });
}
