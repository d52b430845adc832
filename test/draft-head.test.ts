/**
 * The module's draft head (model/draft-head.ts): a cheaper copy of the LM head that only module calls read. Which
 * dtype `auto` picks; the copy's values are the head's, converted exactly as the dtype's own conversion does; base
 * calls never change; module logits through the copy equal a product with the converted head and stay close to
 * the stored head's; a draft vocabulary on top takes the copy's rows; verified greedy == standard greedy at
 * k = 1..3 and verified sampling keeps standard's distribution; bad dtypes fail with clear errors. (Solo ==
 * batched module calls through the default copy: test/batch-forward.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAll } from '../src/generate/decode.js';
import { heapAllocator, type Backend, type KernelWeightDtype, type Weight } from '../src/kernels/backend.js';
import { f32ToF16Bits } from '../src/kernels/half.js';
import { q8ToPanels } from '../src/kernels/panels.js';
import { quantizeQ4, quantizeQ8 } from '../src/kernels/quant.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { convertWeights, weightToF32 } from '../src/model/convert.js';
import { normRows } from '../src/model/decode-ops.js';
import { resolveDraftHeadDtype } from '../src/model/draft-head.js';
import { InferenceModel } from '../src/model/infer.js';
import { topNames } from '../src/model/names.js';
import {
  assertSameDistribution,
  exactJoint,
  randomPrompts,
  SAMPLING_CASES,
  SAMPLING_PROMPT,
  samplingModel,
} from './helpers/decoding.js';
import { randomModel } from './helpers/models.js';
import { eachThreadCount, native, nativeSkip } from './helpers/native.js';

const V = 97;
const ALL: KernelWeightDtype[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

test('auto picks q8_0 for f32 / f16 / bf16 heads, q4_0 for q8_0 ones (whole 32-blocks), else the stored head', () => {
  for (const head of ['f32', 'f16', 'bf16'] as const)
    assert.equal(resolveDraftHeadDtype('auto', head, 64, ALL), 'q8_0');
  assert.equal(resolveDraftHeadDtype('auto', 'q8_0', 64, ALL), 'q4_0');
  assert.equal(resolveDraftHeadDtype('auto', 'q8_0', 64, ['f32', 'q8_0']), null, 'a backend without q4_0');
  assert.equal(resolveDraftHeadDtype('auto', 'f32', 48, ALL), null, 'rows of 48 are not whole blocks');
  assert.equal(resolveDraftHeadDtype('auto', 'f32', 64, ['f32', 'bf16']), null, 'a backend without q8_0');
  assert.equal(resolveDraftHeadDtype('model', 'f32', 64, ALL), null);
  assert.equal(resolveDraftHeadDtype('f16', 'f32', 64, ALL), 'f16');
  assert.equal(resolveDraftHeadDtype('q8_0', 'q8_0', 64, ALL), null, 'the dtype it already has: no copy');
  assert.throws(() => resolveDraftHeadDtype('f16', 'f32', 64, ['f32', 'q8_0']), /reads f32, q8_0 weights, not f16/);
  assert.throws(() => resolveDraftHeadDtype('q8_0', 'f32', 48, ALL), /rows \(48\) are not a multiple of 32/);
  assert.throws(() => resolveDraftHeadDtype('q4_0', 'q8_0', 48, ALL), /q4_0: the head's rows \(48\)/);
});

/** The module's logits [next.length, V] after a base call on `prompt`. */
function moduleLogits(model: InferenceModel, prompt: number[], next: number[], checked = false): Float32Array {
  const h = model.forwardBase(prompt, model.newBaseCache(), 'all').hidden.slice();
  return model.forwardModule(h, next, model.newModuleCache(), 'all', undefined, checked).slice();
}

/** The module's rows through the final norm and a product with `head` [V, C]: what module logits through it are. */
function productWith(model: InferenceModel, prompt: number[], next: number[], head: Weight): Float32Array {
  const c = model.config,
    t = topNames(c),
    M = next.length;
  const h = model.forwardBase(prompt, model.newBaseCache(), 'all').hidden.slice();
  const u = model.forwardModuleOut(h, next, model.newModuleCache(), 'none');
  const s = model.newScratch();
  s.ensure(M);
  const nrm = new Float32Array(M * c.hidden),
    out = new Float32Array(M * V);
  normRows(c, model.weights, model.backend, M, u.hidden.slice(0, M * c.hidden), t.finalNorm, t.finalNormBias, nrm, s);
  model.backend.linear(M, V, c.hidden, nrm, head, null, out);
  return out;
}

