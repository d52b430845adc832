/**
 * Distilling the module toward the base (`--recycle-distill α`, `--recycle-reverse-kl β`, model/module-chain.ts):
 * the soft-target cross-entropy and reverse KL against a float64 reference and central differences on every backend,
 * α = 0 is the plain cross-entropy bit for bit, the teacher softmax, the k-step loss's module gradients by finite
 * differences, the frozen-base module graph training the same function as the joint graph, and the options through
 * `train`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRefBackend } from '../src/kernels/ref.js';
import { getBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { TrainGraph, weightsSource } from '../src/model/graph.js';
import { evaluateModule, evaluateParams } from '../src/train/eval.js';
import * as nn from '../src/nn/ops.js';
import { Tape } from '../src/nn/tape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FrozenBase, ModuleGraph } from '../src/train/module-graph.js';
import { train } from '../src/train/trainer.js';
import { resolveOptions } from '../src/train/options.js';
import { maxDiff, Rng } from './helpers/check.js';
import { checkGradientsByDifferences, frozenCopies, randomBatch, scaledPresetModel } from './helpers/train.js';

const backends = (): Backend[] => {
  const native = getBackend();
  return native.name === 'ref' ? [createRefBackend()] : [createRefBackend(), native];
};

/** Random rows of probabilities [R, V]. */
function randomProbs(rng: Rng, R: number, V: number): Float32Array {
  const p = rng.f32(R * V, 3);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let v = 0; v < V; v++) s += p[r * V + v] = Math.exp(p[r * V + v]!);
    for (let v = 0; v < V; v++) p[r * V + v] /= s;
  }
  return p;
}

/**
 * The loss in float64, written from its definition: (1 − α)·CE(onehot) + α·CE(teacher) + β·KL(q ‖ teacher), mean
 * over counted rows.
 */
function distillLoss64(N: number, V: number, z: ArrayLike<number>, targets: Int32Array, soft: nn.SoftTargets): number {
  let sum = 0,
    counted = 0;
  for (let n = 0; n < N; n++) {
    if (targets[n] === -1) continue;
    counted++;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[n * V + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[n * V + v]! - m);
    const logq = (v: number): number => z[n * V + v]! - m - Math.log(s);
    const hard = -logq(targets[n]!);
    const r = soft.rows[n]!;
    let softCe = hard;
    if (r >= 0) {
      softCe = 0;
      for (let v = 0; v < V; v++) softCe -= soft.probs[r * V + v]! * logq(v);
    }
    sum += r >= 0 ? (1 - soft.alpha) * hard + soft.alpha * softCe : hard;
    const beta = soft.reverse ?? 0;
    if (r >= 0 && beta > 0) {
      let kl = 0;
      for (let v = 0; v < V; v++)
        kl += Math.exp(logq(v)) * (logq(v) - Math.log(Math.max(soft.probs[r * V + v]!, 1e-30)));
      sum += beta * kl;
    }
  }
  return counted > 0 ? sum / counted : 0;
}

test('crossEntropyDistill: forward equals the float64 definition, gradients match central differences', () => {
  const rng = new Rng(5);
  for (const be of backends())
    for (const [N, V, alpha, reverse] of [
      [7, 13, 0.5, 0],
      [5, 33, 1, 0],
      [9, 4, 0.25, 0],
      [7, 13, 0.5, 0.7],
      [6, 21, 0, 1],
      [5, 33, 1, 2],
    ] as const) {
      const z = rng.f32(N * V, 2);
      const targets = Int32Array.from({ length: N }, (_, n) => (n === 2 ? -1 : (n * 5 + 1) % V));
      const probs = randomProbs(rng, 4, V);
      const rows = Int32Array.from({ length: N }, (_, n) => (n % 3 === 1 ? -1 : n % 4));
      const soft = { probs, rows, alpha, reverse };
      const tape = new Tape(be);
      const logits = new Tensor([N, V], Float32Array.from(z), new Float32Array(N * V));
      const out = nn.crossEntropyDistill(tape, logits, targets, soft);
      const want = distillLoss64(N, V, z, targets, soft);
      assert.ok(Math.abs(out.data[0]! - want) < 1e-5 * Math.max(1, want), `${be.name}: ${out.data[0]} vs ${want}`);
      tape.backward(out);
      const eps = 1e-3;
      for (let i = 0; i < N * V; i++) {
        const zp = Float64Array.from(z),
          zm = Float64Array.from(z);
        zp[i] += eps;
        zm[i] -= eps;
        const num = (distillLoss64(N, V, zp, targets, soft) - distillLoss64(N, V, zm, targets, soft)) / (2 * eps);
        assert.ok(
          Math.abs(num - logits.grad![i]!) < 2e-5,
          `${be.name} N=${N} V=${V} α=${alpha} β=${reverse}: dz[${i}] ${logits.grad![i]} ${num}`,
        );
      }
      // the ignored row gets no gradient
      assert.ok(logits.grad!.subarray(2 * V, 3 * V).every((g) => g === 0));
    }
});

