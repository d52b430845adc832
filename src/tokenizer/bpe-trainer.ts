/**
 * Byte-level BPE trainer (GPT-2 scheme): pre-tokenize with GPT-2's regex, count words, start from the 256 bytes,
 * and repeatedly merge the most frequent adjacent pair. Pair counts are updated incrementally: a merge only revisits
 * the words that contain the pair (an index pair -> words), and a lazy max-heap picks the next pair, so a merge costs
 * time proportional to the words it touches, not to the corpus.
 * Ids: bytes 0..255 (id = byte value), merged tokens from 256, special tokens last.
 */
import { BYTE_TO_UNICODE, GPT2_SPLIT } from './bytes.js';
import { ByteLevelBpe } from './bpe.js';
import { writeFileAtomic } from '../io/atomic.js';

export interface BpeTrainOptions {
  /** total vocabulary size including the 256 bytes and the special tokens */
  vocabSize: number;
  /** default ['<|endoftext|>']; the first one is the EOS token */
  specialTokens?: string[];
  /** stop when the best pair occurs fewer times than this (default 2) */
  minFrequency?: number;
}

export interface TrainedBpe {
  /** id -> token string in the byte-level alphabet (special tokens as written) */
  tokens: string[];
  merges: Array<[string, string]>;
  specialTokens: string[];
}

/** Max-heap of (count, pair key); ties go to the smaller key so training is deterministic. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop() as number;
    const lastK = this.keys.pop() as number;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      const n = this.counts.length;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Counts GPT-2 pre-tokens over all texts (special tokens written in the text are skipped). */
export function countWords(texts: Iterable<string>, specialTokens: readonly string[] = []): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    let parts = [text];
    for (const s of specialTokens) parts = parts.flatMap((p) => p.split(s));
    for (const part of parts) {
      for (const m of part.matchAll(GPT2_SPLIT)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
    }
  }
  return counts;
}

export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): TrainedBpe {
  const specialTokens = opts.specialTokens ?? ['<|endoftext|>'];
  const minFreq = opts.minFrequency ?? 2;
  const target = opts.vocabSize;
  if (!Number.isInteger(target) || target < 256 + specialTokens.length || target > 2 ** 20) {
    throw new Error(
      `trainBpe: vocabSize must be an integer in [${256 + specialTokens.length}, ${2 ** 20}], got ${target}`,
    );
  }
  const maxBase = target - specialTokens.length; // ids below this are bytes + merges
  const K = maxBase; // pair key = a * K + b: below 2^30 (a V8 small integer) for vocabularies up to 32768

  const tokens: string[] = BYTE_TO_UNICODE.slice();
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const merges: Array<[string, string]> = [];

  // Unique words as symbol arrays; one byte = one initial symbol.
  const enc = new TextEncoder();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of countWords(texts, specialTokens)) {
    words.push(Array.from(enc.encode(w)));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>(); // may hold duplicates and stale entries; filtered on use
  for (let w = 0; w < words.length; w++) {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] * K + s[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[w]);
      let list = pairWords.get(k);
      if (!list) pairWords.set(k, (list = []));
      list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const seen = new Int32Array(words.length).fill(-1); // dedupes a pair's word list per merge
  const delta = new Map<number, number>();
  while (tokens.length < maxBase && heap.size > 0) {
    const [c, key] = heap.pop();
    if (pairCount.get(key) !== c) continue; // stale entry; the current count was pushed separately
    if (c < minFreq) break;
    const a = Math.floor(key / K);
    const b = key % K;
    const str = tokens[a] + tokens[b];
    let id = idOf.get(str); // the same string can arise from two different splits: reuse its id
    if (id === undefined) {
      id = tokens.length;
      tokens.push(str);
      idOf.set(str, id);
    }
    merges.push([tokens[a], tokens[b]]);
    const stamp = merges.length;
    delta.clear();
    for (const w of pairWords.get(key) ?? []) {
      if (seen[w] === stamp) continue;
      seen[w] = stamp;
      const s = words[w];
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) has = true;
      if (!has) continue;
      const f = freq[w];
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i] * K + s[i + 1];
        delta.set(k, (delta.get(k) ?? 0) - f);
      }
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(s[i]);
      }
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i] * K + out[i + 1];
        delta.set(k, (delta.get(k) ?? 0) + f);
        // only pairs that involve the new token can be new to this word
        if (out[i] === id || out[i + 1] === id) {
          let list = pairWords.get(k);
          if (!list) pairWords.set(k, (list = []));
          list.push(w);
        }
      }
      words[w] = out;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const n = (pairCount.get(k) ?? 0) + d;
      if (n > 0) {
        pairCount.set(k, n);
        heap.push(n, k);
      } else {
        pairCount.delete(k);
        pairWords.delete(k);
      }
    }
    pairCount.delete(key);
    pairWords.delete(key);
  }
  for (const s of specialTokens) tokens.push(s);
  return { tokens, merges, specialTokens: [...specialTokens] };
}

/** The Hugging Face tokenizer.json object for a trained vocabulary (BPE model, ByteLevel pre-tokenizer/decoder). */
export function toTokenizerJson(t: TrainedBpe): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  t.tokens.forEach((tok, id) => (vocab[tok] = id));
  const first = t.tokens.length - t.specialTokens.length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: t.specialTokens.map((content, i) => ({
      id: first + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: t.merges,
    },
  };
}

/** Writes tokenizer.json atomically. */
export function writeTokenizerJson(file: string, t: TrainedBpe): void {
  writeFileAtomic(file, JSON.stringify(toTokenizerJson(t)));
}

/** Our own encoder for a trained vocabulary (same ids as loading the written tokenizer.json). */
export function bpeFromTrained(t: TrainedBpe): ByteLevelBpe {
  const first = t.tokens.length - t.specialTokens.length;
  const vocab = new Map<string, number>();
  t.tokens.forEach((tok, id) => vocab.set(tok, id));
  return new ByteLevelBpe({
    vocab,
    merges: t.merges,
    specialTokens: t.specialTokens.map((content, i) => ({ content, id: first + i })),
    eosToken: t.specialTokens[0] ?? null,
    source: 'trained BPE',
  });
}
