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
import { libraryConfig, parseTokenizerConfig, type TokenizerConfig } from './config.js';
import { checkTokenizerRegexes } from './regex-safety.js';
import { checkIds, overlapsSpan, type DecodeOptions, type EncodeOptions, type Tokenizer } from './tokenizer.js';

/** Model types the library implements. */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'] as const;
const EOS_GUESSES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|eos|>'];
const BOS_GUESSES = ['<|begin_of_text|>', '<s>', '<bos>'];

type Json = Record<string, unknown>;

export interface HfLoadOptions {
  /** contents of tokenizer_config.json (eos_token, bos_token, clean_up_tokenization_spaces, ...) */
  config?: Json;
  /** names tokenizer_config.json in errors (default "tokenizer_config.json") */
  configFile?: string;
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
 * object with `added_tokens` defaulted to [], absent pipeline parts as null, and an absent `model.type` inferred as
 * Hugging Face's reader does (GPT-2's own file has none).
 */
export function checkTokenizerJson(json: unknown, file: string): Json {
  if (!isObj(json)) throw new Error(`${file}: a tokenizer.json must be a JSON object, got ${show(json)}`);
  const given = json.model;
  if (!isObj(given)) throw new Error(`${file}: field "model" must be an object, got ${show(given)}`);
  const inferred = given.type === undefined;
  const model: Json = inferred ? { ...given, type: inferModelType(file, given) } : given;
  const type = model.type;
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type)) {
    const what = inferred ? `(absent, read as ${show(type)} as Hugging Face does)` : show(type);
    throw new Error(`${file}: model.type ${what} is not supported (supported: ${MODEL_TYPES.join(', ')})`);
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
  // the library wants every pipeline field present; Hugging Face's own reader takes a missing one as null
  const parts = Object.fromEntries(PIPELINE.map((k) => [k, json[k] ?? null]));
  return { ...json, ...parts, model, added_tokens: added };
}

const PIPELINE = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'];

/**
 * The model type of a tokenizer.json whose "model" has no "type" (GPT-2's own file, and others written before the
 * field existed), decided as Hugging Face's reader does: it tries BPE, WordPiece, WordLevel, then Unigram, and takes
 * the first whose fields are all there (BPE: vocab and merges; WordPiece: unk_token, continuing_subword_prefix,
 * max_input_chars_per_word and vocab; WordLevel: a vocab map; Unigram: a vocab list of [piece, score]).
 */
export function inferModelType(file: string, model: Json): string {
  const has = (k: string) => model[k] !== undefined;
  if (isObj(model.vocab)) {
    if (has('merges')) return 'BPE';
    if (['unk_token', 'continuing_subword_prefix', 'max_input_chars_per_word'].every(has)) return 'WordPiece';
    return 'WordLevel';
  }
  if (Array.isArray(model.vocab)) return 'Unigram';
  throw new Error(
    `${file}: model has no "type" and no "vocab" to infer it from (BPE: vocab + merges; WordPiece: vocab + ` +
      `continuing_subword_prefix + max_input_chars_per_word + unk_token; Unigram: a vocab list)`,
  );
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

function addedTokens(json: Json): SpecialToken[] {
  return (json.added_tokens as Json[]).map((t) => ({
    content: t.content as string,
    id: t.id as number,
    special: t.special === true,
  }));
}

/** EOS/BOS: tokenizer_config.json first, else the usual names among the added tokens. */
function specialIds(
  json: Json,
  cfg: TokenizerConfig,
  idOf: (s: string) => number | undefined,
): { eos: number | null; bos: number | null } {
  const added = new Set(addedTokens(json).map((t) => t.content));
  const pick = (name: string | null, guesses: string[]): number | null => {
    if (name !== null) return idOf(name) ?? null;
    for (const g of guesses) if (added.has(g)) return idOf(g) ?? null;
    return null;
  };
  return { eos: pick(cfg.eosToken, EOS_GUESSES), bos: pick(cfg.bosToken, BOS_GUESSES) };
}

/**
 * Ids that decoding with skipSpecialTokens drops: the added tokens marked special (as Hugging Face's tokenizers
 * does) and tokenizer_config.json's additional_special_tokens.
 */
function specialTokenIds(json: Json, config: Json, idOf: (s: string) => number | undefined): Set<number> {
  const ids = new Set(
    addedTokens(json)
      .filter((t) => t.special)
      .map((t) => t.id),
  );
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra)) {
    for (const t of extra) {
      const name = typeof t === 'string' ? t : isObj(t) && typeof t.content === 'string' ? t.content : null;
      const id = name === null ? undefined : idOf(name);
      if (id !== undefined) ids.add(id);
    }
  }
  return ids;
}

