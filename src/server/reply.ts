/**
 * One generation request's answer: queue it on the scheduler, and answer with the OpenAI JSON body when it ends, or
 * with an SSE stream of its text as it comes (OpenAI's chunks, the last one with the finish reason, `timings` and
 * `recycle`, then `data: [DONE]`). The client going away (disconnect, stream cancelled) cancels the generation and
 * frees its slot; so does the request timeout (504, or an error event in a stream); a full queue is a 503.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TextAssembler, type PreparedGeneration } from './generation.js';
import {
  chatBody,
  chatChunk,
  completionBody,
  completionChunk,
  HttpError,
  usageChunk,
  type ReplyMeta,
} from './responses.js';
import { QueueFullError, ShuttingDownError, type JobResult, type Scheduler } from './scheduler.js';

/** The per-request log entry; a streaming reply writes its own line when the stream ends. */
export interface RequestLog {
  deferred: boolean;
  extra: string;
}

export type Env = { Variables: { log: RequestLog } };

/** What a reply needs from the server. */
export interface ReplyDeps {
  scheduler: Scheduler;
  tokenizer: Tokenizer;
  modelId: string;
  timeoutMs: number;
  log: (line: string) => void;
  isDraining: () => boolean;
}

/** The client went away (disconnect, stream cancelled). */
class ClientGone extends Error {}
/** The generation ran past the request timeout. */
class TimedOut extends Error {}

const encoder = new TextEncoder();

/** Queue the generation and answer with JSON at the end, or with an SSE stream of its text as it comes. */
export function reply(
  deps: ReplyDeps,
  c: Context<Env>,
  prep: PreparedGeneration,
  stream: boolean,
  includeUsage: boolean,
  kind: 'completion' | 'chat',
): Response | Promise<Response> {
  if (deps.isDraining()) throw new HttpError(503, 'the server is shutting down');
  const meta: ReplyMeta = {
    id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`,
    created: Math.floor(Date.now() / 1000),
    model: deps.modelId,
  };
  const entry = c.get('log');
  const text = new TextAssembler(deps.tokenizer, prep.eos, prep.stops);
  const cancel = new AbortController();
  const onClientGone = (): void => cancel.abort(new ClientGone('the client disconnected'));
  const reqSignal = c.req.raw.signal;
  if (reqSignal.aborted) onClientGone();
  reqSignal.addEventListener('abort', onClientGone, { once: true });
  const timer = setTimeout(
    () => cancel.abort(new TimedOut(`the generation ran past the request timeout of ${deps.timeoutMs} ms`)),
    deps.timeoutMs,
  );
  const cleanup = (): void => {
    clearTimeout(timer);
    reqSignal.removeEventListener('abort', onClientGone);
  };
  const describe = (r: JobResult | null, outcome: string): string => {
    const s = r?.session.stats;
    return s
      ? `mode=${s.mode} prompt=${s.prompt_tokens} completion=${s.tokens} finish=${s.finish_reason} ` +
          `queued_ms=${r!.queuedMs.toFixed(0)} ${outcome}`
      : `mode=${prep.options.mode} prompt=${prep.prompt.length} ${outcome}`;
  };
  const t0 = performance.now();
  let send: ((chunk: string) => void) | null = null;
  let job: Promise<JobResult>;
  try {
    job = deps.scheduler.submit({
      prompt: prep.prompt,
      options: prep.options,
      eos: prep.eos,
      signal: cancel.signal,
      onToken: (ev, session) => {
        const delta = text.push(ev, session);
        if (send && delta) {
          const chunk =
            kind === 'chat' ? chatChunk(meta, { content: delta }, null) : completionChunk(meta, delta, null);
          send(JSON.stringify(chunk));
        }
      },
    });
  } catch (e) {
    cleanup();
    if (e instanceof QueueFullError || e instanceof ShuttingDownError) throw new HttpError(503, e.message);
    throw e;
  }

  if (!stream) {
    return job.then(
      (r) => {
        cleanup();
        entry.extra = describe(r, 'ok');
        const s = r.session.stats;
        return c.json(
          kind === 'chat' ? chatBody(meta, text.text, s, r.queuedMs) : completionBody(meta, text.text, s, r.queuedMs),
        );
      },
      (e: unknown) => {
        cleanup();
        entry.extra = describe(null, `error=${(e as Error).message}`);
        if (e instanceof TimedOut) throw new HttpError(504, e.message);
        if (e instanceof ClientGone) throw new HttpError(408, e.message);
        throw e instanceof HttpError ? e : new HttpError(500, `generation failed: ${(e as Error).message}`);
      },
    );
  }

  entry.deferred = true;
  let closed = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const write = (data: string): void => {
    if (closed) return;
    try {
      controller.enqueue(encoder.encode(`data: ${data}\n\n`));
    } catch {
      closed = true;
    }
  };
  const finish = (status: number, outcome: string, r: JobResult | null): void => {
    cleanup();
    if (!closed) {
      write('[DONE]');
      closed = true;
      try {
        controller.close();
      } catch {
        /* already closed by the client */
      }
    }
    deps.log(logLine(c.req.method, c.req.path, status, t0, describe(r, outcome)));
  };
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      controller = ctl;
    },
    cancel() {
      closed = true;
      cancel.abort(new ClientGone('the client closed the stream'));
    },
  });
  send = write;
  if (kind === 'chat') write(JSON.stringify(chatChunk(meta, { role: 'assistant', content: '' }, null)));
  job.then(
    (r) => {
      const s = r.session.stats,
        end = { stats: s, queuedMs: r.queuedMs };
      write(JSON.stringify(kind === 'chat' ? chatChunk(meta, {}, end) : completionChunk(meta, '', end)));
      if (includeUsage)
        write(JSON.stringify(usageChunk(meta, kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', s)));
      finish(200, 'ok', r);
    },
    (e: unknown) => {
      const gone = e instanceof ClientGone;
      const err =
        e instanceof TimedOut
          ? new HttpError(504, e.message)
          : e instanceof HttpError
            ? e
            : new HttpError(500, `generation failed: ${(e as Error).message}`);
      if (!gone) write(JSON.stringify(err.body()));
      finish(gone ? 499 : err.status, gone ? 'client gone' : `error=${err.message}`, null);
    },
  );
  return new Response(body, {
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
  });
}

/** The one log line of a request: time, method, path, status, duration, and what the route adds. */
export function logLine(method: string, path: string, status: number, t0: number, extra: string): string {
  const ms = (performance.now() - t0).toFixed(0);
  return `${new Date().toISOString()} ${method} ${path} ${status} ${ms}ms${extra ? ` ${extra}` : ''}`;
}
