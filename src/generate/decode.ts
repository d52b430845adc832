/**
 * Token-level generation: validate the prompt and the mode against the model, set up a DecodeSession and run
 * the mode's step generator. `decode` is synchronous (benchmarks, tests); RecycleGPT wraps it in an async
 * stream with text. The run's `stats` are live: they are right even when the caller stops iterating early.
 */
import type { InferenceModel } from '../model/infer.js';
import { recycleDecode } from './modes/recycle.js';
import { standardDecode } from './modes/standard.js';
import { verifiedDecode } from './modes/verified.js';
import { isResolvedOptions, resolveOptions, type GenerationOptions, type ResolvedOptions } from './options.js';
import { DecodeSession, isModelCall, type DecodeStep, type SessionCaches } from './session.js';
import type { DecodeMode, GenerationStats, TokenEvent } from './types.js';

const MODES: Record<DecodeMode, (s: DecodeSession) => Generator<DecodeStep, void, void>> = {
  standard: standardDecode,
  recycle: recycleDecode,
  verified: verifiedDecode,
};

export interface DecodeRun extends Iterable<TokenEvent> {
  readonly stats: GenerationStats;
  /** Generated ids so far. */
  readonly ids: readonly number[];
  readonly session: DecodeSession;
}

/**
 * Preallocated caches and scratch for a model (the module's only when it has one); reusable by one generation
 * after another, and each of several interleaved generations needs its own.
 */
export function createCaches(model: InferenceModel, maxT = model.config.maxPositions): SessionCaches {
  const mod = model.hasModule;
  return {
    base: model.newBaseCache(maxT),
    module: mod ? model.newModuleCache(maxT) : null,
    scratch: { base: model.newScratch(), module: mod ? model.newScratch() : null },
  };
}

/** Throws a clear error when the prompt cannot be decoded by this model. */
export function checkPrompt(
  model: InferenceModel,
  prompt: readonly number[],
  maxLength = model.config.maxPositions,
): void {
  if (!Array.isArray(prompt)) throw new TypeError('the prompt must be an array of token ids');
  if (prompt.length === 0) throw new RangeError('the prompt is empty: give at least one token');
  const V = model.config.vocabSize;
  for (let i = 0; i < prompt.length; i++) {
    const id = prompt[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V)
      throw new RangeError(`prompt token ${i} is ${String(id)}, outside the vocabulary [0, ${V})`);
  }
  if (prompt.length >= maxLength) {
    throw new RangeError(
      `the prompt has ${prompt.length} tokens but the context length is ${maxLength}: ` +
        `it must be shorter, to leave room for at least one new token`,
    );
  }
}

/** Throws unless the model can decode in `mode`. */
export function checkMode(model: InferenceModel, mode: DecodeMode): void {
  if (mode !== 'standard' && !model.hasModule) {
    throw new Error(
      `mode "${mode}" needs a recyclable module, and this model has none ` +
        `(its config.json has no "recycle" section); use mode "standard"`,
    );
  }
}

/** The EOS ids of a generation: the option, else the model config's. Each must be in the vocabulary. */
export function eosIds(model: InferenceModel, opts: ResolvedOptions, fallback: number | null = null): number[] {
  const V = model.config.vocabSize;
  const fromModel = model.config.eosTokenId ?? fallback;
  const ids = opts.eosTokenIds ?? (fromModel === null ? [] : [fromModel]);
  for (const id of ids)
    if (id >= V) throw new RangeError(`generation option eos_token_id ${id} is outside the vocabulary (${V})`);
  return ids;
}

/**
 * Set up a generation and return its mode's raw steps: tokens and the model calls the mode asks for (session.ts
 * ModelCall), for a driver that runs the calls itself — batched with other sessions' calls in a server. Options are
 * validated here (types, ranges, mode vs model, prompt vs context), before any model call. `eos` overrides the EOS
 * ids (default: the eos_token_id option, else the model config's).
 */
export function decodeSteps(
  model: InferenceModel,
  prompt: readonly number[],
  options: GenerationOptions | ResolvedOptions = {},
  caches?: SessionCaches,
  eos?: readonly number[],
): { session: DecodeSession; steps: Generator<DecodeStep, void, void> } {
  const opts = isResolvedOptions(options) ? options : resolveOptions(options);
  checkMode(model, opts.mode);
  const c = caches ?? createCaches(model);
  if (opts.mode !== 'standard' && !c.module) throw new Error(`mode "${opts.mode}" needs a module cache`);
  checkPrompt(model, prompt, Math.min(model.config.maxPositions, c.base.maxT));
  const session = new DecodeSession(model, prompt, opts, eos ?? eosIds(model, opts), c);
  return { session, steps: MODES[opts.mode](session) };
}

/** Drive a mode by itself: each model call runs alone, on the session's own caches. */
function* runAlone(session: DecodeSession, steps: Generator<DecodeStep, void, void>): Generator<TokenEvent, void> {
  for (const step of steps) {
    if (isModelCall(step)) session.run(step);
    else yield step;
  }
}

/**
 * Start generating from `prompt` (token ids); iterate the result to run the steps (see decodeSteps for the
 * checks and `eos`).
 */
export function decode(
  model: InferenceModel,
  prompt: readonly number[],
  options: GenerationOptions | ResolvedOptions = {},
  caches?: SessionCaches,
  eos?: readonly number[],
): DecodeRun {
  const { session, steps } = decodeSteps(model, prompt, options, caches, eos);
  const tokens = runAlone(session, steps);
  return {
    stats: session.stats,
    ids: session.output,
    session,
    [Symbol.iterator]: () => tokens,
  };
}

/** Run a generation to the end and return the ids and stats (tests, benchmarks). */
export function decodeAll(
  model: InferenceModel,
  prompt: readonly number[],
  options: GenerationOptions | ResolvedOptions = {},
  caches?: SessionCaches,
): { ids: number[]; events: TokenEvent[]; stats: GenerationStats } {
  const run = decode(model, prompt, options, caches);
  const events = [...run];
  return { ids: events.map((e) => e.id), events, stats: run.stats };
}
