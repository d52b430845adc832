/**
 * The OpenAI-compatible HTTP routes (hono) over one loaded model and its continuous-batching scheduler:
 *   POST /v1/completions, POST /v1/chat/completions (JSON or SSE streams ending with `data: [DONE]`),
 *   GET /v1/models, GET /health, POST /tokenize, POST /detokenize.
 * Bearer auth when an API key is set (all routes but /health), a body size limit, zod validation (400 naming the
 * field), max_tokens cap and context checks, a per-request timeout, cancellation when the client disconnects, one
 * log line per request. No route reads a file: requests carry text and token ids only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import type { RecycleGPT } from '../generate/recyclegpt-core.js';
import { callCosts } from '../generate/modes/draft-k.js';
import type { DecodeMode } from '../generate/types.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ChatTemplate, ChatTemplateError, type ChatMessage } from './chat-template.js';
import { prepareGeneration, promptIds } from './generation.js';
import { logLine, reply, type Env, type ReplyDeps, type RequestLog } from './reply.js';
import { HttpError } from './responses.js';
import { ChatRequest, CompletionRequest, describeIssues, DetokenizeRequest, TokenizeRequest } from './schemas.js';
import { Scheduler } from './scheduler.js';

export interface ServerOptions {
  /** Generations decoded together (default 4). */
  parallel?: number;
  /** Requests waiting for a slot at most; beyond them 503 (default 4 × parallel). */
  maxQueue?: number;
  /** Context length of each slot (default and maximum: the model's). */
  contextLength?: number;
  /** Largest max_tokens accepted (default: the context length). */
  maxTokensCap?: number;
  /** Mode of requests that name none (default standard). */
  defaultMode?: DecodeMode;
  /** Require `Authorization: Bearer <key>` (all routes but /health). */
  apiKey?: string | null;
  /** Largest request body in bytes (default 1 MiB); larger gets 413. */
  maxBodyBytes?: number;
  /** A generation running longer is cancelled: 504, or an error event in a stream (default 600 000 ms). */
  requestTimeoutMs?: number;
  /** The model's id in responses and /v1/models (default: the model's name). */
  modelId?: string;
  /** Where the one line per request goes (default: stderr). */
  log?: (line: string) => void;
}

export interface ServerApp {
  readonly app: Hono<Env>;
  readonly scheduler: Scheduler;
  readonly modelId: string;
  /** Refuse new generations (503) and resolve when the running and queued ones have ended. */
  drain(): Promise<void>;
}

