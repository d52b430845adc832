/**
 * The training graph (src/model/graph.ts): on the PyTorch fixtures it computes the same logits and recycle
 * logits as InferenceModel / expected.json (1e-4), and its joint-loss gradients match central differences for
 * a few parameters of each kind on the tiny presets. With a frozen base, only recycle.* get gradients.
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
import { TrainGraph, weightsSource, type GraphBatch } from '../src/model/graph.js';
import { presetConfig } from '../src/model/presets.js';
import { initParams } from '../src/model/init.js';
import { Tape } from '../src/nn/tape.js';
import { TrainParams } from '../src/train/params.js';
import { maxDiff } from './helpers/check.js';
import { fixturesDir } from './helpers/fixtures.js';
import { checkGradientsByDifferences, randomBatch, scaledPresetModel } from './helpers/train.js';

const fixtures = fixturesDir;

interface Expected {
  input_ids: number[];
  logits: number[][];
  recycle_logits: number[][];
}

/** A one-row batch over `ids` (targets beyond the sequence ignored). */
function rowBatch(ids: number[]): GraphBatch {
  const T = ids.length;
  const at = (i: number): number => (i < T ? ids[i]! : -1);
  return {
    B: 1,
    T,
    inputs: Int32Array.from(ids),
    targets: Int32Array.from({ length: T }, (_, t) => at(t + 1)),
    targets2: Int32Array.from({ length: T }, (_, t) => at(t + 2)),
  };
}

for (const name of ['tiny-recycle-gpt2', 'tiny-recycle-llama']) {
  test(`graph forward equals InferenceModel and PyTorch on ${name}`, () => {
    const dir = join(fixtures, name);
    const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    const { config, weights } = loadModelDir(dir);
    const be = getBackend();
    const ids = exp.input_ids,
      T = ids.length,
      V = config.vocabSize,
      C = config.hidden;
    // two copies of the sequence in one batch: rows must not see each other
    const one = rowBatch(ids);
    const batch: GraphBatch = {
      B: 2,
      T,
      inputs: Int32Array.from([...one.inputs, ...one.inputs]),
      targets: Int32Array.from([...one.targets, ...one.targets]),
      targets2: Int32Array.from([...one.targets2, ...one.targets2]),
    };
    const out = new TrainGraph(config).forward(new Tape(be, { grad: false }), weightsSource(weights), batch);
    const infer = new InferenceModel(config, weights, be);
    infer.setDraftHeadDtype('model'); // the graph's recycle logits come from the head as stored
    const base = infer.forwardBase(ids, infer.newBaseCache(), 'all');
    const baseLogits = base.logits.slice();
    const rec = infer
      .forwardModule(base.hidden.slice(0, (T - 1) * C), ids.slice(1), infer.newModuleCache(), 'all')
      .slice();
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < T; t++) {
        const row = out.logits.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
        assert.ok(maxDiff(row, exp.logits[t]!) <= 1e-4, `${name}: logits b=${b} t=${t}`);
        assert.ok(
          maxDiff(row, baseLogits.subarray(t * V, (t + 1) * V)) <= 1e-4,
          `${name}: logits vs infer b=${b} t=${t}`,
        );
      }
      for (let t = 0; t < T - 1; t++) {
        const row = out.recycleLogits!.data.subarray((b * (T - 1) + t) * V, (b * (T - 1) + t + 1) * V);
        assert.ok(maxDiff(row, exp.recycle_logits[t]!) <= 1e-4, `${name}: recycle logits b=${b} t=${t}`);
        assert.ok(maxDiff(row, rec.subarray(t * V, (t + 1) * V)) <= 1e-4, `${name}: recycle vs infer b=${b} t=${t}`);
      }
    }
  });
}

/** Joint loss in float32 for the current parameter values (evaluation tape). */
function lossOf(graph: TrainGraph, params: TrainParams, batch: GraphBatch, be: Backend): number {
  const out = graph.forward(new Tape(be, { grad: false }), params, batch);
  return out.loss.data[0]!;
}

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`joint-loss gradients match finite differences (${preset})`, () => {
    // the ref backend sums in float64: central differences of a float32 loss are then accurate to ~1e-3 relative
    const be = createRefBackend();
    const { config, params } = scaledPresetModel(preset, 8, 7);
    const graph = new TrainGraph(config);
    const batch = randomBatch(2, 6, config.vocabSize, 3);
    const tape = new Tape(be);
    params.store.zeroGrad();
    tape.backward(graph.forward(tape, params, batch).loss);
    const probe =
      config.arch === 'gpt2'
        ? [
            'wte.weight',
            'wpe.weight',
            'h.0.attn.c_attn.weight',
            'h.1.mlp.c_proj.bias',
            'ln_f.weight',
            'h.0.ln_1.bias',
            'recycle.in_proj.weight',
            'recycle.in_proj.bias',
            'recycle.layers.0.mlp.c_fc.weight',
            'recycle.layers.0.ln_2.weight',
          ]
        : [
            'model.embed_tokens.weight',
            'model.layers.0.self_attn.q_proj.weight',
            'model.layers.1.self_attn.k_proj.weight',
            'model.layers.0.mlp.gate_proj.weight',
            'model.norm.weight',
            'recycle.in_proj.weight',
            'recycle.layers.0.self_attn.v_proj.weight',
            'recycle.layers.0.input_layernorm.weight',
          ];
    // the largest-gradient element and two fixed ones
    const loss = (): number => lossOf(graph, params, batch, be);
    checkGradientsByDifferences(params, probe, loss, (size) => [0, Math.floor(size / 2)], `${preset} `);
  });
}

test('frozen base: only recycle.* parameters get gradients; the loss is the same function', () => {
  const be = getBackend();
  const config = presetConfig('tiny', { vocabSize: 50 });
  const full = new TrainParams(config, false);
  initParams(full.specs, (n) => full.data(n), config, 1);
  const frozen = new TrainParams(config, true);
  frozen.copyFrom((n) => full.data(n));
  assert.deepEqual(
    frozen.store.names(),
    full.specs.filter((s) => s.name.startsWith('recycle.')).map((s) => s.name),
  );
  const graph = new TrainGraph(config),
    batch = randomBatch(2, 16, 50, 5);
  const tape = new Tape(be);
  const out = graph.forward(tape, frozen, batch);
  tape.backward(out.loss);
  assert.ok(frozen.store.grad.some((g) => g !== 0));
  assert.ok(Math.abs(out.loss.data[0]! - lossOf(graph, full, batch, be)) < 1e-6);
});
