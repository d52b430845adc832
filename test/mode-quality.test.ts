/**
 * `eval --mode-quality` (src/bench/mode-quality.ts) on a tiny model trained here on Brown: the held-out prompt
 * rule, the JSON contract through the CLI (and that it matches the in-process function), scoring equal to a
 * token-by-token computation through InferenceModel, EOS handling, greedy verified == greedy standard exactly,
 * and a clear error for a model without a module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli as runCli0, type CliResult } from './helpers/cli.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bootstrapRatio,
  heldoutPrompts,
  modeQuality,
  scoreContinuation,
  type ModeQualityOptions,
} from '../src/bench/mode-quality.js';
import { Rng } from '../src/data/rng.js';
import { loadCorpus } from '../src/data/corpus.js';
import { tokenizeDocuments } from '../src/data/dataset.js';
import { getBackend } from '../src/kernels/index.js';
import { toHfConfig } from '../src/model/config.js';
import { InferenceModel } from '../src/model/infer.js';
import { loadModelDir, saveWeights } from '../src/io/model-dir.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { trainingSkipReason, trainTinyOnBrown } from './helpers/trained.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mode-quality-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const skip = trainingSkipReason();

interface Setup {
  dir: string;
  model: InferenceModel;
  val: Int32Array;
  eos: number | null;
}
let setup: Setup | null = null;
/** The trained model (once per file), its held-out Brown stream under its tokenizer. */
function trained(): Setup {
  if (setup) return setup;
  const backend = getBackend();
  backend.setThreads(1); // the CLI child runs with RECYCLEGPT_THREADS=1: same reductions, same numbers
  const dir = trainTinyOnBrown(path.join(tmp, 'tiny'));
  const { config, weights } = loadModelDir(dir);
  const tok = loadTokenizer(dir);
  setup = {
    dir,
    model: new InferenceModel(config, weights, backend),
    val: tokenizeDocuments(loadCorpus('brown').val, tok),
    eos: tok.eosTokenId,
  };
  return setup;
}

const runCli = (args: string[]): CliResult => runCli0(args, { env: { RECYCLEGPT_THREADS: '1' } });

/** Σ log p of `cont` given `prompt`, token by token with a KV cache (one full call per token), softmax by hand. */
function handScore(model: InferenceModel, prompt: readonly number[], cont: readonly number[]): number {
  const V = model.config.vocabSize,
    cache = model.newBaseCache();
  let logits = model.forwardBase(prompt, cache, 'last').logits;
  let sum = 0;
  for (const id of cont) {
    const row = Array.from(logits.subarray(0, V), Number);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    sum += row[id]! - lse;
    logits = model.forwardBase([id], cache, 'last').logits;
  }
  return sum;
}

test('held-out prompts: N evenly spaced windows of P + K tokens, first at 0, last at the end', () => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
  const ps = heldoutPrompts(tokens, 5, 8, 12);
  assert.deepEqual(
    ps.map((p) => p.start),
    [0, 245, 490, 735, 980],
  );
  for (const p of ps) {
    assert.deepEqual(
      p.prompt,
      Array.from({ length: 8 }, (_, j) => p.start + j),
    );
    assert.deepEqual(
      p.reference,
      Array.from({ length: 12 }, (_, j) => p.start + 8 + j),
    );
  }
  assert.deepEqual(
    heldoutPrompts(tokens, 1, 8, 12).map((p) => p.start),
    [0],
  );
  assert.throws(
    () => heldoutPrompts(tokens.subarray(0, 22), 4, 8, 12),
    /held-out split has 22 tokens, too few for 4 distinct windows/,
  );
  assert.throws(() => heldoutPrompts(tokens, 0, 8, 12), /prompts must be an integer >= 1, got 0/);
});

