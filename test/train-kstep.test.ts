/**
 * The k-step recycle loss (model/module-chain.ts, nn/chain-attention.ts): chained attention with no extras is causal
 * attention; its gradients and the k-step loss's gradients match central differences; depth j at anchor t equals
 * the decode path that appends chained steps to the module KV cache (InferenceModel.forwardModuleOut); the
 * frozen-base module graph computes the same chain; evaluation reports every depth.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { getBackend } from '../src/kernels/index.js';
import { TrainGraph, weightsSource } from '../src/model/graph.js';
import { InferenceModel } from '../src/model/infer.js';
import { Weights } from '../src/model/weights.js';
import { chainAttention } from '../src/nn/chain-attention.js';
import * as nn from '../src/nn/ops.js';
import { Tape } from '../src/nn/tape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { evaluateModule, evaluateParams } from '../src/train/eval.js';
import { FrozenBase, ModuleGraph } from '../src/train/module-graph.js';
import { maxDiff, Rng } from './helpers/check.js';
import { checkGradientsByDifferences, frozenCopies, randomBatch, scaledPresetModel } from './helpers/train.js';

function param(rng: Rng, n: number): Tensor {
  return new Tensor([n], rng.f32(n, 1), new Float32Array(n));
}

test('chainAttention with no extras is causal attention (odd sizes, grouped heads), forward and backward', () => {
  for (const be of [createRefBackend(), getBackend()]) {
    const rng = new Rng(11);
    const [B, T, H, G, D] = [2, 7, 6, 3, 5];
    const q = param(rng, B * T * H * D),
      k = param(rng, B * T * G * D),
      v = param(rng, B * T * G * D);
    const dout = rng.f32(B * T * H * D, 1);
    const dims = { B, T, H, G, D };
    const tapeA = new Tape(be),
      tapeB = new Tape(be);
    const a = nn.attention(tapeA, q, k, v, dims);
    const ga = backwardWith(tapeA, a, dout, [q, k, v]);
    const c = chainAttention(tapeB, q, k, v, [], dims);
    const gc = backwardWith(tapeB, c, dout, [q, k, v]);
    assert.ok(maxDiff(a.data, c.data) <= 1e-5, `${be.name}: forward`);
    for (let i = 0; i < 3; i++) assert.ok(maxDiff(ga[i]!, gc[i]!) <= 1e-4, `${be.name}: gradient ${'qkv'[i]}`);
  }
});

/** Backpropagates Σ out·dout and returns the inputs' gradients (zeroed before). */
function backwardWith(tape: Tape, out: Tensor, dout: Float32Array, inputs: Tensor[]): Float32Array[] {
  for (const t of inputs) t.grad!.fill(0);
  const w = new Tensor([1, out.size], dout);
  const s = nn.linear(tape, new Tensor([1, out.size], out.data, out.grad), w, null);
  tape.backward(s, 1);
  return inputs.map((t) => t.grad!.slice());
}

