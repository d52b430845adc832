/** Logits processors against hand-computed results, the sampler's draws, stop strings and option checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenHistory } from '../src/generate/history.js';
import { resolveOptions } from '../src/generate/options.js';
import { MinP, RepetitionPenalty, Temperature, TopK, TopP, nucleusSelect } from '../src/generate/processors.js';
import { Sampler, argmax, seededUniform } from '../src/generate/sampler.js';
import { StopStringFilter } from '../src/generate/stop-strings.js';

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);
const kept = (x: Float32Array): number[] => [...x].flatMap((v, i) => (v === -Infinity ? [] : [i]));
const settings = { doSample: true, temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 };

test('repetition penalty divides positive and multiplies negative logits of seen tokens', () => {
  const x = f32([2, -2, 1, 4]);
  new RepetitionPenalty(2).process(x, new TokenHistory(4, [0, 1, 0]));
  assert.deepEqual([...x], [1, -4, 1, 4]);
});

test('temperature, top-k (ties kept), top-p (nucleus), min-p', () => {
  const t = f32([1, 2, 4]);
  new Temperature(2).process(t);
  assert.deepEqual([...t], [0.5, 1, 2]);
  const k = f32([3, 1, 3, 2, 0]);
  new TopK(2).process(k);
  assert.deepEqual(kept(k), [0, 2]);
  const k3 = f32([3, 1, 3, 2, 2]);
  new TopK(3).process(k3);
  assert.deepEqual(kept(k3), [0, 2, 3, 4], 'ties at the k-th value are kept');
  // probabilities 0.5, 0.25, 0.125, 0.125 (logits ln p)
  const lp = [0.5, 0.25, 0.125, 0.125].map(Math.log);
  for (const [p, want] of [
    [0.5, [0]],
    [0.6, [0, 1]],
    [0.75, [0, 1]],
    [0.8, [0, 1, 2]],
    [1, [0, 1, 2, 3]],
  ] as const) {
    const x = f32(lp);
    new TopP(p).process(x);
    assert.equal(kept(x).length, want.length, `top_p ${p}: kept ${kept(x)}`);
  }
  const m = f32(lp);
  new MinP(0.3).process(m);
  assert.deepEqual(kept(m), [0, 1]);
});

test('top-k on a large random row matches a sort', () => {
  const u = seededUniform(4),
    V = 5000,
    x = new Float32Array(V);
  for (let i = 0; i < V; i++) x[i] = u.next() * 10;
  const sorted = [...x].sort((a, b) => b - a);
  new TopK(37).process(x);
  assert.equal(kept(x).length, 37);
  for (const i of kept(x)) assert.ok(x[i]! >= sorted[36]!);
});

test('top-p selection equals the sort-based definition (random rows with ties)', () => {
  const u = seededUniform(8);
  for (let trial = 0; trial < 200; trial++) {
    const V = 1 + Math.floor(u.next() * 300),
      e = new Float64Array(V);
    // ties in every third row
    for (let i = 0; i < V; i++) e[i] = trial % 3 === 0 ? Math.floor(u.next() * 5) + 1 : Math.exp(4 * u.next());
    let sum = 0;
    for (const v of e) sum += v;
    const p = 0.05 + 0.9 * u.next();
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => e[b]! - e[a]! || a - b);
    const want: number[] = [];
    let cum = 0;
    for (const i of order) {
      if (cum >= p * sum) break;
      want.push(i);
      cum += e[i]!;
    }
    const idx = Int32Array.from({ length: V }, (_, i) => i);
    const k = nucleusSelect(e, idx, V, p * sum);
    assert.deepEqual(
      [...idx.subarray(0, k)].sort((a, b) => a - b),
      want.sort((a, b) => a - b),
      `trial ${trial}, p ${p}`,
    );
  }
});

test('the sampler composes processors in order and draws from the processed distribution', () => {
  const s = new Sampler({ ...settings, temperature: 0.5, topK: 3 }, 5, seededUniform(1));
  assert.deepEqual(
    s.processors.map((p) => p.name),
    ['temperature', 'top_k'],
  );
  const h = new TokenHistory(5, []);
  const d = s.distribution(f32([0, 1, 2, 3, -5]), h);
  const z = Math.exp(2) + Math.exp(4) + Math.exp(6);
  assert.ok(Math.abs(d[3]! - Math.exp(6) / z) < 1e-12 && d[0] === 0 && d[4] === 0);
  const counts = [0, 0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[s.pick(f32([0, 1, 2, 3, -5]), h)]!++;
  for (let v = 0; v < 5; v++) assert.ok(Math.abs(counts[v]! / 20000 - d[v]!) < 0.015, `token ${v}: ${counts[v]}`);
  const greedy = new Sampler({ ...settings, doSample: false, repetitionPenalty: 10 }, 4, seededUniform(1));
  assert.deepEqual(
    greedy.processors.map((p) => p.name),
    ['repetition_penalty'],
    'greedy applies only the penalty',
  );
  assert.equal(greedy.pick(f32([1, 5, 4, 0]), new TokenHistory(4, [1])), 2);
  assert.equal(argmax([1, 3, 3, 2]), 1, 'first maximum');
  assert.throws(() => greedy.pick(f32([0, Number.NaN, 0, 0]), new TokenHistory(4)), /non-finite logit/);
  // Plain greedy (no processors) takes a one-pass path: same first-maximum rule, same errors.
  const plain = new Sampler({ ...settings, doSample: false, repetitionPenalty: 1 }, 4, seededUniform(1));
  assert.equal(plain.processors.length, 0);
  assert.equal(plain.pick(f32([1, 5, 5, 0]), new TokenHistory(4)), 1, 'first maximum');
  assert.equal(plain.pick(f32([-3, -2, -9, -2.5]), new TokenHistory(4)), 1);
  for (const bad of [Number.NaN, Infinity, -Infinity]) {
    assert.throws(
      () => plain.pick(f32([0, 1, bad, 0]), new TokenHistory(4)),
      new RegExp(`non-finite logit \\(${bad}\\) for token 2`),
    );
  }
  assert.throws(() => plain.pick(f32([0, 1, 2]), new TokenHistory(4)), /a logits row has 3 values, the vocabulary 4/);
});

test('speculative verification keeps the target distribution (exact, one step)', () => {
  // Draft from q, verify against p: P(emit v) must equal p(v).
  const p = f32([0, 1, 2, -1].map((x) => x * 1.5)),
    q = f32([2, 0, -1, 1]);
  const s = new Sampler(settings, 4, seededUniform(9));
  const h = new TokenHistory(4, []);
  const target = s.distribution(p, h).slice();
  const counts = [0, 0, 0, 0];
  let accepted = 0;
  const N = 40000;
  for (let i = 0; i < N; i++) {
    s.draft(q, h);
    const v = s.verify(p, h);
    counts[v.token]!++;
    if (v.accepted) accepted++;
  }
  for (let v = 0; v < 4; v++)
    assert.ok(Math.abs(counts[v]! / N - target[v]!) < 0.01, `token ${v}: ${counts[v]! / N} vs ${target[v]}`);
  assert.ok(accepted > 0 && accepted < N);
  assert.throws(() => s.verify(p, h), /no pending draft/);
});

test('stop strings: held back across chunks, cut before the match', () => {
  const f = new StopStringFilter(['\n\n', 'END']);
  assert.equal(f.push('Hello\n'), 'Hello');
  assert.equal(f.push('world'), '\nworld');
  assert.equal(f.push(' E'), ' ');
  assert.equal(f.push('N'), '');
  assert.equal(f.push('Dx'), '');
  assert.ok(f.stopped);
  const g = new StopStringFilter(['END']);
  assert.equal(g.push('abcEN'), 'abc');
  assert.equal(g.flush(), 'EN');
});

test('options: defaults follow transformers.js', () => {
  const o = resolveOptions({ seed: 5 });
  assert.equal(o.mode, 'standard');
  assert.equal(o.doSample, false);
  assert.equal(o.topK, 50);
  assert.equal(o.topP, 1);
  assert.equal(o.temperature, 1);
  assert.equal(o.seed, 5);
  assert.ok(Number.isInteger(resolveOptions().seed), 'a seed is drawn when none is given');
});
