/**
 * The seams later backends and consumers plug into (issue 10): weights as handles that know their storage dtype,
 * and memory that comes from the backend's allocator (weights, KV caches, inference scratch, the training arena,
 * the parameter store and the optimizer moments).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heapAllocator, type Allocator, type Backend, type Weight } from '../src/kernels/backend.js';
import { f32ToBf16Bits, f32ToF16Bits, f16ToF32Array, bf16ToF32Array } from '../src/kernels/half.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { tryLoadNativeBackend } from '../src/kernels/native.js';
import { Rng } from '../src/data/rng.js';
import { allParamSpecs } from '../src/model/names.js';
import { presetConfig } from '../src/model/presets.js';
import { Weights } from '../src/model/weights.js';
import { InferenceModel } from '../src/model/infer.js';
import { initParams } from '../src/model/init.js';
import { Tape } from '../src/nn/tape.js';
import { AdamW } from '../src/nn/optim.js';
import { TrainGraph } from '../src/model/graph.js';
import { TrainParams } from '../src/train/params.js';

function halfWeight(dtype: 'f16' | 'bf16', values: Float32Array): { w: Weight; widened: Float32Array } {
  const bits = Uint16Array.from(values, (x) => (dtype === 'f16' ? f32ToF16Bits(x) : f32ToBf16Bits(x)));
  return { w: { dtype, data: bits }, widened: dtype === 'f16' ? f16ToF32Array(bits) : bf16ToF32Array(bits) };
}

test('ref linear and embedding read f16 / bf16 weights as stored, bit-identical to their float32 widening', () => {
  const be = createRefBackend();
  const rng = new Rng(3);
  for (const dtype of ['f16', 'bf16'] as const) {
    for (const [M, N, K] of [
      [1, 7, 5],
      [3, 17, 33],
      [8, 2, 1],
    ]) {
      const x = Float32Array.from({ length: M * K }, () => rng.normal());
      const { w, widened } = halfWeight(
        dtype,
        Float32Array.from({ length: N * K }, () => rng.normal()),
      );
      const bias = Float32Array.from({ length: N }, () => rng.normal());
      const a = new Float32Array(M * N),
        b = new Float32Array(M * N);
      be.linear(M, N, K, x, w, bias, a);
      be.linear(M, N, K, x, { dtype: 'f32', data: widened }, bias, b);
      assert.deepEqual(a, b, `${dtype} linear ${M}x${N}x${K}`);
      const ids = Int32Array.from({ length: M }, () => rng.int(N));
      const e1 = new Float32Array(M * K),
        e2 = new Float32Array(M * K);
      be.embeddingForward(M, K, N, ids, w, e1);
      be.embeddingForward(M, K, N, ids, widened, e2);
      assert.deepEqual(e1, e2, `${dtype} embedding`);
    }
  }
  assert.deepEqual([...be.weightDtypes], ['f32', 'f16', 'bf16', 'q8_0', 'q4_0']);
});

test('a backend refuses a weight dtype it does not read, naming it; bad handles are refused', () => {
  const native = tryLoadNativeBackend().backend;
  const backends: Backend[] = [createRefBackend(), ...(native ? [native] : [])];
  const x = new Float32Array(4),
    y = new Float32Array(2);
  for (const be of backends) {
    if (!be.weightDtypes.includes('f16')) {
      assert.throws(
        () => be.linear(1, 2, 4, x, { dtype: 'f16', data: new Uint16Array(8) }, null, y),
        /linear: weight w is "f16"; this backend reads f32/,
      );
    }
    assert.throws(
      () => be.linear(1, 2, 4, x, { dtype: 'f16', data: new Float32Array(8) } as unknown as Weight, null, y),
      /linear: argument w\.data must be a Uint16Array \(f16 bits\)|weight w is "f16"/,
    );
    assert.throws(
      () => be.linear(1, 2, 4, x, { dtype: 'f32', data: new Float32Array(7) }, null, y),
      /linear: w has 7 elements but w\[N=2,K=4\] needs 8/,
    );
    be.linear(1, 2, 4, x, { dtype: 'f32', data: new Float32Array(8) }, null, y);
  }
});

test('Weights keep each tensor in the dtype asked for, in one allocation per dtype', () => {
  const config = presetConfig('tiny', { vocabSize: 40 });
  const specs = allParamSpecs(config);
  const w = new Weights(specs, heapAllocator, (s) => (s.shape.length === 2 ? 'f16' : 'f32'));
  const mat = specs.find((s) => s.shape.length === 2)!;
  const vec = specs.find((s) => s.shape.length === 1)!;
  assert.equal(w.weight(mat.name).dtype, 'f16');
  assert.ok(w.weight(mat.name).data instanceof Uint16Array);
  assert.throws(() => w.get(mat.name), /is stored as f16, not f32/);
  assert.ok(w.get(vec.name) instanceof Float32Array);
  const elems = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const half = specs.filter((s) => s.shape.length === 2).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  assert.equal(w.bytes, half * 2 + (elems - half) * 4);
});

/** An allocator that counts what it hands out (and could place it anywhere: a WASM heap, aligned memory). */
function countingAllocator(): {
  alloc: Allocator;
  counts: { f32: number; u16: number; i32: number; i8: number; u8: number };
} {
  const counts = { f32: 0, u16: 0, i32: 0, i8: 0, u8: 0 };
  const alloc: Allocator = {
    f32: (n) => (counts.f32++, new Float32Array(n)),
    u16: (n) => (counts.u16++, new Uint16Array(n)),
    i32: (n) => (counts.i32++, new Int32Array(n)),
    i8: (n) => (counts.i8++, new Int8Array(n)),
    u8: (n) => (counts.u8++, new Uint8Array(n)),
  };
  return { alloc, counts };
}

