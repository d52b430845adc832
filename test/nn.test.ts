/**
 * nn: the tape, ops, ParamStore and optimizer. Gradients through a composed graph are checked against central
 * differences of a float64 replica of the same graph (built from the kernel oracles).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { Tensor, checkShape, detach, fromArray, reshape, rowsView, zeros } from '../src/tensor/tensor.js';
import { ParamStore } from '../src/nn/params.js';
import { Tape } from '../src/nn/tape.js';
import * as nn from '../src/nn/ops.js';
import { AdamW, clipGradNorm, cosineSchedule } from '../src/nn/optim.js';
import { assertClose, numericGrad, seededTest, type Rng } from './helpers/check.js';
import {
  attention64,
  crossEntropySum64,
  gelu64,
  layerNorm64,
  linear64,
  rmsNorm64,
  rope64,
  swiglu64,
} from './helpers/oracle64.js';

const be = createRefBackend();

// ---- a small graph using every op --------------------------------------------------------------------------
const [C, V, F, H, G, D, F2, THETA] = [8, 11, 6, 4, 2, 4, 5, 10000];
const PARAMS: [string, number[]][] = [
  ['wte', [V, C]],
  ['ln.w', [C]],
  ['ln.b', [C]],
  ['fc.w', [F, C]],
  ['fc.b', [F]],
  ['q.w', [H * D, F]],
  ['k.w', [G * D, F]],
  ['v.w', [G * D, F]],
  ['out.w', [V, H * D + C]],
  ['out.b', [V]],
  ['rms.w', [C]],
  ['gate.w', [F2, C]],
  ['up.w', [F2, C]],
  ['head2.w', [V, F2]],
];
const SLICE_START = 2; // columns [2, 2 + C) of concat(a, x): inside a, which is H·D = 16 wide

interface Batch {
  B: number;
  T: number;
  ids: Int32Array;
  pos: Int32Array;
  targets1: Int32Array;
  targets2: Int32Array;
}

function makeStore(rng: Rng): ParamStore {
  const store = new ParamStore();
  for (const [name, shape] of PARAMS) store.declare(name, shape);
  store.finalize();
  store.data.set(rng.f32(store.size, 0.5));
  for (const name of ['ln.w', 'rms.w']) store.get(name).data.forEach((_, i, a) => (a[i] = 1 + 0.2 * rng.normal()));
  return store;
}

function makeBatch(rng: Rng, B: number, T: number): Batch {
  const targets1 = rng.ints(B * T, 0, V - 1);
  const targets2 = rng.ints(B * T, 0, V - 1);
  for (let b = 0; b < B; b++) targets2[b * T + T - 1] = -1; // one ignored row per sequence
  return {
    B,
    T,
    ids: rng.ints(B * T, 0, V - 1),
    pos: Int32Array.from({ length: B * T }, (_, i) => i % T),
    targets1,
    targets2,
  };
}

/** embedding → layerNorm → linear → gelu → q/k/v (rope, G < H) → attention → concatCols → CE, plus a
 * sliceCols → add → rmsNorm → swiglu → CE branch, joined by weightedSum. */
function graph(tape: Tape, store: ParamStore, batch: Batch): Tensor {
  const p = (name: string): Tensor => store.get(name);
  const R = batch.B * batch.T;
  const x = nn.embedding(tape, batch.ids, p('wte'));
  const h = nn.gelu(tape, nn.linear(tape, nn.layerNorm(tape, x, p('ln.w'), p('ln.b'), 1e-5), p('fc.w'), p('fc.b')));
  const q = nn.rope(tape, nn.linear(tape, h, p('q.w'), null), R, H, D, batch.pos, THETA);
  const k = nn.rope(tape, nn.linear(tape, h, p('k.w'), null), R, G, D, batch.pos, THETA);
  const v = nn.linear(tape, h, p('v.w'), null);
  const a = nn.attention(tape, q, k, v, { B: batch.B, T: batch.T, H, G, D });
  const c = nn.concatCols(tape, a, x);
  const loss1 = nn.crossEntropy(tape, nn.linear(tape, c, p('out.w'), p('out.b')), batch.targets1);
  const r = nn.rmsNorm(tape, nn.add(tape, x, nn.sliceCols(tape, c, SLICE_START, C)), p('rms.w'), 1e-6);
  const m = nn.swiglu(tape, nn.linear(tape, r, p('gate.w'), null), nn.linear(tape, r, p('up.w'), null));
  const loss2 = nn.crossEntropy(tape, nn.linear(tape, m, p('head2.w'), null), batch.targets2);
  return nn.weightedSum(tape, loss1, loss2, 0.5);
}