function checkDraftHead(model: InferenceModel, label: string): void {
  const c = model.config,
    prompt = [5, 17, 40, 3, 88],
    next = [17, 40, 3, 88, 2];
  const head = model.weights.weight(topNames(c).head);
  const baseLogits = model.forwardBase(prompt, model.newBaseCache(), 'all').logits.slice();
  model.setDraftHeadDtype('model');
  const stored = moduleLogits(model, prompt, next);
  assert.equal(model.draftHead as unknown, null, `${label}: 'model' reads the stored head`);
  model.setDraftHeadDtype('auto');
  try {
    const d = model.draftHead,
      to = head.dtype === 'q8_0' ? 'q4_0' : 'q8_0';
    assert.ok(d && d.dtype === to && d.vocabSize === null, `${label}: auto gives a ${to} copy of every row`);
    // the copy holds ggml's Q8_0 / Q4_0 of the head's float32 values
    const want = (to === 'q8_0' ? quantizeQ8 : quantizeQ4)(weightToF32(head), V, c.hidden);
    assert.ok(d.weight.dtype === to);
    assert.deepEqual([...d.weight.data], [...want.data], `${label}: quants`);
    assert.deepEqual([...d.weight.scales], [...want.scales], `${label}: scales`);
    // checked calls (verified's drafts) read the same quants and scales, as q8_0 panels where the backend has them
    const packed = model.backend.weightDtypes.includes('q8_0_panels'),
      w = d.weight;
    assert.deepEqual(d.checkedWeight, w.dtype === 'q8_0' && packed ? q8ToPanels(w, V, c.hidden, heapAllocator) : w);
    model.setModuleDtype('model'); // the module's matrices as stored: checked calls differ by their head alone
    const viaPanels = productWith(model, prompt, next, d.checkedWeight);
    assert.deepEqual(moduleLogits(model, prompt, next, true), viaPanels, `${label}: checked calls' head`);
    model.setModuleDtype('auto');
    assert.deepEqual(model.forwardBase(prompt, model.newBaseCache(), 'all').logits.slice(), baseLogits);
    const got = moduleLogits(model, prompt, next);
    // module logits through the copy: the module's normed rows times the copy, bit for bit
    assert.deepEqual(got, productWith(model, prompt, next, d.weight), `${label}: not the copy's product`);
    const same = productWith(model, prompt, next, { dtype: 'f32', data: weightToF32(d.weight) });
    let maxDiff = 0,
      scale = 0;
    for (let i = 0; i < got.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i]! - same[i]!));
      scale = Math.max(scale, Math.abs(same[i]!));
      const far = to === 'q8_0' ? 0.05 : 0.25; // 4-bit quants: ~1/16 of a block's largest value per weight
      assert.ok(Math.abs(got[i]! - stored[i]!) <= far * scale + 1e-3, `${label}: logit ${i} far from the head's`);
    }
    // ref computes the copy's product exactly (float64 sums); the native int8 dot quantizes the activations too
    const tol = model.backend.name === 'ref' ? 1e-5 : 0.02;
    assert.ok(maxDiff <= tol * scale, `${label}: ${maxDiff} from the dequantized copy's product (scale ${scale})`);
    // a draft vocabulary on top: the copy's rows at the ids, bit for bit
    const ids = [3, 40, 2, 77, 17, 90];
    model.setDraftVocab(ids);
    const sub = moduleLogits(model, prompt, next);
    for (let r = 0; r < next.length; r++)
      for (const v of ids) assert.equal(sub[r * V + v], got[r * V + v], `${label}: row ${r} id ${v}`);
  } finally {
    model.setDraftVocab(null);
    model.setDraftHeadDtype('auto');
  }
}

function modelsOf(be: Backend): { dtype: string; model: InferenceModel }[] {
  const m = randomModel({ preset: 'tiny', vocabSize: V, scale: 3, backend: be, maxPositions: 64 });
  return [
    { dtype: 'f32', model: m },
    ...(['f16', 'bf16', 'int8'] as const).map((dtype) => ({
      dtype,
      model: new InferenceModel(m.config, convertWeights(m.weights, m.config, dtype, be.alloc), be),
    })),
  ];
}

