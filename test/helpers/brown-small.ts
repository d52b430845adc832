/**
 * The small training set the training tests share: a few Brown documents as a text file and a 300-token BPE trained
 * on them (300: the vocabulary size of the tiny fixtures), in a temporary folder removed when the process exits.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCorpus } from '../../src/data/corpus.js';
import { trainBpe, writeTokenizerJson } from '../../src/tokenizer/index.js';

/** A new folder under the OS's temporary one, removed when the process exits. */
export function tempDirUntilExit(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The first `docs` documents of Brown's training split, blank-line separated, as `dir`/small.txt, and a 300-token
 * byte-level BPE trained on them as `dir`/tok300/tokenizer.json.
 */
export function smallBrown(dir: string, docs: number): { file: string; tokDir: string } {
  const c = loadCorpus('brown');
  const file = path.join(dir, 'small.txt');
  fs.writeFileSync(file, c.train.slice(0, docs).join('\n\n'));
  const tokDir = path.join(dir, 'tok300');
  fs.mkdirSync(tokDir);
  writeTokenizerJson(path.join(tokDir, 'tokenizer.json'), trainBpe(c.train.slice(0, docs), { vocabSize: 300 }));
  return { file, tokDir };
}
