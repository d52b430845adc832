/**
 * GGUF export against llama.cpp itself (node-llama-cpp 3.21.1 from bench/peers/llama-cpp): the shipped model and
 * tiny random models of both architectures are exported in f32, loaded by llama.cpp (F32 KV cache), and llama.cpp's
 * greedy continuation of several prompts equals ours token for token. The shipped model's prompts are tokenized
 * by both tokenizers too (llama.cpp's from the GGUF's vocabulary and merges), which must agree.
 * Skips with a message when the peer is not installed (`npm run peers:install`; .ci/run installs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportModelDirGguf } from '../src/io/gguf.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { InferenceModel } from '../src/model/infer.js';
import { getBackend } from '../src/kernels/index.js';
import { decodeAll } from '../src/generate/decode.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { packageRoot } from '../src/cli/default-model.js';
import { LlamaCppRunner, llamaCppInstalled, PEER_MISSING_MESSAGE } from '../src/bench/llama-cpp.js';
import { randomModel, writeModelDir } from './helpers/models.js';

const skip = llamaCppInstalled() ? false : `${PEER_MISSING_MESSAGE}`;
if (skip) process.stderr.write(`gguf-llama-cpp: skipped: ${skip}\n`);

const tmp = mkdtempSync(join(tmpdir(), 'recyclegpt-gguf-llama-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log. ' +
  'one two three four five six seven eight nine ten. The Quick Brown Fox jumps over the lazy dog! ';

/** Our greedy continuation (standard mode, EOS not stopping) of each prompt. */
function ours(dir: string, prompts: number[][], n: number): number[][] {
  const { config, weights } = loadModelDir(dir);
  const model = new InferenceModel(config, weights, getBackend());
  return prompts.map(
    (p) => decodeAll(model, p, { mode: 'standard', max_new_tokens: n, eos_token_id: [], seed: 1 }).ids,
  );
}

/**
 * llama.cpp's greedy continuations, one thread (ggml's spinning thread barrier crawls on a shared 2-core machine;
 * the bench measures threads), F32 KV cache.
 */
async function theirs(
  gguf: string,
  prompts: number[][],
  n: number,
  check?: (r: LlamaCppRunner) => void,
): Promise<number[][]> {
  const r = await LlamaCppRunner.open(gguf, { threads: 1, contextSize: 256, kvF32: true });
  try {
    check?.(r);
    const out: number[][] = [];
    for (const p of prompts) out.push(await r.greedy(p, n));
    return out;
  } finally {
    await r.close();
  }
}

test('the shipped model in f32: llama.cpp tokenizes and continues greedily exactly as we do', { skip }, async () => {
  const dir = join(packageRoot(), 'models', 'recycle-small');
  const gguf = join(tmp, 'recycle-small.gguf');
  const res = exportModelDirGguf(dir, gguf, { dtype: 'f32' });
  assert.ok(res.moduleFile !== null);
  const texts = [
    'The old man said that',
    'She opened the door and looked out at the',
    'In the morning the children walked to school along the',
    'The committee said on Tuesday that the new rules would',
  ];
  const tok = loadTokenizer(dir);
  const prompts = texts.map((t) => tok.encode(t));
  const want = ours(dir, prompts, 32);
  const got = await theirs(gguf, prompts, 32, (r) => {
    for (let i = 0; i < texts.length; i++)
      assert.deepEqual(r.tokenize(texts[i]!), prompts[i], `tokens of "${texts[i]}"`);
  });
  for (let i = 0; i < prompts.length; i++) assert.deepEqual(got[i], want[i], `continuation of "${texts[i]}"`);
});

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`a random ${preset} model in f32: llama.cpp's greedy continuations equal ours`, { skip }, async () => {
    const dir = join(tmp, preset);
    writeModelDir(dir, randomModel({ preset, vocabSize: 320, scale: 6, seed: 17 }), TEXT);
    const gguf = join(tmp, `${preset}.gguf`);
    exportModelDirGguf(dir, gguf, { dtype: 'f32' });
    const tok = loadTokenizer(dir);
    const prompts = [
      tok.encode('the cat sat'),
      tok.encode('a dog met on'),
      [5, 200, 17, 300, 42, 99, 250, 1],
      [319, 0, 64, 128],
    ];
    const want = ours(dir, prompts, 24);
    const got = await theirs(gguf, prompts, 24);
    for (let i = 0; i < prompts.length; i++)
      assert.deepEqual(got[i], want[i], `prompt ${i} [${prompts[i]!.join(',')}]`);
  });
}
