/**
 * The module's head over a draft vocabulary (model/draft-vocab.ts): the module's logits at the draft ids are the
 * whole head's, bit for bit, and −Infinity elsewhere (every weight dtype, ref and native at 1 and 2 threads); base
 * calls are untouched; verified decoding stays lossless — greedy equals standard greedy token for token, and
 * sampling with 3 chained drafts keeps standard's distribution (chi-square) — while drafts outside the vocabulary
 * are rejected; bad ids fail with errors naming the id and its index.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAll } from '../src/generate/decode.js';
import type { Backend } from '../src/kernels/backend.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { convertWeights } from '../src/model/convert.js';
import { InferenceModel } from '../src/model/infer.js';
import {
  assertSameDistribution,
  checkVerifiedGreedy,
  exactJoint,
  randomPrompts,
  SAMPLING_CASES,
  SAMPLING_PROMPT,
  SAMPLING_VOCAB,
  samplingModel,
} from './helpers/decoding.js';
import { randomModel } from './helpers/models.js';
import { eachThreadCount, native, nativeSkip } from './helpers/native.js';

const V = 97;
/** Every third id from 1, in a scrambled order (the draft order must not matter). */
const DRAFT = Array.from({ length: 32 }, (_, i) => 1 + ((i * 7) % 32) * 3);

function moduleLogits(model: InferenceModel, prompt: number[], next: number[]): Float32Array {
  const base = model.newBaseCache(),
    mod = model.newModuleCache();
  const h = model.forwardBase(prompt, base, 'all').hidden.slice();
  return model.forwardModule(h, next, mod, 'all').slice();
}

function checkSubsetLogits(model: InferenceModel, label: string): void {
  const prompt = [5, 17, 40, 3, 88],
    next = [17, 40, 3, 88, 2];
  const full = moduleLogits(model, prompt, next);
  const baseFull = model.forwardBase(prompt, model.newBaseCache(), 'all').logits.slice();
  model.setDraftVocab(DRAFT);
  try {
    const sub = moduleLogits(model, prompt, next);
    const baseSub = model.forwardBase(prompt, model.newBaseCache(), 'all').logits.slice();
    assert.deepEqual(baseSub, baseFull, `${label}: a draft vocabulary changed the base's logits`);
    const inDraft = new Set(DRAFT);
    for (let r = 0; r < next.length; r++) {
      for (let v = 0; v < V; v++) {
        const got = sub[r * V + v]!,
          want = inDraft.has(v) ? full[r * V + v]! : -Infinity;
        if (!Object.is(got, want)) assert.fail(`${label}: row ${r} id ${v}: ${got}, want ${want}`);
      }
    }
  } finally {
    model.setDraftVocab(null);
  }
  assert.deepEqual(moduleLogits(model, prompt, next), full, `${label}: setDraftVocab(null) restores the whole head`);
}

function modelsOf(be: Backend): { dtype: string; model: InferenceModel }[] {
  const m = randomModel({ preset: 'tiny', vocabSize: V, scale: 3, backend: be, maxPositions: 64 });
  const out = [{ dtype: 'f32', model: m }];
  for (const dtype of ['f16', 'bf16', 'int8'] as const) {
    const weights = convertWeights(m.weights, m.config, dtype, be.alloc);
    out.push({ dtype, model: new InferenceModel(m.config, weights, be) });
  }
  return out;
}

test('module logits over a draft vocabulary are the whole head’s at the draft ids, −Infinity elsewhere (ref)', () => {
  for (const { dtype, model } of modelsOf(createRefBackend())) checkSubsetLogits(model, `ref ${dtype}`);
});

test('… the same on the native backend, every dtype, 1 and 2 threads', { skip: nativeSkip }, () => {
  const be = native();
  eachThreadCount(be, (th) => {
    for (const { dtype, model } of modelsOf(be)) checkSubsetLogits(model, `native ${th}t ${dtype}`);
  });
});

