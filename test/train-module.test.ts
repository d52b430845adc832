/**
 * Module training on a frozen base (src/train/module-graph.ts, src/io/module-dir.ts): the base in inference mode and
 * only the module on the tape gives the tape path's losses and module weights; the output is the module alone,
 * referring to its base by path and fingerprint; it loads with its base (both ways) and decodes; a changed base is
 * refused by name; merging writes the base's bytes and tokenizer files unchanged; a killed run resumes exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BatchSampler } from '../src/data/dataset.js';
import { getBackend } from '../src/kernels/index.js';
import { loadModelDir, readConfig, saveWeights } from '../src/io/model-dir.js';
import { baseFingerprint, loadModuleModel, mergeModuleDir, readBaseRef } from '../src/io/module-dir.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { TrainGraph } from '../src/model/graph.js';
import { initParams } from '../src/model/init.js';
import { moduleParamSpecs } from '../src/model/names.js';
import { AdamW } from '../src/nn/optim.js';
import { Tape } from '../src/nn/tape.js';
import { readLog, type TrainRow } from '../src/train/log.js';
import { FrozenBase, ModuleGraph } from '../src/train/module-graph.js';
import { TrainParams } from '../src/train/params.js';
import { train, TrainingDivergedError } from '../src/train/trainer.js';
import { smallBrown, tempDirUntilExit } from './helpers/brown-small.js';
import { fixturesDir } from './helpers/fixtures.js';
import { lastJson, runCli } from './helpers/cli.js';

const fixtures = fixturesDir;
const tmp = tempDirUntilExit('train-module-');
const be = getBackend();
const quiet = { backend: be };

const small = smallBrown(tmp, 40);

/** A base directory with its own tokenizer files (a copy of a fixture). */
function baseWithTokenizer(fixture: string, name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(path.join(fixtures, fixture), dir, { recursive: true });
  fs.copyFileSync(path.join(small.tokDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), '{"do_sample": false}\n');
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), '{"eos_token": "<|endoftext|>"}\n');
  return dir;
}

const opts = { data: small.file, freezeBase: true, steps: 6, batchSize: 2, seqLen: 16, lr: 3e-3, evalEvery: 0 };

for (const fixture of ['tiny-gpt2', 'tiny-llama']) {
  test(`${fixture}: the base in inference mode + module on the tape = the tape path (losses, module weights)`, () => {
    const base = path.join(fixtures, fixture);
    const raw = readConfig(path.join(base, 'config.json'));
    const config = { ...raw, recycle: { numLayers: 1, lossWeight: 0.7 } };
    const { weights } = loadModelDir(base, { config, allowMissingModule: true });
    initParams(moduleParamSpecs(config), (n) => weights.get(n), config, 5);
    const tapeParams = new TrainParams(config, true, be.alloc);
    tapeParams.copyFrom((n) => weights.get(n));
    const modParams = new TrainParams(config, true, be.alloc, weights);
    modParams.copyFrom((n) => weights.get(n));
    const tokens = new Int32Array(4000).map((_, i) => (i * 7919 + (i >> 3)) % config.vocabSize);
    const mk = (): BatchSampler => new BatchSampler(tokens, { batchSize: 3, seqLen: 12, seed: 9 });
    const [s1, s2] = [mk(), mk()];
    const [o1, o2] = [new AdamW(be, tapeParams.store), new AdamW(be, modParams.store)];
    const graph = new TrainGraph(config),
      mg = new ModuleGraph(config),
      fb = new FrozenBase(config, weights, be);
    const tape = new Tape(be);
    const h = new Float32Array(3 * 11 * config.hidden);
    for (let step = 0; step < 3; step++) {
      tapeParams.store.zeroGrad();
      tape.reset();
      const a = graph.forward(tape, tapeParams, s1.next());
      tape.backward(a.loss);
      const recA = a.recycleLoss!.data[0]!;
      o1.step(1e-2);

      modParams.store.zeroGrad();
      tape.reset();
      const batch = s2.next();
      fb.hidden(batch, h);
      const b = mg.forward(tape, modParams, batch, h);
      tape.backward(b.recycleLoss, 0.7);
      const recB = b.recycleLoss.data[0]!;
      const ga = tapeParams.store.grad,
        gb = modParams.store.grad;
      let gmax = 0;
      for (let i = 0; i < ga.length; i++) gmax = Math.max(gmax, Math.abs(ga[i]! - gb[i]!));
      assert.ok(gmax < 1e-5, `step ${step}: module gradients differ by ${gmax}`);
      o2.step(1e-2);
      assert.ok(Math.abs(recA - recB) < 1e-5, `step ${step}: recycle loss ${recA} vs ${recB}`);
    }
    let wmax = 0;
    for (let i = 0; i < tapeParams.store.data.length; i++)
      wmax = Math.max(wmax, Math.abs(tapeParams.store.data[i]! - modParams.store.data[i]!));
    // AdamW divides by sqrt(v): where a gradient is near 0, rounding-level differences (the inference path runs the
    // base with the small-M decode kernel, the tape with the GEMM) can move a weight by a fraction of the step size
    // (lr 1e-2). The gradients and losses above are compared to 1e-5 at every step; the weights to 5% of one step.
    assert.ok(wmax < 5e-4, `module weights differ by ${wmax}`);
  });
}

