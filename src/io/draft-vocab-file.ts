/**
 * draft_vocab.json in a model directory: the model's token ids ranked by frequency on a corpus (most frequent
 * first), from which `--draft-vocab N` takes the first N (model/draft-vocab.ts). Written by `recyclegpt draft-vocab`.
 *
 *   {"format": "recyclegpt-draft-vocab", "version": 1, "vocab_size": V, "source": "brown", "tokens_counted": n,
 *    "ids": [every id 0..V−1, once, most frequent first]}
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDraftIds } from '../model/draft-vocab.js';
import { writeFileAtomic } from './atomic.js';
import { readJsonFile } from './files.js';

export const DRAFT_VOCAB_FILE = 'draft_vocab.json';
const FORMAT = 'recyclegpt-draft-vocab';

export interface DraftVocabRanking {
  vocab_size: number;
  /** What was counted (a corpus spec). */
  source: string;
  tokens_counted: number;
  /** Every id once, most frequent first. */
  ids: Int32Array;
}

export function writeDraftVocabFile(file: string, r: DraftVocabRanking): void {
  const json = {
    format: FORMAT,
    version: 1,
    vocab_size: r.vocab_size,
    source: r.source,
    tokens_counted: r.tokens_counted,
    ids: Array.from(r.ids),
  };
  writeFileAtomic(file, `${JSON.stringify(json)}\n`);
}

/** Reads and checks a ranking for a model of vocabulary V; errors name the file and the field. */
export function readDraftVocabFile(file: string, V: number): DraftVocabRanking {
  const j = readJsonFile(file, 'draft vocabulary');
  const bad = (what: string): Error => new Error(`${file}: ${what}`);
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw bad('not a JSON object');
  const o = j as Record<string, unknown>;
  if (o.format !== FORMAT) throw bad(`format must be "${FORMAT}", got ${JSON.stringify(o.format)}`);
  if (o.version !== 1) throw bad(`version ${JSON.stringify(o.version)} is not supported (1)`);
  if (o.vocab_size !== V) throw bad(`vocab_size ${JSON.stringify(o.vocab_size)} does not match the model's ${V}`);
  if (!Array.isArray(o.ids)) throw bad('ids must be an array of token ids');
  const ids = checkDraftIds(o.ids as number[], V, `${file}: ids`);
  if (ids.length !== V) throw bad(`ids must rank all ${V} ids, it has ${ids.length}`);
  const counted = typeof o.tokens_counted === 'number' ? o.tokens_counted : 0;
  return { vocab_size: V, source: typeof o.source === 'string' ? o.source : '', tokens_counted: counted, ids };
}

/**
 * The first `size` ids of a model directory's ranking (`--draft-vocab N`), with a clear error when the directory
 * has none or N is out of range.
 */
export function draftVocabOf(dir: string, size: number, V: number): Int32Array {
  if (!Number.isInteger(size) || size < 1 || size > V)
    throw new Error(`--draft-vocab: ${size} must be an integer in 1..${V} (the vocabulary)`);
  const file = path.join(dir, DRAFT_VOCAB_FILE);
  if (!fs.existsSync(file))
    throw new Error(
      `--draft-vocab: ${dir} has no ${DRAFT_VOCAB_FILE}; make one with ` +
        `\`recyclegpt draft-vocab --model ${dir} --data brown\``,
    );
  return readDraftVocabFile(file, V).ids.slice(0, size);
}