test('weights, KV caches, scratch, the tape arena, parameters and optimizer state come from the backend', () => {
  const { alloc, counts } = countingAllocator();
  const be: Backend = Object.assign(Object.create(createRefBackend()) as Backend, { alloc });
  const config = presetConfig('tiny', { vocabSize: 40 });
  const specs = allParamSpecs(config);
  const weights = new Weights(specs, be.alloc);
  initParams(specs, (n) => weights.get(n), config, 1);
  const before = { ...counts };
  const model = new InferenceModel(config, weights, be);
  const cache = model.newBaseCache(16);
  model.forwardBase([1, 2, 3], cache, 'last');
  assert.ok(counts.f32 > before.f32 + 2 * config.nLayers, 'KV caches and scratch from the allocator');
  assert.ok(counts.i32 > before.i32, 'scratch ids and positions from the allocator');

  const mid = counts.f32;
  const params = new TrainParams(config, false, be.alloc);
  params.copyFrom((n) => weights.get(n));
  new AdamW(be, params.store);
  const tape = new Tape(be);
  const B = 1,
    T = 4,
    ids = Int32Array.from([1, 2, 3, 4]);
  new TrainGraph(config).forward(tape, params, { B, T, inputs: ids, targets: ids, targets2: ids });
  // params data + grad, m + v, and at least one activation buffer of the tape
  assert.ok(counts.f32 >= mid + 5, `training buffers from the allocator (${counts.f32 - mid})`);
});

test('the loader keeps F16 weights as stored for an f16 backend; greedy output equals the widened model', async () => {
  const { RecycleGPT } = await import('../src/generate/recyclegpt.js');
  const path = await import('node:path');
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'models', 'recycle-small');
  const ref = createRefBackend();
  const widening: Backend = Object.assign(Object.create(createRefBackend()) as Backend, { weightDtypes: ['f32'] });
  const kept = await RecycleGPT.load(dir, { backend: ref });
  const wide = await RecycleGPT.load(dir, { backend: widening });
  const head = kept.model.weights.weight('wte.weight');
  assert.equal(head.dtype, 'f16', 'the shipped model stores F16; the ref backend keeps it');
  assert.equal(wide.model.weights.weight('wte.weight').dtype, 'f32');
  assert.equal(kept.model.weights.weight('ln_f.weight').dtype, 'f32', 'norms stay f32');
  assert.ok(kept.model.weights.bytes < 0.6 * wide.model.weights.bytes, 'half the bytes for the matrices');
  for (const mode of ['standard', 'verified'] as const) {
    const a = await kept.generate('The jury said', { mode, max_new_tokens: 12 });
    const b = await wide.generate('The jury said', { mode, max_new_tokens: 12 });
    assert.deepEqual(a.ids, b.ids, mode);
  }
});