/** BOS/EOS as tokenizer_config.json asks: a tokenizer whose config names a token not in its vocabulary fails. */
function checkAddedSpecials(configFile: string, cfg: TokenizerConfig, ids: { eos: number | null; bos: number | null }) {
  if (cfg.addBosToken && ids.bos === null)
    throw new Error(`${configFile}: add_bos_token is true but bos_token ${show(cfg.bosToken)} is not a token`);
  if (cfg.addEosToken && ids.eos === null)
    throw new Error(`${configFile}: add_eos_token is true but eos_token ${show(cfg.eosToken)} is not a token`);
}

/** ids with the BOS/EOS tokenizer_config.json asks for (as transformers' post-processor for those flags). */
function withConfigSpecials(ids: number[], cfg: TokenizerConfig, bos: number | null, eos: number | null): number[] {
  const out = cfg.addBosToken && bos !== null ? [bos, ...ids] : ids;
  if (cfg.addEosToken && eos !== null) out.push(eos);
  return out;
}

/**
 * The library's ByteFallback decoder turns a run of <0xNN> tokens that is not valid UTF-8 into whatever TextDecoder
 * makes of it; Hugging Face's tokenizers gives one U+FFFD per byte of such a run. Ours follows the reference.
 */
function fixByteFallback(node: unknown): void {
  // the library's components are callable objects (functions) that keep their JSON in .config
  if (typeof node !== 'function' && !isObj(node)) return;
  const part = node as { config?: { type?: unknown }; decoders?: unknown; text_decoder?: TextDecoder };
  if (part.config?.type === 'ByteFallback' && part.text_decoder !== undefined) {
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    part.text_decoder = {
      decode(bytes?: AllowSharedBufferSource): string {
        try {
          return strict.decode(bytes);
        } catch {
          return '\uFFFD'.repeat((bytes as Uint8Array | undefined)?.length ?? 0);
        }
      },
    } as TextDecoder;
    return;
  }
  if (Array.isArray(part.decoders)) for (const d of part.decoders) fixByteFallback(d);
}

/** Marks the aliases of control tokens in encodeWithPlainSpans (a private-use character, never in real text). */
const ALIAS_MARK = '\u{10FFFD}';
const alias = (id: number): string => `${ALIAS_MARK}${id}${ALIAS_MARK}`;

