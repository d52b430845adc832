/**
 * Depth up-scaling (`recyclegpt grow`, src/model/grow.ts): the plan puts copies next to their source layer; a grown
 * GPT-2 or Llama model gives the source's hidden states, logits and module logits bit for bit (its extra copies are
 * identities; a module grown with --module-layers too), and trains: one step of the grown model moves the zeroed
 * projections off zero. Bad input is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { growModelDir } from '../src/cli/cmd-grow.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { growPlan } from '../src/model/grow.js';
import { InferenceModel } from '../src/model/infer.js';
import { basePrefix, blockNames, modulePrefix } from '../src/model/names.js';
import { BPE_TEXT as TEXT, randomModel, writeModelDir } from './helpers/models.js';
import { runCli, lastJson } from './helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grow-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('growPlan: copies sit next to their source, later copies are identities', () => {
  const pairs = (from: number, to: number): string =>
    growPlan(from, to)
      .map((p) => `${p.source}${p.identity ? 'i' : ''}`)
      .join(' ');
  assert.equal(pairs(6, 12), '0 0i 1 1i 2 2i 3 3i 4 4i 5 5i');
  assert.equal(pairs(3, 7), '0 0i 0i 1 1i 2 2i');
  assert.equal(pairs(4, 4), '0 1 2 3');
  assert.equal(pairs(1, 3), '0 0i 0i');
  assert.throws(() => growPlan(6, 5), /--layers 5 must be an integer ≥ the source's 6 layers/);
  assert.throws(() => growPlan(6, 6.5), /--layers 6.5/);
});

/** Hidden states and logits of `dir`'s base over `ids`, and its module's logits on (h, next id) pairs. */
function outputs(dir: string, ids: number[]): { hidden: Float32Array; logits: Float32Array; module: Float32Array } {
  const { config, weights } = loadModelDir(dir);
  const m = new InferenceModel(config, weights, createRefBackend());
  m.setDraftHeadDtype('model');
  const base = m.forwardBase(ids, m.newBaseCache(), 'all');
  const hidden = base.hidden.slice(),
    logits = base.logits.slice();
  const module = m.forwardModule(hidden, ids.slice(1).concat([0]), m.newModuleCache(), 'all').slice();
  return { hidden, logits, module };
}

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`grow ${preset}: the grown model computes what the source does, bit for bit`, () => {
    const src = path.join(tmp, `${preset}-src`),
      out = path.join(tmp, `${preset}-grown`);
    const model = randomModel({ preset, vocabSize: 50, scale: 3, seed: 7 });
    // biases away from their zero init, so a copied bias that should be zero shows
    for (const s of model.weights.specs)
      if (s.init === 'zeros')
        model.weights.get(s.name).forEach((_, i, w) => (w[i] = 0.1 * Math.sin(i + s.name.length)));
    writeModelDir(src, model, null);
    const L = model.config.nLayers;
    const R = model.config.recycle!.numLayers;
    const r = growModelDir(src, 2 * L + 1, out, false, false, R + 2); // the module grown too
    assert.equal(r.layers_out, 2 * L + 1);
    assert.equal(r.module, 'kept');
    assert.deepEqual([r.module_layers_in, r.module_layers_out], [R, R + 2]);
    assert.deepEqual(r.module_plan, growPlan(R, R + 2));
    const ids = [3, 17, 41, 8, 8, 29, 0, 49, 12];
    const a = outputs(src, ids),
      b = outputs(out, ids);
    assert.deepEqual(b.hidden, a.hidden, 'hidden states');
    assert.deepEqual(b.logits, a.logits, 'logits');
    assert.deepEqual(b.module, a.module, 'module logits');
    // the identity copies: output projections zero, the rest copied from their source
    const { config, weights } = loadModelDir(out);
    r.plan.forEach((p, j) => {
      const n = blockNames(config, basePrefix(config.arch, j));
      const src0 = blockNames(config, basePrefix(config.arch, p.source));
      const zero = [n.o, n.oBias, n.down, n.downBias].filter((x): x is string => x !== null);
      for (const name of zero) {
        const w = weights.get(name);
        if (p.identity)
          assert.ok(
            w.every((v) => v === 0),
            `${name} zero`,
          );
        else
          assert.deepEqual(
            w,
            model.weights.get(name.replace(basePrefix(config.arch, j), basePrefix(config.arch, p.source))),
          );
      }
      assert.deepEqual(weights.get(n.up), model.weights.get(src0.up), `${n.up} copies ${src0.up}`);
    });
    r.module_plan!.forEach((p, j) => {
      const n = blockNames(config, modulePrefix(j)),
        src0 = blockNames(config, modulePrefix(p.source));
      assert.equal(
        weights.get(n.down).every((v) => v === 0),
        p.identity,
        `${n.down}: zero exactly in an identity copy`,
      );
      assert.deepEqual(weights.get(n.up), model.weights.get(src0.up), `${n.up} copies ${src0.up}`);
    });
  });
}

test('grow --drop-module and the CLI: config without "recycle", trains from there, errors name what is wrong', () => {
  const src = path.join(tmp, 'cli-src');
  writeModelDir(src, randomModel({ preset: 'tiny', vocabSize: 300, seed: 3 }), TEXT);
  const out = path.join(tmp, 'cli-grown');
  const res = runCli(['grow', '--model', src, '--layers', '5', '--out', out, '--drop-module', '--json']);
  assert.equal(res.status, 0, res.stderr);
  const j = lastJson(res.stdout);
  assert.equal(j.module, 'dropped');
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.n_layer, 5);
  assert.equal(cfg.recycle, undefined);
  // train --base on the grown directory: a new module, and the identity copies' projections leave zero
  const text = path.join(tmp, 'train.txt');
  fs.writeFileSync(text, TEXT);
  const trained = path.join(tmp, 'cli-trained');
  const t = runCli([
    'train',
    '--base',
    out,
    '--data',
    text,
    '--out',
    trained,
    '--steps',
    '2',
    '--batch-size',
    '2',
    '--seq-len',
    '16',
    '--warmup',
    '0',
    '--recycle-layers',
    '1',
    '--eval-every',
    '0',
    '--threads',
    '1',
    '--json',
  ]);
  assert.equal(t.status, 0, t.stderr);
  const { weights } = loadModelDir(trained);
  const idCopy = growPlan(2, 5).findIndex((p) => p.identity);
  assert.ok(
    weights.get(`h.${idCopy}.mlp.c_proj.weight`).some((v) => v !== 0),
    'the identity copy trained',
  );
  const both = runCli(
    ['grow', '--model', src, '--layers', '5', '--out', `${out}-2`, '--drop-module'].concat(['--module-layers', '2']),
  );
  assert.notEqual(both.status, 0);
  assert.match(both.stderr, /--module-layers needs a model with a recyclable module, kept/);
  const noModuleBlocks = runCli(['grow', '--model', src, '--layers', '5', '--out', `${out}-2`, '--module-layers', '0']);
  assert.notEqual(noModuleBlocks.status, 0);
  assert.match(noModuleBlocks.stderr, /--module-layers/);
  const again = runCli(['grow', '--model', src, '--layers', '5', '--out', out]);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /--out .* exists and is not empty \(give --force/);
  const fewer = runCli(['grow', '--model', src, '--layers', '1', '--out', path.join(tmp, 'x')]);
  assert.notEqual(fewer.status, 0);
  assert.match(fewer.stderr, /--layers 1 must be an integer ≥ the source's 2 layers/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x')), 'nothing written on error');
});
