/**
 * Hugging Face tokenizer.json via @huggingface/tokenizers (pure JS), behind our Tokenizer interface.
 * The file is checked before the library sees it, so a malformed or unsupported file fails with an error naming the
 * file and the field instead of a TypeError deep inside the library. No `node:` import (the browser core uses it):
 * reading the file is tokenizer/index.ts's job.
 */
import { CONFIG_LIMITS } from '../model/config.js';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { ByteLevelBpe, type SpecialToken } from './bpe.js';
import { concatBytes, fromByteLevel, utf8Bytes } from './bytes.js';
import { checkTokenizerRegexes } from './regex-safety.js';
import { checkIds, type Tokenizer } from './tokenizer.js';

/** Model types the library implements. */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'] as const;
const EOS_GUESSES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|eos|>'];
const BOS_GUESSES = ['<|begin_of_text|>', '<s>', '<bos>'];

type Json = Record<string, unknown>;

export interface HfLoadOptions {
  /** contents of tokenizer_config.json (eos_token, bos_token, clean_up_tokenization_spaces, ...) */
  config?: Json;
}

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Checks the parts of a parsed tokenizer.json we and the library rely on; `file` names it in errors. Returns the
 * object with `added_tokens` defaulted to [].
 */
export function checkTokenizerJson(json: unknown, file: string): Json {
  if (!isObj(json)) throw new Error(`${file}: a tokenizer.json must be a JSON object, got ${show(json)}`);
  const model = json.model;
  if (!isObj(model)) throw new Error(`${file}: field "model" must be an object, got ${show(model)}`);
  const type = model.type;
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type)) {
    throw new Error(`${file}: model.type ${show(type)} is not supported (supported: ${MODEL_TYPES.join(', ')})`);
  }
  if (type === 'Unigram' ? !Array.isArray(model.vocab) : !isObj(model.vocab)) {
    throw new Error(`${file}: model.vocab has the wrong form for a ${type} model: ${show(model.vocab)}`);
  }
  if (type === 'BPE' && !Array.isArray(model.merges))
    throw new Error(`${file}: model.merges must be an array, got ${show(model.merges)}`);
  checkVocabIds(file, type, model.vocab);
  if (type === 'BPE') checkMerges(file, model.merges as unknown[]);
  checkComponents(file, json);
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error(`${file}: field "added_tokens" must be an array, got ${show(added)}`);
  added.forEach((t: unknown, i: number) => {
    if (
      !isObj(t) ||
      typeof t.content !== 'string' ||
      !Number.isInteger(t.id) ||
      (t.id as number) < 0 ||
      (t.id as number) >= MAX_ID
    ) {
      throw new Error(
        `${file}: added_tokens[${i}] must have a string "content" and an integer "id" ` +
          `in [0, ${MAX_ID}), got ${show(t)}`,
      );
    }
    // An empty added token matches everywhere: the library splits the text at every character around it.
    if (t.content === '') throw new Error(`${file}: added_tokens[${i}] (id ${t.id as number}) has an empty "content"`);
  });
  return { ...json, added_tokens: added };
}

/** Ids bound what the library allocates (a table up to the largest id): the bound of a model's vocabulary. */
const MAX_ID = CONFIG_LIMITS.vocab;

/**
 * Every id of the model's vocabulary is an integer in [0, MAX_ID); Unigram pieces are [string, score]. Two tokens
 * with one id are left alone, as the Hugging Face library does.
 */
function checkVocabIds(file: string, type: string, vocab: unknown): void {
  if (type === 'Unigram') {
    (vocab as unknown[]).forEach((e, i) => {
      if (
        !Array.isArray(e) ||
        e.length !== 2 ||
        typeof e[0] !== 'string' ||
        typeof e[1] !== 'number' ||
        !Number.isFinite(e[1])
      ) {
        throw new Error(`${file}: model.vocab[${i}] must be [piece, score], got ${show(e)}`);
      }
    });
    return;
  }
  for (const [token, id] of Object.entries(vocab as Json)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_ID) {
      throw new Error(`${file}: model.vocab[${show(token)}] = ${show(id)} is not an integer id in [0, ${MAX_ID})`);
    }
  }
}

