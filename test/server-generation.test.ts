/**
 * The server's request-to-generation layer (src/server/generation.ts) without HTTP: option errors are 400s naming
 * the request field, and a stop string ends a reply as "stop" even on the token that also reached max_tokens.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { decodeSteps } from '../src/generate/decode.js';
import { isModelCall } from '../src/generate/session.js';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { finishReason, HttpError } from '../src/server/responses.js';
import { prepareGeneration, TextAssembler, type SamplingFields } from '../src/server/generation.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';

let m: RecycleGPT;
let tok: Tokenizer;
const limits = { contextLength: 64, maxTokensCap: 64, defaultMode: 'standard' as const, eos: null };

before(async () => {
  m = await RecycleGPT.load('recycle-small');
  tok = m.tokenizer!;
});

function paramOf(body: SamplingFields): string | null {
  try {
    prepareGeneration(m.model, tok, [1, 2, 3], body, limits, 'prompt');
  } catch (e) {
    assert.ok(e instanceof HttpError, String(e));
    assert.equal(e.status, 400);
    return e.param;
  }
  assert.fail('expected a 400');
}

test('an option the library refuses is a 400 whose param names the request field', () => {
  assert.equal(paramOf({ top_k: 1e15, temperature: 0 }), 'top_k');
  assert.equal(paramOf({ temperature: 0, mode: 'standard', draft_tokens: 2 }), 'draft_tokens');
  assert.equal(paramOf({ temperature: 0, mode: 'recycle', draft_tokens: 'auto' }), 'draft_tokens');
});

/** Greedy generation of `max` tokens through TextAssembler, as the scheduler feeds it; the reply's text and finish. */
function run(max: number, stops: string[]): { text: string; finish: string; ids: number[] } {
  const prep = prepareGeneration(
    m.model,
    tok,
    tok.encode('Once upon a time'),
    { temperature: 0, max_tokens: max },
    limits,
    'prompt',
  );
  const text = new TextAssembler(tok, prep.eos, stops);
  const { session, steps } = decodeSteps(m.model, prep.prompt, prep.options, undefined, prep.eos);
  for (const step of steps) {
    if (isModelCall(step)) session.run(step);
    else text.push(step, session);
  }
  return { text: text.text, finish: finishReason(session.stats.finish_reason), ids: session.output };
}

test('a stop string in the token that reaches max_tokens ends the reply as "stop", the text cut before it', () => {
  // The first length whose last token's text does not occur earlier in the reply (so the stop hits only there).
  for (let max = 2; max <= 30; max++) {
    const plain = run(max, []);
    const last = tok.decode([plain.ids.at(-1)!]);
    const before = plain.text.slice(0, plain.text.length - last.length);
    if (plain.finish !== 'length' || last.trim() === '' || (before + last).indexOf(last) !== before.length) continue;
    const stopped = run(max, [last]);
    assert.equal(stopped.text, before);
    assert.equal(stopped.finish, 'stop');
    return;
  }
  assert.fail('no reply length of 2..30 ends in a token whose text is new');
});

test("the server ends a generation at generation_config.json's eos_token_id, as RecycleGPT.generate does", async () => {
  const { createServerApp } = await import('../src/server/app.js');
  const body = { prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
  const ask = async (): Promise<{ text: string; finish: string; tokens: number }> => {
    const { app } = createServerApp(m, { contextLength: 64, log: () => {} });
    const r = await app.request('/v1/completions', { method: 'POST', body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    const j = (await r.json()) as {
      choices: { text: string; finish_reason: string }[];
      usage: { completion_tokens: number };
    };
    return { text: j.choices[0]!.text, finish: j.choices[0]!.finish_reason, tokens: j.usage.completion_tokens };
  };
  const plain = await ask();
  assert.equal(plain.tokens, 8);
  // The model's generation_config.json names the 4th greedy token as an end-of-generation id (as Llama 3's lists
  // <|eot_id|> beside config.json's eos): the reply ends there, its text left out.
  const ids = (await m.generate(body.prompt, { max_new_tokens: 8 })).ids;
  const saved = m.generationConfig;
  m.generationConfig = { defaults: { eos_token_id: [ids[3]!] }, maxLength: null, bosTokenId: null, padTokenId: null };
  try {
    const lib = await m.generate(body.prompt, { max_new_tokens: 8 });
    const served = await ask();
    assert.equal(served.tokens, lib.ids.length);
    assert.equal(served.finish, 'stop');
    assert.equal(served.text, lib.text);
    assert.ok(served.tokens < 8);
  } finally {
    m.generationConfig = saved;
  }
});
