/**
 * The browser-safe core entry (src/core.ts, package export `recyclegpt/core`): it bundles for the browser with no
 * Node builtin in its graph, runs with no Node global, loads a model from bytes in memory (one file or shards) and
 * generates exactly what `RecycleGPT.load(dir)` generates, and bad bytes fail with errors naming the file and field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import * as esbuild from 'esbuild';
import { RecycleGPT as CoreRecycleGPT, createRefBackend, type ModelBytes } from '../src/core.js';
import { RecycleGPT } from '../src/index.js';
import { messageChannelTurn } from '../src/generate/next-turn.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { DECODE_MODES } from '../src/generate/types.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'models', 'recycle-small');
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(join(dir, f)));
const backend = createRefBackend();
const PROMPT = 'Once upon a time';
const fromDir = await RecycleGPT.load(dir, { backend });

/** The files as a browser would have them: config as text, the weights as an ArrayBuffer, the tokenizer as bytes. */
function modelBytes(): ModelBytes {
  const w = read('model.safetensors');
  return {
    config: readFileSync(join(dir, 'config.json'), 'utf8'),
    weights: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
    tokenizer: read('tokenizer.json'),
  };
}

const NODE_BUILTIN = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const isBuiltin = (p: string): boolean => p.startsWith('node:') || NODE_BUILTIN.has(p.split('/')[0]!);

async function bundle(
  entry: string,
  format: 'esm' | 'iife' = 'esm',
): Promise<esbuild.BuildResult<{ write: false; metafile: true }>> {
  return esbuild.build({
    entryPoints: [join(root, entry)],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'browser',
    format,
    globalName: format === 'iife' ? 'recyclegptCore' : undefined,
    logLevel: 'silent',
  });
}

test('core entry: bundles for the browser with no Node builtin in its graph', async () => {
  const r = await bundle('src/core.ts');
  assert.equal(r.errors.length, 0);
  const inputs = Object.entries(r.metafile.inputs);
  assert.ok(inputs.some(([p]) => p.endsWith('src/core.ts')));
  for (const [p, info] of inputs) {
    assert.ok(!isBuiltin(p), `input ${p} is a Node builtin`);
    for (const imp of info.imports) assert.ok(!isBuiltin(imp.path), `${p} imports the Node builtin ${imp.path}`);
  }
  // the check has teeth: the Node-side reader does not bundle for the browser
  await assert.rejects(bundle('src/io/sharded.ts'), /Could not resolve "node:fs"/);
});

test('core entry: the browser bundle loads and generates without process, Buffer or setImmediate', async () => {
  const r = await bundle('src/core.ts', 'iife');
  const code = r.outputFiles[0]!.text;
  // what a browser page has, and nothing of Node's
  const context = vm.createContext({ TextDecoder, TextEncoder, MessageChannel, performance, console, setTimeout });
  vm.runInContext(code, context);
  const core = context.recyclegptCore as typeof import('../src/core.js');
  assert.equal(
    vm.runInContext('typeof process + typeof Buffer + typeof setImmediate', context),
    'undefinedundefinedundefined',
  );
  const m = await core.RecycleGPT.fromBytes(modelBytes());
  const got = await m.generate(PROMPT, { max_new_tokens: 8, mode: 'verified' });
  const want = await fromDir.generate(PROMPT, { max_new_tokens: 8, mode: 'verified' });
  assert.deepEqual([...got.ids], want.ids);
  assert.equal(got.text, want.text);
});

test('fromBytes generates exactly what load(dir) does, greedy, in every mode', async () => {
  const fromBytes = await CoreRecycleGPT.fromBytes(modelBytes(), { backend });
  assert.ok(fromBytes.hasModule && fromBytes.tokenizer);
  assert.deepEqual(fromBytes.config, fromDir.config);
  assert.deepEqual(fromBytes.encode(PROMPT), fromDir.encode(PROMPT));
  for (const mode of DECODE_MODES) {
    const opts = { max_new_tokens: 24, mode, eos_token_id: [] };
    const a = await fromDir.generate(PROMPT, opts);
    const b = await fromBytes.generate(PROMPT, opts);
    assert.deepEqual(b.ids, a.ids, mode);
    assert.equal(b.text, a.text, mode);
    assert.equal(b.ids.length, 24, mode);
  }
  // called on the Node class it gives the Node class (which also has load)
  const viaNode = await RecycleGPT.fromBytes(modelBytes(), { backend });
  assert.ok(viaNode instanceof RecycleGPT && viaNode instanceof CoreRecycleGPT);
});

/** A safetensors file of float32 tensors, in memory. */
function safetensorsBytes(tensors: Array<[string, number[], Float32Array]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] };
    off += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, , data] of tensors) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    pos += data.byteLength;
  }
  return out;
}