/** BPE merges are "a b" strings or ["a", "b"] pairs, as the library reads them. */
function checkMerges(file: string, merges: unknown[]): void {
  merges.forEach((m, i) => {
    const ok =
      typeof m === 'string'
        ? m.split(' ').length === 2
        : Array.isArray(m) && m.length === 2 && m.every((p) => typeof p === 'string');
    if (!ok) throw new Error(`${file}: model.merges[${i}] must be "a b" or ["a", "b"], got ${show(m)}`);
  });
}

/** Lists of sub-components in a Sequence (normalizers, pre-tokenizers, decoders, post-processors). */
const SEQUENCE_KEYS = ['normalizers', 'pretokenizers', 'decoders', 'processors'];
const BOOLEAN_KEYS = [
  'add_prefix_space',
  'trim_offsets',
  'use_regex',
  'invert',
  'lowercase',
  'clean_text',
  'handle_chinese_chars',
  'cleanup',
];
const STRING_KEYS = ['content', 'prepend', 'replacement', 'behavior', 'prefix', 'suffix', 'prepend_scheme'];

/**
 * The pipeline components (normalizer, pre_tokenizer, post_processor, decoder) have the form the library expects:
 * null or an object with a string "type"; Sequence lists are arrays of such objects; a pattern is {String} or
 * {Regex}; the common flags and strings have their types. The library itself would fail on these with engine
 * errors ("x.map is not a function") that name no field.
 */
function checkComponents(file: string, json: Json): void {
  const todo: Array<[unknown, string]> = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'].map((k) => [
    json[k],
    k,
  ]);
  while (todo.length > 0) {
    const [node, where] = todo.pop()!;
    if (node === null || node === undefined) {
      if (!where.includes('[')) continue; // a missing top-level component is allowed, a null list entry is not
    }
    if (!isObj(node) || typeof node.type !== 'string') {
      throw new Error(`${file}: ${where} must be an object with a string "type", got ${show(node)}`);
    }
    for (const key of SEQUENCE_KEYS) {
      const list = node[key];
      if (list === undefined) continue;
      if (!Array.isArray(list)) throw new Error(`${file}: ${where}.${key} must be an array, got ${show(list)}`);
      list.forEach((v, i) => todo.push([v, `${where}.${key}[${i}]`]));
    }
    const pattern = node.pattern;
    if (
      pattern !== undefined &&
      !(isObj(pattern) && (typeof pattern.String === 'string' || typeof pattern.Regex === 'string'))
    ) {
      throw new Error(`${file}: ${where}.pattern must be {"String": ...} or {"Regex": ...}, got ${show(pattern)}`);
    }
    for (const key of BOOLEAN_KEYS) {
      if (node[key] !== undefined && typeof node[key] !== 'boolean')
        throw new Error(`${file}: ${where}.${key} must be true or false, got ${show(node[key])}`);
    }
    for (const key of STRING_KEYS) {
      if (node[key] !== undefined && typeof node[key] !== 'string')
        throw new Error(`${file}: ${where}.${key} must be a string, got ${show(node[key])}`);
    }
  }
}

function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  return null;
}

function addedTokens(json: Json): SpecialToken[] {
  return (json.added_tokens as Json[]).map((t) => ({ content: t.content as string, id: t.id as number }));
}