test(
  'eval --mode-quality --json: the contract fields, equal to the in-process result; a table without --json',
  { skip },
  (t) => {
    const s = trained();
    const args = ['--prompts', '12', '--prompt-tokens', '16', '--new-tokens', '24', '--seed', '7'];
    const t0 = performance.now();
    const r = runCli(['eval', '--mode-quality', '--model', s.dir, '--data', 'brown', ...args, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const j = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
    for (const key of ['prompts', 'new_tokens', 'temperature', 'ppl_under_base', 'ratio_recycle_vs_standard'])
      assert.ok(key in j, `JSON has ${key}: ${lines.at(-1)}`);
    assert.equal(j.prompts, 12);
    assert.equal(j.new_tokens, 24);
    assert.equal(j.temperature, 0.8);
    const ppl = j.ppl_under_base as Record<string, number>;
    assert.deepEqual(Object.keys(ppl).sort(), ['recycle', 'standard', 'verified']);
    for (const v of Object.values(ppl)) assert.ok(Number.isFinite(v) && v > 1 && v < 512, `ppl ${v}`);
    assert.equal(j.ratio_recycle_vs_standard, ppl.recycle! / ppl.standard!);
    assert.equal(j.ratio_verified_vs_standard, ppl.verified! / ppl.standard!);
    for (const key of ['recycle_vs_standard', 'verified_vs_standard', 'recycle_vs_lossless']) {
      const [lo, hi] = j[`ratio_${key}_ci95`] as [number, number];
      const point = j[`ratio_${key}`] as number;
      assert.ok(lo < point && point < hi, `${key}: ${point} in [${lo}, ${hi}]`);
    }
    const tokens = j.tokens as Record<string, number>;
    for (const m of ['standard', 'recycle', 'verified'])
      assert.ok(tokens[m]! > 0 && tokens[m]! <= 12 * 24, `${m}: ${tokens[m]} tokens`);
    assert.ok(!('continuations' in j), 'the JSON line stays small');

    const mine = modeQuality(s.model, s.val, {
      prompts: 12,
      promptTokens: 16,
      newTokens: 24,
      seed: 7,
      eosFallback: s.eos,
    });
    assert.deepEqual(
      ppl,
      mine.ppl_under_base,
      'the CLI reads the same held-out prompts and decodes with the same seeds',
    );
    assert.deepEqual(tokens, mine.tokens);

    const table = runCli(['eval', '--mode-quality', '--model', s.dir, '--data', 'brown', ...args]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /mode\s+tokens\s+ppl \(base\)\s+vs standard/);
    for (const m of ['standard', 'recycle', 'verified'])
      assert.match(table.stdout, new RegExp(`^${m}\\s+${tokens[m]}\\s+${ppl[m]!.toFixed(3)}`, 'm'));
    t.diagnostic(`tiny model, 12 prompts, T=0.8 (${((performance.now() - t0) / 1000).toFixed(1)} s): ${lines.at(-1)}`);

    // The defaults fit the context (a third for the prompt); lengths given that exceed it are refused.
    const long = ['--prompt-tokens', '32', '--new-tokens', '48', '--json'];
    const big = runCli(['eval', '--mode-quality', '--model', s.dir, '--data', 'brown', ...long]);
    assert.equal(big.status, 1);
    assert.match(big.stderr, /32 prompt tokens \+ 48 new tokens = 80 exceed the model's context length 64/);
  },
);

test('scoring equals the log-probs summed token by token through InferenceModel', { skip }, () => {
  const s = trained();
  const o: ModeQualityOptions = {
    prompts: 1,
    promptTokens: 16,
    newTokens: 20,
    temperature: 0.8,
    seed: 3,
    eosFallback: s.eos,
  };
  const r = modeQuality(s.model, s.val, o);
  const prompt = heldoutPrompts(s.val, 1, 16, 20)[0]!.prompt;
  for (const mode of ['standard', 'recycle', 'verified'] as const) {
    const cont = r.continuations[mode][0]!;
    const hand = handScore(s.model, prompt, cont);
    const m = r.modes[mode];
    assert.equal(m.tokens, cont.length);
    assert.ok(Math.abs(-m.nll - hand) < 1e-4 * cont.length, `${mode}: batched ${-m.nll} vs token by token ${hand}`);
    assert.ok(Math.abs(m.ppl - Math.exp(-hand / cont.length)) < 1e-4 * m.ppl);
    const per = scoreContinuation(s.model, prompt, cont);
    assert.equal(per.length, cont.length);
    assert.ok(per.every((v) => v < 0 && Number.isFinite(v)));
  }
  assert.notDeepEqual(r.continuations.recycle[0], r.continuations.standard[0], 'recycle samples its own continuation');
});

test(
  'greedy: verified continuations are the standard ones, so their ppl is identical; EOS ends and is scored',
  { skip },
  () => {
    const s = trained();
    const r = modeQuality(s.model, s.val, {
      prompts: 20,
      promptTokens: 16,
      newTokens: 32,
      temperature: 0,
      eosFallback: s.eos,
    });
    assert.deepEqual(r.continuations.verified, r.continuations.standard);
    assert.equal(r.ppl_under_base.verified, r.ppl_under_base.standard);
    assert.equal(r.ratio_verified_vs_standard, 1);
    assert.deepEqual(r.ratio_verified_vs_standard_ci95, [1, 1], 'identical text: every resample gives 1');
    assert.equal(r.temperature, 0);
    assert.ok(
      r.modes.verified.accepted > 0 && r.modes.verified.rejected > 0,
      `drafts: ${r.modes.verified.accepted} accepted, ${r.modes.verified.rejected} rejected`,
    );
    assert.ok(r.modes.verified.full_calls < r.modes.standard.full_calls);

    // Make the third greedy token of prompt 0 the EOS: the continuation stops there and EOS is counted and scored.
    const cont = r.continuations.standard[0]!;
    const eos = cont[2]!,
      cut = cont.indexOf(eos) + 1;
    const withEos = new InferenceModel({ ...s.model.config, eosTokenId: eos }, s.model.weights, s.model.backend);
    const e = modeQuality(withEos, s.val, { prompts: 1, promptTokens: 16, newTokens: 32, temperature: 0 });
    assert.deepEqual(e.continuations.standard[0], cont.slice(0, cut));
    assert.equal(e.modes.standard.tokens, cut);
    assert.equal(e.modes.standard.eos, 1);
    const prompt = heldoutPrompts(s.val, 1, 16, 32)[0]!.prompt;
    assert.ok(Math.abs(-e.modes.standard.nll - handScore(s.model, prompt, cont.slice(0, cut))) < 1e-4 * cut);
  },
);

test('bootstrapRatio: the paired bootstrap over prompts, reproducible, around the pooled ratio', () => {
  const rng = new Rng(3);
  const n = 60;
  const tokens = Array.from({ length: n }, () => 20 + rng.int(29));
  const std = { nll: tokens.map((t) => t * (3 + rng.random())), tokens };
  // recycle: every prompt 10% more NLL per token, plus prompt noise
  const rec = { nll: std.nll.map((x) => x * 1.1 + rng.random()), tokens };
  const [lo, hi] = bootstrapRatio([rec], [std]);
  assert.deepEqual(bootstrapRatio([rec], [std]), [lo, hi], 'the same resamples every call');
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const point = Math.exp((sum(rec.nll) - sum(std.nll)) / sum(tokens));
  assert.ok(lo < point && point < hi, `${point} in [${lo}, ${hi}]`);
  assert.ok(hi - lo < 0.1 * point, 'paired: the prompts’ shared difficulty cancels');
  // unpaired noise widens it; pooling a second reference sample narrows it again
  const shuffled = { nll: [...rec.nll].reverse(), tokens: [...tokens].reverse() };
  const [ulo, uhi] = bootstrapRatio([shuffled], [std]);
  assert.ok(uhi - ulo > hi - lo);
  assert.deepEqual(bootstrapRatio([std], [std]), [1, 1]);
  const [plo, phi] = bootstrapRatio([rec], [std, std]);
  assert.ok(Math.abs(plo - lo) < 1e-12 && Math.abs(phi - hi) < 1e-12, 'pooling a copy changes nothing');
});

test('a model without a module: clear errors from the function and the CLI', { skip }, () => {
  const s = trained();
  const config = { ...s.model.config, recycle: null };
  const plain = path.join(tmp, 'plain');
  fs.mkdirSync(plain);
  fs.writeFileSync(path.join(plain, 'config.json'), JSON.stringify(toHfConfig(config)));
  saveWeights(path.join(plain, 'model.safetensors'), config, (n) => s.model.weights.get(n));
  fs.copyFileSync(path.join(s.dir, 'tokenizer.json'), path.join(plain, 'tokenizer.json'));
  const base = new InferenceModel(config, s.model.weights, s.model.backend);
  assert.throws(
    () => modeQuality(base, s.val, { prompts: 2, promptTokens: 8, newTokens: 8 }),
    /has no recyclable module/,
  );
  const r = runCli([
    'eval',
    '--mode-quality',
    '--model',
    plain,
    '--data',
    'brown',
    '--prompt-tokens',
    '8',
    '--new-tokens',
    '8',
    '--json',
  ]);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /--mode-quality compares standard, recycle and verified decoding, and .*plain has no recyclable module/,
  );
  assert.equal(r.stdout, '');
});
