/**
 * Hugging Face configs as they are in the wild (test/fixtures/hf-configs, made by scripts/make-hf-config-fixtures.py
 * with a numpy reference of transformers' Llama / Qwen2 forward, itself checked there against the PyTorch fixtures):
 * a Llama-3 config with rope_scaling "llama3", GQA, an explicit head_dim (heads × head_dim ≠ hidden) and an untied
 * head; a Qwen2 config with q/k/v biases, a tied head and rope_theta 1e6; a Llama config with legacy rope_scaling
 * {"type": "linear"}, attention_bias, mlp_bias and a recyclable module. Each reproduces the expected logits within 1e-4
 * in decoding (ref and the default backend) and in the training graph; unsupported RoPE types fail by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRefBackend } from '../src/kernels/ref.js';
import { getBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { parseConfig, toHfConfig, type ModelConfig } from '../src/model/config.js';
import { InferenceModel } from '../src/model/infer.js';
import { TrainGraph, weightsSource, type GraphBatch } from '../src/model/graph.js';
import { allParamSpecs } from '../src/model/names.js';
import { RopeTable, ropeInvFreq } from '../src/model/rope.js';
import * as nn from '../src/nn/ops.js';
import { Tape } from '../src/nn/tape.js';
import { Tensor, reshape } from '../src/tensor/tensor.js';
import { TrainParams } from '../src/train/params.js';
import { maxDiff } from './helpers/check.js';
import { fixturesDir } from './helpers/fixtures.js';
import { checkGradientsByDifferences } from './helpers/train.js';

const dirOf = (name: string): string => join(fixturesDir, 'hf-configs', name);
const FIXTURES = ['llama3-rope-scaling', 'qwen2-qkv-bias', 'llama-linear-bias'] as const;

interface Expected {
  input_ids: number[];
  logits: number[][];
  recycle_logits?: number[][];
}

const expectedOf = (name: string): Expected =>
  JSON.parse(readFileSync(join(dirOf(name), 'expected.json'), 'utf8')) as Expected;
const configJson = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(dirOf(name), 'config.json'), 'utf8')) as Record<string, unknown>;

const TOL = 1e-4;
const backends: Backend[] = [createRefBackend()];
const def = getBackend();
if (def.name !== 'ref') backends.push(def);

test('the fixtures parse to what they say', () => {
  const l3 = parseConfig(configJson('llama3-rope-scaling'));
  assert.equal(l3.arch, 'llama');
  assert.deepEqual([l3.nHeads, l3.nKvHeads, l3.headDim, l3.hidden], [4, 2, 24, 64]);
  assert.deepEqual(l3.ropeScaling, {
    type: 'llama3',
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 64,
  });
  assert.equal(l3.tieEmbeddings, false);
  assert.equal(l3.eosTokenId, 2);
  const qw = parseConfig(configJson('qwen2-qkv-bias'));
  assert.deepEqual(
    [qw.modelType, qw.qkvBias, qw.oBias, qw.mlpBias, qw.tieEmbeddings],
    ['qwen2', true, false, false, true],
  );
  assert.equal(qw.ropeTheta, 1e6);
  assert.equal(qw.ropeScaling, null);
  const lb = parseConfig(configJson('llama-linear-bias'));
  assert.deepEqual(lb.ropeScaling, { type: 'linear', factor: 4 });
  assert.deepEqual([lb.qkvBias, lb.oBias, lb.mlpBias], [true, true, true]);
  assert.equal(lb.recycle?.numLayers, 1);
  // bias tensors and the head_dim shapes, base and module alike
  const spec = (c: ModelConfig, n: string): number[] | undefined => allParamSpecs(c).find((s) => s.name === n)?.shape;
  assert.deepEqual(spec(l3, 'model.layers.0.self_attn.q_proj.weight'), [96, 64]);
  assert.deepEqual(spec(l3, 'model.layers.0.self_attn.k_proj.weight'), [48, 64]);
  assert.deepEqual(spec(l3, 'model.layers.0.self_attn.o_proj.weight'), [64, 96]);
  assert.equal(spec(l3, 'model.layers.0.self_attn.q_proj.bias'), undefined);
  assert.deepEqual(spec(qw, 'model.layers.1.self_attn.k_proj.bias'), [16]);
  assert.equal(spec(qw, 'model.layers.1.self_attn.o_proj.bias'), undefined);
  assert.deepEqual(spec(lb, 'recycle.layers.0.self_attn.o_proj.bias'), [64]);
  assert.deepEqual(spec(lb, 'recycle.layers.0.mlp.gate_proj.bias'), [128]);
  assert.deepEqual(spec(lb, 'model.layers.1.mlp.down_proj.bias'), [64]);
});

for (const name of FIXTURES) {
  for (const be of backends) {
    test(`${name} reproduces the reference logits (${be.name})`, () => {
      const exp = expectedOf(name);
      const { config, weights } = loadModelDir(dirOf(name));
      const model = new InferenceModel(config, weights, be);
      model.setDraftHeadDtype('model'); // the reference's module logits come from the head as stored
      const ids = exp.input_ids,
        T = ids.length,
        V = config.vocabSize,
        C = config.hidden;
      const out = model.forwardBase(ids, model.newBaseCache(), 'all');
      for (let t = 0; t < T; t++) {
        const d = maxDiff(out.logits.subarray(t * V, (t + 1) * V), exp.logits[t]!);
        assert.ok(d <= TOL, `${name} (${be.name}): logits at position ${t} differ by ${d}`);
      }
      if (exp.recycle_logits) {
        const rl = model.forwardModule(out.hidden.slice(0, (T - 1) * C), ids.slice(1), model.newModuleCache(), 'all');
        for (let t = 0; t < T - 1; t++) {
          const d = maxDiff(rl.subarray(t * V, (t + 1) * V), exp.recycle_logits[t]!);
          assert.ok(d <= TOL, `${name} (${be.name}): recycle logits at t=${t} differ by ${d}`);
        }
      }
    });
  }
}

test('decoding token by token over the KV cache equals the batched forward (scaled RoPE, biases)', () => {
  for (const name of FIXTURES) {
    const { config, weights } = loadModelDir(dirOf(name));
    const model = new InferenceModel(config, weights, createRefBackend());
    const ids = expectedOf(name).input_ids.slice(0, 20),
      V = config.vocabSize;
    const full = model.forwardBase(ids, model.newBaseCache(), 'all').logits.slice();
    const cache = model.newBaseCache();
    model.forwardBase(ids.slice(0, 5), cache, 'none');
    for (let t = 5; t < ids.length; t++) {
      const l = model.forwardBase([ids[t]!], cache, 'last').logits;
      assert.ok(maxDiff(l, full.subarray(t * V, (t + 1) * V)) < 1e-5, `${name}: step ${t}`);
    }
  }
});

for (const name of FIXTURES) {
  test(`${name}: the training graph gives the same logits`, () => {
    const exp = expectedOf(name);
    const { config, weights } = loadModelDir(dirOf(name));
    const ids = exp.input_ids,
      T = ids.length,
      V = config.vocabSize;
    const row = Int32Array.from(ids);
    const shifted = (k: number): Int32Array => Int32Array.from({ length: T }, (_, t) => (t + k < T ? ids[t + k]! : -1));
    // two copies of the sequence in one batch: rows must not see each other
    const batch: GraphBatch = {
      B: 2,
      T,
      inputs: Int32Array.from([...row, ...row]),
      targets: Int32Array.from([...shifted(1), ...shifted(1)]),
      targets2: Int32Array.from([...shifted(2), ...shifted(2)]),
    };
    const out = new TrainGraph(config).forward(new Tape(getBackend(), { grad: false }), weightsSource(weights), batch);
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < T; t++) {
        const got = out.logits.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
        assert.ok(maxDiff(got, exp.logits[t]!) <= TOL, `${name}: graph logits b=${b} t=${t}`);
      }
      if (!exp.recycle_logits) continue;
      for (let t = 0; t < T - 1; t++) {
        const got = out.recycleLogits!.data.subarray((b * (T - 1) + t) * V, (b * (T - 1) + t + 1) * V);
        assert.ok(maxDiff(got, exp.recycle_logits[t]!) <= TOL, `${name}: graph recycle logits b=${b} t=${t}`);
      }
    }
  });
}

test('gradients of biases and scaled-RoPE projections match finite differences', () => {
  // The linear-bias fixture (q/k/v/o and MLP biases, linear RoPE scaling, a module) on a short batch; the ref
  // backend sums in float64, so central differences of the float32 loss are accurate to ~1e-3 relative.
  const be = createRefBackend();
  const { config, weights } = loadModelDir(dirOf('llama-linear-bias'));
  const params = new TrainParams(config, false);
  params.copyFrom((n) => weights.get(n));
  const graph = new TrainGraph(config);
  const ids = expectedOf('llama-linear-bias').input_ids.slice(0, 10),
    T = 8;
  const batch: GraphBatch = {
    B: 1,
    T,
    inputs: Int32Array.from(ids.slice(0, T)),
    targets: Int32Array.from(ids.slice(1, T + 1)),
    targets2: Int32Array.from(ids.slice(2, T + 2)),
  };
  const lossOf = (): number => graph.forward(new Tape(be, { grad: false }), params, batch).loss.data[0]!;
  const tape = new Tape(be);
  params.store.zeroGrad();
  tape.backward(graph.forward(tape, params, batch).loss);
  const probe = [
    'model.layers.0.self_attn.q_proj.bias',
    'model.layers.0.self_attn.k_proj.bias',
    'model.layers.1.self_attn.v_proj.bias',
    'model.layers.0.self_attn.o_proj.bias',
    'model.layers.1.mlp.gate_proj.bias',
    'model.layers.0.mlp.up_proj.bias',
    'model.layers.0.mlp.down_proj.bias',
    'model.layers.0.self_attn.q_proj.weight',
    'recycle.layers.0.self_attn.k_proj.bias',
    'recycle.layers.0.self_attn.k_proj.weight',
  ];
  checkGradientsByDifferences(params, probe, lossOf, (size) => [Math.floor(size / 3)]);
});

test('llama3 and linear inverse frequencies follow transformers', () => {
  const base = parseConfig(configJson('llama3-rope-scaling'));
  const plain = ropeInvFreq({ ...base, ropeScaling: null });
  const l3 = ropeInvFreq(base);
  const D = base.headDim;
  for (let i = 0; i < D / 2; i++) assert.equal(plain[i], Math.pow(500000, (-2 * i) / D));
  // wavelengths 2π/f: below 64/4 = 16 kept, above 64/1 divided by 8, in between interpolated
  let kept = 0,
    scaled = 0,
    smoothed = 0;
  for (let i = 0; i < D / 2; i++) {
    const wavelen = (2 * Math.PI) / plain[i]!;
    if (wavelen < 16) {
      assert.equal(l3[i], plain[i]);
      kept++;
    } else if (wavelen > 64) {
      assert.equal(l3[i], plain[i]! / 8);
      scaled++;
    } else {
      const smooth = (64 / wavelen - 1) / (4 - 1);
      assert.ok(Math.abs(l3[i]! - ((1 - smooth) * plain[i]!) / 8 - smooth * plain[i]!) < 1e-15);
      assert.ok(l3[i]! < plain[i]! && l3[i]! > plain[i]! / 8);
      smoothed++;
    }
  }
  assert.ok(kept > 0 && scaled > 0 && smoothed > 0, `bands ${kept}/${smoothed}/${scaled}`);
  const lin = ropeInvFreq({ ...base, ropeScaling: { type: 'linear', factor: 4 } });
  for (let i = 0; i < D / 2; i++) assert.equal(lin[i], plain[i]! / 4);
});

test('a table of the plain frequencies rotates as the rope kernel, bit for bit; its inverse is the transpose', () => {
  const ref = createRefBackend();
  const R = 5,
    H = 3,
    D = 8,
    theta = 10000;
  const pos = Int32Array.from([0, 3, 17, 2, 40]);
  const x = Float32Array.from({ length: R * H * D }, (_, i) => Math.sin(i * 0.7) * 2);
  const want = x.slice(),
    got = x.slice();
  ref.rope(R, H, D, want, pos, theta, false);
  const table = new RopeTable(Float64Array.from({ length: D / 2 }, (_, i) => Math.pow(theta, (-2 * i) / D)));
  table.rotate(R, H, D, got, pos, false);
  assert.deepEqual(got, want);
  // <rot(x), y> = <x, rot⁻¹(y)> (what nn.rope's backward relies on), with scaled frequencies
  const scaled = new RopeTable(Float64Array.from({ length: D / 2 }, (_, i) => 0.3 / (i + 1)));
  const y = Float32Array.from({ length: R * H * D }, (_, i) => Math.cos(i * 1.3));
  const rx = x.slice(),
    ry = y.slice();
  scaled.rotate(R, H, D, rx, pos, false);
  scaled.rotate(R, H, D, ry, pos, true);
  let a = 0,
    b = 0;
  for (let i = 0; i < x.length; i++) {
    a += rx[i]! * y[i]!;
    b += x[i]! * ry[i]!;
  }
  assert.ok(Math.abs(a - b) < 1e-4, `${a} vs ${b}`);
  // nn.rope with a table: its backward is that inverse
  const tape = new Tape(ref);
  const xt = new Tensor([R, H * D], x.slice());
  xt.grad = new Float32Array(x.length);
  const out = nn.rope(tape, xt, R, H, D, pos, scaled);
  assert.deepEqual(out.data, rx);
  // loss = <out, y> as a [1, N] · [1, N]ᵀ product, so d loss / d out = y
  tape.backward(nn.linear(tape, reshape(out, [1, R * H * D]), new Tensor([1, R * H * D], y.slice()), null));
  assert.ok(maxDiff(xt.grad, ry) < 1e-6);
  assert.throws(() => scaled.rotate(R, H, 6, new Float32Array(R * H * 6), pos, false), /rope: head dim D=6/);
});

test('toHfConfig writes rope_scaling, biases, head_dim and the model type back', () => {
  for (const name of FIXTURES) {
    const c = parseConfig(configJson(name));
    const again = parseConfig(JSON.parse(JSON.stringify(toHfConfig(c))) as unknown);
    assert.deepEqual(again, c, name);
  }
  const hf = toHfConfig(parseConfig(configJson('qwen2-qkv-bias')));
  assert.equal(hf.model_type, 'qwen2');
  assert.deepEqual(hf.architectures, ['Qwen2ForCausalLM']);
  assert.equal('attention_bias' in hf, false);
  const l3 = toHfConfig(parseConfig(configJson('llama3-rope-scaling')));
  assert.equal(l3.head_dim, 24);
  assert.equal((l3.rope_scaling as { rope_type: string }).rope_type, 'llama3');
});

test('configs that load as before: no rope_scaling key, null, "default", attention_bias false', () => {
  const base = configJson('llama3-rope-scaling');
  for (const rope_scaling of [undefined, null, { rope_type: 'default' }]) {
    const c = parseConfig({ ...base, rope_scaling });
    assert.equal(c.ropeScaling, null);
  }
  const tiny = JSON.parse(readFileSync(join(fixturesDir, 'tiny-llama', 'config.json'), 'utf8')) as object;
  const c = parseConfig(tiny);
  assert.deepEqual([c.qkvBias, c.oBias, c.mlpBias, c.ropeScaling, c.headDim], [false, false, false, null, 16]);
  // transformers 5 spells RoPE as rope_parameters (with rope_theta inside)
  const v5 = parseConfig({
    ...base,
    rope_scaling: undefined,
    rope_theta: undefined,
    rope_parameters: { ...(base.rope_scaling as object), rope_theta: 500000 },
  });
  assert.equal(v5.ropeTheta, 500000);
  assert.deepEqual(v5.ropeScaling, parseConfig(base).ropeScaling);
});

test('unsupported RoPE scalings and settings fail with a clear error naming the type, field and file', () => {
  const base = configJson('llama3-rope-scaling');
  const where = 'models/x/config.json';
  const bad = (patch: Record<string, unknown>, re: RegExp): void => {
    assert.throws(
      () => parseConfig({ ...base, ...patch }, where),
      (e: Error) => {
        assert.match(e.message, re);
        assert.ok(e.message.startsWith(`${where}: `), e.message);
        return true;
      },
    );
  };
  for (const type of ['dynamic', 'yarn', 'longrope', 'su', 'mrope']) {
    const re = new RegExp(`field "rope_scaling\\.rope_type": RoPE scaling type "${type}" is not supported`);
    bad({ rope_scaling: { rope_type: type, factor: 4, original_max_position_embeddings: 64 } }, re);
  }
  bad({ rope_scaling: { type: 'yarn', factor: 4 } }, /field "rope_scaling\.type": RoPE scaling type "yarn"/);
  bad({ rope_scaling: { type: 'dynamic', factor: 2 } }, /"dynamic" is not supported/);
  bad({ rope_scaling: { factor: 2 } }, /field "rope_scaling\.rope_type": expected a RoPE type string/);
  bad({ rope_scaling: 'linear' }, /field "rope_scaling":/);
  bad({ rope_scaling: { rope_type: 'linear' } }, /field "rope_scaling\.factor"/);
  bad({ rope_scaling: { rope_type: 'linear', factor: -2 } }, /field "rope_scaling\.factor"/);
  bad({ rope_scaling: { rope_type: 'linear', factor: 1e9 } }, /field "rope_scaling\.factor"/);
  const l3 = base.rope_scaling as Record<string, unknown>;
  bad({ rope_scaling: { ...l3, low_freq_factor: undefined } }, /field "rope_scaling\.low_freq_factor"/);
  bad({ rope_scaling: { ...l3, low_freq_factor: 4 } }, /field "rope_scaling\.high_freq_factor": must be above/);
  bad(
    { rope_scaling: { ...l3, original_max_position_embeddings: 1e12 } },
    /field "rope_scaling\.original_max_position_embeddings"/,
  );
  bad({ rope_parameters: { full_attention: { rope_type: 'default' } }, rope_scaling: undefined }, /per-layer-type/);
  bad({ rope_parameters: { rope_type: 'yarn', factor: 2 }, rope_scaling: undefined }, /"yarn" is not supported/);
  bad({ rope_theta: 1e20 }, /field "rope_theta"/);
  bad({ head_dim: 5 }, /head_dim: RoPE needs an even head dim/);
  bad({ head_dim: 1 << 14, num_attention_heads: 8 }, /field "head_dim"/);
  bad({ head_dim: 4096, num_attention_heads: 32 }, /head_dim: heads × head_dim = 32 × 4096 is above/);
  bad({ attention_bias: 'yes' }, /field "attention_bias"/);
  bad({ partial_rotary_factor: 0.5 }, /field "partial_rotary_factor": partial rotary/);
  const qwen = configJson('qwen2-qkv-bias');
  assert.throws(
    () => parseConfig({ ...qwen, use_sliding_window: true }, where),
    /config\.json: field "use_sliding_window": sliding-window attention is not supported/,
  );
  assert.throws(
    () => parseConfig({ ...qwen, model_type: 'mistral' }, where),
    /model_type must be "gpt2" or "llama" \(or the Llama-family "qwen2"\), got "mistral"/,
  );
});
