/**
 * One request's generation: the OpenAI fields turned into generation options (checked against the model, the
 * context and the server's caps: errors are 400s naming the field), and the text side of the tokens the scheduler
 * makes (streamed detokenization, stop strings, EOS left out of the text), as RecycleGPT's GenerationStream does.
 */
import { checkMode, eosIds } from '../generate/decode.js';
import { resolveOptions, type GenerationOptions, type ResolvedOptions } from '../generate/options.js';
import type { DecodeSession } from '../generate/session.js';
import { StopStringFilter } from '../generate/stop-strings.js';
import type { DecodeMode, TokenEvent } from '../generate/types.js';
import type { InferenceModel } from '../model/infer.js';
import type { GenerationDefaults } from '../tokenizer/generation-config.js';
import { createStreamDecoder, type StreamDecoder, type Tokenizer } from '../tokenizer/tokenizer.js';
import { HttpError } from './responses.js';
import type { CompletionRequest } from './schemas.js';

/** The sampling fields both generation routes share (CompletionRequest and ChatRequest). */
export type SamplingFields = Omit<CompletionRequest, 'prompt' | 'echo' | 'suffix' | 'best_of'>;

export interface Limits {
  contextLength: number;
  maxTokensCap: number;
  defaultMode: DecodeMode;
  /**
   * The model's end-of-generation ids from generation_config.json (a list there, as Llama 3's <|eot_id|> beside
   * config.json's eos); null: config.json's eos_token_id (else the tokenizer's).
   */
  eos: readonly number[] | null;
  /**
   * The model's generation_config.json sampling defaults, for the fields a request leaves out (absent or null: the
   * OpenAI defaults alone).
   */
  defaults?: GenerationDefaults | null;
}

export interface PreparedGeneration {
  prompt: number[];
  options: ResolvedOptions;
  eos: number[];
  stops: string[];
}

/**
 * Options for `prompt` from the request's fields. A field the request gives wins; one it leaves out comes from the
 * model's generation_config.json (limits.defaults: temperature, top_k, top_p, min_p, repetition_penalty,
 * max_new_tokens; do_sample false there makes a request without temperature greedy), as the CLI and the library
 * apply it and vLLM's server does; else OpenAI's defaults: temperature 1 (sampling; 0 is greedy), top_p 1, no top-k.
 * max_tokens defaults to generation_config's max_new_tokens, at most what the context leaves and the cap (its
 * max_length, transformers' older prompt-plus-new limit, is not applied: vLLM ignores it too); a given one must fit
 * with the prompt.
 */
export function prepareGeneration(
  model: InferenceModel,
  tokenizer: Tokenizer,
  prompt: number[],
  body: SamplingFields,
  limits: Limits,
  promptField: string,
): PreparedGeneration {
  const ctx = limits.contextLength,
    n = prompt.length;
  if (n === 0) throw new HttpError(400, `${promptField}: the prompt is empty (no tokens)`, undefined, promptField);
  if (n >= ctx) {
    throw new HttpError(
      400,
      `${promptField}: the prompt has ${n} tokens but the context length is ${ctx}; ` +
        'it must be shorter, to leave room for at least one new token',
      undefined,
      promptField,
    );
  }
  const field = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const asked = body.max_completion_tokens ?? body.max_tokens ?? null;
  if (asked !== null && asked > limits.maxTokensCap)
    throw new HttpError(
      400,
      `${field}: ${asked} is above this server's cap of ${limits.maxTokensCap}`,
      undefined,
      field,
    );
  if (asked !== null && n + asked > ctx) {
    throw new HttpError(
      400,
      `${field}: ${n} prompt tokens + ${asked} new tokens exceed the context length ${ctx}`,
      undefined,
      field,
    );
  }
  const d = limits.defaults ?? {};
  const temperature = body.temperature ?? (d.do_sample === false ? 0 : (d.temperature ?? 1));
  const g: GenerationOptions = {
    mode: (body.mode as DecodeMode | undefined) ?? limits.defaultMode,
    max_new_tokens: asked ?? Math.min(d.max_new_tokens ?? Infinity, limits.maxTokensCap, ctx - n),
    do_sample: temperature > 0,
    top_k: body.top_k ?? d.top_k ?? 0,
  };
  if (temperature > 0) g.temperature = temperature;
  const topP = body.top_p ?? d.top_p,
    minP = body.min_p ?? d.min_p,
    repetition = body.repetition_penalty ?? d.repetition_penalty;
  if (topP != null) g.top_p = topP;
  if (minP != null) g.min_p = minP;
  if (repetition != null) g.repetition_penalty = repetition;
  if (body.seed != null) g.seed = body.seed;
  if (body.ignore_eos) g.eos_token_id = [];
  else if (limits.eos) g.eos_token_id = [...limits.eos];
  if (body.draft_tokens !== undefined) g.draft_tokens = body.draft_tokens;
  let options: ResolvedOptions;
  try {
    options = resolveOptions(g);
    checkMode(model, options.mode);
  } catch (e) {
    const msg = (e as Error).message;
    throw new HttpError(400, msg, undefined, optionField(msg, field));
  }
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return { prompt, options, eos: eosIds(model, options, tokenizer.eosTokenId), stops: stop };
}

/**
 * The request field a generation-option error is about: the option the message names ("generation option top_k
 * must be …"), under the request's name for it; else the mode (checkMode's message).
 */
function optionField(message: string, maxTokensField: string): string | null {
  const option = /generation option "?([a-z_]+)/.exec(message)?.[1];
  if (option === 'max_new_tokens') return maxTokensField;
  if (option === 'eos_token_id') return 'ignore_eos';
  if (option === 'do_sample') return 'temperature';
  if (option) return option;
  return /\bmode\b/.test(message) ? 'mode' : null;
}

/** Token ids of a request's prompt: text through the tokenizer (with the model's BOS), or ids checked. */
export function promptIds(tokenizer: Tokenizer, vocabSize: number, prompt: string | number[]): number[] {
  if (typeof prompt === 'string') return tokenizer.encode(prompt, { addSpecialTokens: true });
  prompt.forEach((id, i) => {
    if (id >= vocabSize)
      throw new HttpError(
        400,
        `prompt.${i}: token id ${id} is outside the vocabulary [0, ${vocabSize})`,
        undefined,
        'prompt',
      );
  });
  return prompt;
}

/**
 * The text of a generation as its tokens arrive: each token's text (never half a character), held back while it may
 * be the start of a stop string, cut before a stop string (which ends the generation).
 */
export class TextAssembler {
  text = '';
  private readonly decoder: StreamDecoder;
  private readonly stops: StopStringFilter | null;
  private readonly eos: Set<number>;

  constructor(tokenizer: Tokenizer, eos: readonly number[], stops: readonly string[]) {
    this.decoder = createStreamDecoder(tokenizer);
    this.stops = stops.length > 0 ? new StopStringFilter(stops) : null;
    this.eos = new Set(eos);
  }

  /** The new text `ev` completes ("" while held back); ends the session when a stop string appears. */
  push(ev: TokenEvent, session: DecodeSession): string {
    let text = this.eos.has(ev.id) ? '' : this.decoder.push(ev.id);
    if (session.done) text += this.decoder.flush();
    if (this.stops) {
      text = this.stops.push(text);
      if (this.stops.stopped) {
        // A stop string ends the reply as "stop" even when the same token also reached max_tokens or the context.
        session.end('stop');
        session.stats.finish_reason = 'stop';
      } else if (session.done) text += this.stops.flush();
    }
    this.text += text;
    return text;
  }
}
