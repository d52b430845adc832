/**
 * The RecycleGPT API on model directories: text in, text + stats out, streams that say how each token was made,
 * stop strings, AbortSignal, generations that do not block each other, and clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRefBackend } from '../src/kernels/ref.js';
import { RecycleGPT, type StreamToken } from '../src/generate/recyclegpt.js';
import { randomModel, writeModelDir } from './helpers/models.js';
import { fixturesDir } from './helpers/fixtures.js';

const fixtures = fixturesDir;
const text = 'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log. '.repeat(4);
const dir = mkdtempSync(join(tmpdir(), 'recyclegpt-api-'));
writeModelDir(dir, randomModel({ vocabSize: 300, scale: 6, seed: 5 }), text);
const m = await RecycleGPT.load(dir, { backend: createRefBackend() });
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('generate: text + stats in every mode; verified greedy text equals standard', async () => {
  assert.ok(m.tokenizer && m.hasModule);
  const std = await m.generate('the cat', { max_new_tokens: 24, eos_token_id: [] });
  const ver = await m.generate('the cat', { max_new_tokens: 24, eos_token_id: [], mode: 'verified' });
  const rec = await m.generate('the cat', { max_new_tokens: 24, eos_token_id: [], mode: 'recycle' });
  assert.equal(ver.text, std.text);
  assert.deepEqual(ver.ids, std.ids);
  for (const r of [std, ver, rec]) {
    assert.equal(r.ids.length, 24);
    assert.equal(r.stats.tokens, 24);
    assert.equal(r.stats.finish_reason, 'length');
    assert.equal(r.stats.prompt_tokens, m.encode('the cat').length);
    assert.ok(r.stats.tokens_per_s > 0 && r.stats.seconds > 0);
    assert.equal(r.text, m.tokenizer!.decode(r.ids));
  }
  assert.equal(std.stats.full_calls, 24);
  assert.equal(rec.stats.full_calls, 12);
  assert.ok(ver.stats.accepted + ver.stats.rejected > 0);
});

test('stream: each token says how it was made; texts add up', async () => {
  const toks: StreamToken[] = [];
  const s = m.stream('a dog', { mode: 'recycle', max_new_tokens: 9, eos_token_id: [] });
  for await (const t of s) toks.push(t);
  assert.deepEqual(
    toks.map((t) => t.source),
    ['full', 'recycled', 'full', 'recycled', 'full', 'recycled', 'full', 'recycled', 'full'],
  );
  assert.equal(toks.map((t) => t.text).join(''), s.text);
  assert.equal(s.stats.module_calls, 4);
  const ver: StreamToken[] = [];
  for await (const t of m.stream('a dog', { mode: 'verified', max_new_tokens: 20, eos_token_id: [] })) ver.push(t);
  assert.ok(ver.every((t) => ['full', 'accepted', 'replaced'].includes(t.source)));
});

test('sampling with a seed is reproducible; EOS from the tokenizer ends generation', async () => {
  const o = { do_sample: true, temperature: 0.9, top_k: 20, seed: 7, max_new_tokens: 16, mode: 'verified' as const };
  const a = await m.generate('the', o),
    b = await m.generate('the', o);
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.stats.seed, 7);
  const eos = m.tokenizer!.eosTokenId!;
  const forced = await m.generate('the', { max_new_tokens: 5, eos_token_id: [a.ids[2]!, eos] });
  assert.ok(forced.ids.length <= 5);
});

test('stop strings cut the text before the match', async () => {
  const full = await m.generate('the mat', { max_new_tokens: 30, eos_token_id: [] });
  const stop = full.text.slice(10, 12);
  const cut = await m.generate('the mat', { max_new_tokens: 30, eos_token_id: [], stop_strings: [stop] });
  assert.equal(cut.text, full.text.slice(0, full.text.indexOf(stop)));
  assert.equal(cut.stats.finish_reason, 'stop');
});

test('AbortSignal: a timer cancels a running generation; a suspended stream does not block another', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('too slow')), 5);
  await assert.rejects(m.generate('the', { max_new_tokens: 60, eos_token_id: [], signal: ac.signal }), /too slow/);
  const first = m.stream('the', { max_new_tokens: 4, eos_token_id: [] })[Symbol.asyncIterator]();
  await first.next();
  const second = await m.generate('the', { max_new_tokens: 2, eos_token_id: [] });
  assert.equal(second.ids.length, 2, 'runs while the first is suspended');
  await first.return(undefined);
});

test('clear errors: empty prompt, too long, no module, no tokenizer, bad options', async () => {
  assert.throws(() => m.stream(''), /prompt is empty/);
  assert.throws(() => m.stream('the cat '.repeat(40)), /context length is 64/);
  assert.throws(() => m.stream('the', { top_p: 2 }), /top_p must be a number in \(0, 1\]/);
  const noTok = await RecycleGPT.load(join(fixtures, 'tiny-recycle-gpt2'), { backend: createRefBackend() });
  assert.equal(noTok.tokenizer, null);
  assert.throws(() => noTok.stream('hello'), /no tokenizer/);
  const r = await noTok.generate([1, 2, 3], { mode: 'verified', max_new_tokens: 5 });
  assert.equal(r.text, '');
  assert.ok(r.ids.length >= 1 && r.ids.length <= 5);
  const plain = await RecycleGPT.load(join(fixtures, 'tiny-gpt2'), { backend: createRefBackend() });
  assert.throws(() => plain.stream([1, 2], { mode: 'recycle' }), /mode "recycle" needs a recyclable module/);
});
