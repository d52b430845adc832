/** The tokenizer interface every implementation provides, and a streaming decoder on top of it. */

export interface EncodeOptions {
  /**
   * Add the special tokens the model expects around a text, as Hugging Face's encode(add_special_tokens=True):
   * BOS/EOS as tokenizer_config.json says (add_bos_token / add_eos_token, or its tokenizer class's default), else
   * what the tokenizer.json post-processor adds. Default false: the text's own tokens only.
   */
  addSpecialTokens?: boolean;
  /**
   * Spans [start, end) of the text (UTF-16 offsets) that are plain text: a special token's text that overlaps one is
   * tokenized as ordinary characters (as Hugging Face's split_special_tokens=True does) instead of becoming the
   * special token; outside them special tokens are recognised as usual. Added tokens that are not special (extra
   * vocabulary) are recognised everywhere. A chat template's rendering passes its messages' content here, so that
   * "<|endoftext|>" typed by a user stays text. Default: none.
   */
  plainSpans?: readonly PlainSpan[];
}

/** [start, end) in UTF-16 code units. */
export type PlainSpan = readonly [number, number];

/** True when [start, end) overlaps one of `spans`. */
export function overlapsSpan(spans: readonly PlainSpan[] | undefined, start: number, end: number): boolean {
  return spans !== undefined && spans.some(([a, b]) => start < b && a < end);
}

export interface DecodeOptions {
  /** Leave out special tokens (<s>, </s>, <|endoftext|>, ...), as generation output does. Default false. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[], opts?: DecodeOptions): string;
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;
  /** Ids that skipSpecialTokens leaves out (absent: none). */
  readonly specialTokenIds?: ReadonlySet<number>;
  /** tokenizer_config.json's chat template (Jinja source), kept for a server; null or absent: none. */
  readonly chatTemplate?: string | null;
  /**
   * Byte-level tokenizers expose the raw bytes of a token sequence; the stream decoder then splits output exactly at
   * UTF-8 character boundaries. Others leave it out and the stream decoder works from decoded text.
   */
  decodeBytes?(ids: number[]): Uint8Array;
}

export interface StreamDecoder {
  /** Adds token ids; returns the text they complete (possibly ""), never half a character. */
  push(...ids: number[]): string;
  /** Returns whatever is still held back (an incomplete character decodes as U+FFFD) and resets. */
  flush(): string;
}

/** Checks that every id is an integer in [0, vocabSize); `who` names the tokenizer in the error. */
export function checkIds(who: string, ids: readonly number[], vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(`${who}: token id ${id} at index ${i} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
}

/**
 * Streaming detokenization for generation. With decodeBytes it feeds bytes through a streaming TextDecoder.
 * Otherwise it keeps a window of recent ids (prefix/read offsets, as text-generation-inference does): the new text is
 * decode(window) minus decode(prefix), emitted only when it does not end in U+FFFD. Decoding a window, not single
 * ids, keeps tokenizers whose decode depends on the neighbour (SentencePiece's leading space) correct.
 * Special tokens are left out (skipSpecialTokens, default true), as Hugging Face's generation output does.
 */
export function createStreamDecoder(tok: Tokenizer, opts: DecodeOptions = {}): StreamDecoder {
  const skip = opts.skipSpecialTokens ?? true;
  const special = skip ? tok.specialTokenIds : undefined;
  const keep = special && special.size > 0 ? (ids: number[]) => ids.filter((id) => !special.has(id)) : null;
  const decodeBytes = tok.decodeBytes?.bind(tok);
  if (decodeBytes) {
    let td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    return {
      push(...more: number[]): string {
        const ids = keep ? keep(more) : more;
        return ids.length === 0 ? '' : td.decode(decodeBytes(ids), { stream: true });
      },
      flush(): string {
        const rest = td.decode();
        td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
        return rest;
      },
    };
  }
  const dec = (x: number[]) => tok.decode(x, skip ? { skipSpecialTokens: true } : {});
  let ids: number[] = [];
  let prefixOffset = 0;
  let readOffset = 0;
  return {
    push(...more: number[]): string {
      ids.push(...more);
      const prefix = readOffset > prefixOffset ? dec(ids.slice(prefixOffset, readOffset)) : '';
      const text = dec(ids.slice(prefixOffset));
      if (text.length <= prefix.length || text.endsWith('\uFFFD')) return '';
      prefixOffset = readOffset;
      readOffset = ids.length;
      if (prefixOffset > 64) {
        // keep the window short: the ids before prefixOffset are never decoded again
        ids = ids.slice(prefixOffset);
        readOffset -= prefixOffset;
        prefixOffset = 0;
      }
      return text.slice(prefix.length);
    },
    flush(): string {
      const prefix = readOffset > prefixOffset ? dec(ids.slice(prefixOffset, readOffset)) : '';
      const text = ids.length > prefixOffset ? dec(ids.slice(prefixOffset)) : '';
      ids = [];
      prefixOffset = readOffset = 0;
      return text.slice(prefix.length);
    },
  };
}
