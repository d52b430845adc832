/**
 * The OpenAI response shapes (completions, chat completions, their stream chunks, errors) with our extensions:
 * llama.cpp-style `timings` and the decoding statistics of RecycleGPT under `recycle`.
 */
import type { FinishReason, GenerationStats } from '../generate/types.js';

export type OpenAiFinish = 'stop' | 'length';

/** EOS and a stop string end a reply as OpenAI's "stop"; max_tokens and the context length as "length". */
export function finishReason(r: FinishReason | null): OpenAiFinish {
  return r === 'eos' || r === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(s: GenerationStats): Usage {
  return { prompt_tokens: s.prompt_tokens, completion_tokens: s.tokens, total_tokens: s.prompt_tokens + s.tokens };
}

/** llama.cpp's `timings` (prefill = prompt, the rest = predicted) plus the time spent queued for a slot. */
export function timingsOf(s: GenerationStats, queuedMs: number): Record<string, number> {
  const promptMs = s.prefill_seconds * 1000,
    predictedMs = Math.max(0, (s.seconds - s.prefill_seconds) * 1000);
  return {
    prompt_n: s.prompt_tokens,
    prompt_ms: promptMs,
    prompt_per_second: promptMs > 0 ? (1000 * s.prompt_tokens) / promptMs : 0,
    predicted_n: s.tokens,
    predicted_ms: predictedMs,
    predicted_per_token_ms: s.tokens > 0 ? predictedMs / s.tokens : 0,
    predicted_per_second: predictedMs > 0 ? (1000 * s.tokens) / predictedMs : 0,
    queued_ms: queuedMs,
  };
}

/** How the reply was decoded: the mode and its call and draft counts (generate --json's fields). */
export function recycleStatsOf(s: GenerationStats): Record<string, unknown> {
  return {
    mode: s.mode,
    full_calls: s.full_calls,
    module_calls: s.module_calls,
    accepted: s.accepted,
    rejected: s.rejected,
    recycled: s.recycled,
    seed: s.seed,
  };
}

export interface ReplyMeta {
  id: string;
  created: number;
  model: string;
}

/** The end of a reply: its stats and the time it waited for a slot. */
export interface ReplyEnd {
  stats: GenerationStats;
  queuedMs: number;
}

/**
 * The shape every reply and chunk shares: one choice (`payload`: text, message or delta) with its finish reason
 * (null until `end`), and at the end llama.cpp's `timings` and our `recycle` stats; `usage` on whole replies.
 */
function envelope(
  m: ReplyMeta,
  object: string,
  payload: Record<string, unknown>,
  end: ReplyEnd | null,
  withUsage: boolean,
): Record<string, unknown> {
  return {
    id: m.id,
    object,
    created: m.created,
    model: m.model,
    choices: [
      { index: 0, ...payload, logprobs: null, finish_reason: end ? finishReason(end.stats.finish_reason) : null },
    ],
    ...(end && withUsage ? { usage: usageOf(end.stats) } : {}),
    ...(end ? { timings: timingsOf(end.stats, end.queuedMs), recycle: recycleStatsOf(end.stats) } : {}),
  };
}

export function completionBody(
  m: ReplyMeta,
  text: string,
  s: GenerationStats,
  queuedMs: number,
): Record<string, unknown> {
  return envelope(m, 'text_completion', { text }, { stats: s, queuedMs }, true);
}

export function chatBody(m: ReplyMeta, text: string, s: GenerationStats, queuedMs: number): Record<string, unknown> {
  return envelope(
    m,
    'chat.completion',
    { message: { role: 'assistant', content: text } },
    { stats: s, queuedMs },
    true,
  );
}

/** A stream chunk carrying `text` (null finish) or, with `end`, the finish reason, timings and decoding stats. */
export function completionChunk(m: ReplyMeta, text: string, end: ReplyEnd | null): Record<string, unknown> {
  return envelope(m, 'text_completion', { text }, end, false);
}

export function chatChunk(
  m: ReplyMeta,
  delta: { role?: 'assistant'; content?: string },
  end: ReplyEnd | null,
): Record<string, unknown> {
  return envelope(m, 'chat.completion.chunk', { delta }, end, false);
}

/** The usage chunk of `stream_options: {include_usage: true}` (empty choices, as OpenAI sends it). */
export function usageChunk(m: ReplyMeta, object: string, s: GenerationStats): Record<string, unknown> {
  return { id: m.id, object, created: m.created, model: m.model, choices: [], usage: usageOf(s) };
}

export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'server_error' | 'not_found_error';

/** An error answered with `status` and OpenAI's error body. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 408 | 413 | 429 | 500 | 503 | 504,
    message: string,
    readonly type: ErrorType = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: number } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}
