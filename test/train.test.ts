/**
 * Training end to end, in process: the tiny preset learns on Brown (held-out loss of both heads falls), the
 * checkpoint is a loadable model directory whose eval matches the trainer's, a frozen base stays bit-identical
 * (GPT-2 and Llama bases imported from HF fixtures, with a module added), a NaN stops training with a clear
 * error and leaves the last good checkpoint intact, and bad configs / corrupt checkpoints name the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { loadCorpus } from '../src/data/corpus.js';
import { tokenizeDocuments } from '../src/data/dataset.js';
import { getBackend } from '../src/kernels/index.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { loadModuleModel } from '../src/io/module-dir.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { evaluateModel } from '../src/train/eval.js';
import { readLog, type EvalRow } from '../src/train/log.js';
import { lossCurvesSvg } from '../src/train/plot.js';
import { readTrainState } from '../src/train/checkpoint.js';
import { train, TrainingDivergedError } from '../src/train/trainer.js';
import { smallBrown, tempDirUntilExit } from './helpers/brown-small.js';
import { fixturesDir } from './helpers/fixtures.js';

const fixtures = fixturesDir;
const tmp = tempDirUntilExit('train-test-');
const quiet = { backend: getBackend() };
/** The plain-TS "ref" backend is ~50x slower than the addon: the long training run needs the addon. */
const needsNative =
  getBackend().name === 'ref'
    ? 'the native addon is not built (npm run build:native); the ref backend is too slow for this run'
    : false;

/** A ~300 KB text file from Brown and a 300-token BPE for it (fits the fixtures' 300-word vocabularies). */
const small = smallBrown(tmp, 40);

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test(
  'tiny on brown: held-out loss of both heads falls; the checkpoint is a model directory',
  { skip: needsNative },
  () => {
    const out = path.join(tmp, 'brown-tiny');
    const summary = train(
      {
        out,
        data: 'brown',
        preset: 'tiny',
        steps: 300,
        batchSize: 8,
        seqLen: 64,
        lr: 3e-3,
        evalEvery: 100,
        evalFirst: true,
        evalBatches: 8,
        ckptEvery: 150,
      },
      { resume: false },
      quiet,
    );
    assert.equal(summary.step, 300);
    const rows = readLog(path.join(out, 'train_log.jsonl'));
    const evals = rows.filter((r): r is EvalRow => r.type === 'eval');
    assert.deepEqual(
      evals.map((r) => r.step),
      [0, 100, 200, 300],
    );
    const [first, last] = [evals[0]!, evals[evals.length - 1]!];
    assert.ok(
      last.val_loss_next < first.val_loss_next - 0.8,
      `next-token val loss ${first.val_loss_next} → ${last.val_loss_next}`,
    );
    assert.ok(
      last.val_loss_recycle! < first.val_loss_recycle! - 0.6,
      `recycle val loss ${first.val_loss_recycle} → ${last.val_loss_recycle}`,
    );
    assert.equal(rows.filter((r) => r.type === 'train').length, 300);
    for (const r of rows)
      if (r.type === 'train') assert.ok(Number.isFinite(r.loss) && r.grad_norm > 0 && r.tokens_per_s > 0 && r.lr > 0);

    // the checkpoint loads as a plain model directory and evaluates to what the trainer logged
    const { config, weights } = loadModelDir(out);
    assert.equal(config.recycle?.numLayers, 1);
    const tok = loadTokenizer(out);
    const val = tokenizeDocuments(loadCorpus('brown').val, tok);
    const r = evaluateModel(config, weights, val, { backend: getBackend(), seqLen: 64, batchSize: 8, maxBatches: 8 });
    assert.ok(
      Math.abs(r.loss_next - last.val_loss_next) < 1e-5 && Math.abs(r.loss_recycle! - last.val_loss_recycle!) < 1e-5,
    );
    assert.equal(r.agreement_top1, last.agreement_top1);
    assert.ok(r.agreement_top1! > 0.05, `agreement ${r.agreement_top1}`);
    assert.equal(readTrainState(out).step, 300);

    const svg = lossCurvesSvg(rows);
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const label of ['train next', 'train recycle', 'val next', 'val recycle'])
      assert.ok(svg.includes(label), label);
  },
);

for (const [arch, fixture] of [
  ['GPT-2', 'tiny-gpt2'],
  ['Llama', 'tiny-llama'],
] as const) {
  test(`frozen ${arch} base imported from HF: a module is added and trained, no base tensor changes`, () => {
    const base = path.join(fixtures, fixture);
    const out = path.join(tmp, `frozen-${fixture}`);
    const before = loadModelDir(base);
    train(
      {
        out,
        data: small.file,
        base,
        freezeBase: true,
        tokenizer: small.tokDir,
        steps: 30,
        batchSize: 4,
        seqLen: 32,
        lr: 3e-3,
        evalEvery: 15,
        evalFirst: true,
        evalBatches: 2,
        ckptEvery: 15,
      },
      { resume: false },
      quiet,
    );
    // the output is the module alone, referring to the base (io/module-dir.ts); loaded with it
    const after = loadModuleModel(out);
    assert.equal(after.config.recycle?.numLayers, 1, 'ceil(L/4) module blocks');
    let moduleChanged = false;
    for (const spec of after.weights.specs) {
      const a = after.weights.get(spec.name);
      if (spec.name.startsWith('recycle.')) {
        if (spec.name === 'recycle.in_proj.weight') {
          // identity on the h half at init: training moved it
          const C = after.config.hidden;
          moduleChanged ||= a.some(
            (v, i) => i % (2 * C) < C && v !== (Math.floor(i / (2 * C)) === i % (2 * C) ? 1 : 0),
          );
        }
        continue;
      }
      const b = before.weights.get(spec.name);
      assert.ok(
        Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
        `${spec.name} changed`,
      );
    }
    assert.ok(moduleChanged, 'the module trained');
    const evals = readLog(path.join(out, 'train_log.jsonl')).filter((r): r is EvalRow => r.type === 'eval');
    assert.ok(
      evals.every((e) => e.val_loss_next === evals[0]!.val_loss_next),
      'the base head is frozen',
    );
    assert.ok(evals[evals.length - 1]!.val_loss_recycle! < evals[0]!.val_loss_recycle!, 'the recycle head learns');
    assert.equal(readTrainState(out).trainable, 'module');
  });
}

