/**
 * The wasm backend end to end in Node: the shipped model from bytes through `recyclegpt/core` (the browser's path)
 * keeps every weight, cache and scratch buffer in the module's memory (nothing is copied in per call), verified
 * greedy decoding equals standard greedy token for token (the row independence of the wasm kernels, §4), recycle
 * emits recycled tokens, and `createBackend({kind: 'wasm'})` serves the Node API; loaded as int8 (q8_0 products
 * through the int8 dot at M ≤ 8), verified greedy equals standard greedy too, the same tokens at 1 and 2 threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecycleGPT as CoreRecycleGPT, createWasmBackend } from '../src/core.js';
import { RecycleGPT } from '../src/index.js';
import { createBackend } from '../src/kernels/index.js';
import { createNodeWasmBackend, wasmKernelsFile } from '../src/kernels/wasm-node.js';

const dir = join(fileURLToPath(new URL('..', import.meta.url)), 'models', 'recycle-small');
const PROMPTS = ['Once upon a time', 'The old man said that', 'In the morning the'];

test('shipped model on wasm from bytes: in-place weights, verified greedy == standard greedy', async () => {
  const backend = await createWasmBackend({ kernels: readFileSync(wasmKernelsFile()), memoryBytes: 256 * 2 ** 20 });
  const model = await CoreRecycleGPT.fromBytes(
    {
      config: readFileSync(join(dir, 'config.json'), 'utf8'),
      weights: readFileSync(join(dir, 'model.safetensors')),
      tokenizer: readFileSync(join(dir, 'tokenizer.json')),
    },
    { backend },
  );
  for (const prompt of PROMPTS) {
    const standard = await model.generate(prompt, { mode: 'standard', max_new_tokens: 48, do_sample: false });
    const verified = await model.generate(prompt, { mode: 'verified', max_new_tokens: 48, do_sample: false });
    assert.deepEqual(verified.ids, standard.ids, `verified vs standard on ${JSON.stringify(prompt)}`);
    assert.equal(verified.text, standard.text);
    const recycle = await model.generate(prompt, { mode: 'recycle', max_new_tokens: 48, do_sample: false });
    assert.ok(recycle.stats.module_calls > 0, 'recycle mode made module calls');
  }
  assert.equal(backend.stagedBytes(), 0, 'every array the kernels read lives in the module memory');
});

test('createBackend({kind: "wasm"}) runs the Node API: the same tokens as from bytes', async () => {
  const model = await RecycleGPT.load(dir, { backend: createBackend({ kind: 'wasm' }) });
  const a = await model.generate(PROMPTS[0]!, { mode: 'verified', max_new_tokens: 24, do_sample: false });
  const b = await model.generate(PROMPTS[0]!, { mode: 'standard', max_new_tokens: 24, do_sample: false });
  assert.deepEqual(a.ids, b.ids);
  assert.throws(() => createBackend({ kind: 'gpu' as 'wasm' }), /kind must be "native", "ref", "wasm" or "auto"/);
});

test('int8 on wasm (q8_0 through the int8 dot): verified == standard greedy, the same at 1 and 2 threads', async () => {
  const runs: number[][][] = [];
  for (const threads of [1, 2]) {
    const backend = createNodeWasmBackend({ memoryBytes: 256 * 2 ** 20, threads });
    try {
      assert.equal(await backend.ready(), threads - 1, 'the workers started');
      const model = await RecycleGPT.load(dir, { backend, dtype: 'int8' });
      assert.equal(model.model.weights.weight('wte.weight').dtype, 'q8_0');
      const ids: number[][] = [];
      for (const prompt of PROMPTS) {
        const standard = await model.generate(prompt, { mode: 'standard', max_new_tokens: 32, do_sample: false });
        const verified = await model.generate(prompt, { mode: 'verified', max_new_tokens: 32, do_sample: false });
        assert.deepEqual(verified.ids, standard.ids, `${threads} thread(s): verified vs standard on ${prompt}`);
        ids.push(standard.ids);
      }
      runs.push(ids);
    } finally {
      backend.close();
    }
  }
  assert.deepEqual(runs[1], runs[0], 'int8 greedy at 2 threads vs 1');
});
