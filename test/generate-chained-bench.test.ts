/**
 * The decode bench with chained drafts: verified runs once per draft_tokens value (auto included), recycle at its
 * integer values, each run labelled with its k, with per-depth acceptance and the k auto chose, and counters that
 * agree with the schedule (tokens per full call ≤ k + 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchVariants, formatDecodeBench, runDecodeBench } from '../src/bench/decode.js';
import { formatModeQuality, modeQuality } from '../src/bench/mode-quality.js';
import { randomModel } from './helpers/models.js';

test('bench variants: standard once, recycle at its ks, verified at every draft_tokens value', () => {
  const v = benchVariants(['standard', 'recycle', 'verified'], [1, 3, 'auto'], [1, 2]);
  assert.deepEqual(
    v.map((x) => `${x.mode}:${x.draftTokens}`),
    ['standard:1', 'recycle:1', 'recycle:2', 'verified:1', 'verified:3', 'verified:auto'],
  );
});

test('decode bench reports verified at each draft_tokens with per-depth acceptance and auto choices', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7 });
  const r = runDecodeBench(model, {
    name: 'tiny',
    modes: ['standard', 'recycle', 'verified'],
    draftTokens: [1, 2, 'auto'],
    recycleDraftTokens: [1, 3],
    prompts: [
      [1, 2, 3],
      [4, 5, 6, 7],
    ],
    tokens: 24,
    repeats: 1,
    bandwidth: false,
    callTimings: false,
  });
  assert.deepEqual(
    r.runs.map((x) => `${x.mode}:${x.draft_tokens}`),
    ['standard:1', 'recycle:1', 'recycle:3', 'verified:1', 'verified:2', 'verified:auto'],
  );
  for (const x of r.runs) {
    if (x.mode === 'standard') continue;
    const k = x.draft_tokens === 'auto' ? 7 : x.draft_tokens;
    assert.ok(x.tokens_per_full_call > 1 && x.tokens_per_full_call <= k + 1, `${x.mode} ${x.draft_tokens}`);
    if (x.mode === 'verified') {
      assert.ok(x.acceptance_by_depth !== null && x.acceptance_by_depth.length >= 1);
      if (x.draft_tokens !== 'auto') assert.equal(x.acceptance_by_depth.length, x.draft_tokens);
      assert.ok(Object.keys(x.rounds_by_draft_tokens).length >= 1);
    } else assert.equal(x.acceptance_by_depth, null);
  }
  const rec3 = r.runs.find((x) => x.mode === 'recycle' && x.draft_tokens === 3)!;
  assert.ok(rec3.tokens_per_full_call > 3, `recycle k=3: ${rec3.tokens_per_full_call} tokens per full call`);
  const text = formatDecodeBench(r);
  assert.match(text, /verified k=2 /);
  assert.match(text, /verified auto .*\(chose k=\d/);
});

test('mode quality with draft_tokens 2: verified greedy equals standard; recycle: 2 module tokens a call', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7 });
  const val = Array.from({ length: 400 }, (_, i) => (i * 7 + (i >> 3)) % 12);
  const r = modeQuality(model, val, { prompts: 4, promptTokens: 8, newTokens: 16, temperature: 0, draftTokens: 2 });
  assert.equal(r.draft_tokens, 2);
  assert.deepEqual(r.continuations.verified, r.continuations.standard);
  const rec = r.modes.recycle;
  assert.ok(rec.tokens / rec.full_calls > 2, `recycle: ${rec.tokens} tokens, ${rec.full_calls} full calls`);
  assert.match(formatModeQuality(r, 'tiny'), /2 module tokens per full call/);
});