/** EOS/BOS: tokenizer_config.json first, else the usual names among the added tokens. */
function specialIds(
  json: Json,
  config: Json,
  idOf: (s: string) => number | undefined,
): { eos: number | null; bos: number | null } {
  const added = new Set(addedTokens(json).map((t) => t.content));
  const pick = (key: string, guesses: string[]): number | null => {
    const name = tokenName(config[key]);
    if (name !== null) return idOf(name) ?? null;
    for (const g of guesses) if (added.has(g)) return idOf(g) ?? null;
    return null;
  };
  return { eos: pick('eos_token', EOS_GUESSES), bos: pick('bos_token', BOS_GUESSES) };
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;
  private readonly lib: HfLibTokenizer;
  private readonly cleanUp: boolean;
  private readonly byteLevel: boolean;
  private readonly addedById = new Map<number, string>();

  constructor(
    readonly file: string,
    json: Json,
    config: Json = {},
  ) {
    checkTokenizerRegexes(file, json); // before the library compiles them: a pattern could hang encode()
    try {
      this.lib = new HfLibTokenizer(json, config);
    } catch (err) {
      throw new Error(`${file}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
    }
    let max = -1;
    for (const id of this.lib.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    if (this.vocabSize === 0) throw new Error(`${file}: the vocabulary is empty`);
    const ids = specialIds(json, config, (s) => this.lib.token_to_id(s));
    this.eosTokenId = ids.eos;
    this.bosTokenId = ids.bos;
    // The library cleans up " ." -> "." by default, which breaks exact round trips; only do it when asked to.
    this.cleanUp = config.clean_up_tokenization_spaces === true;
    const dec = json.decoder;
    this.byteLevel = isObj(dec) && dec.type === 'ByteLevel' && (json.model as Json).type === 'BPE';
    for (const t of addedTokens(json)) this.addedById.set(t.id, t.content);
    if (this.byteLevel) {
      this.decodeBytes = (ids: number[]): Uint8Array => {
        checkIds(this.file, ids, this.vocabSize);
        return concatBytes(ids.map((id) => this.bytesOf(id)));
      };
    }
  }

  /** Plain text to ids; no BOS/EOS is added (callers prepend bosTokenId when their model expects it). */
  encode(text: string): number[] {
    return this.lib.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    if (ids.length === 0) return '';
    checkIds(this.file, ids, this.vocabSize);
    return this.lib.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUp });
  }

  /** Exact bytes of the ids: present only for ByteLevel decoders, so the stream decoder can split at characters. */
  readonly decodeBytes?: (ids: number[]) => Uint8Array;

  private bytesOf(id: number): Uint8Array {
    const added = this.addedById.get(id);
    if (added !== undefined) return utf8Bytes(added);
    const tok = this.lib.id_to_token(id);
    return tok === undefined ? new Uint8Array(0) : (fromByteLevel(tok) ?? utf8Bytes(tok));
  }
}

/**
 * For a plain GPT-2-style file (BPE model, ByteLevel pre-tokenizer with the GPT-2 regex and no prefix space, ByteLevel
 * decoder, no normalizer, no dropout) returns our own faster encoder, which gives the same ids; otherwise null.
 */
export function byteLevelBpeFromJson(file: string, json: Json, opts: HfLoadOptions = {}): ByteLevelBpe | null {
  const m = json.model as Json;
  const pre = json.pre_tokenizer;
  const dec = json.decoder;
  const plain =
    m.type === 'BPE' &&
    json.normalizer == null &&
    isObj(pre) &&
    pre.type === 'ByteLevel' &&
    pre.add_prefix_space !== true &&
    pre.use_regex !== false &&
    isObj(dec) &&
    dec.type === 'ByteLevel' &&
    m.dropout == null &&
    m.ignore_merges !== true &&
    m.byte_fallback !== true &&
    !m.continuing_subword_prefix &&
    !m.end_of_word_suffix;
  if (!plain) return null;
  const vocab = new Map<string, number>(Object.entries(m.vocab as Record<string, number>));
  const merges = (m.merges as unknown[]).map((x, i): [string, string] => {
    const pair = typeof x === 'string' ? x.split(' ') : x;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new Error(`${file}: model.merges[${i}] must be "a b" or ["a", "b"], got ${show(x)}`);
    }
    return [pair[0], pair[1]];
  });
  const specials = addedTokens(json);
  const config = opts.config ?? {};
  const idOf = (s: string) => specials.find((t) => t.content === s)?.id ?? vocab.get(s);
  const ids = specialIds(json, config, idOf);
  const nameOf = (id: number | null) =>
    id === null
      ? null
      : (specials.find((t) => t.id === id)?.content ?? [...vocab].find(([, v]) => v === id)?.[0] ?? null);
  return new ByteLevelBpe({
    vocab,
    merges,
    specialTokens: specials,
    eosToken: nameOf(ids.eos),
    bosToken: nameOf(ids.bos),
    source: file,
  });
}