test('fromBytes: shards and their index in memory give the same model', async () => {
  const { tensors } = readSafetensors(join(dir, 'model.safetensors'));
  const all = [...tensors].map(([n, t]): [string, number[], Float32Array] => [n, t.shape, t.data]);
  const half = Math.ceil(all.length / 2);
  const shards = {
    'a.safetensors': safetensorsBytes(all.slice(0, half)),
    'b.safetensors': safetensorsBytes(all.slice(half)),
  };
  const weightMap = Object.fromEntries(all.map(([n], i) => [n, i < half ? 'a.safetensors' : 'b.safetensors']));
  const index = JSON.stringify({ metadata: {}, weight_map: weightMap });
  const files = { ...modelBytes(), weights: { index, shards } };
  const sharded = await CoreRecycleGPT.fromBytes(files, { backend });
  const opts = { max_new_tokens: 12, mode: 'recycle' as const, eos_token_id: [] };
  assert.deepEqual((await sharded.generate(PROMPT, opts)).ids, (await fromDir.generate(PROMPT, opts)).ids);
  // a shard the index lists but the caller did not give
  await assert.rejects(
    CoreRecycleGPT.fromBytes({ ...files, weights: { index, shards: { 'a.safetensors': shards['a.safetensors'] } } }),
    /index\.json \(bytes\): shard "b\.safetensors" is listed but not given \(given: "a\.safetensors"\)/,
  );
});

test('fromBytes: no tokenizer means token-id prompts; tokenizer_config.json is read from bytes too', async () => {
  const { tokenizer: _t, ...noTok } = modelBytes();
  const m = await CoreRecycleGPT.fromBytes(noTok, { backend });
  assert.equal(m.tokenizer, null);
  assert.throws(() => m.encode('hi'), /has no tokenizer/);
  const r = await m.generate([1, 2, 3], { max_new_tokens: 3, eos_token_id: [] });
  assert.equal(r.ids.length, 3);
  const withCfg = await CoreRecycleGPT.fromBytes(
    { ...modelBytes(), tokenizerConfig: { eos_token: '<|endoftext|>' } },
    { backend },
  );
  assert.equal(withCfg.tokenizer?.eosTokenId, 4095);
});

test('fromBytes: bad bytes give errors naming the file and what is wrong', async () => {
  const good = modelBytes();
  const w = read('model.safetensors');
  const longHeader = w.slice();
  new DataView(longHeader.buffer).setBigUint64(0, BigInt(w.length), true);
  const cases: Array<[string, Partial<ModelBytes>, RegExp]> = [
    [
      'short weights',
      { weights: new Uint8Array(4) },
      /safetensors model\.safetensors \(bytes\): file is 4 bytes, too short/,
    ],
    [
      'header length',
      { weights: longHeader },
      /safetensors model\.safetensors \(bytes\): header length \d+ runs past the end/,
    ],
    [
      'truncated data',
      { weights: w.subarray(0, w.length - 4) },
      /model\.safetensors \(bytes\).*run past the end of the file/,
    ],
    [
      'weights a string',
      { weights: 'abc' as never },
      /model\.safetensors \(bytes\): weights must be the bytes of one safetensors file/,
    ],
    ['config JSON', { config: '{"model_type": "gpt2",' }, /config\.json \(bytes\): not valid JSON/],
    [
      'config field',
      { config: { model_type: 'bert' } },
      /config\.json \(bytes\): model_type must be "gpt2" or "llama"/,
    ],
    ['config UTF-8', { config: new Uint8Array([0x7b, 0xff, 0x7d]) }, /config\.json \(bytes\): is not valid UTF-8/],
    ['tokenizer array', { tokenizer: '[1]' }, /tokenizer\.json \(bytes\): must be a JSON object/],
    [
      'tokenizer model',
      { tokenizer: { model: { type: 'Foo' } } },
      /tokenizer\.json \(bytes\): model\.type "Foo" is not supported/,
    ],
    [
      'gpt2 marker',
      { tokenizer: '{"type": "gpt2"}' },
      /tokenizer\.json \(bytes\): the marker \{"type": "gpt2"\} needs GPT-2's offline vocabulary/,
    ],
    ['tokenizer_config', { tokenizerConfig: '"x"' }, /tokenizer_config\.json \(bytes\): must be a JSON object/],
  ];
  for (const [what, patch, re] of cases) {
    await assert.rejects(CoreRecycleGPT.fromBytes({ ...good, ...patch }, { backend }), re, what);
  }
  // a config that does not match the weights: the tensor and the file are named
  const cfg = JSON.parse(good.config as string) as Record<string, unknown>;
  await assert.rejects(
    CoreRecycleGPT.fromBytes({ ...good, config: { ...cfg, n_embd: 640, n_head: 10 } }, { backend }),
    /model\.safetensors \(bytes\): tensor "\S+" has shape \[.*\], config\.json implies/,
  );
  // a name labels every file
  await assert.rejects(
    CoreRecycleGPT.fromBytes({ ...good, weights: new Uint8Array(4) }, { backend, name: 'recycle-small' }),
    /safetensors recycle-small\/model\.safetensors: file is 4 bytes/,
  );
  await assert.rejects(
    CoreRecycleGPT.fromBytes({ config: good.config } as ModelBytes),
    /model\.safetensors \(bytes\): not given/,
  );
});

test('nextTurn without setImmediate: MessageChannel turns resolve in order', async () => {
  const turn = messageChannelTurn();
  const order: number[] = [];
  await Promise.all([1, 2, 3].map((i) => turn().then(() => order.push(i))));
  assert.deepEqual(order, [1, 2, 3]);
});
