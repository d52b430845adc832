/**
 * draft_tokens "auto": the chooser picks the k with the most expected tokens per second from acceptance and call
 * costs (checked on synthetic costs and counts, where the right k is known), the costs are measured once per model
 * and cached, and verified decoding with auto stays lossless (greedy equals standard) and reports its choices.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAll } from '../src/generate/decode.js';
import { AutoDraftTokens, callCosts, newDraftMemory, type CallCosts } from '../src/generate/modes/draft-k.js';
import { emptyStats, type GenerationStats } from '../src/generate/types.js';
import { randomModel } from './helpers/models.js';
import { randomPrompts } from './helpers/decoding.js';

/** Stats whose depth-j acceptance (given depth j reached) is alpha[j], from n checks each. */
function statsWith(alpha: number[], n = 1000): GenerationStats {
  const s = emptyStats('verified', 4, 1, 'auto');
  s.checked_by_depth = alpha.map(() => n);
  s.accepted_by_depth = alpha.map((a) => Math.round(a * n));
  return s;
}

/** Full calls nearly flat in M (weight-bound), module calls a tenth of a full call. */
const flat: CallCosts = {
  fullMs: [10, 10.2, 10.4, 10.6, 10.8, 11, 11.2, 11.4],
  moduleMs: [1, 1.04, 1.09, 1.13, 1.17, 1.21, 1.26, 1.3],
};

test('auto: high acceptance and flat full-call costs → the most drafts; low acceptance → one', () => {
  const auto = new AutoDraftTokens(flat);
  assert.equal(auto.choose(statsWith([0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]), 7), 7);
  assert.equal(auto.choose(statsWith([0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]), 3), 3, 'capped by the room');
  assert.equal(auto.choose(statsWith([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]), 7), 1);
  // Depth 2 is often right, depth 3 almost never: two drafts.
  assert.equal(auto.choose(statsWith([0.8, 0.7, 0.02, 0.02, 0.02, 0.02, 0.02]), 7), 2);
});

test('auto: a full call whose cost grows with M makes deep drafts not worth it', () => {
  const steep: CallCosts = { fullMs: [10, 20, 30, 40, 50, 60, 70, 80], moduleMs: [1, 2, 3, 4, 5, 6, 7, 8] };
  const auto = new AutoDraftTokens(steep);
  assert.equal(auto.choose(statsWith([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]), 7), 1);
});

test('auto: observed call times rescale the calibrated costs (a slow module makes chains dearer)', () => {
  const auto = new AutoDraftTokens(flat);
  const s = statsWith([0.7, 0.6, 0.5, 0.4, 0.3, 0.3, 0.3]);
  const before = auto.choose(s, 7);
  for (let i = 0; i < 40; i++) auto.observeModule(1, 30, true); // a chained module call now costs 3 full calls
  const after = auto.choose(s, 7);
  assert.ok(before > 1 && after < before, `k ${before} → ${after}`);
});

test('auto: what a generation learns (acceptance by depth, call-time scales) starts the next one', () => {
  const memory = newDraftMemory();
  const first = new AutoDraftTokens(flat, memory);
  // 60 rounds at k = 3: depth 1 accepted 9 times in 10, depth 2 in 4 of the 9 rounds reaching it, depth 3 never
  for (let r = 0; r < 60; r++) first.observeRound(3, r % 10 === 0 ? 0 : r % 2 ? 1 : 2);
  for (let i = 0; i < 40; i++) first.observeModule(1, 30, true);
  const next = new AutoDraftTokens(flat, memory);
  const fresh = emptyStats('verified', 4, 1, 'auto');
  const a = next.acceptance(fresh, 4);
  assert.ok(Math.abs(a[0]! - 0.9) < 0.02 && Math.abs(a[1]! - 4 / 9) < 0.05 && a[2]! < 0.01, String(a));
  assert.equal(a[3], a[2], 'a depth never reached: like the one above it');
  assert.ok(next.chainScale() > 20, 'the slow chained calls are remembered');
  assert.equal(next.choose(fresh, 7), 1, 'dear chains and a weak depth 2: one draft from the first round');
  assert.ok(new AutoDraftTokens(flat).choose(fresh, 7) > 1, 'no memory: ½ at every depth and cheap chains');
  // the counts decay: a window of recent rounds, not the whole history
  for (let r = 0; r < 200; r++) first.observeRound(1, 0);
  assert.ok(next.acceptance(fresh, 1)[0]! < 0.05, 'depth 1 rejected for 200 rounds: forgotten 0.9');
});

