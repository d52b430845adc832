/**
 * GPT-2's BPE (r50k_base, 50257 tokens, `<|endoftext|>` = 50256), fully offline. Encoding uses gpt-tokenizer;
 * decoding uses its rank table directly because gpt-tokenizer's decode() shares one streaming TextDecoder between
 * calls, so an incomplete character at the end of one call leaks into the next.
 */
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import r50kRanks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { concatBytes, utf8Bytes } from './bytes.js';
import { checkIds, type DecodeOptions, type EncodeOptions, type Tokenizer } from './tokenizer.js';

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;
export const GPT2_VOCAB_SIZE = 50257;

export class Gpt2Tokenizer implements Tokenizer {
  readonly vocabSize = GPT2_VOCAB_SIZE;
  readonly eosTokenId = GPT2_EOS_ID;
  /** GPT-2 uses <|endoftext|> for BOS too, but never prepends it; callers that want it add it explicitly. */
  readonly bosTokenId = GPT2_EOS_ID;
  readonly specialTokenIds: ReadonlySet<number> = new Set([GPT2_EOS_ID]);
  readonly chatTemplate = null;
  private bytes: Uint8Array[] | null = null;

  /**
   * `<|endoftext|>` in the text becomes id 50256, as Hugging Face's GPT-2 tokenizer does. GPT-2 adds no special
   * tokens around a text, so addSpecialTokens changes nothing.
   */
  encode(text: string, _opts?: EncodeOptions): number[] {
    const out: number[] = [];
    const parts = text.split(GPT2_EOS);
    parts.forEach((part, i) => {
      if (i > 0) out.push(GPT2_EOS_ID);
      if (part.length > 0) for (const id of r50kEncode(part, { disallowedSpecial: new Set() })) out.push(id);
    });
    return out;
  }

  private table(): Uint8Array[] {
    if (this.bytes) return this.bytes;
    if (r50kRanks.length !== GPT2_EOS_ID) {
      throw new Error(
        `gpt2 tokenizer: gpt-tokenizer's r50k table has ${r50kRanks.length} entries, expected ${GPT2_EOS_ID}`,
      );
    }
    const t = r50kRanks.map((r) => (typeof r === 'string' ? utf8Bytes(r) : Uint8Array.from(r)));
    t.push(utf8Bytes(GPT2_EOS));
    this.bytes = t;
    return t;
  }

  decodeBytes(ids: number[]): Uint8Array {
    checkIds('gpt2 tokenizer', ids, this.vocabSize);
    const t = this.table();
    return concatBytes(ids.map((id) => t[id]));
  }

  /** skipSpecialTokens leaves out <|endoftext|>. */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    checkIds('gpt2 tokenizer', ids, this.vocabSize);
    const kept = opts.skipSpecialTokens === true ? ids.filter((id) => id !== GPT2_EOS_ID) : ids;
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(kept));
  }
}

let shared: Gpt2Tokenizer | null = null;

/** The GPT-2 tokenizer (stateless, so one instance serves everyone). */
export function gpt2Tokenizer(): Gpt2Tokenizer {
  shared ??= new Gpt2Tokenizer();
  return shared;
}
