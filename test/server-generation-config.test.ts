/**
 * `recyclegpt serve` applies the model's generation_config.json as the CLI and the library do: a sampling field the
 * request leaves out comes from the file (temperature, top_k, top_p, repetition_penalty, max_new_tokens; do_sample
 * false makes a request without temperature greedy), a field the request gives wins, OpenAI's defaults fill the
 * rest. Checked through the `openai` client against RecycleGPT.generate with the same seed (which merges the same
 * file under its options).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import OpenAI from 'openai';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { smallModelWith } from './helpers/small-model.js';

const PROMPT = 'Once upon a time';
const cleanups: Array<() => void> = [];
const servers: RunningServer[] = [];

/** The shipped small model with `genConfig` as its generation_config.json, and an `openai` client of a server. */
async function serve(genConfig: Record<string, unknown>): Promise<{ model: RecycleGPT; oa: OpenAI }> {
  const { model, remove } = await smallModelWith({ 'generation_config.json': genConfig });
  cleanups.push(remove);
  const s = await startServer(model, { port: 0, contextLength: 128, log: () => {} });
  servers.push(s);
  return { model, oa: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

async function complete(oa: OpenAI, fields: Record<string, unknown>): Promise<{ text: string; tokens: number }> {
  const params = { model: 'x', prompt: PROMPT, ignore_eos: true, ...fields };
  const r = await oa.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming);
  return { text: r.choices[0]!.text, tokens: r.usage!.completion_tokens };
}

after(async () => {
  await Promise.all(servers.map((s) => s.close(1000)));
  for (const remove of cleanups) remove();
});

describe("serve: generation_config.json's defaults under the request's fields", () => {
  test('sampling defaults and max_new_tokens apply when the request leaves them out', async () => {
    const gen = {
      do_sample: true,
      temperature: 0.35,
      top_k: 3,
      top_p: 0.9,
      repetition_penalty: 1.3,
      max_new_tokens: 9,
    };
    const { model, oa } = await serve(gen);
    for (const seed of [1, 2, 3]) {
      const want = await model.generate(PROMPT, { seed, eos_token_id: [] });
      assert.equal(want.stats.tokens, 9);
      const got = await complete(oa, { seed });
      assert.deepEqual(got, { text: want.text, tokens: 9 }, `seed ${seed}`);
      // the request's own fields win, key by key
      const mine = { seed, max_new_tokens: 6, temperature: 1.5, top_k: 0, top_p: 1, repetition_penalty: 1 };
      const want2 = await model.generate(PROMPT, { ...mine, eos_token_id: [] });
      const fields = { seed, max_tokens: 6, temperature: 1.5, top_k: 0, top_p: 1, repetition_penalty: 1 };
      assert.deepEqual(await complete(oa, fields), { text: want2.text, tokens: 6 }, `seed ${seed}, request fields`);
    }
  });

  test('do_sample false: a request without temperature is greedy; temperature > 0 in the request samples', async () => {
    const { model, oa } = await serve({ do_sample: false, max_new_tokens: 8 });
    const greedy = await model.generate(PROMPT, { eos_token_id: [] });
    assert.deepEqual(await complete(oa, { seed: 5 }), { text: greedy.text, tokens: 8 });
    const sampled = await model.generate(PROMPT, {
      do_sample: true,
      temperature: 1,
      top_k: 0,
      seed: 5,
      eos_token_id: [],
    });
    assert.deepEqual(await complete(oa, { seed: 5, temperature: 1 }), { text: sampled.text, tokens: 8 });
  });
});
