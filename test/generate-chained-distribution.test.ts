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
import { randomModel } from './helpers/models.js';
import { chiSquare, exactJoint } from './helpers/decoding.js';

const V = 8;
const model = randomModel({ preset: 'tiny', vocabSize: V, scale: 4, seed: 21 });
const prompt = [3, 1, 4];
const N = 4;

/** Marginalise "a,b,c,d" keys onto the positions in `keep`. */
function project(m: Map<string, number>, keep: number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of m) {
    const parts = k.split(',');
    const key = keep.map((i) => parts[i]).join(',');
    out.set(key, (out.get(key) ?? 0) + v);
  }
  return out;
}

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
    for (const keep of [
      [0, 1],
      [1, 2],
      [2, 3],
      [1, 3],
      [0, 3],
      [1, 2, 3],
      [0, 1, 2],
    ]) {
      const r = chiSquare(project(counts, keep), project(exact, keep));
      assert.ok(
        r.stat < r.critical,
        `tokens ${keep}: chi-square ${r.stat.toFixed(1)} ≥ ${r.critical.toFixed(1)} (df ${r.df}), ` +
          `TV ${r.tv.toFixed(3)}`,
      );
    }
    const all = chiSquare(counts, exact);
    assert.ok(
      all.stat < all.critical,
      `4-token joint: ${all.stat.toFixed(1)} ≥ ${all.critical.toFixed(1)} (df ${all.df})`,
    );
  });
}

check('temperature 1', { do_sample: true, top_k: 0 }, 3000);
check(
  'temperature 0.8, top-k 6, top-p 0.9, min-p 0.05, repetition penalty 1.3',
  { do_sample: true, temperature: 0.8, top_k: 6, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.3 },
  3000,
);

test('the test has power: lossy recycle with 3 module tokens fails it', () => {
  const opts: GenerationOptions = { do_sample: true, top_k: 0 };
  const exact = project(exactJoint(model, prompt, opts, N), [1, 2, 3]);
  const counts = new Map<string, number>();
  for (let s = 1; s <= 1500; s++) {
    const r = decodeAll(model, prompt, { ...opts, mode: 'recycle', draft_tokens: 3, max_new_tokens: N, seed: s });
    const key = r.ids.slice(1, N).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const rec = chiSquare(counts, exact);
  assert.ok(rec.stat > rec.critical, `recycle should differ: ${rec.stat.toFixed(1)} < ${rec.critical.toFixed(1)}`);
});