test('a NaN loss or gradient stops training with a clear error; the last good checkpoint is intact', () => {
  for (const where of ['loss', 'grad'] as const) {
    const out = path.join(tmp, `nan-${where}`);
    let hashAt20 = '';
    const opts = {
      out,
      data: small.file,
      preset: 'tiny',
      tokenizer: small.tokDir,
      steps: 40,
      batchSize: 4,
      seqLen: 32,
      evalEvery: 0,
      ckptEvery: 10,
    };
    assert.throws(
      () =>
        train(
          opts,
          { resume: false },
          {
            ...quiet,
            injectNaN: { step: 25, where },
            onCheckpoint: (step, dir) => {
              if (step === 20) hashAt20 = sha(path.join(dir, 'model.safetensors'));
            },
          },
        ),
      (e: unknown) => {
        assert.ok(e instanceof TrainingDivergedError);
        assert.match(e.message, where === 'loss' ? /step 25: the loss is NaN/ : /step 25: the gradient norm is NaN/);
        assert.match(e.message, /last good checkpoint \(step 20\)/);
        assert.ok(e.message.includes(out));
        return true;
      },
    );
    assert.equal(readTrainState(out).step, 20);
    assert.equal(sha(path.join(out, 'model.safetensors')), hashAt20);
    loadModelDir(out); // loads, all finite
    assert.deepEqual(
      fs.readdirSync(tmp).filter((n) => n.startsWith(`nan-${where}.`)),
      [],
      'no staging folders left',
    );
  }
  // a huge learning rate diverges on its own
  const out = path.join(tmp, 'nan-lr');
  assert.throws(
    () =>
      train(
        {
          out,
          data: small.file,
          preset: 'tiny',
          tokenizer: small.tokDir,
          steps: 40,
          lr: 1e4,
          warmup: 0,
          batchSize: 4,
          seqLen: 32,
          evalEvery: 0,
          ckptEvery: 100,
        },
        { resume: false },
        quiet,
      ),
    /training stopped at step \d+: the (loss|gradient norm) is (NaN|Infinity).*checkpoint \(step 0\)/,
  );
  assert.equal(readTrainState(out).step, 0);
});

test('bad configs, options and corrupt checkpoints give errors naming the file and field', () => {
  const cfgFile = path.join(tmp, 'bad-config.json');
  fs.writeFileSync(
    cfgFile,
    JSON.stringify({ model_type: 'gpt2', vocab_size: 300, n_layer: 1, n_head: 2, n_positions: 32 }),
  );
  const base = { data: small.file, tokenizer: small.tokDir, steps: 4, batchSize: 2, seqLen: 16, evalEvery: 0 };
  assert.throws(
    () => train({ ...base, out: path.join(tmp, 'c1'), config: cfgFile }, { resume: false }, quiet),
    /bad-config\.json: field "n_embd"/,
  );
  assert.throws(
    () => train({ ...base, out: path.join(tmp, 'c2'), lr: -1 }, { resume: false }, quiet),
    /"lr" must be a number > 0, got -1/,
  );
  assert.throws(
    () => train({ ...base, out: path.join(tmp, 'c3'), freezeBase: true }, { resume: false }, quiet),
    /freezeBase needs a base model/,
  );

  const out = path.join(tmp, 'corrupt');
  train({ ...base, out, preset: 'tiny' }, { resume: false }, quiet);
  assert.throws(
    () => train({ ...base, out, preset: 'tiny' }, { resume: false }, quiet),
    /already holds a training checkpoint; pass --resume/,
  );
  assert.throws(
    () => train({ out, steps: 8, lr: 0.5 }, { resume: true }, quiet),
    /option lr = 0.5 differs from the checkpoint's/,
  );
  const stateFile = path.join(out, 'train_state', 'state.json');
  const good = fs.readFileSync(stateFile, 'utf8');
  const state = JSON.parse(good) as { sampler: { rng: { s: unknown } } };
  state.sampler.rng.s = 'oops';
  fs.writeFileSync(stateFile, JSON.stringify(state));
  assert.throws(() => train({ out, steps: 8 }, { resume: true }, quiet), /state\.json: field "sampler\.rng\.s"/);
  fs.writeFileSync(stateFile, good);
  const model = path.join(out, 'model.safetensors');
  const bytes = fs.readFileSync(model);
  fs.writeFileSync(model, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => train({ out, steps: 8 }, { resume: true }, quiet), /model\.safetensors/);
  fs.writeFileSync(model, bytes);
  fs.rmSync(path.join(out, 'train_state', 'optimizer.safetensors'));
  assert.throws(() => train({ out, steps: 8 }, { resume: true }, quiet), /optimizer\.safetensors: missing/);
  assert.throws(
    () => train({ out: path.join(tmp, 'nothing-here'), steps: 8 }, { resume: true }, quiet),
    /holds no checkpoint/,
  );
});
