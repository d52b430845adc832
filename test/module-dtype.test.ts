/**
 * The module's dtype (model/module-dtype.ts): which matrices get a q8_0 copy under `auto`, `model` and `q8_0`, and
 * why one cannot; on the native backend checked module calls (verified's drafts) read the copy as q8_0 panels and
 * unchecked ones (recycle's) the module as stored under auto, both the copy under q8_0, neither under model; base
 * calls and their logits stay bit for bit as they were; the module's logits through the copy stay close to the stored
 * module's and equal ref's on the same q8_0 copy (to float rounding); verified greedy == standard greedy at k = 1..3
 * with the copy, recycle's text unchanged by auto; a batch mixing checked and unchecked segments gives each its solo
 * call's logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAll } from '../src/generate/decode.js';
import type { KernelWeightDtype } from '../src/kernels/backend.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { convertWeights } from '../src/model/convert.js';
import { BatchedForward } from '../src/model/infer-batch.js';
import { InferenceModel } from '../src/model/infer.js';
import { resolveModuleDtype, type ModuleMatrix } from '../src/model/module-dtype.js';
import { randomPrompts } from './helpers/decoding.js';
import { randomModel } from './helpers/models.js';
import { assertClose, native, nativeSkip } from './helpers/native.js';

const f16 = (N: number, K: number, name = 'recycle.w'): ModuleMatrix => ({
  name,
  N,
  K,
  w: { dtype: 'f16', data: new Uint16Array(N * K) },
});
const q8 = (N: number, K: number): ModuleMatrix => ({
  name: 'recycle.q',
  N,
  K,
  w: { dtype: 'q8_0', data: new Int8Array(N * K), scales: new Uint16Array((N * K) / 32) },
});
const NATIVE: KernelWeightDtype[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'f16_panels', 'bf16_panels', 'q8_0_panels'];
const REF: KernelWeightDtype[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

test('auto copies f32 / f16 / bf16 modules of whole 32-blocks where q8_0 panels are read; q8_0 asks; errors', () => {
  assert.equal(resolveModuleDtype('auto', [f16(64, 128), f16(64, 64)], NATIVE), true);
  assert.equal(resolveModuleDtype('auto', [f16(64, 128)], REF), false, 'no panels: as stored');
  assert.equal(resolveModuleDtype('auto', [f16(64, 128), f16(64, 172)], NATIVE), false, 'rows of 172');
  assert.equal(resolveModuleDtype('auto', [q8(64, 64)], NATIVE), false, 'q8_0 already');
  assert.equal(resolveModuleDtype('auto', [], NATIVE), false, 'no module');
  assert.equal(resolveModuleDtype('model', [f16(64, 128)], NATIVE), false);
  assert.equal(resolveModuleDtype('q8_0', [f16(64, 128)], REF), true, 'row-major q8_0 where panels are not read');
  assert.equal(resolveModuleDtype('q8_0', [q8(64, 64)], NATIVE), false, 'q8_0 already: nothing to copy');
  assert.throws(
    () => resolveModuleDtype('q8_0', [f16(64, 128), f16(64, 172, 'recycle.down')], NATIVE),
    /module dtype q8_0: recycle\.down's rows \(172\) are not a multiple of 32 long/,
  );
  assert.throws(
    () => resolveModuleDtype('q8_0', [f16(64, 128)], ['f32', 'f16']),
    /module dtype q8_0: this backend reads f32, f16 weights, not q8_0/,
  );
});

test('tiny-llama (an MLP of 172): auto keeps the module as stored, q8_0 names the matrix', () => {
  const m = randomModel({ preset: 'tiny-llama', vocabSize: 97, seed: 2 });
  m.setModuleDtype('auto');
  assert.equal(m.moduleWeightDtype(true), 'f32');
  assert.throws(() => m.setModuleDtype('q8_0'), /recycle\.layers\.0\.mlp\.down_proj\.weight's rows \(172\)/);
  assert.equal(m.moduleDtype, 'auto', 'a failed choice changes nothing');
});

test(
  'native: checked module calls read q8_0 panels, unchecked ones and base calls as before; ref on the copy',
  { skip: nativeSkip },
  () => {
    const be = native();
    be.setThreads(2);
    const rand = randomModel({ preset: 'tiny', vocabSize: 97, scale: 4, seed: 5 });
    const stored = convertWeights(rand.weights, rand.config, 'f16');
    const m = new InferenceModel(rand.config, stored, be);
    m.setDraftHeadDtype('model'); // the head as stored for every call: the module's matrices alone differ
    const inProj = 'recycle.in_proj.weight',
      fc = 'recycle.layers.0.mlp.c_fc.weight';
    const prompt = [5, 17, 40, 3, 88, 9],
      next = [17, 40, 3, 88, 9, 1];
    const run = (checked: boolean): { base: Float32Array; mod: Float32Array } => {
      const b = m.forwardBase(prompt, m.newBaseCache(), 'all');
      const base = b.logits.slice(),
        h = b.hidden.slice();
      return { base, mod: m.forwardModule(h, next, m.newModuleCache(), 'all', undefined, checked).slice() };
    };
    const unchecked = run(false),
      checked = run(true);
    assert.equal(m.moduleWeights(false), m.products, 'unchecked calls (recycle) read the products');
    for (const name of [inProj, fc]) {
      assert.equal(m.products.weight(name).dtype, 'f16_panels', `${name}: the products keep the prepared panels`);
      assert.equal(m.moduleWeights(true).weight(name).dtype, 'q8_0_panels', `${name}: checked calls read the copy`);
    }
    assert.equal(m.moduleWeights(true).weight('h.0.mlp.c_fc.weight').dtype, 'f16_panels', 'base matrices');
    assert.deepEqual(checked.base, unchecked.base, 'base logits bit for bit');
    assertClose(checked.mod, unchecked.mod, 0.05, 'module logits, q8_0 copy vs stored');
    assert.notDeepEqual(checked.mod, unchecked.mod, 'the copy is what checked calls read');
    m.setModuleDtype('model');
    assert.equal(m.moduleWeightDtype(true), 'f16_panels');
    assert.deepEqual(run(true).mod, unchecked.mod, "'model': checked calls read the module as stored");
    m.setModuleDtype('q8_0');
    assert.deepEqual(run(false).mod, checked.mod, "'q8_0': unchecked calls read the copy too");
    // ref reads the same q8_0 copy row-major: the same values, another order of sums
    const refModel = new InferenceModel(rand.config, stored, createRefBackend());
    refModel.setDraftHeadDtype('model');
    refModel.setModuleDtype('q8_0');
    assert.equal(refModel.moduleWeightDtype(false), 'q8_0');
    const h = refModel.forwardBase(prompt, refModel.newBaseCache(), 'all').hidden.slice();
    const refMod = refModel.forwardModule(h, next, refModel.newModuleCache(), 'all').slice();
    assertClose(checked.mod, refMod, 2e-4, 'native q8_0 panels vs ref q8_0 rows');
  },
);

test(
  'native, module copy: verified greedy == standard greedy at k = 1..3; recycle reads the module as stored',
  {
    skip: nativeSkip,
  },
  () => {
    const be = native();
    const rand = randomModel({ preset: 'tiny', vocabSize: 97, scale: 4, moduleScale: 0.5, seed: 9 });
    const m = new InferenceModel(rand.config, convertWeights(rand.weights, rand.config, 'f16'), be);
    let drafted = 0;
    const prompts = randomPrompts(6, 97, 10, 4);
    const recycle = (): number[][] => prompts.map((p) => decodeAll(m, p, { mode: 'recycle', max_new_tokens: 24 }).ids);
    const recycleAuto = recycle();
    for (const prompt of prompts) {
      const want = decodeAll(m, prompt, { mode: 'standard', max_new_tokens: 24 }).ids;
      for (const k of [1, 2, 3]) {
        const r = decodeAll(m, prompt, { mode: 'verified', draft_tokens: k, max_new_tokens: 24 });
        assert.deepEqual(r.ids, want, `prompt ${prompt.join(',')}, k = ${k}`);
        drafted += r.stats.accepted + r.stats.rejected;
      }
    }
    assert.equal(m.moduleWeightDtype(true), 'q8_0_panels');
    assert.ok(drafted > 0, 'drafts were made');
    m.setModuleDtype('model');
    assert.deepEqual(recycle(), recycleAuto, "recycle under auto: the text of 'model'");
  },
);

test(
  'native, batched module calls: checked and unchecked segments in one batch give their solo calls',
  {
    skip: nativeSkip,
  },
  () => {
    const be = native();
    const rand = randomModel({ preset: 'tiny', vocabSize: 97, scale: 4, seed: 11 });
    const m = new InferenceModel(rand.config, convertWeights(rand.weights, rand.config, 'f16'), be);
    const bf = new BatchedForward(m);
    const prompts = [
        [3, 9, 27],
        [50, 2],
        [8, 8, 8, 1],
      ],
      flags = [true, false, true];
    const setups = prompts.map((p) => {
      const h = m.forwardBase(p, m.newBaseCache(), 'all').hidden.slice();
      return { h, next: p.map((id) => (id * 5 + 1) % 97) };
    });
    const solo = setups.map(({ h, next }, i) =>
      m.forwardModule(h, next, m.newModuleCache(), 'all', m.newScratch(), flags[i]).slice(),
    );
    const outs = bf.module(
      setups.map(({ h, next }, i) => ({
        hidden: h,
        nextIds: next,
        cache: m.newModuleCache(),
        rows: 'all' as const,
        out: m.newScratch(),
        checked: flags[i],
      })),
    );
    outs.forEach((o, i) => assert.deepEqual(o.logits, solo[i], `segment ${i} (checked ${flags[i]})`));
    assert.notDeepEqual(solo[0], m.forwardModule(setups[0]!.h, setups[0]!.next, m.newModuleCache(), 'all').slice());
  },
);