test('crossEntropyDistill with α = 0 is crossEntropy bit for bit; bad teachers are named', () => {
  const rng = new Rng(6);
  for (const be of backends()) {
    const [N, V] = [6, 21];
    const z = rng.f32(N * V, 2);
    const targets = Int32Array.from([3, -1, 0, 20, 7, 7]);
    const a = new Tensor([N, V], Float32Array.from(z), new Float32Array(N * V));
    const b = new Tensor([N, V], Float32Array.from(z), new Float32Array(N * V));
    const ta = new Tape(be),
      tb = new Tape(be);
    const la = nn.crossEntropy(ta, a, targets);
    const lb = nn.crossEntropyDistill(tb, b, targets, {
      probs: randomProbs(rng, N, V),
      rows: Int32Array.from({ length: N }, (_, n) => n),
      alpha: 0,
    });
    assert.equal(la.data[0], lb.data[0]);
    ta.backward(la);
    tb.backward(lb);
    assert.deepEqual(a.grad, b.grad);
    const tape = new Tape(be);
    const probs = randomProbs(rng, 2, V);
    assert.throws(
      () => nn.crossEntropyDistill(tape, a, targets, { probs, rows: new Int32Array(N).fill(2), alpha: 0.5 }),
      /crossEntropyDistill: teacher row 2 of logits row 0 is outside the 2 rows/,
    );
    assert.throws(
      () => nn.crossEntropyDistill(tape, a, targets, { probs, rows: new Int32Array(N), alpha: 0.5, reverse: -1 }),
      /crossEntropyDistill: reverse must be a finite number >= 0, got -1/,
    );
    assert.throws(
      () => nn.crossEntropyDistill(tape, a, targets, { probs, rows: new Int32Array(N), alpha: 1.5 }),
      /alpha must be in \[0, 1\], got 1.5/,
    );
    assert.throws(
      () => nn.crossEntropyDistill(tape, a, targets, { probs, rows: new Int32Array(3), alpha: 0.5 }),
      /6 targets and 3 teacher rows for 6 rows/,
    );
  }
});

test('softmaxRows equals a float64 softmax on every backend (odd widths, large logits)', () => {
  const rng = new Rng(7);
  for (const be of backends())
    for (const [N, V] of [
      [3, 1],
      [5, 17],
      [4, 4099],
    ] as const) {
      const z = rng.f32(N * V, 30);
      const out = new Float32Array(N * V).fill(9);
      nn.softmaxRows(new Tape(be), N, V, z, out);
      for (let n = 0; n < N; n++) {
        let m = -Infinity,
          s = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, z[n * V + v]!);
        for (let v = 0; v < V; v++) s += Math.exp(z[n * V + v]! - m);
        for (let v = 0; v < V; v++) {
          const want = Math.exp(z[n * V + v]! - m) / s;
          assert.ok(Math.abs(out[n * V + v]! - want) < 2e-7 + 1e-5 * want, `${be.name} ${N}x${V} [${n},${v}]`);
        }
      }
    }
});

for (const preset of ['tiny', 'tiny-llama'] as const)
  test(`k-step loss with distillation (depth 3, α 0.6): module gradients match finite differences (${preset})`, () => {
    // The teacher is the base's own (detached) distribution: the loss depends on the base's parameters through it,
    // but by design no gradient flows there, so only the module's parameters are checked by differences.
    const be = createRefBackend();
    const { config, params } = scaledPresetModel(preset, 12, 9);
    const graph = new TrainGraph(config);
    const batch = randomBatch(2, 7, config.vocabSize, 4);
    const opts = { depth: 3, depthWeights: [1, 0.5, 0.25], distill: 0.6 };
    const lossOf = (): number => graph.forward(new Tape(be, { grad: false }), params, batch, opts).loss.data[0]!;
    const plain = graph.forward(new Tape(be, { grad: false }), params, batch, { ...opts, distill: 0 });
    const tape = new Tape(be);
    params.store.zeroGrad();
    const out = graph.forward(tape, params, batch, opts);
    assert.notEqual(out.loss.data[0], plain.loss.data[0]);
    tape.backward(out.loss);
    const probe = params.specs.map((s) => s.name).filter((n) => n.startsWith('recycle.'));
    assert.ok(probe.length >= 5);
    // a step of 3e-3: at 1e-2 the central difference's truncation error reaches ~2% on recycle.in_proj.bias
    checkGradientsByDifferences(params, probe, lossOf, (size) => [Math.floor(size / 3)], `${preset} `, 3e-3);
  });

