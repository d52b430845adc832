/**
 * Verified sampling with 3 chained drafts is lossless: the joint distribution of the first 4 generated tokens over
 * many seeds matches standard decoding's exact distribution (enumerated on a tiny vocabulary), by chi-square tests
 * at α = 0.001 with fixed seeds (deterministic), on the joint and on its 2- and 3-token margins. Token 1 comes from
 * the prefill; tokens 2–4 from the first round's drafts d1..d3 (each accepted by the speculative rule against its
 * own depth's q, or the first rejection's residual draw) — every depth's accept and reject paths run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAll } from '../src/generate/decode.js';
import type { GenerationOptions } from '../src/generate/options.js';
import {
  assertSameDistribution,
  chiSquare,
  exactJoint,
  marginal,
  SAMPLING_CASES,
  SAMPLING_PROMPT,
  samplingModel,
} from './helpers/decoding.js';

const model = samplingModel();
const prompt = SAMPLING_PROMPT;
const N = 4;

function check(name: string, opts: GenerationOptions, runs: number): void {
  test(`verified sampling with draft_tokens 3 has standard decoding's distribution (${name})`, () => {
    const exact = exactJoint(model, prompt, opts, N);
    const counts = new Map<string, number>();
    const checked = [0, 0, 0],
      accepted = [0, 0, 0];
    for (let s = 1; s <= runs; s++) {
      // 5 tokens so that the first round has room for all 3 drafts (k ≤ tokens left − 1); the first 4 are kept.
      const r = decodeAll(model, prompt, {
        ...opts,
        mode: 'verified',
        draft_tokens: 3,
        max_new_tokens: N + 1,
        seed: s,
      });
      assert.equal(r.stats.rounds_by_draft_tokens[3], 1, 'the first round drafts 3 tokens');
      const key = r.ids.slice(0, N).join(',');
      counts.set(key, (counts.get(key) ?? 0) + 1);
      r.stats.checked_by_depth.forEach((v, i) => (checked[i]! += v));
      r.stats.accepted_by_depth.forEach((v, i) => (accepted[i]! += v));
    }
    for (let j = 0; j < 3; j++) {
      assert.ok(accepted[j]! > runs / 20, `depth ${j + 1}: ${accepted[j]} accepted of ${checked[j]}`);
      assert.ok(checked[j]! - accepted[j]! > runs / 20, `depth ${j + 1}: ${accepted[j]} accepted of ${checked[j]}`);
    }
    assertSameDistribution(
      counts,
      exact,
      [
        [0, 1],
        [1, 2],
        [2, 3],
        [1, 3],
        [0, 3],
        [1, 2, 3],
        [0, 1, 2],
      ],
      N,
    );
  });
}

const RUNS = [3000, 3000];
SAMPLING_CASES.forEach((c, i) => check(c.name, c.opts, RUNS[i]!));

test('the test has power: lossy recycle with 3 module tokens fails it', () => {
  const opts: GenerationOptions = { do_sample: true, top_k: 0 };
  const exact = marginal(exactJoint(model, prompt, opts, N), [1, 2, 3]);
  const counts = new Map<string, number>();
  for (let s = 1; s <= 1500; s++) {
    const r = decodeAll(model, prompt, { ...opts, mode: 'recycle', draft_tokens: 3, max_new_tokens: N, seed: s });
    const key = r.ids.slice(1, N).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const rec = chiSquare(counts, exact);
  assert.ok(rec.stat > rec.critical, `recycle should differ: ${rec.stat.toFixed(1)} < ${rec.critical.toFixed(1)}`);
});
