/** A newcomer's first calls (issue 13): the shared model resolver, the sampling rule's warning, clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as api from '../src/index.js';
import * as core from '../src/core.js';
import { RecycleGPT, ineffectiveSamplingWarning, DEFAULT_MODEL_NAME } from '../src/index.js';
import { packageRoot } from '../src/node/package-root.js';
import { modeQualityLengths } from '../src/cli/cmd-eval.js';
import { optionsFromFlags, type GenerationFlags } from '../src/cli/generation-flags.js';
import { checkBaseDir } from '../src/train/setup.js';
import { lastJson, runCli } from './helpers/cli.js';

const models = join(packageRoot(), 'models');

test('RecycleGPT.load takes a directory, a shipped model name, or nothing (the default), as --model does', async () => {
  const deep = await RecycleGPT.load('recycle-deep', { threads: 1 });
  assert.equal(deep.name, join(models, 'recycle-deep'));
  const byDir = await RecycleGPT.load(join(models, 'recycle-deep'), { threads: 1 });
  assert.equal(byDir.config.nLayers, deep.config.nLayers);
  const def = await RecycleGPT.load(undefined, { threads: 1 });
  assert.equal(def.name, join(models, DEFAULT_MODEL_NAME));
  await assert.rejects(
    RecycleGPT.load('no-such-model'),
    /^Error: RecycleGPT\.load no-such-model: no such directory, and no shipped model of that name \(shipped: .*deep/,
  );
  const file = join(models, 'recycle-deep', 'config.json');
  await assert.rejects(RecycleGPT.load(file), /config\.json: is a file, not a model directory/);
});

test('sampling options without do_sample: greedy, and one warning (API: onWarning; CLI: its flags)', async () => {
  const warnings: string[] = [];
  const m = await RecycleGPT.load(undefined, { threads: 1, onWarning: (w) => warnings.push(w) });
  const greedy = await m.generate('The jury said', { max_new_tokens: 6 });
  const ignored = await m.generate('The jury said', { max_new_tokens: 6, temperature: 0.8, top_k: 4 });
  assert.deepEqual(ignored.ids, greedy.ids);
  assert.deepEqual(warnings, ['temperature 0.8, top_k 4 have no effect without do_sample: true (decoding is greedy)']);
  await m.generate('The jury said', { max_new_tokens: 2, do_sample: true, temperature: 0.8, seed: 1 });
  assert.equal(warnings.length, 1);
  assert.equal(
    ineffectiveSamplingWarning({ do_sample: false, top_p: 0.9 }),
    'top_p 0.9 has no effect without do_sample: true (decoding is greedy)',
  );
  const flags: GenerationFlags = { mode: 'standard', stop: [], temperature: 0.7, topK: 5 };
  const cli = optionsFromFlags(flags);
  assert.equal(cli.warning, '--temperature 0.7, --top-k 5 have no effect without --do-sample (decoding is greedy)');
  assert.equal(cli.options.temperature, undefined);
  const sampled = optionsFromFlags({ ...flags, doSample: true });
  assert.deepEqual([sampled.warning, sampled.options.do_sample, sampled.options.temperature], [null, true, 0.7]);
  // a model whose generation_config.json samples: the flags count, no warning
  const byConfig = optionsFromFlags(flags, { do_sample: true });
  assert.deepEqual([byConfig.warning, byConfig.options.temperature, byConfig.options.top_k], [null, 0.7, 5]);
});

test('recyclegpt generate "PROMPT": an argument works as --prompt does; given both ways, a clear error', () => {
  const args = ['--max-new-tokens', '6', '--mode', 'verified', '--json'];
  const positional = runCli(['generate', 'The jury said', ...args]);
  assert.equal(positional.status, 0, positional.stderr);
  const flag = runCli(['generate', '--prompt', 'The jury said', ...args]);
  assert.equal(flag.status, 0, flag.stderr);
  const [a, b] = [lastJson(positional.stdout), lastJson(flag.stdout)];
  assert.equal(a.text, b.text);
  assert.equal(a.tokens, 6);
  const twice = runCli(['generate', 'The jury said', '--prompt', 'The jury']);
  assert.notEqual(twice.status, 0);
  assert.match(twice.stderr, /the prompt is given twice: as an argument and as --prompt/);
  const none = runCli(['generate']);
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /give exactly one of --prompt TEXT \(or the prompt as an argument\)/);
});

test('--mode-quality lengths fit a short context; --base NAME: no such directory, nothing is downloaded', () => {
  assert.deepEqual(modeQualityLengths(undefined, undefined, 1024), { promptTokens: 32, newTokens: 48 });
  assert.deepEqual(modeQualityLengths(undefined, undefined, 64), { promptTokens: 21, newTokens: 43 });
  assert.deepEqual(modeQualityLengths(8, undefined, 64), { promptTokens: 8, newTokens: 48 });
  assert.throws(() => checkBaseDir('gpt2'), /^Error: --base gpt2: no such directory\. .*cannot download weights/);
});

test('the public types and helpers are exported from both entries', () => {
  for (const name of [
    'RecycleGPT',
    'parseConfig',
    'loadTokenizer',
    'resolveModelDir',
    'USER_DTYPES',
    'ineffectiveSamplingWarning',
  ])
    assert.ok(name in api, name);
  for (const name of ['RecycleGPT', 'parseConfig', 'createStreamDecoder', 'ineffectiveSamplingWarning'])
    assert.ok(name in core, name);
  // type-only exports: this compiles only if they are exported
  const typed: [api.ModelConfig | null, api.Tokenizer | null, core.ModelConfig | null, core.Tokenizer | null] = [
    null,
    null,
    null,
    null,
  ];
  assert.equal(typed.length, 4);
});
