/**
 * A tokenizer from a parsed tokenizer.json (and tokenizer_config.json): the choice loadTokenizer makes for a file,
 * without the file. No `node:` import: the browser core builds its tokenizer here from fetched text.
 */
import { byteLevelBpeFromJson, checkTokenizerJson, HfTokenizer } from './hf.js';
import type { Tokenizer } from './tokenizer.js';

export interface TokenizerJsonOptions {
  /** Parsed tokenizer_config.json (eos_token, bos_token, clean_up_tokenization_spaces, ...). */
  config?: Record<string, unknown>;
  /** names tokenizer_config.json in errors (default "tokenizer_config.json") */
  configFile?: string;
  /**
   * 'auto' (default): our own byte-level BPE encoder when tokenizer.json is plain GPT-2-style byte-level BPE (same
   * ids, faster), else @huggingface/tokenizers. 'hf': always the library.
   */
  engine?: 'auto' | 'hf';
  /**
   * Builds the GPT-2 tokenizer for the marker `{"type": "gpt2"}`. The Node entry passes the offline one (its
   * vocabulary is a large dependency the core leaves out); without it the marker is an error.
   */
  gpt2?: () => Tokenizer;
}

/** A marker file (`{"type": ...}` with no model) instead of a Hugging Face tokenizer.json. */
export function isMarker(obj: Record<string, unknown>): boolean {
  return obj.type !== undefined && obj.model === undefined;
}

/**
 * - the marker `{"type": "gpt2"}` -> `opts.gpt2()`;
 * - any other object -> Hugging Face format, checked first (our fast BPE when it is plain byte-level BPE).
 * `file` names the tokenizer in errors.
 */
export function tokenizerFromJson(raw: unknown, file: string, opts: TokenizerJsonOptions = {}): Tokenizer {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: must be a JSON object`);
  const obj = raw as Record<string, unknown>;
  if (obj.type === 'gpt2' && obj.model === undefined) {
    if (opts.gpt2) return opts.gpt2();
    throw new Error(
      `${file}: the marker {"type": "gpt2"} needs GPT-2's offline vocabulary, which only the Node entry bundles: ` +
        "give GPT-2's own tokenizer.json, or a Tokenizer, instead",
    );
  }
  if (isMarker(obj)) {
    throw new Error(`${file}: marker type ${JSON.stringify(obj.type)} is not known (known: "gpt2")`);
  }
  const config = opts.config ?? {};
  const json = checkTokenizerJson(obj, file);
  const configFile = opts.configFile ?? 'tokenizer_config.json';
  if ((opts.engine ?? 'auto') === 'auto') {
    const fast = byteLevelBpeFromJson(file, json, { config, configFile });
    if (fast) return fast;
  }
  return new HfTokenizer(file, json, config, configFile);
}