/** [offset, name] of the names in `text`, leftmost first, the longest at each offset, not overlapping. */
function leftmostLongest(text: string, names: ReadonlyMap<string, number>): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  if (names.size === 0) return out;
  const firsts = new Set([...names.keys()].map((n) => n[0]));
  for (let i = 0; i < text.length;) {
    let best: string | null = null;
    if (firsts.has(text[i]!))
      for (const n of names.keys()) if (text.startsWith(n, i) && (best === null || n.length > best.length)) best = n;
    if (best === null) i++;
    else {
      out.push([i, best]);
      i += best.length;
    }
  }
  return out;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: string | null;
  /** tokenizer_config.json's settings (BOS/EOS insertion, token names, chat template). */
  readonly config: TokenizerConfig;
  private readonly lib: HfLibTokenizer;
  private readonly byteLevel: boolean;
  private readonly addedById = new Map<number, string>();
  /** tokenizer.json and the library's config, kept to build `aliasLib` when first needed */
  private readonly libInputs: { json: Json; config: Json };
  /** the special tokens (BOS/EOS included) that plain spans turn into text: content -> id */
  private readonly controlTokens = new Map<string, number>();
  /** A second library tokenizer whose control tokens are spelled `alias(id)` instead (see encodeWithPlainSpans). */
  private aliasLib: HfLibTokenizer | null = null;

  constructor(
    readonly file: string,
    json: Json,
    config: Json = {},
    configFile = 'tokenizer_config.json',
  ) {
    checkTokenizerRegexes(file, json); // before the library compiles them: a pattern could hang encode()
    const cfg = (this.config = parseTokenizerConfig(config, configFile));
    this.libInputs = { json, config: libraryConfig(config, cfg) };
    try {
      this.lib = new HfLibTokenizer(json, this.libInputs.config);
    } catch (err) {
      throw new Error(`${file}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
    }
    fixByteFallback(this.lib.decoder);
    let max = -1;
    for (const id of this.lib.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    if (this.vocabSize === 0) throw new Error(`${file}: the vocabulary is empty`);
    const idOf = (s: string) => this.lib.token_to_id(s);
    const ids = specialIds(json, cfg, idOf);
    checkAddedSpecials(configFile, cfg, ids);
    this.eosTokenId = ids.eos;
    this.bosTokenId = ids.bos;
    this.specialTokenIds = specialTokenIds(json, config, idOf);
    this.chatTemplate = cfg.chatTemplate;
    const dec = json.decoder;
    this.byteLevel = isObj(dec) && dec.type === 'ByteLevel' && (json.model as Json).type === 'BPE';
    for (const t of addedTokens(json)) {
      this.addedById.set(t.id, t.content);
      if (this.specialTokenIds.has(t.id) || t.id === ids.bos || t.id === ids.eos)
        this.controlTokens.set(t.content, t.id);
    }
    if (this.byteLevel) {
      this.decodeBytes = (ids: number[]): Uint8Array => {
        checkIds(this.file, ids, this.vocabSize);
        return concatBytes(ids.map((id) => this.bytesOf(id)));
      };
    }
  }

  /**
   * Text to ids. With addSpecialTokens, the tokens the model expects around a text: BOS/EOS as tokenizer_config.json
   * says (add_bos_token / add_eos_token, or its class's default), else the tokenizer.json post-processor's.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (opts.plainSpans && opts.plainSpans.length > 0) return this.encodeWithPlainSpans(text, opts);
    return this.encodeWith(this.lib, text, opts);
  }

  private encodeWith(lib: HfLibTokenizer, text: string, opts: EncodeOptions): number[] {
    if (opts.addSpecialTokens !== true) return lib.encode(text, { add_special_tokens: false }).ids;
    if (this.config.addBosToken === null) return lib.encode(text, { add_special_tokens: true }).ids;
    const ids = lib.encode(text, { add_special_tokens: false }).ids;
    return withConfigSpecials(ids, this.config, this.bosTokenId, this.eosTokenId);
  }

  /**
   * The library has no split_special_tokens, so: find the control tokens' text (leftmost longest, as the library's
   * splitter), respell those outside the plain spans as aliases, and encode with a copy of the library tokenizer
   * whose control tokens are those aliases. The library then does everything else itself (lstrip/rstrip, sections,
   * normalizer, post-processor); the control tokens' text inside the spans is no added token there, so it is text.
   */
  private encodeWithPlainSpans(text: string, opts: EncodeOptions): number[] {
    const matches = leftmostLongest(text, this.controlTokens);
    if (!matches.some(([at, name]) => overlapsSpan(opts.plainSpans, at, at + name.length)))
      return this.encodeWith(this.lib, text, opts);
    if (text.includes(ALIAS_MARK))
      throw new Error(`${this.file}: the text holds U+10FFFD, which the tokenizer reserves to mark special tokens`);
    let out = '',
      from = 0;
    for (const [at, name] of matches) {
      if (overlapsSpan(opts.plainSpans, at, at + name.length)) continue;
      out += text.slice(from, at) + alias(this.controlTokens.get(name) as number);
      from = at + name.length;
    }
    out += text.slice(from);
    if (!this.aliasLib) {
      const { json, config } = this.libInputs;
      const added = (json.added_tokens as Json[]).map((t) =>
        this.controlTokens.get(t.content as string) === t.id ? { ...t, content: alias(t.id as number) } : t,
      );
      this.aliasLib = new HfLibTokenizer({ ...json, added_tokens: added }, config);
    }
    return this.encodeWith(this.aliasLib, out, opts);
  }

  /** Ids to text; skipSpecialTokens leaves out the special tokens (<s>, </s>, ...), as generation output does. */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    checkIds(this.file, ids, this.vocabSize);
    return this.lib.decode(ids, {
      skip_special_tokens: opts.skipSpecialTokens === true,
      // The library cleans up " ." -> "." by default, which breaks exact round trips; only do it when asked to.
      clean_up_tokenization_spaces: this.config.cleanUpTokenizationSpaces,
    });
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
 * decoder, a post-processor that adds nothing, no normalizer, no dropout) returns our own faster encoder, which gives
 * the same ids; otherwise null.
 */
export function byteLevelBpeFromJson(file: string, json: Json, opts: HfLoadOptions = {}): ByteLevelBpe | null {
  const m = json.model as Json;
  const pre = json.pre_tokenizer;
  const dec = json.decoder;
  const post = json.post_processor;
  const plain =
    m.type === 'BPE' &&
    json.normalizer == null &&
    isObj(pre) &&
    pre.type === 'ByteLevel' &&
    pre.add_prefix_space !== true &&
    pre.use_regex !== false &&
    isObj(dec) &&
    dec.type === 'ByteLevel' &&
    (post == null || (isObj(post) && post.type === 'ByteLevel')) &&
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
  const configFile = opts.configFile ?? 'tokenizer_config.json';
  const cfg = parseTokenizerConfig(config, configFile);
  const idOf = (s: string) => specials.find((t) => t.content === s)?.id ?? vocab.get(s);
  const ids = specialIds(json, cfg, idOf);
  checkAddedSpecials(configFile, cfg, ids);
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
    addBosToken: cfg.addBosToken === true,
    addEosToken: cfg.addEosToken === true,
    skipIds: specialTokenIds(json, config, idOf),
    chatTemplate: cfg.chatTemplate,
    source: file,
  });
}
