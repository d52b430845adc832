/**
 * The batched forward (model/infer-batch.ts) against the solo one: for random gpt2 and llama models, on the ref and
 * the native backend (1 and 2 threads), several sessions at different positions make calls of mixed row counts
 * (1–3 rows, the batch above 8 rows so the products run in several chunks, with rollbacks as verified decoding
 * does); every segment's hidden rows and logits must equal forwardBase / forwardModule on that call alone, bit for
 * bit, and the caches must stay in step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../src/kernels/backend.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { BatchedForward, ROW_CHUNK, type BaseSegment, type ModuleSegment } from '../src/model/infer-batch.js';
import type { ForwardScratch, InferenceModel, LogitRows } from '../src/model/infer.js';
import type { KVCache } from '../src/model/kv-cache.js';
import { seededUniform } from '../src/generate/sampler.js';
import { randomModel } from './helpers/models.js';
import { native, nativeSkip } from './helpers/native.js';

function bytesEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}: element ${i} is ${b[i]} batched, ${a[i]} alone (bits differ)`);
  }
}

interface Side {
  base: KVCache;
  module: KVCache;
  sBase: ForwardScratch;
  sMod: ForwardScratch;
}

function side(m: InferenceModel): Side {
  return { base: m.newBaseCache(), module: m.newModuleCache(), sBase: m.newScratch(), sMod: m.newScratch() };
}

function checkBatchEqualsSolo(model: InferenceModel, label: string, seed: number): void {
  const u = seededUniform(seed);
  const V = model.config.vocabSize,
    C = model.config.hidden;
  const rnd = (n: number): number => Math.floor(u.next() * n);
  const sessions = 6;
  const solo = Array.from({ length: sessions }, () => side(model));
  const batch = Array.from({ length: sessions }, () => side(model));
  const bf = new BatchedForward(model);
  // Prompts of different lengths (prefill alone on both sides: the same solo call), so positions differ.
  for (let i = 0; i < sessions; i++) {
    const prompt = Array.from({ length: 1 + rnd(12) }, () => rnd(V));
    const a = model.forwardBase(prompt, solo[i]!.base, 'none', solo[i]!.sBase);
    model.forwardModule(a.hidden, prompt, solo[i]!.module, 'last', solo[i]!.sMod);
    const b = model.forwardBase(prompt, batch[i]!.base, 'none', batch[i]!.sBase);
    model.forwardModule(b.hidden, prompt, batch[i]!.module, 'last', batch[i]!.sMod);
  }
  let sawChunks = false;
  for (let round = 0; round < 5; round++) {
    const active = Array.from({ length: sessions }, (_, i) => i).filter(() => u.next() < 0.85);
    if (active.length === 0) continue;
    const calls = active.map((i) => {
      const M = 1 + rnd(3);
      const rows: LogitRows = (['last', 'all', 'none'] as const)[rnd(3)]!;
      return { i, ids: Array.from({ length: M }, () => rnd(V)), rows };
    });
    const segs: BaseSegment[] = calls.map((c) => ({
      ids: c.ids,
      cache: batch[c.i]!.base,
      rows: c.rows,
      out: batch[c.i]!.sBase,
    }));
    sawChunks ||= calls.reduce((n, c) => n + c.ids.length, 0) > ROW_CHUNK;
    const got = bf.base(segs);
    const hidden: Float32Array[] = [];
    calls.forEach((c, j) => {
      const want = model.forwardBase(c.ids, solo[c.i]!.base, c.rows, solo[c.i]!.sBase);
      const where = `${label} round ${round} session ${c.i} (${c.ids.length} rows, ${c.rows})`;
      bytesEqual(want.hidden, got[j]!.hidden, `${where}: hidden`);
      bytesEqual(want.logits, got[j]!.logits, `${where}: logits`);
      assert.equal(solo[c.i]!.base.length, batch[c.i]!.base.length, `${where}: cache length`);
      hidden.push(want.hidden.slice());
    });
    // Module calls on (h, next) rows, as recycle / verified make them (1–2 rows, catching up with the base).
    const mcalls = calls
      .map((c, j) => ({ i: c.i, h: hidden[j]!, n: Math.min(c.ids.length, 2) }))
      .filter(() => u.next() < 0.8);
    if (mcalls.length > 0) {
      const msegs: ModuleSegment[] = mcalls.map((c) => ({
        hidden: c.h,
        nextIds: Array.from({ length: c.n }, (_, k) => (c.i + k) % V),
        cache: batch[c.i]!.module,
        out: batch[c.i]!.sMod,
      }));
      const mgot = bf.module(msegs);
      mcalls.forEach((c, j) => {
        const want = model.forwardModule(c.h, msegs[j]!.nextIds, solo[c.i]!.module, 'last', solo[c.i]!.sMod);
        bytesEqual(want, mgot[j]!.logits, `${label} round ${round} session ${c.i}: module logits`);
        // u, the module's last block output, is what forwardModule leaves in its scratch's x
        const u = solo[c.i]!.sMod.x.subarray(0, c.n * C);
        bytesEqual(u, mgot[j]!.hidden, `${label} round ${round} session ${c.i}: module hidden`);
      });
    }
    // A rejected draft drops the last base position (verified decoding).
    for (const c of calls) {
      if (c.ids.length > 1 && u.next() < 0.5) {
        solo[c.i]!.base.rollback(1);
        batch[c.i]!.base.rollback(1);
      }
    }
  }
  assert.ok(sawChunks || sessions * 3 <= ROW_CHUNK, `${label}: no round had more than ${ROW_CHUNK} rows`);
}

const archs = [
  { preset: 'tiny', name: 'gpt2' },
  { preset: 'tiny-llama', name: 'llama' },
];

for (const { preset, name } of archs) {
  test(`batched forward == solo forward, bitwise (${name}, ref)`, () => {
    const be: Backend = createRefBackend();
    const model = randomModel({ preset, vocabSize: 97, scale: 3, backend: be, maxPositions: 64 });
    for (const seed of [1, 2]) checkBatchEqualsSolo(model, `${name}/ref seed ${seed}`, seed);
    // the module's head over a draft vocabulary (model/draft-vocab.ts): the batched module call uses it too
    model.setDraftVocab(Array.from({ length: 40 }, (_, i) => (i * 7) % 97));
    checkBatchEqualsSolo(model, `${name}/ref draft vocabulary`, 5);
  });

  test(`batched forward == solo forward, bitwise (${name}, native, 1 and 2 threads)`, { skip: nativeSkip }, () => {
    const be = native();
    const th0 = be.threads();
    try {
      const model = randomModel({ preset, vocabSize: 97, scale: 3, backend: be, maxPositions: 64 });
      for (const th of [1, 2]) {
        be.setThreads(th);
        for (const seed of [3, 4]) checkBatchEqualsSolo(model, `${name}/native ${th}t seed ${seed}`, seed);
        model.setDraftVocab(Array.from({ length: 40 }, (_, i) => (i * 7) % 97));
        checkBatchEqualsSolo(model, `${name}/native ${th}t draft vocabulary`, 6);
        model.setDraftVocab(null);
      }
    } finally {
      be.setThreads(th0);
    }
  });
}

test('batched forward refuses what it cannot do bit-identically, naming the segment', () => {
  const model = randomModel({ vocabSize: 50 });
  const bf = new BatchedForward(model);
  const a = side(model);
  assert.throws(
    () => bf.base([{ ids: Array.from({ length: 9 }, () => 1), cache: a.base, rows: 'last', out: a.sBase }]),
    /segment 0 has 9 rows; calls above 8 rows run alone/,
  );
  assert.throws(
    () =>
      bf.base([
        { ids: [1], cache: a.base, rows: 'last', out: a.sBase },
        { ids: [2], cache: a.base, rows: 'last', out: a.sMod },
      ]),
    /segment 1 shares its KV cache/,
  );
  assert.throws(() => bf.base([{ ids: [50], cache: a.base, rows: 'last', out: a.sBase }]), /token id 50 at index 0/);
  assert.throws(() => bf.base([]), /no segments/);
});
