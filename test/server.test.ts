/**
 * `recyclegpt serve`'s HTTP API against a started server on a free loopback port: the `openai` client for
 * completions and chat (non-streaming and streaming; the chat model is a temporary copy of the shipped small model
 * with a chat_template added), plain fetch for the error paths (malformed JSON, wrong types, negative max_tokens,
 * unknown mode, over-long prompt, a too-large body → 400 / 413 with a message; missing or wrong key → 401; a full
 * queue → 503; the request timeout → 504), a client that disconnects mid-stream frees its slot, and greedy output is
 * the same alone and under load.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { startServer, type ListenOptions, type RunningServer } from '../src/server/serve.js';
import { smallModelDir, smallModelWith } from './helpers/small-model.js';

const CHAT_TEMPLATE =
  "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}" +
  '{% if add_generation_prompt %}<|assistant|>{% endif %}';
const CTX = 64;

let remove: () => void;
let model: RecycleGPT;
const servers: RunningServer[] = [];

async function server(opts: ListenOptions = {}): Promise<RunningServer> {
  const s = await startServer(model, { port: 0, contextLength: CTX, log: () => {}, ...opts });
  servers.push(s);
  return s;
}

function client(s: RunningServer, apiKey = 'none'): OpenAI {
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });
}

async function post(s: RunningServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as { error?: { message: string; param: string | null } } };
}

/** Polls /health until `pred` holds (the scheduler frees a slot at its next step). */
async function until(s: RunningServer, pred: (h: { slots: { active: number } }) => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${s.url}/health`)).json()) as { slots: { active: number } };
    if (pred(h)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail('the server never reached the expected state');
}

before(async () => {
  ({ model, remove } = await smallModelWith({
    'tokenizer_config.json': { eos_token: '<|endoftext|>', chat_template: CHAT_TEMPLATE },
  }));
});

after(async () => {
  await Promise.all(servers.map((s) => s.close(1000)));
  remove();
});

describe('serve: the OpenAI API', () => {
  test('completions, non-streaming and streaming, give the library greedy text; usage, timings, stats', async () => {
    const s = await server({ parallel: 2 });
    const oa = client(s);
    for (const mode of ['standard', 'recycle', 'verified'] as const) {
      const want = await model.generate('Once upon a time', { mode, max_new_tokens: 10 });
      const params = { model: 'x', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, mode };
      const r = await oa.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming);
      assert.equal(r.choices[0]!.text, want.text, `${mode}: text`);
      assert.equal(r.object, 'text_completion');
      assert.deepEqual(r.usage, {
        prompt_tokens: want.stats.prompt_tokens,
        completion_tokens: want.stats.tokens,
        total_tokens: want.stats.prompt_tokens + want.stats.tokens,
      });
      const extra = r as unknown as { timings: Record<string, number>; recycle: Record<string, unknown> };
      assert.equal(extra.timings.predicted_n, want.stats.tokens);
      assert.ok(extra.timings.prompt_ms >= 0 && extra.timings.predicted_per_second >= 0);
      assert.equal(extra.recycle.mode, mode);
      assert.equal(extra.recycle.full_calls, want.stats.full_calls, `${mode}: full calls`);
      assert.equal(extra.recycle.accepted, want.stats.accepted, `${mode}: accepted`);

      const stream = await oa.completions.create({ ...params, stream: true } as OpenAI.CompletionCreateParamsStreaming);
      let text = '',
        finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(text, want.text, `${mode}: streamed text`);
      assert.equal(finish, r.choices[0]!.finish_reason);
    }
  });

  test('stop strings cut the text before the stop and finish with "stop", streaming or not', async () => {
    const s = await server();
    const full = await model.generate('Once upon a time', { max_new_tokens: 16, eos_token_id: [] });
    const words = full.text.split(' ').filter((w) => w.length > 0);
    const stop = ` ${words[Math.min(2, words.length - 1)]!}`;
    const cut = full.text.slice(0, full.text.indexOf(stop));
    const body = { prompt: 'Once upon a time', max_tokens: 16, temperature: 0, ignore_eos: true, stop: [stop] };
    const r = (await post(s, '/v1/completions', body)).json as unknown as {
      choices: { text: string; finish_reason: string }[];
    };
    assert.equal(r.choices[0]!.text, cut);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    const stream = await client(s).completions.create({
      ...body,
      model: 'x',
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    assert.equal(text, cut);
  });

  test('draft_tokens: verified with chained drafts gives standard greedy text; refused for standard', async () => {
    const s = await server();
    const want = await model.generate('The king', { mode: 'standard', max_new_tokens: 12, eos_token_id: [] });
    const body = { prompt: 'The king', max_tokens: 12, temperature: 0, ignore_eos: true };
    for (const k of [2, 3]) {
      const r = await post(s, '/v1/completions', { ...body, mode: 'verified', draft_tokens: k });
      const json = r.json as unknown as { choices: { text: string }[] };
      assert.equal(json.choices[0]!.text, want.text, `draft_tokens ${k}`);
    }
    const bad = await post(s, '/v1/completions', { ...body, mode: 'standard', draft_tokens: 2 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error!.param, 'draft_tokens');
  });

  test('chat completions through the chat template, non-streaming and streaming', async () => {
    const s = await server();
    const oa = client(s);
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'Once upon a time' },
    ];
    const ids = model.tokenizer!.encode('<|system|>You tell stories.\n<|user|>Once upon a time\n<|assistant|>', {
      addSpecialTokens: false,
    });
    const want = await model.generate(ids, { max_new_tokens: 8, eos_token_id: [] });
    const params = { model: 'x', messages, max_tokens: 8, temperature: 0, ignore_eos: true };
    const r = await oa.chat.completions.create(params as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, model.tokenizer!.decode(want.ids, { skipSpecialTokens: true }));
    assert.equal(r.usage?.prompt_tokens, ids.length);
    const stream = await oa.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '',
      role = '',
      usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      role ||= chunk.choices[0]?.delta.role ?? '';
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(role, 'assistant');
    assert.equal(text, r.choices[0]!.message.content);
    assert.equal(usage?.completion_tokens, 8);
  });

  test('the raw stream is OpenAI SSE ending with data: [DONE]; models, health, tokenize, detokenize', async () => {
    const s = await server();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'The', max_tokens: 3, temperature: 0, stream: true }),
    });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter((e) => e.length > 0);
    assert.equal(events.at(-1), 'data: [DONE]');
    for (const e of events.slice(0, -1)) assert.equal(JSON.parse(e.slice('data: '.length)).object, 'text_completion');

    const models = await client(s).models.list();
    assert.equal(models.data[0]!.object, 'model');
    const health = (await (await fetch(`${s.url}/health`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
    const t = (await post(s, '/tokenize', { content: 'Once upon a time' })).json as unknown as { tokens: number[] };
    assert.deepEqual(t.tokens, model.tokenizer!.encode('Once upon a time'));
    const d = (await post(s, '/detokenize', { tokens: t.tokens })).json as unknown as { content: string };
    assert.equal(d.content, 'Once upon a time');
  });
});

describe('serve: errors', () => {
  test('bad requests get a 400 whose message names the problem', async () => {
    const s = await server({ maxTokensCap: 32, maxBodyBytes: 4096 });
    const cases: [unknown, RegExp][] = [
      ['{"prompt": "x",', /not valid JSON/],
      [{ prompt: 'x', temperature: 'hot' }, /^temperature: .*expected number/],
      [{ prompt: 'x', max_tokens: -3 }, /^max_tokens: /],
      [{ prompt: 'x', mode: 'fast' }, /^mode: .*standard.*recycle.*verified/],
      [{ prompt: Array.from({ length: CTX }, () => 1) }, /prompt has 64 tokens but the context length is 64/],
      [{ prompt: 'x', max_tokens: 33 }, /max_tokens: 33 is above this server's cap of 32/],
      [{ prompt: Array.from({ length: 40 }, () => 1), max_tokens: 30 }, /40 prompt tokens \+ 30 new tokens exceed/],
      [{ prompt: 'x', n: 2 }, /^n: only n = 1/],
      [{ prompt: [1, 5000] }, /prompt\.1: token id 5000 is outside the vocabulary/],
      [{}, /^prompt: /],
    ];
    for (const [body, msg] of cases) {
      const r = await post(s, '/v1/completions', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: status`);
      assert.match(r.json.error!.message, msg);
    }
    const chat = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 3 }] });
    assert.equal(chat.status, 400);
    assert.match(chat.json.error!.message, /^messages\.0\.content/);
    const big = await post(s, '/v1/completions', { prompt: 'x'.repeat(5000) });
    assert.equal(big.status, 413);
    const none = await fetch(`${s.url}/v1/nothing`);
    assert.equal(none.status, 404);
  });

  test('a model without a chat template gets a 400 that says so', async () => {
    const plain = await RecycleGPT.load(smallModelDir());
    const s = await startServer(plain, { port: 0, contextLength: CTX, log: () => {} });
    servers.push(s);
    const r = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error!.message, /has no chat template/);
  });

  test('--api-key: a missing or wrong key is a 401; the right one passes; /health stays open', async () => {
    const s = await server({ apiKey: 'sesame' });
    const body = { prompt: 'x', max_tokens: 1, temperature: 0 };
    assert.equal((await post(s, '/v1/completions', body)).status, 401);
    assert.equal((await post(s, '/v1/completions', body, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
    assert.equal((await post(s, '/v1/completions', body, { authorization: 'Bearer sesame' })).status, 200);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    await assert.rejects(client(s, 'wrong').completions.create({ model: 'x', prompt: 'x' }), /401/);
    const ok = await client(s, 'sesame').completions.create({ model: 'x', prompt: 'x', max_tokens: 1 });
    assert.equal(ok.choices.length, 1);
  });

  test('a full queue is a 503; a client that disconnects mid-stream frees its slot', async () => {
    const s = await server({ parallel: 1, maxQueue: 0 });
    const ac = new AbortController();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Once', max_tokens: 60, ignore_eos: true, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the generation is running: the only slot is taken
    const busy = await post(s, '/v1/completions', { prompt: 'x', max_tokens: 1 });
    assert.equal(busy.status, 503);
    assert.match(busy.json.error!.message, /queue of 0 is full/);
    ac.abort();
    await reader.cancel().catch(() => {});
    await until(s, (h) => h.slots.active === 0);
    const again = await post(s, '/v1/completions', { prompt: 'x', max_tokens: 2, temperature: 0 });
    assert.equal(again.status, 200);
  });

  test('a generation past the request timeout is a 504', async () => {
    const s = await server({ requestTimeoutMs: 1 });
    const r = await post(s, '/v1/completions', { prompt: 'Once', max_tokens: 60, ignore_eos: true });
    assert.equal(r.status, 504);
    assert.match(r.json.error!.message, /request timeout of 1 ms/);
  });
});

test('serve: greedy output of a request is the same alone and under load', async () => {
  const s = await server({ parallel: 4, maxQueue: 16 });
  const oa = client(s);
  const prompts = ['Once upon a time', 'The king', 'In the morning the', 'She said that', 'It was', 'A little'];
  const modes = ['standard', 'recycle', 'verified'] as const;
  const ask = (p: string, i: number) =>
    oa.completions
      .create({
        model: 'x',
        prompt: p,
        max_tokens: 6 + 2 * i,
        temperature: 0,
        mode: modes[i % 3],
        ignore_eos: true,
      } as OpenAI.CompletionCreateParamsNonStreaming)
      .then((r) => r.choices[0]!.text);
  const alone: string[] = [];
  for (const [i, p] of prompts.entries()) alone.push(await ask(p, i));
  const together = await Promise.all(prompts.map((p, i) => ask(p, i)));
  assert.deepEqual(together, alone);
  const h = (await (await fetch(`${s.url}/health`)).json()) as { batching: { batchedBaseCalls: number } };
  assert.ok(h.batching.batchedBaseCalls > 0, 'the concurrent requests were never batched');
});
