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
import {
  assertSameDistribution,
  chiSquare,
  empiricalJoint,
  exactJoint,
  marginal,
  SAMPLING_CASES,
  SAMPLING_PROMPT,
  samplingModel,
} from './helpers/decoding.js';

const model = samplingModel();
const prompt = SAMPLING_PROMPT;

function check(name: string, opts: GenerationOptions, runs: number): void {
  test(`verified sampling has standard decoding's distribution (${name})`, () => {
    const exact = exactJoint(model, prompt, opts, 3);
    const got = empiricalJoint(model, prompt, { ...opts, mode: 'verified' }, 3, runs);
    assert.ok(
      got.accepted > runs / 10 && got.rejected > runs / 10,
      `both paths: accepted ${got.accepted}, rejected ${got.rejected}`,
    );
    assertSameDistribution(
      got.counts,
      exact,
      [
        [0, 1],
        [1, 2],
        [0, 2],
      ],
      3,
    );
  });
}

const RUNS = [3000, 2500];
SAMPLING_CASES.forEach((c, i) => check(c.name, c.opts, RUNS[i]!));

test('the test has power: standard sampling passes it, lossy recycle sampling fails it', () => {
  const opts: GenerationOptions = { do_sample: true, top_k: 0 };
  const exact = marginal(exactJoint(model, prompt, opts, 2), [0, 1]);
  const std = chiSquare(empiricalJoint(model, prompt, { ...opts, mode: 'standard' }, 2, 1500).counts, exact);
  assert.ok(std.stat < std.critical, `standard: ${std.stat.toFixed(1)} ≥ ${std.critical.toFixed(1)}`);
  const rec = chiSquare(empiricalJoint(model, prompt, { ...opts, mode: 'recycle' }, 2, 1500).counts, exact);
  assert.ok(rec.stat > rec.critical, `recycle should differ: ${rec.stat.toFixed(1)} < ${rec.critical.toFixed(1)}`);
});
