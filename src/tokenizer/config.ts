/**
 * tokenizer_config.json as Hugging Face repositories store it: BOS/EOS insertion (`add_bos_token`, `add_eos_token`,
 * with transformers' per-class defaults), the special tokens as strings or AddedToken objects, and `chat_template`
 * (kept for a server; never rendered here). No `node:` import: the browser core uses it.
 */

type Json = Record<string, unknown>;

export interface TokenizerConfig {
  /** true/false: add BOS/EOS around an encoded text; null: not said (the tokenizer.json post-processor decides). */
  addBosToken: boolean | null;
  addEosToken: boolean | null;
  bosToken: string | null;
  eosToken: string | null;
  unkToken: string | null;
  padToken: string | null;
  /** the chat template (Jinja source): `chat_template` (a string, or the "default" of a named list), else null */
  chatTemplate: string | null;
  /** transformers' clean-up of " ." -> "." when decoding; off unless the file asks for it */
  cleanUpTokenizationSpaces: boolean;
  tokenizerClass: string | null;
}

/**
 * Tokenizer classes whose transformers implementation adds BOS when tokenizer_config.json does not say
 * (`add_bos_token=True` in their constructors). Every other class leaves it to the tokenizer.json post-processor.
 */
const ADDS_BOS_BY_DEFAULT = new Set([
  'LlamaTokenizer',
  'LlamaTokenizerFast',
  'CodeLlamaTokenizer',
  'CodeLlamaTokenizerFast',
  'GemmaTokenizer',
  'GemmaTokenizerFast',
]);

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A special token given as a string or an AddedToken object ({"content": ...}); null/absent: none. */
function tokenField(raw: Json, key: string, file: string): string | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  throw new Error(`${file}: ${key} must be a token string or an AddedToken object with a "content", got ${show(v)}`);
}

function boolField(raw: Json, key: string, file: string): boolean | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') throw new Error(`${file}: ${key} must be true or false, got ${show(v)}`);
  return v;
}

/** `chat_template` is a string, or a list of {name, template} (the one named "default" is the chat template). */
function chatTemplateField(raw: Json, file: string): string | null {
  const v = raw.chat_template;
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    v.forEach((e, i) => {
      if (!isObj(e) || typeof e.name !== 'string' || typeof e.template !== 'string') {
        throw new Error(`${file}: chat_template[${i}] must be {"name": string, "template": string}, got ${show(e)}`);
      }
    });
    const named = v as Array<{ name: string; template: string }>;
    return named.find((e) => e.name === 'default')?.template ?? null;
  }
  throw new Error(`${file}: chat_template must be a string or a list of {name, template}, got ${show(v)}`);
}

/** Reads a parsed tokenizer_config.json; `file` names it in errors. Unknown keys are left alone. */
export function parseTokenizerConfig(raw: unknown, file: string): TokenizerConfig {
  if (!isObj(raw)) throw new Error(`${file}: must be a JSON object`);
  const cls = raw.tokenizer_class;
  if (cls !== undefined && cls !== null && typeof cls !== 'string')
    throw new Error(`${file}: tokenizer_class must be a string, got ${show(cls)}`);
  const tokenizerClass = typeof cls === 'string' ? cls : null;
  let addBosToken = boolField(raw, 'add_bos_token', file);
  if (addBosToken === null && tokenizerClass !== null && ADDS_BOS_BY_DEFAULT.has(tokenizerClass)) addBosToken = true;
  let addEosToken = boolField(raw, 'add_eos_token', file);
  // a class that decides BOS decides EOS too (LlamaTokenizerFast rebuilds the post-processor from both flags)
  if (addEosToken === null && addBosToken !== null) addEosToken = false;
  if (addBosToken === null && addEosToken !== null) addBosToken = false;
  const cfg: TokenizerConfig = {
    addBosToken,
    addEosToken,
    bosToken: tokenField(raw, 'bos_token', file),
    eosToken: tokenField(raw, 'eos_token', file),
    unkToken: tokenField(raw, 'unk_token', file),
    padToken: tokenField(raw, 'pad_token', file),
    chatTemplate: chatTemplateField(raw, file),
    cleanUpTokenizationSpaces: boolField(raw, 'clean_up_tokenization_spaces', file) ?? false,
    tokenizerClass,
  };
  if (cfg.addBosToken && cfg.bosToken === null)
    throw new Error(`${file}: add_bos_token is true but there is no bos_token to add`);
  if (cfg.addEosToken && cfg.eosToken === null)
    throw new Error(`${file}: add_eos_token is true but there is no eos_token to add`);
  return cfg;
}

/**
 * The config as @huggingface/tokenizers reads it: token fields as plain strings (it compares them with token
 * strings), everything else unchanged.
 */
export function libraryConfig(raw: Json, cfg: TokenizerConfig): Json {
  const out: Json = { ...raw };
  const tokens: Array<[string, string | null]> = [
    ['bos_token', cfg.bosToken],
    ['eos_token', cfg.eosToken],
    ['unk_token', cfg.unkToken],
    ['pad_token', cfg.padToken],
  ];
  for (const [k, v] of tokens) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}
