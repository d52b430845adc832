/**
 * generation_config.json as Hugging Face repositories store it, read into defaults shaped like GenerationOptions.
 * Nothing here applies them: the caller merges them under the options it is given. No `node:` import.
 */

/**
 * The sampling defaults of a generation_config.json, under GenerationOptions' names (only those the file sets).
 * Spelled out here rather than picked from generate/options.ts: the tokenizer layer imports nothing above it.
 */
export interface GenerationDefaults {
  max_new_tokens?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  repetition_penalty?: number;
  /** always a list (the file may give one id or a list) */
  eos_token_id?: number[];
}

export interface GenerationConfig {
  /** defaults for GenerationOptions; a caller's own options go over them */
  defaults: GenerationDefaults;
  /**
   * max_length: prompt plus generated tokens (transformers' older limit). When the file has it and no
   * max_new_tokens, a caller limits a generation to max(1, maxLength - prompt length) new tokens.
   */
  maxLength: number | null;
  bosTokenId: number | null;
  padTokenId: number | null;
}

type Json = Record<string, unknown>;

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Reads a parsed generation_config.json; `file` names it in errors. Unknown keys are left alone. */
export function parseGenerationConfig(raw: unknown, file: string): GenerationConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: must be a JSON object`);
  const o = raw as Json;
  const bad = (key: string, want: string): never => {
    throw new Error(`${file}: ${key} must be ${want}, got ${show(o[key])}`);
  };
  // null is how transformers writes "not set"
  const get = (key: string): unknown => (o[key] === null ? undefined : o[key]);
  const int = (key: string, min: number): number | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(key, `an integer >= ${min}`);
    return v as number;
  };
  const real = (key: string, ok: (v: number) => boolean, want: string): number | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) bad(key, want);
    return v as number;
  };
  const d: GenerationDefaults = {};
  const maxNew = int('max_new_tokens', 1);
  if (maxNew !== undefined) d.max_new_tokens = maxNew;
  const doSample = get('do_sample');
  if (doSample !== undefined) {
    if (typeof doSample !== 'boolean') bad('do_sample', 'true or false');
    d.do_sample = doSample as boolean;
  }
  // temperature 0 appears in files that mean greedy decoding: it is taken as do_sample false
  const temperature = real('temperature', (v) => v >= 0, 'a number >= 0');
  if (temperature === 0) d.do_sample = false;
  else if (temperature !== undefined) d.temperature = temperature;
  const topK = int('top_k', 0);
  if (topK !== undefined) d.top_k = topK;
  const topP = real('top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  if (topP !== undefined) d.top_p = topP;
  const minP = real('min_p', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  if (minP !== undefined) d.min_p = minP;
  const rep = real('repetition_penalty', (v) => v > 0, 'a number > 0');
  if (rep !== undefined) d.repetition_penalty = rep;
  const eos = get('eos_token_id');
  if (eos !== undefined) {
    const list = Array.isArray(eos) ? eos : [eos];
    if (!list.every((id) => typeof id === 'number' && Number.isInteger(id) && id >= 0))
      bad('eos_token_id', 'a token id or a list of token ids');
    d.eos_token_id = list as number[];
  }
  return {
    defaults: d,
    maxLength: int('max_length', 1) ?? null,
    bosTokenId: int('bos_token_id', 0) ?? null,
    padTokenId: int('pad_token_id', 0) ?? null,
  };
}
