/**
 * Generation options, named as in transformers.js / transformers (`max_new_tokens`, `do_sample`, `temperature`,
 * `top_k`, `top_p`, `min_p`, `repetition_penalty`, `eos_token_id`, `stop_strings`), plus `mode`, `seed` and an
 * `AbortSignal`. `resolveOptions` checks types and ranges and names the option and the value on error.
 */
import { DECODE_MODES, MAX_DRAFT_TOKENS, type DecodeMode, type DraftTokens } from './types.js';
import { MAX_REPETITION_PENALTY, MIN_REPETITION_PENALTY, type SamplerSettings } from './sampler.js';

export interface GenerationOptions {
  /** standard (default), recycle (the paper, lossy) or verified (lossless). */
  mode?: DecodeMode;
  /** Tokens to generate at most (default 128). Generation also stops at the context length. */
  max_new_tokens?: number;
  /** Sample (true) or take the argmax (false, the default). */
  do_sample?: boolean;
  /** Softmax temperature, any finite number > 0 (default 1; sampling only; → 0 tends to greedy). */
  temperature?: number;
  /** Keep the k most likely tokens (default 50, as transformers; 0 turns it off; sampling only). */
  top_k?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (default 1 = off). */
  top_p?: number;
  /** Keep tokens with probability ≥ min_p · the top probability (default 0 = off). */
  min_p?: number;
  /** CTRL repetition penalty on the prompt and generated tokens, in [1e-100, 1e100] (default 1 = off; greedy too). */
  repetition_penalty?: number;
  /** Seed of the sampler's random numbers; a random one is drawn (and reported in the stats) when absent. */
  seed?: number;
  /** End-of-sequence token(s); default: the model's (config.json, else the tokenizer's). `[]`: none. */
  eos_token_id?: number | number[];
  /** Stop when the generated text contains one of these (the text is cut before it). Needs a tokenizer. */
  stop_strings?: string[];
  /** Cancels the generation: the stream / promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Drafts per full call in recycle / verified mode: 1..7 (default 1, the paper's schedule) or, for verified, 'auto'
   * (the k with the most expected tokens/s from the acceptance measured so far and the measured call costs).
   */
  draft_tokens?: DraftTokens;
}

/** Validated options: the sampler's settings plus what the decoding loop needs. */
export interface ResolvedOptions extends SamplerSettings {
  mode: DecodeMode;
  maxNewTokens: number;
  seed: number;
  /** null: use the model's default. */
  eosTokenIds: number[] | null;
  stopStrings: string[];
  signal: AbortSignal | null;
  draftTokens: DraftTokens;
}

export const DEFAULT_MAX_NEW_TOKENS = 128;

const KNOWN = new Set([
  'mode',
  'max_new_tokens',
  'do_sample',
  'temperature',
  'top_k',
  'top_p',
  'min_p',
  'repetition_penalty',
  'seed',
  'eos_token_id',
  'stop_strings',
  'signal',
  'draft_tokens',
]);

function fail(name: string, want: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  throw new RangeError(`generation option ${name} must be ${want}, got ${shown}`);
}

function num(o: Record<string, unknown>, name: string, def: number, ok: (v: number) => boolean, want: string): number {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail(name, want, v);
  return v;
}

function int(o: Record<string, unknown>, name: string, def: number, min: number, max: number): number {
  return num(o, name, def, (v) => Number.isInteger(v) && v >= min && v <= max, `an integer in [${min}, ${max}]`);
}