test('frozen base: module-only output, loads with its base both ways, verified greedy = standard, merge', async () => {
  const base = baseWithTokenizer('tiny-llama', 'base-llama');
  const out = path.join(tmp, 'module-llama');
  train({ ...opts, out, base }, { resume: false }, quiet);
  // layout: config.json with recycle + base reference, only recycle.* tensors, no tokenizer (the base's is used)
  const ref = readBaseRef(out)!;
  assert.equal(path.resolve(out, ref.path), path.resolve(base));
  assert.equal(ref.fingerprint, baseFingerprint(base));
  assert.equal(readConfig(path.join(out, 'config.json')).recycle?.numLayers, 1);
  assert.ok(!fs.existsSync(path.join(out, 'tokenizer.json')), 'no tokenizer file: the base has one');
  const st = openSafetensors(path.join(out, 'model.safetensors'));
  const names = st.names();
  const baseSt = openSafetensors(path.join(base, 'model.safetensors'));
  const baseDtype = baseSt.info(baseSt.names()[0]!).dtype;
  assert.ok(names.length > 0 && names.every((n) => n.startsWith('recycle.')));
  assert.ok(names.every((n) => st.info(n).dtype === baseDtype));
  st.close();
  baseSt.close();
  assert.ok(
    fs.statSync(path.join(out, 'model.safetensors')).size < fs.statSync(path.join(base, 'model.safetensors')).size,
  );

  const a = await RecycleGPT.load(out, { backend: be });
  const b = await RecycleGPT.load(base, { backend: be, module: out });
  const g = { max_new_tokens: 20, eos_token_id: [] as number[] };
  const std = await a.generate('the cat', g);
  const ver = await a.generate('the cat', { ...g, mode: 'verified' });
  const ver2 = await b.generate('the cat', { ...g, mode: 'verified' });
  assert.deepEqual(ver.ids, std.ids);
  assert.deepEqual(ver2.ids, std.ids);

  // merge: the base's tensors and tokenizer files byte for byte, the module added
  const merged = path.join(tmp, 'merged-llama');
  mergeModuleDir(out, merged);
  const copied = fs.readdirSync(merged).find((f) => f !== 'model-recycle.safetensors' && f.endsWith('.safetensors'))!;
  assert.ok(fs.readFileSync(path.join(merged, copied)).equals(fs.readFileSync(path.join(base, 'model.safetensors'))));
  for (const f of ['tokenizer.json', 'generation_config.json', 'special_tokens_map.json'])
    assert.ok(fs.readFileSync(path.join(merged, f)).equals(fs.readFileSync(path.join(base, f))), f);
  const m = loadModelDir(merged);
  const viaModule = loadModuleModel(out);
  for (const spec of m.weights.specs) {
    const x = m.weights.weight(spec.name).data,
      y = viaModule.weights.weight(spec.name).data;
    assert.deepEqual(Array.from(x), Array.from(y), spec.name);
  }
  const c = await RecycleGPT.load(merged, { backend: be });
  assert.deepEqual((await c.generate('the cat', { ...g, mode: 'verified' })).ids, std.ids);
});

test('merge: a module trained on a merged model replaces that model’s module shard', () => {
  const base = baseWithTokenizer('tiny-gpt2', 'base-remerge');
  const first = path.join(tmp, 'module-remerge-1');
  train({ ...opts, out: first, base }, { resume: false }, quiet);
  const merged1 = path.join(tmp, 'merged-remerge-1');
  mergeModuleDir(first, merged1);
  const second = path.join(tmp, 'module-remerge-2');
  train({ ...opts, out: second, base: merged1, seed: 7 }, { resume: false }, quiet);
  const merged2 = path.join(tmp, 'merged-remerge-2');
  mergeModuleDir(second, merged2);
  // the base shard byte for byte, the module shard the second module's, nothing of the first module left
  const shard = 'model-base.safetensors';
  assert.ok(fs.readFileSync(path.join(merged2, shard)).equals(fs.readFileSync(path.join(merged1, shard))));
  assert.deepEqual(
    fs
      .readdirSync(merged2)
      .filter((f) => f.endsWith('.safetensors'))
      .sort(),
    ['model-base.safetensors', 'model-recycle.safetensors'],
  );
  const m = loadModelDir(merged2),
    viaModule = loadModuleModel(second),
    firstModule = loadModuleModel(first);
  let moduleChanged = false;
  for (const spec of m.weights.specs) {
    const x = Array.from(m.weights.weight(spec.name).data);
    assert.deepEqual(x, Array.from(viaModule.weights.weight(spec.name).data), spec.name);
    if (spec.name.startsWith('recycle.'))
      moduleChanged ||= x.some((v, i) => v !== firstModule.weights.weight(spec.name).data[i]);
  }
  assert.ok(moduleChanged, 'the second module trained on from the first');
});