test('two models in one process keep their own backend and threads; interleaved streams equal solo runs', async () => {
  const { RecycleGPT } = await import('../src/generate/recyclegpt.js');
  const path = await import('node:path');
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'models', 'recycle-small');
  const warnings: string[] = [];
  const a = await RecycleGPT.load(dir, { threads: 1, onWarning: (m) => warnings.push(m) });
  const b = await RecycleGPT.load(dir, { threads: 2, onWarning: (m) => warnings.push(m) });
  assert.notEqual(a.model.backend, b.model.backend, 'each model has its own backend');
  if (a.model.backend.name === 'native') {
    assert.equal(a.model.backend.threads(), 1);
    assert.equal(b.model.backend.threads(), 2);
  } else assert.equal(warnings.length, 2, 'the fallback to ref is reported, not printed');
  const opts = { mode: 'verified', max_new_tokens: 10 } as const;
  const soloA = await a.generate('The jury said', opts);
  const soloB = await b.generate('It was a', opts);
  const sa = a.stream('The jury said', opts)[Symbol.asyncIterator]();
  const sb = b.stream('It was a', opts)[Symbol.asyncIterator]();
  const idsA: number[] = [],
    idsB: number[] = [];
  for (let doneA = false, doneB = false; !doneA || !doneB;) {
    if (!doneA) {
      const r = await sa.next();
      if (r.done) doneA = true;
      else idsA.push(r.value.id);
    }
    if (!doneB) {
      const r = await sb.next();
      if (r.done) doneB = true;
      else idsB.push(r.value.id);
    }
  }
  assert.deepEqual(idsA, soloA.ids);
  assert.deepEqual(idsB, soloB.ids);
  if (a.model.backend.name === 'native') {
    assert.equal(a.model.backend.threads(), 1, 'model b did not change model a');
    assert.equal(b.model.backend.threads(), 2);
  }
});

test('q8_0: ggml rounding (halves away from zero, scale from the unrounded amax/127), read exactly', async () => {
  const { quantizeQ8, dequantizeQ8 } = await import('../src/kernels/quant.js');
  const x = new Float32Array(64);
  x[0] = 127; // amax of block 0: d = 1, so q = roundf(x)
  x[1] = 2.5;
  x[2] = -2.5;
  x[3] = 0.49999997;
  x[4] = -126.5;
  const q = quantizeQ8(x, 1, 64); // block 1 is all zeros: d = 0, q = 0
  assert.deepEqual([...q.data.subarray(0, 5)], [127, 3, -3, 0, -127]);
  assert.deepEqual([...q.scales], [f32ToF16Bits(1), 0]);
  assert.throws(() => quantizeQ8(new Float32Array(40), 1, 40), /K = 40 is not a multiple of 32/);
  const be = createRefBackend();
  const rng = new Rng(9);
  const [M, N, K] = [3, 5, 96];
  const w = quantizeQ8(
    Float32Array.from({ length: N * K }, () => rng.normal()),
    N,
    K,
  );
  const xs = Float32Array.from({ length: M * K }, () => rng.normal());
  const a = new Float32Array(M * N),
    b = new Float32Array(M * N);
  be.linear(M, N, K, xs, { dtype: 'q8_0', data: w.data, scales: w.scales }, null, a);
  be.linear(M, N, K, xs, dequantizeQ8(w), null, b);
  assert.deepEqual(a, b);
  assert.throws(
    () => be.linear(1, 1, 40, xs, { dtype: 'q8_0', data: new Int8Array(40), scales: new Uint16Array(2) }, null, a),
    /q8_0 weight w needs a row length that is a multiple of 32/,
  );
});