/** Validate `opts` (unknown keys are errors: a typo must not silently fall back to a default). */
export function resolveOptions(opts: GenerationOptions = {}): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) fail('object', 'an object', opts);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k)) throw new RangeError(`unknown generation option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  const mode = o.mode ?? 'standard';
  if (typeof mode !== 'string' || !(DECODE_MODES as readonly string[]).includes(mode))
    fail('mode', `one of ${DECODE_MODES.join(', ')}`, mode);
  const doSample = o.do_sample ?? false;
  if (typeof doSample !== 'boolean') fail('do_sample', 'a boolean', doSample);
  let eos: number[] | null = null;
  if (o.eos_token_id !== undefined) {
    const raw = o.eos_token_id;
    const list = Array.isArray(raw) ? raw : [raw];
    for (const id of list)
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
        fail('eos_token_id', 'a token id or a list of them', id);
    eos = list as number[];
  }
  const stops = o.stop_strings ?? [];
  if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string' || s.length === 0))
    fail('stop_strings', 'a list of non-empty strings', JSON.stringify(stops));
  const signal = o.signal ?? null;
  if (signal !== null && !(signal instanceof AbortSignal)) fail('signal', 'an AbortSignal', signal);
  const draftTokens = draftTokensOption(o.draft_tokens, mode as DecodeMode);
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : int(o, 'seed', 0, 0, 2 ** 32 - 1);
  const resolved: ResolvedOptions = {
    mode: mode as DecodeMode,
    maxNewTokens: int(o, 'max_new_tokens', DEFAULT_MAX_NEW_TOKENS, 1, 1_000_000),
    doSample,
    temperature: num(o, 'temperature', 1, (v) => v > 0, 'a number > 0 (use do_sample: false for greedy)'),
    topK: int(o, 'top_k', 50, 0, 2 ** 31 - 1),
    topP: num(o, 'top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    minP: num(o, 'min_p', 0, (v) => v >= 0 && v <= 1, 'a number in [0, 1]'),
    repetitionPenalty: num(
      o,
      'repetition_penalty',
      1,
      (v) => v >= MIN_REPETITION_PENALTY && v <= MAX_REPETITION_PENALTY,
      'a number in [1e-100, 1e100]',
    ),
    seed,
    eosTokenIds: eos,
    stopStrings: stops as string[],
    signal: signal as AbortSignal | null,
    draftTokens,
  };
  RESOLVED.add(resolved);
  return resolved;
}

/** draft_tokens checked against the mode: 'auto' measures acceptance, so it needs verified mode. */
function draftTokensOption(v: unknown, mode: DecodeMode): DraftTokens {
  if (v === undefined) return 1;
  const want = `an integer in [1, ${MAX_DRAFT_TOKENS}] or "auto"`;
  if (v !== 'auto' && !(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_DRAFT_TOKENS))
    fail('draft_tokens', want, v);
  if (v === 'auto' && mode !== 'verified')
    throw new RangeError(`generation option draft_tokens "auto" needs mode "verified" (the mode is "${mode}")`);
  if (v !== 1 && mode === 'standard')
    throw new RangeError(`generation option draft_tokens applies to modes recycle and verified, not "standard"`);
  return v as DraftTokens;
}

/** The options that only shape sampling: with do_sample false (greedy decoding) they change nothing. */
export const SAMPLING_ONLY_OPTIONS = ['temperature', 'top_k', 'top_p', 'min_p'] as const;

/**
 * The one sampling rule, shared by the API and the CLI (as transformers has it): decoding samples if and only if
 * do_sample is true. Sampling-only options given without it have no effect; this returns the warning that says so
 * (null when there is nothing to say). `spell` names things as the caller's user knows them (CLI: `--top-k`).
 */
export function ineffectiveSamplingWarning(
  opts: GenerationOptions,
  spell: { option: (name: string) => string; doSample: string } = { option: (k) => k, doSample: 'do_sample: true' },
): string | null {
  if (opts.do_sample === true) return null;
  const given = SAMPLING_ONLY_OPTIONS.filter((k) => opts[k] !== undefined);
  if (given.length === 0) return null;
  const list = given.map((k) => `${spell.option(k)} ${String(opts[k])}`).join(', ');
  return `${list} ${given.length > 1 ? 'have' : 'has'} no effect without ${spell.doSample} (decoding is greedy)`;
}

const RESOLVED = new WeakSet<object>();

/** True for objects made by `resolveOptions` (so a caller may pass them again without re-validation). */
export function isResolvedOptions(o: unknown): o is ResolvedOptions {
  return typeof o === 'object' && o !== null && RESOLVED.has(o);
}
