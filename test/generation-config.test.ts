/**
 * generation_config.json as generation defaults (issue 12): RecycleGPT.load and fromBytes read it, a generation's own
 * options override it key by key, max_length bounds prompt + new tokens when no max_new_tokens is given, the
 * sampling warning is about the caller's options only, and the CLI leaves unset flags to the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { withGenerationDefaults } from '../src/generate/recyclegpt-core.js';
import { parseGenerationConfig } from '../src/tokenizer/generation-config.js';
import { optionsFromFlags } from '../src/cli/generation-flags.js';
import { fixturesDir } from './helpers/fixtures.js';

const fixture = join(fixturesDir, 'tiny-recycle-gpt2');
const prompt = [1, 2, 3, 4];

test('withGenerationDefaults: the caller wins key by key; max_length only without max_new_tokens', () => {
  const gen = parseGenerationConfig(
    { do_sample: true, temperature: 0.6, top_p: 0.9, max_length: 10, eos_token_id: 7 },
    'generation_config.json',
  );
  assert.deepEqual(withGenerationDefaults({ temperature: 1.2, top_p: undefined }, gen, 4), {
    do_sample: true,
    temperature: 1.2,
    top_p: 0.9,
    eos_token_id: [7],
    max_new_tokens: 6,
  });
  assert.equal(withGenerationDefaults({ max_new_tokens: 3 }, gen, 4).max_new_tokens, 3);
  assert.equal(withGenerationDefaults({}, gen, 40).max_new_tokens, 1);
  assert.deepEqual(withGenerationDefaults({ mode: 'verified' }, null, 4), { mode: 'verified' });
});

test('load and fromBytes apply generation_config.json; options override; warnings only for the caller', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rg-genconfig-'));
  try {
    cpSync(fixture, dir, { recursive: true });
    writeFileSync(
      join(dir, 'generation_config.json'),
      JSON.stringify({ do_sample: true, temperature: 0.7, top_k: 5, max_new_tokens: 3, eos_token_id: null }),
    );
    const warnings: string[] = [];
    const m = await RecycleGPT.load(dir, { threads: 1, onWarning: (w) => warnings.push(w) });
    assert.ok(m.generationConfig);
    const s = m.stream(prompt, { seed: 1 });
    assert.deepEqual(
      [s.options.doSample, s.options.temperature, s.options.topK, s.options.maxNewTokens],
      [true, 0.7, 5, 3],
    );
    const r = await m.generate(prompt, { seed: 1 });
    assert.ok(r.ids.length <= 3 && r.ids.length >= 1);
    // the caller's options win; a sampling option given under the file's do_sample true is effective: no warning
    const o = m.stream(prompt, { temperature: 1.3, max_new_tokens: 2, do_sample: undefined }).options;
    assert.deepEqual([o.doSample, o.temperature, o.maxNewTokens], [true, 1.3, 2]);
    assert.deepEqual(warnings, []);
    // greedy by the caller: the file's sampling values are not the caller's, so they raise no warning either
    assert.equal(m.stream(prompt, { do_sample: false }).options.doSample, false);
    assert.deepEqual(warnings, []);
    m.stream(prompt, { do_sample: false, top_p: 0.5 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /top_p 0\.5 has no effect/);

    const b = await RecycleGPT.fromBytes({
      config: readFileSync(join(dir, 'config.json')),
      weights: readFileSync(join(dir, 'model.safetensors')),
      generationConfig: readFileSync(join(dir, 'generation_config.json')),
    });
    assert.equal(b.stream(prompt).options.maxNewTokens, 3);
    // without the file: the library's defaults
    const plain = await RecycleGPT.load(fixture, { threads: 1 });
    assert.equal(plain.generationConfig, null);
    const p = plain.stream(prompt).options;
    assert.deepEqual([p.doSample, p.maxNewTokens], [false, 128]);
    // a bad file is an error naming it
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ top_p: 3 }));
    await assert.rejects(RecycleGPT.load(dir, { threads: 1 }), /generation_config\.json: top_p must be/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI flags leave max_new_tokens and do_sample to the model unless given', () => {
  const base = { mode: 'standard', stop: [] as string[] };
  const { options } = optionsFromFlags(base);
  assert.equal(options.max_new_tokens, undefined);
  assert.equal(options.do_sample, undefined);
  const given = optionsFromFlags({ ...base, maxNewTokens: 9, doSample: true, temperature: 0.5 }).options;
  assert.deepEqual([given.max_new_tokens, given.do_sample, given.temperature], [9, true, 0.5]);
});
