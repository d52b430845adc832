/**
 * HF import + forward against PyTorch golden outputs (test/fixtures, copied from the shared fixtures): base logits for
 * every position and the module's recycle logits for t = 0..T−2 (ARCHITECTURE.md §1.1), tolerance 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRefBackend } from '../src/kernels/ref.js';
import { getBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { InferenceModel } from '../src/model/infer.js';
import { fixturesDir } from './helpers/fixtures.js';

const fixtures = fixturesDir;

interface Expected {
  input_ids: number[];
  logits: number[][];
  recycle_logits?: number[][];
  tolerance?: number;
}

function maxAbsDiff(got: Float32Array, want: number[]): number {
  assert.equal(got.length, want.length);
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!));
  return m;
}

function check(name: string, backend: Backend): void {
  const dir = join(fixtures, name);
  const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const { config, weights } = loadModelDir(dir);
  const model = new InferenceModel(config, weights, backend);
  model.setDraftHeadDtype('model'); // the reference's module logits come from the head as stored
  const ids = exp.input_ids,
    T = ids.length,
    V = config.vocabSize,
    C = config.hidden;
  const tol = 1e-4;
  const cache = model.newBaseCache();
  const out = model.forwardBase(ids, cache, 'all');
  for (let t = 0; t < T; t++) {
    const d = maxAbsDiff(out.logits.subarray(t * V, (t + 1) * V), exp.logits[t]!);
    assert.ok(d <= tol, `${name} (${backend.name}): logits at position ${t} differ by ${d}`);
  }
  if (exp.recycle_logits) {
    const hidden = out.hidden.slice(0, (T - 1) * C);
    const mcache = model.newModuleCache();
    const rl = model.forwardModule(hidden, ids.slice(1), mcache, 'all');
    assert.equal(exp.recycle_logits.length, T - 1);
    for (let t = 0; t < T - 1; t++) {
      const d = maxAbsDiff(rl.subarray(t * V, (t + 1) * V), exp.recycle_logits[t]!);
      assert.ok(d <= tol, `${name} (${backend.name}): recycle logits at t=${t} differ by ${d}`);
    }
  }
}

const backends: Backend[] = [createRefBackend()];
const def = getBackend();
if (def.name !== 'ref') backends.push(def);

for (const name of ['tiny-gpt2', 'tiny-llama', 'tiny-recycle-gpt2', 'tiny-recycle-llama']) {
  for (const b of backends) test(`${name} matches PyTorch (${b.name})`, () => check(name, b));
}

test('incremental decoding equals the batched forward (KV cache)', () => {
  for (const name of ['tiny-recycle-gpt2', 'tiny-recycle-llama']) {
    const { config, weights } = loadModelDir(join(fixtures, name));
    const model = new InferenceModel(config, weights, createRefBackend());
    const ids = [5, 17, 42, 99, 3, 250, 7];
    const V = config.vocabSize;
    const full = model.forwardBase(ids, model.newBaseCache(), 'all').logits.slice();
    const cache = model.newBaseCache();
    model.forwardBase(ids.slice(0, 3), cache, 'none');
    for (let t = 3; t < ids.length; t++) {
      const l = model.forwardBase([ids[t]!], cache, 'last').logits;
      assert.ok(maxAbsDiff(l, Array.from(full.subarray(t * V, (t + 1) * V))) < 1e-5, `${name}: step ${t}`);
    }
  }
});

test('bad model directories give clear errors', () => {
  assert.throws(() => loadModelDir(join(fixtures, 'does-not-exist')), /no config\.json/);
});