test('chainAttention gradients match central differences (two extras, grouped heads)', () => {
  const be = createRefBackend();
  const rng = new Rng(5);
  const [B, T, H, G, D] = [2, 5, 4, 2, 3];
  const q = param(rng, B * T * H * D),
    k1 = param(rng, B * T * G * D),
    v1 = param(rng, B * T * G * D);
  const extras = [0, 1].map(() => ({ k: param(rng, B * T * G * D), v: param(rng, B * T * G * D) }));
  const dout = rng.f32(B * T * H * D, 1);
  const dims = { B, T, H, G, D };
  const all = [q, k1, v1, ...extras.flatMap((e) => [e.k, e.v])];
  const f = (): number => {
    const out = chainAttention(new Tape(be, { grad: false }), q, k1, v1, extras, dims);
    let s = 0;
    for (let i = 0; i < out.size; i++) s += out.data[i]! * dout[i]!;
    return s;
  };
  const tape = new Tape(be);
  const grads = backwardWith(tape, chainAttention(tape, q, k1, v1, extras, dims), dout, all);
  all.forEach((t, ti) => {
    for (const i of [0, 7, t.size - 1]) {
      const orig = t.data[i]!,
        eps = 1e-2;
      t.data[i] = orig + eps;
      const plus = f();
      t.data[i] = orig - eps;
      const minus = f();
      t.data[i] = orig;
      const num = (plus - minus) / (2 * eps);
      assert.ok(
        Math.abs(num - grads[ti]![i]!) <= 1e-3 + 1e-2 * Math.abs(num),
        `input ${ti}[${i}]: ${grads[ti]![i]} vs ${num}`,
      );
    }
  });
});

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`k-step recycle loss (depth 3) gradients match finite differences (${preset})`, () => {
    const be = createRefBackend();
    const { config, params } = scaledPresetModel(preset, 12, 7);
    const graph = new TrainGraph(config);
    const batch = randomBatch(2, 6, config.vocabSize, 3);
    const opts = { depth: 3, depthWeights: [1, 0.7, 0.4] };
    const lossOf = (): number => graph.forward(new Tape(be, { grad: false }), params, batch, opts).loss.data[0]!;
    const tape = new Tape(be);
    params.store.zeroGrad();
    const out = graph.forward(tape, params, batch, opts);
    assert.equal(out.recycleDepths!.losses.length, 3);
    tape.backward(out.loss);
    const probe =
      config.arch === 'gpt2'
        ? ['wte.weight', 'h.1.attn.c_attn.weight', 'ln_f.weight', 'recycle.in_proj.weight', 'recycle.in_proj.bias']
        : ['model.embed_tokens.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.norm.weight'];
    for (const n of params.specs.map((s) => s.name).filter((n) => n.startsWith('recycle.layers.0.'))) probe.push(n);
    checkGradientsByDifferences(params, probe, lossOf, (size) => [Math.floor(size / 3)], `${preset} `);
  });

  test(`depth j at anchor t = the decode path appending chained steps to the module cache (${preset})`, () => {
    const be = getBackend();
    const { config, params } = scaledPresetModel(preset, 12, 9);
    const T = 9,
      C = config.hidden,
      V = config.vocabSize;
    const batch = randomBatch(1, T, V, 17);
    const out = new TrainGraph(config).forward(new Tape(be, { grad: false }), params, batch, { depth: 3 });
    const weights = new Weights(params.specs);
    for (const s of params.specs) weights.get(s.name).set(params.data(s.name));
    const infer = new InferenceModel(config, weights, be);
    infer.setDraftHeadDtype('model'); // the loss's logits come from the head as stored
    const x = (i: number): number =>
      i < T ? batch.inputs[i]! : i === T ? batch.targets[T - 1]! : batch.targets2[T - 1]!;
    const h = infer.forwardBase(batch.inputs, infer.newBaseCache(), 'none').hidden.slice();
    for (const t of [0, 3, T - 3]) {
      const cache = infer.newModuleCache();
      // depth 1: the real positions 0..t; then two chained steps on the module's own hidden state
      let r = infer.forwardModuleOut(
        h.subarray(0, (t + 1) * C),
        Array.from({ length: t + 1 }, (_, s) => x(s + 1)),
        cache,
        'last',
      );
      for (let j = 1; j <= 3; j++) {
        if (j > 1)
          r = infer.forwardModuleOut(
            r.hidden.slice((r.hidden.length / C - 1) * C, (r.hidden.length / C) * C),
            [x(t + j)],
            cache,
            'last',
          );
        const want = out.recycleDepths!.logits[j - 1]!.data.subarray(t * V, (t + 1) * V);
        assert.ok(maxDiff(r.logits.subarray(0, V), want) <= 1e-4, `${preset}: depth ${j}, anchor ${t}`);
      }
    }
  });
}

test('frozen base: the module graph computes the training graph’s chain; eval reports every depth', () => {
  const be = getBackend();
  const { config, params } = scaledPresetModel('tiny', 12, 3);
  const { weights, frozen } = frozenCopies(config, params);
  const batch = randomBatch(2, 8, config.vocabSize, 21);
  const opts = { depth: 3, weights: [1, 0.5, 0.25] };
  const full = new TrainGraph(config).forward(new Tape(be, { grad: false }), params, batch, {
    depth: 3,
    depthWeights: opts.weights,
  });
  const mg = new ModuleGraph(config, opts);
  const base = new FrozenBase(config, weights, be);
  const h = new Float32Array(2 * 7 * config.hidden);
  base.hidden(batch, h);
  const tape = new Tape(be);
  const m = mg.forward(tape, frozen, batch, h);
  for (let j = 0; j < 3; j++)
    assert.ok(
      Math.abs(m.depths.losses[j]!.data[0]! - full.recycleDepths!.losses[j]!.data[0]!) < 1e-5,
      `depth ${j + 1}`,
    );
  tape.backward(m.loss);
  assert.ok(frozen.store.grad.some((g) => g !== 0));

  const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * 7 + 3) % config.vocabSize);
  const evalOpts = { backend: be, seqLen: 8, batchSize: 3, depth: 3 };
  const a = evaluateParams(config, weightsSource(weights), tokens, evalOpts);
  const b = evaluateModule(mg, base, frozen, tokens, evalOpts);
  assert.equal(a.depths.length, 3);
  assert.ok(Math.abs(a.depths[0]!.loss - a.loss_recycle!) < 1e-5);
  assert.ok(Math.abs(a.depths[0]!.agreement_top1 - a.agreement_top1!) < 1e-9);
  for (let j = 0; j < 3; j++) {
    assert.ok(Math.abs(a.depths[j]!.loss - b.depths[j]!.loss) < 1e-4, `eval depth ${j + 1}`);
    assert.equal(a.depths[j]!.tokens, b.depths[j]!.tokens);
  }
  // depth 3 loses the rows whose target lies beyond the window; agreement needs the base at t + j
  assert.ok(a.depths[2]!.tokens < a.depths[0]!.tokens);
  assert.ok(a.depths[1]!.tokens_agreement < a.depths[0]!.tokens_agreement);
});