/** The same graph in float64, params given in store order. */
function graph64(params: Float64Array[], batch: Batch): number {
  const p = Object.fromEntries(PARAMS.map(([name], i) => [name, params[i]]));
  const R = batch.B * batch.T;
  const rows = <T>(n: number, f: (r: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
  const x = new Float64Array(
    rows(R, (t) => Array.from(p['wte'].subarray(batch.ids[t] * C, batch.ids[t] * C + C))).flat(),
  );
  const h = gelu64(linear64(R, F, C, layerNorm64(R, C, x, p['ln.w'], p['ln.b'], 1e-5), p['fc.w'], p['fc.b']));
  const q = rope64(R, H, D, linear64(R, H * D, F, h, p['q.w'], null), batch.pos, THETA, 1);
  const k = rope64(R, G, D, linear64(R, G * D, F, h, p['k.w'], null), batch.pos, THETA, 1);
  const v = linear64(R, G * D, F, h, p['v.w'], null);
  const a = attention64(batch.B, batch.T, H, G, D, q, k, v);
  const W = H * D + C;
  const c = new Float64Array(
    rows(R, (r) => [...a.subarray(r * H * D, (r + 1) * H * D), ...x.subarray(r * C, (r + 1) * C)]).flat(),
  );
  const count = (t: Int32Array): number => t.filter((y) => y !== -1).length;
  const loss1 =
    crossEntropySum64(R, V, linear64(R, V, W, c, p['out.w'], p['out.b']), batch.targets1) / count(batch.targets1);
  const s = new Float64Array(
    rows(R, (r) => Array.from(c.subarray(r * W + SLICE_START, r * W + SLICE_START + C))).flat(),
  );
  const rn = rmsNorm64(
    R,
    C,
    x.map((xv, i) => xv + s[i]),
    p['rms.w'],
    1e-6,
  );
  const m = swiglu64(linear64(R, F2, C, rn, p['gate.w'], null), linear64(R, F2, C, rn, p['up.w'], null));
  const loss2 =
    crossEntropySum64(R, V, linear64(R, V, F2, m, p['head2.w'], null), batch.targets2) / count(batch.targets2);
  return loss1 + 0.5 * loss2;
}

seededTest('tape gradients of a composed graph match float64 finite differences for every parameter', (rng) => {
  const store = makeStore(rng);
  const batch = makeBatch(rng, 2, rng.int(2, 4));
  const tape = new Tape(be);
  const loss = graph(tape, store, batch);
  const params64 = PARAMS.map(([name]) => Float64Array.from(store.get(name).data));
  assertClose('loss', loss.data, [graph64(params64, batch)], 1e-5, 0);
  tape.backward(loss);
  PARAMS.forEach(([name], i) => {
    const numeric = numericGrad((inputs) => new Float64Array([graph64(inputs, batch)]), params64, [1], i);
    assertClose(`d loss / d ${name}`, store.get(name).grad ?? [], numeric, 2e-4, 2e-5);
  });
});

seededTest('gradient accumulation over micro-batches equals the big-batch gradient', (rng) => {
  const store = makeStore(rng);
  const T = rng.int(2, 4);
  const big = makeBatch(rng, 2, T);
  const tape = new Tape(be);
  tape.backward(graph(tape, store, big));
  const bigGrad = store.grad.slice();
  store.zeroGrad();
  for (let b = 0; b < 2; b++) {
    const part = (a: Int32Array): Int32Array => a.slice(b * T, (b + 1) * T);
    const micro: Batch = {
      B: 1,
      T,
      ids: part(big.ids),
      pos: part(big.pos),
      targets1: part(big.targets1),
      targets2: part(big.targets2),
    };
    tape.reset();
    tape.backward(graph(tape, store, micro), 0.5);
  }
  assertClose('accumulated grad', store.grad, bigGrad, 1e-4, 1e-5);
});

seededTest('the arena reuses its buffers: a repeated step allocates nothing', (rng) => {
  const store = makeStore(rng);
  const batch = makeBatch(rng, 2, 3);
  const tape = new Tape(be);
  const first = graph(tape, store, batch);
  tape.backward(first);
  const afterFirst = tape.allocations;
  const firstLoss = first.data[0];
  assert.ok(afterFirst > 0 && tape.recorded > 0);
  for (let step = 0; step < 3; step++) {
    tape.reset();
    const loss = graph(tape, store, batch);
    tape.backward(loss);
    assert.equal(tape.allocations, afterFirst, `step ${step + 2} allocated new buffers`);
    assert.equal(loss.data, first.data, 'the loss lives in the same buffer');
    assert.equal(loss.data[0], firstLoss);
  }
  assert.throws(() => tape.backward(first), /backward\(\) called twice/);
  const evalTape = new Tape(be, { grad: false });
  const evalLoss = graph(evalTape, store, batch);
  assert.equal(evalTape.recorded, 0);
  assert.equal(evalLoss.grad, null);
  assert.equal(evalLoss.data[0], firstLoss, 'eval and train forwards agree bit for bit');
  assert.throws(() => evalTape.backward(evalLoss), /grad: false/);
});

test('detached parameters and data inputs get no gradient', () => {
  const store = new ParamStore();
  store.declare('w', [2, 3]);
  store.declare('b', [2]);
  store.finalize();
  store.data.set([1, 2, 3, 4, 5, 6, 0.5, -0.5]);
  const tape = new Tape(be);
  const x = fromArray([1, 3], [1, -1, 2]);
  const y = nn.linear(tape, x, detach(store.get('w')), store.get('b'));
  const loss = nn.crossEntropy(tape, y, Int32Array.from([1]));
  tape.backward(loss);
  assert.deepEqual(Array.from(store.get('w').grad ?? []), [0, 0, 0, 0, 0, 0]);
  assert.ok((store.get('b').grad ?? [])[0] > 0, 'bias got a gradient');
});

// ---- optimizer, schedule, clipping ---------------------------------------------------------------------------
test('AdamW: two steps match a hand computation; decay only on rank >= 2; state round-trips', () => {
  const make = (): ParamStore => {
    const s = new ParamStore();
    s.declare('w', [2, 2]);
    s.declare('b', [2]);
    s.declare('w2', [1, 2]);
    s.finalize();
    s.data.set([0.5, -1, 2, 0.25, 1, -2, 0.75, -0.5]);
    return s;
  };
  const grads = [
    [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8],
    [-0.3, 0.1, 0.2, -0.1, 0.5, 0.4, -0.6, 0.2],
  ];
  const [lr, b1, b2, eps, wd] = [0.01, 0.9, 0.99, 1e-8, 0.1];
  const decay = [1, 1, 1, 1, 0, 0, 1, 1];
  const expected = [0.5, -1, 2, 0.25, 1, -2, 0.75, -0.5];
  const m = new Array<number>(8).fill(0),
    v = new Array<number>(8).fill(0);
  for (let t = 1; t <= 2; t++) {
    for (let i = 0; i < 8; i++) {
      const g = grads[t - 1][i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      expected[i] -=
        lr * (m[i] / (1 - b1 ** t) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps) + wd * decay[i] * expected[i]);
    }
  }
  const store = make();
  const opt = new AdamW(be, store, { beta1: b1, beta2: b2, eps, weightDecay: wd });
  store.grad.set(grads[0]);
  opt.step(lr);
  const saved = opt.exportState();
  assert.equal(saved.step, 1);
  store.grad.set(grads[1]);
  opt.step(lr);
  assertClose('AdamW params after 2 steps', store.data, expected, 1e-5, 1e-6);
  // resume from the state saved after step 1 on a fresh store holding step-1 params
  const resumed = make();
  const opt2 = new AdamW(be, resumed, { beta1: b1, beta2: b2, eps, weightDecay: wd });
  const once = make();
  const opt1 = new AdamW(be, once, { beta1: b1, beta2: b2, eps, weightDecay: wd });
  once.grad.set(grads[0]);
  opt1.step(lr);
  resumed.data.set(once.data);
  opt2.importState(saved);
  resumed.grad.set(grads[1]);
  opt2.step(lr);
  assert.deepEqual(resumed.data, store.data, 'resumed run is bit-identical');
  assert.equal(opt2.stepCount, 2);
  assert.throws(() => opt2.importState({ step: 1, m: new Float32Array(3), v: new Float32Array(8) }), /importState/);
  assert.throws(() => opt.step(NaN), /learning rate/);
});

test('cosineSchedule: warm-up, peak, midpoint, floor', () => {
  const lr = cosineSchedule({ warmup: 10, total: 110, maxLr: 1e-3, minLr: 1e-4 });
  assertClose('schedule', [0, 4, 9, 10, 60, 110, 500].map(lr), [1e-4, 5e-4, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4], 1e-12, 0);
  let prev = Infinity;
  for (let s = 10; s <= 110; s++) {
    assert.ok(lr(s) <= prev, `non-increasing after warm-up at ${s}`);
    prev = lr(s);
  }
  assert.equal(cosineSchedule({ warmup: 0, total: 0, maxLr: 1, minLr: 0 })(0), 0);
  assert.throws(() => cosineSchedule({ warmup: 5, total: 4, maxLr: 1, minLr: 0 }), /total/);
  assert.throws(() => cosineSchedule({ warmup: 0, total: 4, maxLr: 1, minLr: 2 }), /minLr/);
  assert.throws(() => lr(-1), /step/);
});

test('clipGradNorm: returns the norm before clipping, scales down only above maxNorm, stops on NaN', () => {
  const store = new ParamStore();
  store.declare('a', [1]);
  store.declare('b', [1]);
  store.finalize();
  store.grad.set([3, 4]);
  assert.equal(clipGradNorm(store, 10, be), 5);
  assert.deepEqual(Array.from(store.grad), [3, 4]);
  assert.equal(clipGradNorm(store, 1, be), 5);
  assertClose('clipped', store.grad, [0.6, 0.8], 1e-6, 0);
  assertClose('measure only', [clipGradNorm(store, Infinity, be)], [1], 1e-6, 0);
  assertClose('unchanged by measuring', store.grad, [0.6, 0.8], 1e-6, 0);
  store.grad[1] = NaN;
  assert.throws(() => clipGradNorm(store, 1, be), /clipGradNorm: gradient norm is NaN/);
  store.grad[1] = Infinity;
  assert.throws(() => clipGradNorm(store, 1, be), /Infinity/);
});

// ---- ParamStore and Tensor -------------------------------------------------------------------------------------
test('ParamStore: one buffer in declaration order, clear errors', () => {
  const store = new ParamStore();
  store.declare('a.weight', [2, 3]);
  store.declare('a.bias', [3]);
  assert.throws(() => store.declare('a.bias', [3]), /declared twice/);
  assert.throws(() => store.get('a.weight'), /before finalize/);
  assert.throws(() => store.data, /before finalize/);
  store.finalize();
  assert.throws(() => store.finalize(), /twice/);
  assert.throws(() => store.declare('c', [1]), /after finalize/);
  assert.throws(() => store.get('b.bias'), /unknown parameter "b.bias".*a.bias/);
  assert.deepEqual(store.names(), ['a.weight', 'a.bias']);
  assert.equal(store.data.length, 9);
  const w = store.get('a.weight'),
    b = store.get('a.bias');
  assert.equal(w.data.buffer, store.data.buffer);
  assert.equal(b.data.byteOffset, 6 * 4, 'declaration order is memory order');
  b.grad?.fill(2);
  assert.equal(store.grad[8], 2);
  store.zeroGrad();
  assert.equal(store.grad[8], 0);
  assert.ok(store.has('a.bias') && !store.has('x'));
});

test('Tensor helpers: shapes, views, errors', () => {
  const t = zeros([2, 3], true);
  assert.equal(t.size, 6);
  assert.throws(() => fromArray([2, 2], [1, 2, 3]), /fromArray: 3 values for shape \[2,2\]/);
  assert.throws(() => new Tensor([2, -1]), /bad shape/);
  const r = reshape(t, [3, 2]);
  r.data[5] = 7;
  assert.equal(t.data[5], 7);
  assert.throws(() => reshape(t, [4]), /reshape/);
  const rows = rowsView(fromArray([3, 2], [1, 2, 3, 4, 5, 6]), 1, 2);
  assert.deepEqual(Array.from(rows.data), [3, 4, 5, 6]);
  assert.throws(() => rowsView(t, 1, 2), /outside the 2 rows/);
  assert.throws(() => checkShape('myop', 'x', t, [2, null, 1]), /myop: x has shape \[2,3\], expected \[2,\*,1\]/);
  const tape = new Tape(be);
  assert.throws(
    () => nn.linear(tape, zeros([2, 4]), zeros([3, 5]), null),
    /linear: x has shape \[2,4\], expected last dimension 5/,
  );
  assert.throws(() => nn.add(tape, zeros([2]), zeros([3])), /add: shapes differ/);
  assert.throws(() => nn.crossEntropy(tape, zeros([2, 3]), Int32Array.from([0])), /crossEntropy: 1 targets for 2 rows/);
});