test('a q8_0 / q4_0 draft head: the head’s values quantized, base untouched, module logits through it (ref)', () => {
  for (const { dtype, model } of modelsOf(createRefBackend())) checkDraftHead(model, `ref ${dtype}`);
});

test('… the same on the native backend, 1 and 2 threads', { skip: nativeSkip }, () => {
  const be = native();
  eachThreadCount(be, (th) => {
    for (const { dtype, model } of modelsOf(be)) checkDraftHead(model, `native ${th}t ${dtype}`);
  });
});

test('f16 and bf16 copies hold the head rounded to nearest even', () => {
  const model = randomModel({ preset: 'tiny', vocabSize: V, scale: 3 });
  const head = model.weights.get(topNames(model.config).head);
  model.setDraftHeadDtype('f16');
  const d = model.draftHead!;
  assert.ok(d.weight.dtype === 'f16');
  for (let i = 0; i < head.length; i += 97) assert.equal(d.weight.data[i], f32ToF16Bits(head[i]!));
  assert.equal(d.bytes(), 2 * head.length);
});

test('verified int8 greedy with a q4_0 draft head == standard greedy at k = 1..3, drafts accepted and rejected', () => {
  for (const be of [createRefBackend(), ...(nativeSkip ? [] : [native()])]) {
    const m = randomModel({ preset: 'tiny', vocabSize: V, scale: 3, seed: 5, maxPositions: 64, backend: be });
    const model = new InferenceModel(m.config, convertWeights(m.weights, m.config, 'int8', be.alloc), be);
    assert.equal(model.draftHead?.dtype, 'q4_0');
    const prompts = randomPrompts(6, V, 6, 11);
    const std = prompts.map((p) => decodeAll(model, p, { max_new_tokens: 24 }).ids);
    for (const k of [1, 2, 3]) {
      let accepted = 0,
        rejected = 0;
      prompts.forEach((p, i) => {
        const run = decodeAll(model, p, { mode: 'verified', draft_tokens: k, max_new_tokens: 24 });
        assert.deepEqual(run.ids, std[i], `${be.name} k = ${k}: verified differs from standard on prompt ${i}`);
        accepted += run.stats.accepted;
        rejected += run.stats.rejected;
      });
      assert.ok(accepted > 0 && rejected > 0, `${be.name} k = ${k}: accepted ${accepted}, rejected ${rejected}`);
    }
  }
});

test('verified sampling with a q8_0 draft head and 3 chained drafts keeps standard decoding’s distribution', () => {
  const model = samplingModel();
  model.setDraftHeadDtype('q8_0');
  assert.equal(model.draftHead?.dtype, 'q8_0');
  const opts = SAMPLING_CASES[1]!.opts;
  const N = 4,
    runs = 3000;
  const exact = exactJoint(model, SAMPLING_PROMPT, opts, N);
  const counts = new Map<string, number>();
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
  }
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

test('a draft head dtype the backend cannot read fails naming it; a model without a module has none', () => {
  const model = randomModel({ preset: 'tiny', vocabSize: 12 });
  const fake = { ...model.backend, weightDtypes: ['f32', 'q8_0'] } as Backend;
  const m = new InferenceModel(model.config, model.weights, fake);
  assert.throws(() => m.setDraftHeadDtype('f16'), /draft head dtype f16: this backend reads f32, q8_0 weights/);
  assert.equal(m.draftHeadDtype, 'auto', 'a failed change keeps the dtype it had');
  const noModule = randomModel({ preset: 'tiny', vocabSize: 12, withModule: false });
  noModule.setDraftHeadDtype('q8_0');
  assert.equal(noModule.draftHead, null, 'no module, no draft head');
});

test('auto keeps a head as stored when the cheaper dtype cannot hold it; an explicit dtype fails naming why', () => {
  const m = randomModel({ preset: 'tiny', vocabSize: V, scale: 3 });
  m.weights.get(topNames(m.config).head)[5] = 1e6; // q8_0's scale 7874 fits float16; q4_0's 125000 does not
  const int8 = new InferenceModel(m.config, convertWeights(m.weights, m.config, 'int8'), m.backend);
  assert.equal(int8.draftHead as unknown, null, 'auto: the stored q8_0 head');
  assert.throws(() => int8.setDraftHeadDtype('q4_0'), /quantizeQ4/);
  int8.setDraftVocab([0, 5, 9]); // row 0 holds the large value
  assert.equal(int8.draftHead?.dtype, 'q8_0', 'a draft vocabulary alone still applies');
});
