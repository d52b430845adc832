/**
 * GPT-2's BPE (r50k_base, 50257 tokens, `<|endoftext|>` = 50256), fully offline: the vocabulary and merges ship as
 * <package root>/models/gpt2-tokenizer/tokenizer.json (Hugging Face's layout, made from tiktoken's rank table by
 * scripts/make-gpt2-tokenizer.mjs; the test compares its ids with gpt-tokenizer's on Brown and nlp-corpus) and are
 * read by our byte-level BPE when first used. Node only (it reads a file).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../node/package-root.js';
import { ByteLevelBpe } from './bpe.js';
import type { DecodeOptions, EncodeOptions, Tokenizer } from './tokenizer.js';

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;
export const GPT2_VOCAB_SIZE = 50257;

/** Where GPT-2's tokenizer.json ships. */
export function gpt2TokenizerFile(): string {
  return join(packageRoot(), 'models', 'gpt2-tokenizer', 'tokenizer.json');
}

function loadGpt2Bpe(): ByteLevelBpe {
  const file = gpt2TokenizerFile();
  const json = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number>; merges: string[] } };
  const vocab = new Map(Object.entries(json.model.vocab));
  if (vocab.size !== GPT2_VOCAB_SIZE || vocab.get(GPT2_EOS) !== GPT2_EOS_ID)
    throw new Error(`${file}: not GPT-2's vocabulary (${vocab.size} tokens, ${GPT2_EOS} = ${vocab.get(GPT2_EOS)})`);
  return new ByteLevelBpe({
    vocab,
    merges: json.model.merges.map((m) => m.split(' ') as [string, string]),
    specialTokens: [{ content: GPT2_EOS, id: GPT2_EOS_ID }],
    eosToken: GPT2_EOS,
    bosToken: GPT2_EOS,
    source: 'gpt2 tokenizer',
  });
}

export class Gpt2Tokenizer implements Tokenizer {
  readonly vocabSize = GPT2_VOCAB_SIZE;
  readonly eosTokenId = GPT2_EOS_ID;
  /** GPT-2 uses <|endoftext|> for BOS too, but never prepends it; callers that want it add it explicitly. */
  readonly bosTokenId = GPT2_EOS_ID;
  readonly specialTokenIds: ReadonlySet<number> = new Set([GPT2_EOS_ID]);
  readonly chatTemplate = null;
  private loaded: ByteLevelBpe | null = null;

  private get bpe(): ByteLevelBpe {
    this.loaded ??= loadGpt2Bpe();
    return this.loaded;
  }

  /**
   * `<|endoftext|>` in the text becomes id 50256, as Hugging Face's GPT-2 tokenizer does. GPT-2 adds no special
   * tokens around a text, so addSpecialTokens changes nothing; it stays text where it overlaps opts.plainSpans.
   */
  encode(text: string, opts?: EncodeOptions): number[] {
    return this.bpe.encode(text, { plainSpans: opts?.plainSpans });
  }

  decodeBytes(ids: number[]): Uint8Array {
    return this.bpe.decodeBytes(ids);
  }

  /** skipSpecialTokens leaves out <|endoftext|>. */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    return this.bpe.decode(ids, opts);
  }
}

let shared: Gpt2Tokenizer | null = null;

/** The GPT-2 tokenizer (stateless, so one instance serves everyone). */
export function gpt2Tokenizer(): Gpt2Tokenizer {
  shared ??= new Gpt2Tokenizer();
  return shared;
}
