/**
 * `recyclegpt draft-vocab --model DIR|NAME [--data SPEC] [--out FILE]`: ranks the model's token ids by frequency on
 * a corpus's training split (its own tokenizer) and writes DIR/draft_vocab.json, from which `--draft-vocab N` takes
 * the N most frequent ids for the module's head (model/draft-vocab.ts). Prints the share of the held-out split's
 * tokens that the first N ids cover, for a few N.
 */
import type { Command } from 'commander';
import * as path from 'node:path';
import { loadCorpus } from '../data/corpus.js';
import { tokenizeDocuments } from '../data/dataset.js';
import { DRAFT_VOCAB_FILE, writeDraftVocabFile } from '../io/draft-vocab-file.js';
import { readConfig } from '../io/model-dir.js';
import { rankByFrequency } from '../model/draft-vocab.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { resolveModelDir } from './default-model.js';
import { printJson } from './options.js';

/** The share of `tokens` whose id is among the first n of `ranked`, for each n. */
function coverage(tokens: Int32Array, ranked: Int32Array, sizes: number[]): { size: number; coverage: number }[] {
  const rank = new Int32Array(ranked.length);
  ranked.forEach((id, r) => (rank[id] = r));
  return sizes.map((size) => {
    let n = 0;
    for (const t of tokens) if (rank[t]! < size) n++;
    return { size, coverage: tokens.length ? n / tokens.length : 0 };
  });
}

export function register(program: Command): void {
  program
    .command('draft-vocab')
    .description("rank the model's token ids by frequency on a corpus: draft_vocab.json for --draft-vocab N")
    .option('--model <dir|name>', 'model directory or shipped model name (default: the shipped model)')
    .option('--data <spec>', 'corpus: brown, nlp-corpus, brown+nlp-corpus, or a folder / .txt file', 'brown')
    .option('--out <file>', `where to write (default: ${DRAFT_VOCAB_FILE} in the model directory)`)
    .option('--json', 'print one JSON object with the coverage figures')
    .action((o: { model?: string; data: string; out?: string; json?: boolean }) => {
      const dir = resolveModelDir(o.model);
      const config = readConfig(path.join(dir, 'config.json'));
      const tok = loadTokenizer(dir);
      const corpus = loadCorpus(o.data);
      const train = tokenizeDocuments(corpus.train, tok);
      const val = tokenizeDocuments(corpus.val, tok);
      const V = config.vocabSize;
      const ids = rankByFrequency(train, V);
      const out = o.out ?? path.join(dir, DRAFT_VOCAB_FILE);
      writeDraftVocabFile(out, { vocab_size: V, source: o.data, tokens_counted: train.length, ids });
      const sizes = [256, 1024, 2048, 4096, 8192, 16384, 32768].filter((n) => n < V);
      const cov = coverage(val, ids, sizes);
      if (o.json) {
        printJson({ file: out, vocab_size: V, tokens_counted: train.length, heldout_coverage: cov });
        return;
      }
      process.stdout.write(`wrote ${out}: ${V} ids ranked on ${train.length} tokens of ${o.data}\n`);
      for (const c of cov)
        process.stdout.write(
          `  first ${c.size} ids: ${(100 * c.coverage).toFixed(1)}% of the held-out split's ${val.length} tokens\n`,
        );
    });
}
