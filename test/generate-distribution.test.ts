/**
 * Verified sampling is lossless: the joint distribution of the first generated tokens over many seeds matches
 * standard decoding's exact distribution (enumerated on a tiny vocabulary), by a chi-square test at α = 0.001
 * with fixed seeds (deterministic). Recycle mode, which is lossy, must fail the same test (the test has power).
 * Three tokens are generated so that the second is a verified draft (accepted or replaced) and the third comes
 * from the second row of an accepted 2-token call or from a plain step after a rejection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GenerationOptions } from '../src/generate/options.js';
import { randomModel } from './helpers/models.js';
import { chiSquare, empiricalJoint, exactJoint } from './helpers/decoding.js';

const V = 8;
const model = randomModel({ preset: 'tiny', vocabSize: V, scale: 4, seed: 21 });
const prompt = [3, 1, 4];

/** Marginalise "a,b,c" keys onto the positions in `keep`. */
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
  test(`verified sampling has standard decoding's distribution (${name})`, () => {
    const exact = exactJoint(model, prompt, opts, 3);
    const got = empiricalJoint(model, prompt, { ...opts, mode: 'verified' }, 3, runs);
    assert.ok(
      got.accepted > runs / 10 && got.rejected > runs / 10,
      `both paths: accepted ${got.accepted}, rejected ${got.rejected}`,
    );
    for (const keep of [
      [0, 1],
      [1, 2],
      [0, 2],
    ]) {
      const r = chiSquare(project(got.counts, keep), project(exact, keep));
      assert.ok(
        r.stat < r.critical,
        `tokens ${keep}: chi-square ${r.stat.toFixed(1)} ≥ ${r.critical.toFixed(1)} (df ${r.df}), ` +
          `TV ${r.tv.toFixed(3)}`,
      );
    }
    const all = chiSquare(got.counts, exact);
    assert.ok(
      all.stat < all.critical,
      `3-token joint: chi-square ${all.stat.toFixed(1)} ≥ ${all.critical.toFixed(1)} (df ${all.df})`,
    );
  });
}

check('temperature 1', { do_sample: true, top_k: 0 }, 3000);
check(
  'temperature 0.8, top-k 6, top-p 0.9, min-p 0.05, repetition penalty 1.3',
  { do_sample: true, temperature: 0.8, top_k: 6, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.3 },
  2500,
);

test('the test has power: standard sampling passes it, lossy recycle sampling fails it', () => {
  const opts: GenerationOptions = { do_sample: true, top_k: 0 };
  const exact = project(exactJoint(model, prompt, opts, 2), [0, 1]);
  const std = chiSquare(empiricalJoint(model, prompt, { ...opts, mode: 'standard' }, 2, 1500).counts, exact);
  assert.ok(std.stat < std.critical, `standard: ${std.stat.toFixed(1)} ≥ ${std.critical.toFixed(1)}`);
  const rec = chiSquare(empiricalJoint(model, prompt, { ...opts, mode: 'recycle' }, 2, 1500).counts, exact);
  assert.ok(rec.stat > rec.critical, `recycle should differ: ${rec.stat.toFixed(1)} < ${rec.critical.toFixed(1)}`);
});