test('verified greedy with a draft vocabulary == standard greedy; drafts outside it are rejected', () => {
  const model = randomModel({ preset: 'tiny', vocabSize: V, scale: 3, seed: 5, maxPositions: 64 });
  const prompts = randomPrompts(8, V, 6, 11);
  const whole = checkVerifiedGreedy(model, prompts, { max_new_tokens: 24 });
  // the draft vocabulary: the ids the whole head drafts most often, less every other one, so some drafts must change
  model.setDraftVocab(Array.from({ length: V }, (_, i) => i).filter((i) => i % 2 === 0));
  const std = prompts.map((p) => decodeAll(model, p, { max_new_tokens: 24 }).ids);
  for (const k of [1, 2, 3]) {
    let accepted = 0,
      rejected = 0;
    prompts.forEach((p, i) => {
      const run = decodeAll(model, p, { mode: 'verified', draft_tokens: k, max_new_tokens: 24 });
      assert.deepEqual(run.ids, std[i], `k = ${k}: verified differs from standard on prompt ${i}`);
      accepted += run.stats.accepted;
      rejected += run.stats.rejected;
    });
    assert.ok(accepted > 0 && rejected > 0, `k = ${k}: accepted ${accepted}, rejected ${rejected}`);
  }
  for (const p of prompts) {
    const run = decodeAll(model, p, { mode: 'verified', max_new_tokens: 24 });
    for (const e of run.events)
      if (e.source === 'accepted') assert.equal(e.id % 2, 0, `accepted draft ${e.id} is outside the vocabulary`);
  }
  assert.ok(whole.accepted > 0, 'the whole head drafts accepted tokens too');
});

test('verified sampling with a draft vocabulary and 3 chained drafts keeps standard decoding’s distribution', () => {
  const model = samplingModel();
  model.setDraftVocab([0, 2, 3, 5, 6]); // 5 of the 8 ids
  const opts = SAMPLING_CASES[0]!.opts;
  const N = 4,
    runs = 3000;
  const exact = exactJoint(model, SAMPLING_PROMPT, opts, N);
  const counts = new Map<string, number>();
  let rejected = 0;
  for (let s = 1; s <= runs; s++) {
    const r = decodeAll(model, SAMPLING_PROMPT, {
      ...opts,
      mode: 'verified',
      draft_tokens: 3,
      max_new_tokens: N + 1,
      seed: s,
    });
    const key = r.ids.slice(0, N).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
    rejected += r.stats.rejected;
    for (const e of r.events) if (e.source === 'accepted') assert.ok([0, 2, 3, 5, 6].includes(e.id), `draft ${e.id}`);
  }
  assert.ok(rejected > runs / 10, `${rejected} rejections in ${runs} runs`);
  assert.ok(SAMPLING_VOCAB === 8);
  assertSameDistribution(
    counts,
    exact,
    [
      [0, 1],
      [1, 2],
      [2, 3],
      [1, 2, 3],
    ],
    N,
  );
});

test('a bad draft vocabulary fails naming the id and its index', () => {
  const model = randomModel({ preset: 'tiny', vocabSize: 12 });
  assert.throws(() => model.setDraftVocab([]), /setDraftVocab: the draft vocabulary is empty/);
  assert.throws(() => model.setDraftVocab([1, 12]), /draft id 12 at index 1 is outside the vocabulary \(0\.\.11\)/);
  assert.throws(() => model.setDraftVocab([1, -1]), /draft id -1 at index 1/);
  assert.throws(() => model.setDraftVocab([0, 1.5]), /draft id 1.5 at index 1/);
  assert.throws(() => model.setDraftVocab([3, 4, 3]), /draft id 3 appears twice \(again at index 2\)/);
  const noModule = randomModel({ preset: 'tiny', vocabSize: 12, withModule: false });
  assert.throws(() => noModule.setDraftVocab([1]), /no recyclable module/);
});
