/**
 * Prompts for decode benchmarks of a trained model: a few English openings, tokenized with the model's own
 * tokenizer (a trained model's acceptance depends on real text; random ids would understate it). A model
 * directory without a tokenizer gets null, and the caller falls back to random ids.
 */
import { loadTokenizer } from '../tokenizer/index.js';

export const BENCH_TEXT_PROMPTS = [
  'The history of the city begins in the early years of the',
  'She opened the door and looked out at the',
  'In the morning the children walked to school along the',
  'The committee said on Tuesday that the new rules would',
];

export function textPromptsFor(dir: string, count: number): number[][] | null {
  if (!Number.isInteger(count) || count < 1 || count > BENCH_TEXT_PROMPTS.length) {
    throw new Error(`bench: ${count} text prompts asked for, there are ${BENCH_TEXT_PROMPTS.length}`);
  }
  let tok;
  try {
    tok = loadTokenizer(dir);
  } catch {
    return null;
  }
  return BENCH_TEXT_PROMPTS.slice(0, count).map((t) => tok.encode(t));
}
