/**
 * Hardening of generation (issue 9, items 7 and 8): the sampler at extreme temperatures and repetition penalties
 * (stable, or refused up front; a non-finite distribution is never a token), and generations that do not lock the
 * model (each has its own caches and scratch, so streams interleave and an abandoned one blocks nothing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { TokenHistory } from '../src/generate/history.js';
import { resolveOptions, type GenerationOptions } from '../src/generate/options.js';
import { Sampler, seededUniform, type SamplerSettings } from '../src/generate/sampler.js';
import { DECODE_MODES } from '../src/generate/types.js';
import { randomModel } from './helpers/models.js';

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);
const base: SamplerSettings = { doSample: true, temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 };
const sampler = (s: Partial<SamplerSettings>, V: number, seed = 1): Sampler =>
  new Sampler({ ...base, ...s }, V, seededUniform(seed));
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-9): boolean =>
  a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]!) <= tol);
const softmax = (xs: number[]): number[] => {
  const m = Math.max(...xs),
    e = xs.map((x) => Math.exp(x - m)),
    z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
};

const model = randomModel({ vocabSize: 64, scale: 6, seed: 11 });
const m = new RecycleGPT(model, null, 'harden-model');
const P1 = [3, 17, 5, 40, 8],
  P2 = [22, 9, 61, 2];

async function collect(it: AsyncIterator<{ id: number }>): Promise<number[]> {
  const ids: number[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) ids.push(r.value.id);
  return ids;
}

test('tiny temperatures behave like greedy; the distribution is one-hot on the argmax, never NaN', () => {
  const row = [0.5, 3, -2, 2.9, 1];
  for (const t of [1e-6, 1e-30, 1e-38, 1e-45, 1e-300, 5e-324]) {
    for (const extra of [{}, { topK: 3 }, { topP: 0.5 }, { minP: 0.1 }, { topK: 2, topP: 0.9, minP: 0.5 }]) {
      const s = sampler({ temperature: t, ...extra }, 5);
      const d = s.distribution(f32(row), new TokenHistory(5));
      assert.ok(close(d, [0, 1, 0, 0, 0]), `temperature ${t} ${JSON.stringify(extra)}: ${[...d]}`);
      for (let i = 0; i < 20; i++) assert.equal(s.pick(f32(row), new TokenHistory(5)), 1, `temperature ${t}`);
    }
  }
  // Ties at the top share the mass (the limit of the softmax), whatever the scale.
  const tie = sampler({ temperature: 1e-40 }, 4).distribution(f32([1, 7, 7, -3]), new TokenHistory(4));
  assert.ok(close(tie, [0, 0.5, 0.5, 0]), `${[...tie]}`);
});

test('huge temperatures give the uniform distribution over the kept tokens', () => {
  for (const t of [1e30, 1e300, Number.MAX_VALUE]) {
    const d = sampler({ temperature: t }, 4).distribution(f32([9, -9, 3, 0]), new TokenHistory(4));
    assert.ok(close(d, [0.25, 0.25, 0.25, 0.25]), `temperature ${t}: ${[...d]}`);
  }
  const k = sampler({ temperature: 1e30, topK: 2 }, 4).distribution(f32([9, -9, 3, 0]), new TokenHistory(4));
  assert.ok(close(k, [0.5, 0, 0.5, 0]), `temperature 1e30, top_k 2: ${[...k]}`);
  // Past ~1e38 the float32 row underflows to ties, which top-k keeps (as transformers does): still uniform, finite.
  const u = sampler({ temperature: 1e300, topK: 2 }, 4).distribution(f32([9, -9, 3, 0]), new TokenHistory(4));
  assert.ok(close(u, [0.25, 0.25, 0.25, 0.25]), `temperature 1e300, top_k 2: ${[...u]}`);
});

test('extreme repetition penalties: exact within the accepted range, refused outside it', () => {
  // A tiny penalty makes seen positive logits dominate: the largest of them takes all the mass (greedy too).
  const row = f32([5, 1, 2, -1]),
    h = new TokenHistory(4, [1, 2]);
  for (const p of [1e-30, 1e-50, 1e-100]) {
    assert.ok(close(sampler({ repetitionPenalty: p }, 4).distribution(row, h), [0, 0, 1, 0]), `penalty ${p}`);
    assert.equal(sampler({ repetitionPenalty: p, doSample: false }, 4).pick(row, h), 2, `greedy, penalty ${p}`);
  }
  // Penalty and temperature cancel: seen positive logits l/p/T = l, the others ≈ 0.
  const d = sampler({ repetitionPenalty: 1e-50, temperature: 1e50 }, 4).distribution(row, h);
  assert.ok(close(d, softmax([0, 1, 2, 0]), 1e-6), `${[...d]}`);
  // A huge penalty on a fully seen row of negative logits: the least negative one wins (the old code drew V−1).
  const neg = f32([-1, -2, -3]),
    all = new TokenHistory(3, [0, 1, 2]);
  for (const p of [1e40, 1e100]) {
    const s = sampler({ repetitionPenalty: p }, 3);
    assert.ok(close(s.distribution(neg, all), [1, 0, 0]), `penalty ${p}: ${[...s.distribution(neg, all)]}`);
    for (let i = 0; i < 10; i++) assert.equal(s.pick(neg, all), 0);
    assert.equal(sampler({ repetitionPenalty: p, doSample: false }, 3).pick(neg, all), 0);
  }
  for (const p of [1e-300, 1e-101, 1e101, 1e300, 5e-324]) {
    const want = /repetition_penalty must be a number in \[1e-100, 1e100\], got/;
    assert.throws(() => resolveOptions({ repetition_penalty: p }), want);
  }
});

test('verified sampling (speculative residual) at extreme settings stays finite and equals greedy at T → 0', () => {
  const p = f32([0, 4, 1, 3.5]),
    q = f32([0, 3.5, 1, 4]);
  for (const t of [1e-38, 1e-300]) {
    const s = sampler({ temperature: t }, 4);
    const h = new TokenHistory(4);
    for (let i = 0; i < 50; i++) {
      assert.equal(s.draft(q, h), 3);
      assert.deepEqual(s.verify(p, h), { accepted: false, token: 1 }, `temperature ${t}`);
    }
  }
});

test('generation at temperature → 0 equals greedy in every mode; extreme settings never draw id V−1', async () => {
  const common: GenerationOptions = { max_new_tokens: 20, eos_token_id: [], top_k: 0, seed: 3 };
  for (const mode of DECODE_MODES) {
    const greedy = await m.generate(P1, { ...common, mode });
    for (const temperature of [1e-38, 1e-300]) {
      const r = await m.generate(P1, { ...common, mode, do_sample: true, temperature });
      assert.deepEqual(r.ids, greedy.ids, `${mode}, temperature ${temperature}`);
    }
    const hot = await m.generate(P1, { ...common, mode, do_sample: true, temperature: 1e300, max_new_tokens: 40 });
    assert.ok(new Set(hot.ids).size > 10, `${mode}: a huge temperature samples widely: ${hot.ids}`);
    // A penalty of 1e-100 overflows float32 for every seen positive logit: greedy and T → 0 sampling still agree.
    const penGreedy = await m.generate(P1, { ...common, mode, repetition_penalty: 1e-100 });
    const cold: GenerationOptions = { ...common, mode, repetition_penalty: 1e-100, do_sample: true, temperature: 1e-9 };
    const penCold = await m.generate(P1, cold);
    assert.deepEqual(penCold.ids, penGreedy.ids, `${mode}, penalty 1e-100`);
  }
});

test('streams over one model interleave token by token and each equals its run alone (all modes)', async () => {
  const settings: GenerationOptions[] = [
    { max_new_tokens: 24, eos_token_id: [] },
    { do_sample: true, temperature: 0.9, top_k: 20, seed: 7, max_new_tokens: 24, eos_token_id: [] },
    {
      do_sample: true,
      temperature: 1.3,
      top_p: 0.9,
      repetition_penalty: 1.2,
      seed: 99,
      max_new_tokens: 24,
      eos_token_id: [],
    },
  ];
  for (const mode of DECODE_MODES) {
    for (const o of settings) {
      const alone1 = (await m.generate(P1, { ...o, mode })).ids;
      const alone2 = (await m.generate(P2, { ...o, mode, seed: (o.seed ?? 0) + 1 })).ids;
      const a = m.stream(P1, { ...o, mode })[Symbol.asyncIterator]();
      const b = m.stream(P2, { ...o, mode, seed: (o.seed ?? 0) + 1 })[Symbol.asyncIterator]();
      const ga: number[] = [],
        gb: number[] = [];
      for (let doneA = false, doneB = false; !doneA || !doneB;) {
        if (!doneA) {
          const r = await a.next();
          if (r.done) doneA = true;
          else ga.push(r.value.id);
        }
        if (!doneB) {
          const r = await b.next();
          if (r.done) doneB = true;
          else gb.push(r.value.id);
        }
      }
      assert.deepEqual(ga, alone1, `${mode} ${JSON.stringify(o)}: stream 1`);
      assert.deepEqual(gb, alone2, `${mode} ${JSON.stringify(o)}: stream 2`);
    }
  }
});

test('an abandoned started stream blocks nothing; a later one ends and the model is reused', async () => {
  const alone = (await m.generate(P2, { mode: 'verified', max_new_tokens: 12, eos_token_id: [] })).ids;
  const abandoned = m.stream(P1, { mode: 'verified', max_new_tokens: 30, eos_token_id: [] })[Symbol.asyncIterator]();
  await abandoned.next();
  const r = await m.generate(P2, { mode: 'verified', max_new_tokens: 12, eos_token_id: [] });
  assert.deepEqual(r.ids, alone);
  // The abandoned stream still works when resumed, with its own state.
  const rest = await collect(abandoned);
  const full = (await m.generate(P1, { mode: 'verified', max_new_tokens: 30, eos_token_id: [] })).ids;
  assert.deepEqual(rest, full.slice(1));
  // Aborting a suspended stream rejects its next step and leaves the model usable.
  const ac = new AbortController();
  const s = m.stream(P1, { max_new_tokens: 30, signal: ac.signal })[Symbol.asyncIterator]();
  await s.next();
  ac.abort(new Error('stop it'));
  await assert.rejects(s.next(), /stop it/);
  assert.equal((await m.generate(P1, { max_new_tokens: 3, eos_token_id: [] })).ids.length, 3);
});