test('auto: untried depths are estimated like the depth above them (optimistic), measured ones by their counts', () => {
  const auto = new AutoDraftTokens(flat);
  const s = emptyStats('verified', 4, 1, 'auto');
  assert.deepEqual(auto.acceptance(s, 3), [0.5, 0.5, 0.5]);
  s.checked_by_depth = [98];
  s.accepted_by_depth = [89];
  const a = auto.acceptance(s, 3);
  assert.ok(Math.abs(a[0]! - 0.9) < 1e-12 && a[1] === a[0] && a[2] === a[0], String(a));
});

test('auto: the call costs are measured once per model, thread count and draft vocabulary, positive and finite', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7 });
  const c = callCosts(model);
  assert.equal(c.fullMs.length, 8);
  assert.equal(c.moduleMs.length, 8);
  for (const x of [...c.fullMs, ...c.moduleMs]) assert.ok(x > 0 && Number.isFinite(x), String(x));
  assert.equal(callCosts(model), c, 'cached');
  // a draft vocabulary changes a module call's cost: measured again, and cached under it
  model.setDraftVocab([0, 1, 2, 3, 4]);
  const d = callCosts(model);
  assert.notEqual(d, c, 'a draft vocabulary is calibrated apart');
  assert.equal(callCosts(model), d, 'cached with the draft vocabulary');
  model.setDraftVocab(null);
  assert.equal(callCosts(model), c, 'the whole head keeps its calibration');
});

test('auto: module calls cost what was measured at their row count (a catch-up on 2..4 rows: not interpolated)', () => {
  // a module call flat up to 4 rows, then dear: a linear guess between 1 and 8 rows would overcharge 2..4
  const costs: CallCosts = { fullMs: flat.fullMs, moduleMs: [1, 1, 1, 1, 4, 5, 6, 7] };
  const auto = new AutoDraftTokens(costs);
  for (let M = 1; M <= 8; M++) assert.equal(auto.moduleMs(M), costs.moduleMs[M - 1]);
  assert.equal(auto.moduleMs(12), 7, 'past 8 rows: the 8-row cost');
  // 2 drafts, both accepted: 3 tokens, so the catch-up call has 3 rows and costs 1 (+ one chained call)
  assert.ok(Math.abs(auto.rate(2, [1, 1]) - 3 / (10.4 + 1 + 1)) < 1e-12);
});

test('auto: a context shorter than 24 positions calibrates every size it holds, the largest standing in', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7, maxPositions: 11 });
  const c = callCosts(model);
  for (const x of [...c.fullMs, ...c.moduleMs]) assert.ok(x > 0 && Number.isFinite(x), String(x));
  // 11 positions: a 3-token context, so up to 8 rows fit; 6 positions would leave room for 6 (sizes 7, 8 repeat 6)
  const short = callCosts(randomModel({ preset: 'tiny', scale: 4, seed: 7, maxPositions: 6 }));
  assert.equal(short.fullMs[7], short.fullMs[5]);
  assert.equal(short.moduleMs[7], short.moduleMs[5]);
  assert.equal(short.moduleMs[6], short.moduleMs[5]);
});

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`verified with draft_tokens "auto" equals standard greedy and reports its choices (${preset})`, () => {
    const model = randomModel({ preset, scale: 4, seed: 7 });
    for (const p of randomPrompts(6, 12, 8, 3)) {
      const std = decodeAll(model, p, { max_new_tokens: 40 });
      const run = decodeAll(model, p, { mode: 'verified', draft_tokens: 'auto', max_new_tokens: 40 });
      assert.deepEqual(run.ids, std.ids, `prompt [${p}]`);
      const s = run.stats;
      assert.equal(s.draft_tokens, 'auto');
      assert.ok(s.draft_tokens_chosen !== null && s.draft_tokens_chosen >= 1 && s.draft_tokens_chosen <= 7);
      const rounds = Object.values(s.rounds_by_draft_tokens).reduce((a, b) => a + b, 0);
      assert.ok(rounds > 0 && rounds <= s.full_calls - 1, `${rounds} rounds, ${s.full_calls} full calls`);
      const drafted = Object.entries(s.rounds_by_draft_tokens).reduce((a, [k, v]) => a + Number(k) * v, 0);
      assert.equal(
        drafted,
        s.drafted_by_depth.reduce((a, b) => a + b, 0),
        'drafts add up',
      );
    }
  });
}
