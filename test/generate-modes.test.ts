/**
 * Decoding modes on small random models: KV-cache decoding equals recomputation, verified greedy equals
 * standard greedy token for token (drafts both accepted and rejected), recycle greedy alternates base and
 * module argmaxes, context/EOS/max_new_tokens limits, and clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/kernels/backend.js';
import { getBackend } from '../src/kernels/index.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { decode, decodeAll } from '../src/generate/decode.js';
import { argmax } from '../src/generate/sampler.js';
import { randomModel } from './helpers/models.js';
import {
  baseLogitsFresh,
  checkVerifiedGreedy,
  greedyWithoutCache,
  moduleLogitsFresh,
  randomPrompts,
} from './helpers/decoding.js';

const backends: Backend[] = [createRefBackend()];
const def = getBackend();
if (def.name !== 'ref') backends.push(def);

const shapes = [
  { preset: 'tiny' as const, scale: 10 },
  { preset: 'tiny-llama' as const, scale: 5 },
];

for (const backend of backends) {
  for (const { preset, scale } of shapes) {
    const tag = `${preset}, ${backend.name}`;

    test(`KV-cache decoding equals recomputing the whole sequence (${tag})`, () => {
      const model = randomModel({ preset, scale, seed: 11, backend });
      for (const prompt of randomPrompts(4, 12, 6, 5)) {
        const run = decodeAll(model, prompt, { max_new_tokens: 20 });
        assert.deepEqual(run.ids, greedyWithoutCache(model, prompt, 20), `prompt [${prompt}]`);
        // And the logits themselves, step by step: cached 1-row calls vs fresh whole-sequence forwards.
        const cache = model.newBaseCache(),
          seq = [...prompt, ...run.ids];
        let logits = model.forwardBase(prompt, cache, 'last').logits;
        for (let t = prompt.length; t < seq.length; t++) {
          const fresh = baseLogitsFresh(model, seq.slice(0, t));
          let d = 0;
          for (let i = 0; i < fresh.length; i++) d = Math.max(d, Math.abs(fresh[i]! - logits[i]!));
          assert.equal(
            d,
            0,
            `position ${t}: cached logits differ from recomputed ones by ${d} (rows must be bit-identical)`,
          );
          logits = model.forwardBase([seq[t]!], cache, 'last').logits;
        }
      }
    });

    test(`verified greedy equals standard greedy token for token (${tag})`, () => {
      const model = randomModel({ preset, scale, seed: 3, backend });
      const prompts = randomPrompts(24, 12, 8, 9);
      const plain = checkVerifiedGreedy(model, prompts, { max_new_tokens: 24 });
      const penalised = checkVerifiedGreedy(model, prompts.slice(0, 8), {
        max_new_tokens: 24,
        repetition_penalty: 1.5,
      });
      const accepted = plain.accepted + penalised.accepted,
        rejected = plain.rejected + penalised.rejected;
      assert.ok(accepted > 0 && rejected > 0, `both draft paths must run: accepted ${accepted}, rejected ${rejected}`);
    });

    test(`recycle greedy: tokens alternate base argmax / module argmax (${tag})`, () => {
      const model = randomModel({ preset, scale, seed: 7, backend });
      for (const prompt of randomPrompts(6, 12, 6, 13)) {
        const { ids, events, stats } = decodeAll(model, prompt, { mode: 'recycle', max_new_tokens: 15 });
        assert.equal(ids.length, 15);
        const seq = [...prompt];
        for (let i = 0; i < ids.length; i++) {
          const want = i % 2 === 0 ? argmax(baseLogitsFresh(model, seq)) : argmax(moduleLogitsFresh(model, seq));
          assert.equal(events[i]!.source, i % 2 === 0 ? 'full' : 'recycled');
          assert.equal(ids[i], want, `prompt [${prompt}], token ${i} (${events[i]!.source})`);
          seq.push(ids[i]!);
        }
        // The prefill plays the first full call; each later full call processes two tokens and yields two.
        assert.equal(stats.full_calls, 8);
        assert.equal(stats.module_calls, 7);
        assert.equal(stats.recycled, 7);
      }
    });
  }
}

test('verified mode counters and sources', () => {
  const model = randomModel({ scale: 10, seed: 3 });
  const { events, stats } = decodeAll(model, [1, 2, 3], { mode: 'verified', max_new_tokens: 30 });
  assert.equal(stats.accepted, events.filter((e) => e.source === 'accepted').length);
  assert.equal(stats.rejected, events.filter((e) => e.source === 'replaced').length);
  // every full call after the prefill yields 2 tokens on acceptance, 1 on rejection (+ a final 1-token step)
  assert.ok(stats.full_calls <= 1 + stats.accepted + stats.rejected + 1);
  assert.deepEqual(
    events.map((e) => e.index),
    events.map((_, i) => i),
  );
});

test('max_new_tokens, the context length and EOS end generation in every mode', () => {
  const model = randomModel({ scale: 10, seed: 3, maxPositions: 16 });
  for (const mode of ['standard', 'recycle', 'verified'] as const) {
    for (const n of [1, 2, 3, 4, 7])
      assert.equal(decodeAll(model, [1, 2], { mode, max_new_tokens: n }).ids.length, n, `${mode} ${n}`);
    const ctx = decodeAll(model, [1, 2, 3], { mode, max_new_tokens: 100 });
    assert.equal(ctx.ids.length, 13, `${mode}: stops at the context length`);
    assert.equal(ctx.stats.finish_reason, 'context');
    const free = decodeAll(model, [1, 2, 3], { mode, max_new_tokens: 10 }).ids;
    const eos = free[4]!;
    const cut = decodeAll(model, [1, 2, 3], { mode, max_new_tokens: 10, eos_token_id: eos });
    assert.deepEqual(cut.ids, free.slice(0, free.indexOf(eos) + 1), `${mode}: stops after EOS`);
    assert.equal(cut.stats.finish_reason, 'eos');
  }
});

test('clear errors: long or empty prompt, no module, bad options', () => {
  const model = randomModel({ maxPositions: 16 });
  const plain = randomModel({ withModule: false });
  const go = (m: typeof model, p: number[], o: Record<string, unknown>): unknown => decodeAll(m, p, o);
  assert.throws(() => go(model, [], {}), /prompt is empty/);
  assert.throws(() => go(model, Array(16).fill(1), {}), /prompt has 16 tokens but the context length is 16/);
  assert.throws(() => go(model, [1, 99], {}), /prompt token 1 is 99, outside the vocabulary/);
  for (const mode of ['recycle', 'verified'])
    assert.throws(() => go(plain, [1], { mode }), new RegExp(`mode "${mode}" needs a recyclable module`));
  assert.equal(decodeAll(plain, [1], { max_new_tokens: 3 }).ids.length, 3);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ temperature: 0 }, /temperature must be a number > 0/],
    [{ temperature: Number.NaN }, /temperature/],
    [{ top_k: -1 }, /top_k must be an integer/],
    [{ top_k: 2.5 }, /top_k/],
    [{ top_p: 0 }, /top_p must be a number in \(0, 1\]/],
    [{ top_p: 1.5 }, /top_p/],
    [{ min_p: -0.1 }, /min_p/],
    [{ repetition_penalty: 0 }, /repetition_penalty/],
    [{ max_new_tokens: 0 }, /max_new_tokens/],
    [{ max_new_tokens: '5' }, /max_new_tokens/],
    [{ do_sample: 'yes' }, /do_sample must be a boolean/],
    [{ mode: 'fast' }, /mode must be one of standard, recycle, verified/],
    [{ seed: -1 }, /seed/],
    [{ eos_token_id: 100 }, /eos_token_id 100 is outside the vocabulary/],
    [{ maxNewTokens: 5 }, /unknown generation option "maxNewTokens"/],
    [{ stop_strings: [''] }, /stop_strings/],
  ];
  for (const [o, re] of bad) assert.throws(() => go(model, [1], o), re, JSON.stringify(o));
});

test('an aborted signal stops generation before the next model call', () => {
  const model = randomModel({ scale: 10 });
  const ac = new AbortController();
  const run = decode(model, [1, 2], { mode: 'verified', max_new_tokens: 20, signal: ac.signal });
  const got: number[] = [];
  assert.throws(() => {
    for (const ev of run) {
      got.push(ev.id);
      if (got.length === 3) ac.abort(new Error('user cancelled'));
    }
  }, /user cancelled/);
  assert.ok(got.length >= 3 && got.length <= 4, `stopped after ${got.length} tokens`);
});

test(`verified greedy equals standard greedy on a wider model with 2 threads (${def.name})`, () => {
  const before = def.threads();
  def.setThreads(2);
  try {
    const model = randomModel({ preset: 'small', vocabSize: 96, scale: 3, seed: 4, backend: def });
    const r = checkVerifiedGreedy(model, randomPrompts(6, 96, 12, 3), { max_new_tokens: 24 });
    assert.ok(r.accepted + r.rejected > 0);
  } finally {
    def.setThreads(before);
  }
});

// Recomputing a sequence longer than 8 rows takes the backend's many-row `linear` (GEMM) path, whose rows the
// Backend contract guarantees only to float32 rounding (exact for M ≤ 8, the decode path). So: exact while the
// recomputation has ≤ 8 rows or the backend is ref (plain loops, exact at any M); a tight bound otherwise.
test(`KV-cache decoding equals recomputation on a wider model, prompts of 3..40 tokens (${def.name})`, () => {
  const model = randomModel({ preset: 'small', vocabSize: 96, scale: 3, seed: 4, backend: def });
  for (const plen of [3, 12, 40]) {
    const prompt = Array.from({ length: plen }, (_, i) => (i * 13 + 5) % 96);
    const run = decodeAll(model, prompt, { max_new_tokens: 6 });
    const seq = [...prompt, ...run.ids],
      cache = model.newBaseCache();
    let logits = model.forwardBase(prompt, cache, 'last').logits;
    for (let t = prompt.length; t < seq.length; t++) {
      const fresh = baseLogitsFresh(model, seq.slice(0, t));
      let d = 0,
        scale = 0;
      for (let i = 0; i < fresh.length; i++) {
        d = Math.max(d, Math.abs(fresh[i]! - logits[i]!));
        scale = Math.max(scale, Math.abs(fresh[i]!));
      }
      const exact = def.name === 'ref' || (t <= 8 && plen <= 8);
      if (!exact) {
        assert.ok(
          d <= 1e-5 * Math.max(1, scale),
          `prompt of ${plen}, position ${t}: cached logits differ from recomputed ones by ${d}`,
        );
        logits = model.forwardBase([seq[t]!], cache, 'last').logits;
        continue;
      }
      assert.equal(d, 0, `prompt of ${plen}, position ${t}: cached logits differ from recomputed ones by ${d}`);
      logits = model.forwardBase([seq[t]!], cache, 'last').logits;
    }
  }
});