test('distillation: the frozen-base module graph trains the joint graph’s function (losses, module gradients)', () => {
  const be = getBackend();
  const { config, params } = scaledPresetModel('tiny', 12, 3);
  const { weights, frozen } = frozenCopies(config, params);
  const batch = randomBatch(3, 9, config.vocabSize, 8);
  const opts = { depth: 2, weights: [1, 0.5], distill: 0.7 };
  const tape = new Tape(be);
  params.store.zeroGrad();
  const full = new TrainGraph(config).forward(tape, params, batch, {
    depth: 2,
    depthWeights: opts.weights,
    distill: opts.distill,
  });
  tape.backward(full.recycleDepths!.losses[0]!); // depth 1's term alone: its module gradients, both ways
  const base = new FrozenBase(config, weights, be);
  const h = new Float32Array(3 * 8 * config.hidden);
  base.hidden(batch, h);
  const mtape = new Tape(be);
  const m = new ModuleGraph(config, opts).forward(mtape, frozen, batch, h);
  for (let j = 0; j < 2; j++) {
    const [a, b] = [m.depths.losses[j]!.data[0]!, full.recycleDepths!.losses[j]!.data[0]!];
    assert.ok(Math.abs(a - b) < 1e-5, `depth ${j + 1}: ${a} vs ${b}`);
  }
  // evaluation reports the data's cross-entropy whatever the training target: the joint evaluation's numbers
  const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * 7 + 3) % config.vocabSize);
  const evalOpts = { backend: be, seqLen: 9, batchSize: 3, depth: 2 };
  const a = evaluateParams(config, weightsSource(weights), tokens, evalOpts);
  const b = evaluateModule(new ModuleGraph(config, opts), base, frozen, tokens, evalOpts);
  for (let j = 0; j < 2; j++) assert.ok(Math.abs(a.depths[j]!.loss - b.depths[j]!.loss) < 1e-4, `eval depth ${j + 1}`);
  mtape.backward(m.depths.losses[0]!);
  for (const name of ['recycle.in_proj.weight', 'recycle.layers.0.mlp.c_fc.weight']) {
    const [a, b] = [frozen.get(name).grad!, params.get(name).grad!];
    assert.ok(maxDiff(a, b) < 1e-5 * Math.max(1, ...Array.from(b, Math.abs)), name);
  }
});

test('train --recycle-distill / --recycle-reverse-kl: validated, recorded in checkpoints, change the training', () => {
  assert.throws(
    () => resolveOptions({ data: 'x', out: 'y', recycleDistill: 1.5 }),
    /training option "recycleDistill" must be a number in \[0, 1\], got 1.5/,
  );
  assert.throws(
    () => resolveOptions({ data: 'x', out: 'y', recycleReverseKl: -0.5 }),
    /training option "recycleReverseKl" must be a number >= 0, got -0.5/,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rgpt-distill-'));
  const data = path.join(dir, 'corpus.txt');
  fs.writeFileSync(data, 'the cat sat on the mat and the dog sat on the log. '.repeat(60));
  const run = (alpha: number, beta = 0): number => {
    const out = path.join(dir, `run-${alpha}-${beta}`);
    const r = train(
      {
        data,
        out,
        preset: 'tiny',
        steps: 3,
        batchSize: 2,
        seqLen: 16,
        evalEvery: 0,
        evalBatches: 1,
        recycleDepth: 2,
        recycleDistill: alpha,
        recycleReverseKl: beta,
      },
      { resume: false },
      { backend: createRefBackend() },
    );
    const state = JSON.parse(fs.readFileSync(path.join(out, 'train_state', 'state.json'), 'utf8')) as {
      options: { recycleDistill: number; recycleReverseKl: number };
    };
    assert.equal(state.options.recycleDistill, alpha);
    assert.equal(state.options.recycleReverseKl, beta);
    return r.lastTrain!.recycle_loss!;
  };
  try {
    const [plain, distilled, reverse, reverseOnly] = [run(0), run(0.5), run(0.5, 1), run(0, 1)];
    for (const l of [plain, distilled, reverse, reverseOnly]) assert.ok(Number.isFinite(l));
    assert.notEqual(plain, distilled);
    assert.notEqual(distilled, reverse);
    assert.notEqual(plain, reverseOnly);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