test('frozen base stored in float16 with its own module: the module trains on from its float16 values', () => {
  // a shipped model (float16, module included) fine-tuned module-only: the trainable copy is widened to float32
  const base = baseWithTokenizer('tiny-recycle-gpt2', 'base-f16');
  const { config, weights } = loadModelDir(base);
  saveWeights(path.join(base, 'model.safetensors'), config, (n) => weights.get(n), 'F16');
  const out = path.join(tmp, 'module-f16');
  // an LR of 1e-12 moves no float16 value: the module written back is the one it started from, bit for bit
  const r = train({ ...opts, steps: 2, lr: 1e-12, out, base }, { resume: false }, quiet);
  assert.ok(Number.isFinite(r.lastTrain!.recycle_loss!));
  const st = openSafetensors(path.join(out, 'model.safetensors'));
  assert.ok(st.names().every((n) => n.startsWith('recycle.') && st.info(n).dtype === 'F16'));
  st.close();
  const trained = loadModuleModel(out).weights,
    stored = loadModelDir(base).weights;
  for (const spec of moduleParamSpecs(config))
    assert.deepEqual(Array.from(trained.get(spec.name)), Array.from(stored.get(spec.name)), spec.name);
});

test('eval, bench and forward read a module-only directory with its base, as its merged model', () => {
  const base = baseWithTokenizer('tiny-gpt2', 'base-cli');
  const out = path.join(tmp, 'module-cli');
  train({ ...opts, out, base }, { resume: false }, quiet);
  const merged = path.join(tmp, 'merged-cli');
  mergeModuleDir(out, merged);
  const env = { RECYCLEGPT_BACKEND: 'ref', RECYCLEGPT_THREADS: '1' };
  const run = (args: string[]): Record<string, unknown> => {
    const r = runCli(args, { env });
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r.stdout);
  };
  const evalArgs = ['--data', small.file, '--seq-len', '16', '--max-batches', '2', '--json'];
  const a = run(['eval', '--model', out, ...evalArgs]);
  const b = run(['eval', '--model', merged, ...evalArgs]);
  assert.deepEqual([a.ppl_next, a.ppl_recycle, a.depths], [b.ppl_next, b.ppl_recycle, b.depths]);
  const fwd = (m: string): unknown => run(['forward', '--model', m, '--text', 'the cat', '--json']);
  assert.deepEqual(fwd(out), fwd(merged));
  const bench = run(
    ['bench', '--model', out, '--modes', 'standard,verified', '--draft-tokens', '1', '--tokens', '4'].concat([
      '--repeats',
      '1',
      '--prompts',
      '1',
      '--no-bandwidth',
      '--quiet',
      '--json',
    ]),
  );
  assert.equal((bench.runs as unknown[]).length, 2);
  const int8 = runCli(['eval', '--model', out, '--dtype', 'int8', ...evalArgs], { env });
  assert.notEqual(int8.status, 0);
  assert.match(int8.stderr, /--dtype int8: .*module-cli holds only a module .*recyclegpt merge --module DIR/);
});

test('a module refuses a base whose tensors changed, naming both fingerprints', async () => {
  const base = baseWithTokenizer('tiny-gpt2', 'base-gpt2');
  const out = path.join(tmp, 'module-gpt2');
  train({ ...opts, steps: 2, out, base }, { resume: false }, quiet);
  await RecycleGPT.load(out, { backend: be });
  const file = path.join(base, 'model.safetensors');
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  bytes[8 + n] ^= 0x01; // the first byte of the first tensor's data
  fs.writeFileSync(file, bytes);
  await assert.rejects(RecycleGPT.load(out, { backend: be }), /not the one this module was trained on.*sha256:/);
  assert.throws(() => mergeModuleDir(out, path.join(tmp, 'merged-bad')), /not the one this module was trained on/);
});

test('a killed module-only run resumes to the same module as an uninterrupted one', () => {
  const base = baseWithTokenizer('tiny-gpt2', 'base-gpt2-resume');
  const full = path.join(tmp, 'resume-full');
  const cut = path.join(tmp, 'resume-cut');
  const o = { ...opts, base, ckptEvery: 3, seed: 3 };
  train({ ...o, out: full }, { resume: false }, quiet);
  assert.throws(
    () => train({ ...o, out: cut }, { resume: false }, { ...quiet, injectNaN: { step: 5, where: 'loss' } }),
    TrainingDivergedError,
  );
  train({ out: cut }, { resume: true }, quiet);
  const master = (d: string): Buffer => fs.readFileSync(path.join(d, 'train_state', 'module.safetensors'));
  assert.ok(master(full).equals(master(cut)), 'the same module values');
  assert.ok(
    fs.readFileSync(path.join(full, 'model.safetensors')).equals(fs.readFileSync(path.join(cut, 'model.safetensors'))),
  );
  const losses = (d: string): number[] =>
    readLog(path.join(d, 'train_log.jsonl'))
      .filter((r): r is TrainRow => r.type === 'train')
      .map((r) => r.loss);
  assert.deepEqual(losses(cut), losses(full));
});
