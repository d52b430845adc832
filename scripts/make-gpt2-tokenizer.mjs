// Writes models/gpt2-tokenizer/tokenizer.json: GPT-2's byte-level BPE (r50k_base, 50257 tokens) in the Hugging Face
// layout, from gpt-tokenizer's rank table (a devDependency, needed only to run this script). A token's merge is the
// pair BPE joins to make it: its bytes merged tiktoken's way with the lower-ranked tokens end in two pieces (GPT-2's
// own merges.txt, one per token); where they would not, every split into two tokens (Hugging Face's
// TikTokenConverter). test/tokenizer.test.ts checks the result against gpt-tokenizer on text.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import r50kRanks from 'gpt-tokenizer/bpeRanks/r50k_base';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const EOS = '<|endoftext|>';

/** GPT-2's bytes_to_unicode: every byte as a printable character. */
function byteToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map = new Array(256);
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

const enc = byteToUnicode();
const tokens = r50kRanks.map((r) => (typeof r === 'string' ? Buffer.from(r, 'utf8') : Buffer.from(r)));
const str = (bytes) => Array.from(bytes, (b) => enc[b]).join('');
const rankOf = new Map(tokens.map((t, i) => [t.toString('latin1'), i]));
/**
 * The two tokens BPE joins to make `t`: t's bytes merged the tiktoken way (the adjacent pair whose join has the
 * lowest rank first) with the tokens ranked below t only; null unless that ends in exactly two pieces.
 */
function canonicalSplit(t, rank) {
  let parts = Array.from(t, (b) => Buffer.from([b]));
  for (;;) {
    let best = -1,
      bestRank = rank;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rankOf.get(Buffer.concat([parts[i], parts[i + 1]]).toString('latin1'));
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) break;
    parts = [...parts.slice(0, best), Buffer.concat([parts[best], parts[best + 1]]), ...parts.slice(best + 2)];
  }
  return parts.length === 2 ? parts : null;
}

const vocab = {};
const merges = [];
tokens.forEach((t, rank) => {
  vocab[str(t)] = rank;
  if (t.length === 1) return;
  const pair = canonicalSplit(t, rank);
  if (pair) {
    merges.push(`${str(pair[0])} ${str(pair[1])}`);
    return;
  }
  const local = [];
  for (let i = 1; i < t.length; i++) {
    const l = t.subarray(0, i),
      r = t.subarray(i);
    const rl = rankOf.get(l.toString('latin1')),
      rr = rankOf.get(r.toString('latin1'));
    if (rl !== undefined && rr !== undefined) local.push([rl, rr, l, r]);
  }
  local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [, , l, r] of local) merges.push(`${str(l)} ${str(r)}`);
});
vocab[EOS] = tokens.length;
const json = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [
    {
      id: tokens.length,
      content: EOS,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    },
  ],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: '',
    end_of_word_suffix: '',
    fuse_unk: false,
    vocab,
    merges,
  },
};
const out = join(root, 'models', 'gpt2-tokenizer', 'tokenizer.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(json)}\n`);
console.log(`wrote ${out}: ${Object.keys(vocab).length} tokens, ${merges.length} merges`);