export function createServerApp(m: RecycleGPT, o: ServerOptions = {}): ServerApp {
  const tokenizer: Tokenizer | null = m.tokenizer;
  if (!tokenizer) throw new Error(`${m.name} has no tokenizer (tokenizer.json): the server needs one`);
  const tok: Tokenizer = tokenizer;
  const model = m.model,
    cfg = model.config;
  const parallel = o.parallel ?? 4;
  const contextLength = o.contextLength ?? cfg.maxPositions;
  if (!Number.isInteger(contextLength) || contextLength < 2 || contextLength > cfg.maxPositions)
    throw new RangeError(`context length must be an integer in [2, ${cfg.maxPositions}], got ${contextLength}`);
  const limits = {
    contextLength,
    maxTokensCap: o.maxTokensCap ?? contextLength,
    defaultMode: o.defaultMode ?? 'standard',
    eos: m.generationConfig?.defaults.eos_token_id ?? null,
    defaults: m.generationConfig?.defaults ?? null,
  };
  // draft_tokens "auto" times the model's calls once; do it now, not inside the first such request's step, which
  // would stall every stream in flight.
  if (model.hasModule) callCosts(model);
  const scheduler = new Scheduler(model, { parallel, maxQueue: o.maxQueue ?? 4 * parallel, contextLength });
  // The directory's last component, never its full path (a client need not learn the server's file system).
  const modelId = o.modelId ?? (m.name.split(/[\\/]/).filter(Boolean).pop() || 'model');
  const timeoutMs = o.requestTimeoutMs ?? 600_000;
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const chat = ChatTemplate.of(tok);
  const keyDigest = o.apiKey ? createHash('sha256').update(o.apiKey).digest() : null;
  let draining = false;
  const deps: ReplyDeps = { scheduler, tokenizer: tok, modelId, timeoutMs, log, isDraining: () => draining };

  const app = new Hono<Env>();

  app.use('*', async (c, next) => {
    const t0 = performance.now();
    const entry: RequestLog = { deferred: false, extra: '' };
    c.set('log', entry);
    await next();
    if (!entry.deferred) log(logLine(c.req.method, c.req.path, c.res.status, t0, entry.extra));
  });

  app.use('*', async (c, next) => {
    if (!keyDigest || c.req.path === '/health') return next();
    const auth = c.req.header('authorization') ?? '';
    const given = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    const ok = given !== undefined && timingSafeEqual(createHash('sha256').update(given).digest(), keyDigest);
    if (!ok) {
      const e = new HttpError(
        401,
        given === undefined ? 'missing API key (Authorization: Bearer <key>)' : 'invalid API key',
        'authentication_error',
      );
      return c.json(e.body(), 401, { 'WWW-Authenticate': 'Bearer' });
    }
    return next();
  });

  app.use(
    '*',
    bodyLimit({
      maxSize: o.maxBodyBytes ?? 1 << 20,
      onError: (c) =>
        c.json(new HttpError(413, `request body larger than ${o.maxBodyBytes ?? 1 << 20} bytes`).body(), 413),
    }),
  );

  app.onError((err, c) => {
    const e = err instanceof HttpError ? err : new HttpError(500, `internal error: ${err.message}`);
    const entry = c.get('log');
    if (entry && !entry.extra) entry.extra = `error=${JSON.stringify(e.message)}`;
    return c.json(e.body(), e.status);
  });
  app.notFound((c) =>
    c.json(new HttpError(404, `no route ${c.req.method} ${c.req.path}`, 'not_found_error').body(), 404),
  );

  app.get('/health', (c) =>
    c.json({
      status: draining ? 'draining' : 'ok',
      slots: {
        parallel,
        active: scheduler.activeCount,
        queued: scheduler.queuedCount,
        queue_max: scheduler.opts.maxQueue,
      },
      batching: scheduler.counters,
    }),
  );

  app.get('/v1/models', (c) =>
    c.json({
      object: 'list',
      data: [
        {
          id: modelId,
          object: 'model',
          created: 0,
          owned_by: 'recyclegpt',
          meta: {
            n_ctx: contextLength,
            n_vocab: cfg.vocabSize,
            arch: cfg.arch,
            modes: cfg.recycle ? ['standard', 'recycle', 'verified'] : ['standard'],
            chat_template: chat !== null,
          },
        },
      ],
    }),
  );

  app.post('/tokenize', async (c) => {
    const body = parseWith(TokenizeRequest, await readJson(c));
    return c.json({ tokens: tok.encode(body.content, { addSpecialTokens: body.add_special ?? false }) });
  });

  app.post('/detokenize', async (c) => {
    const body = parseWith(DetokenizeRequest, await readJson(c));
    const bad = body.tokens.findIndex((id) => id >= tok.vocabSize);
    if (bad >= 0) {
      const msg = `tokens.${bad}: token id ${body.tokens[bad]} is outside the vocabulary [0, ${tok.vocabSize})`;
      throw new HttpError(400, msg, undefined, 'tokens');
    }
    return c.json({ content: tok.decode(body.tokens, { skipSpecialTokens: false }) });
  });

  app.post('/v1/completions', async (c) => {
    const body = parseWith(CompletionRequest, await readJson(c));
    const ids = promptIds(tok, cfg.vocabSize, body.prompt);
    const prep = prepareGeneration(model, tok, ids, body, limits, 'prompt');
    return reply(deps, c, prep, body.stream === true, body.stream_options?.include_usage === true, 'completion');
  });

  app.post('/v1/chat/completions', async (c) => {
    const body = parseWith(ChatRequest, await readJson(c));
    if (!chat) {
      throw new HttpError(
        400,
        `${modelId} has no chat template (tokenizer_config.json has no chat_template): use /v1/completions`,
        undefined,
        'messages',
      );
    }
    const messages: ChatMessage[] = body.messages.map((msg) => ({
      role: msg.role,
      content: typeof msg.content === 'string' ? msg.content : (msg.content ?? []).map((p) => p.text).join(''),
    }));
    let ids: number[];
    try {
      ids = chat.encode(messages);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new HttpError(400, e.message, undefined, 'messages');
      throw e;
    }
    const prep = prepareGeneration(model, tok, ids, body, limits, 'messages');
    return reply(deps, c, prep, body.stream === true, body.stream_options?.include_usage === true, 'chat');
  });

  return {
    app,
    scheduler,
    modelId,
    drain(): Promise<void> {
      draining = true;
      return scheduler.drain();
    },
  };
}

/** The request body as JSON, whatever its content-type says (400 naming the problem when it is not). */
async function readJson(c: Context<Env>): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') throw new HttpError(400, 'the request body is empty: expected a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HttpError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const { message, param } = describeIssues(r.error);
    throw new HttpError(400, message, undefined, param);
  }
  return r.data;
}
