/**
 * Quantized model directories (issue 11, items 2 and 6): `recyclegpt quantize` writes int8 (q8_0) / f16 / bf16
 * weights under the same tensor names, they load back value for value (q8_0 = quantizeQ8 of the f32 weights, f16 /
 * bf16 exact), corrupt directories give errors naming the tensor, `--dtype` on generate and eval converts at load,
 * verified greedy equals standard greedy with int8 weights on held-out Brown prompts, and the random preset model
 * built directly in a dtype equals the f32 one converted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli as runCli0, lastJson, type CliResult } from './helpers/cli.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { heldoutPrompts } from '../src/bench/mode-quality.js';
import { randomPresetModel } from '../src/bench/random-model.js';
import { quantizeModelDir } from '../src/cli/cmd-quantize.js';
import { resolveModelDir } from '../src/cli/default-model.js';
import { loadCorpus } from '../src/data/corpus.js';
import { tokenizeDocuments } from '../src/data/dataset.js';
import { decodeAll } from '../src/generate/decode.js';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { exportStoredTensors, loadModelDir, loadModelDirAs } from '../src/io/model-dir.js';
import { readSafetensors, SafetensorsReader, writeSafetensors, type WriteTensor } from '../src/io/safetensors.js';
import type { Weight } from '../src/kernels/backend.js';
import { getBackend } from '../src/kernels/index.js';
import { quantizeQ8 } from '../src/kernels/quant.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/kernels/half.js';
import { toHfConfig } from '../src/model/config.js';
import { convertWeights, USER_DTYPES, type UserDtype } from '../src/model/convert.js';
import { InferenceModel } from '../src/model/infer.js';
import { allParamSpecs, isProductWeight } from '../src/model/names.js';
import { presetConfig } from '../src/model/presets.js';
import type { Weights } from '../src/model/weights.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { checkVerifiedGreedy } from './helpers/decoding.js';
import { BPE_TEXT as TEXT, randomModel, writeModelDir } from './helpers/models.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'quantize-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const ALL_DTYPES = ['f16', 'bf16', 'q8_0'] as const;

/** Every tensor of `a` equals `b`'s, same storage dtype, element for element (q8_0: quants and scales). */
function assertSameWeights(a: Weights, b: Weights, what: string): void {
  for (const s of a.specs) {
    const x = a.weight(s.name),
      y = b.weight(s.name);
    assert.equal(x.dtype, y.dtype, `${what}: ${s.name} dtype`);
    assert.ok(
      Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).equals(bytesOf(y)),
      `${what}: ${s.name}`,
    );
    if (x.dtype === 'q8_0' && y.dtype === 'q8_0') assert.deepEqual(x.scales, y.scales, `${what}: ${s.name} scales`);
  }
}

function bytesOf(w: Weight): Buffer {
  return Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength);
}

/** The f32 weights `f32` stored as `dtype`, computed here from the definitions (not with convertWeights). */
function checkAgainstF32(f32: Weights, q: Weights, dtype: UserDtype, config: InferenceModel['config']): void {
  for (const s of f32.specs) {
    const x = f32.get(s.name);
    const w = q.weight(s.name);
    if (!isProductWeight(s, config) || dtype === 'f32') {
      assert.equal(w.dtype, 'f32', s.name);
      assert.deepEqual(w.data, x, s.name);
      continue;
    }
    const K = s.shape[1]!;
    if (dtype === 'int8' && K % 32 === 0) {
      assert.equal(w.dtype, 'q8_0', s.name);
      const want = quantizeQ8(x, s.shape[0]!, K);
      assert.deepEqual((w as { data: Int8Array }).data, want.data, `${s.name} quants`);
      assert.deepEqual((w as { scales: Uint16Array }).scales, want.scales, `${s.name} scales`);
      continue;
    }
    const half = dtype === 'bf16' ? 'bf16' : 'f16'; // int8 with rows not a multiple of 32: f16
    assert.equal(w.dtype, half, s.name);
    const conv = half === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
    assert.deepEqual(w.data, Uint16Array.from(x, conv), s.name);
  }
}

/** A random tiny model directory with a tokenizer (gpt2 `tiny` or llama `tiny-llama`, whose MLP is 172 wide). */
function tinyDir(preset: string): { dir: string; model: InferenceModel } {
  const dir = path.join(tmp, `src-${preset}`);
  const model = randomModel({ preset, vocabSize: 300, scale: 8, moduleScale: 0.5, seed: 5 });
  if (!fs.existsSync(path.join(dir, 'config.json'))) writeModelDir(dir, model, TEXT);
  return { dir, model };
}

for (const preset of ['tiny', 'tiny-llama']) {
  test(`quantize -> load round trip on ${preset}: q8_0 = quantizeQ8 of the f32 weights, f16 / bf16 exact`, async () => {
    const { dir, model } = tinyDir(preset);
    const config = model.config;
    for (const dtype of USER_DTYPES) {
      const out = path.join(tmp, `${preset}-${dtype}`);
      const r = quantizeModelDir(dir, dtype, out);
      assert.equal(r.dtype, dtype);
      assert.deepEqual(r.copied, ['tokenizer.json']);
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(
        cfg.quantization,
        dtype === 'f32'
          ? undefined
          : dtype === 'int8'
            ? { dtype, format: 'q8_0', block_size: 32, scales_suffix: '.q8_0_scales' }
            : { dtype, format: dtype },
      );
      // as stored
      const stored = loadModelDir(out, { dtypes: ALL_DTYPES }).weights;
      checkAgainstF32(model.weights, stored, dtype, config);
      // converting at load gives the same weights as the quantized directory
      assertSameWeights(stored, loadModelDirAs(dir, { dtype, dtypes: ALL_DTYPES }).weights, `${dtype} at load`);
      assertSameWeights(stored, convertWeights(model.weights, config, dtype), `${dtype} convertWeights`);
      // widened for a backend that reads f32 only: the same values
      const wide = loadModelDir(out).weights;
      assertSameWeights(wide, convertWeights(stored, config, 'f32'), `${dtype} widened`);
      // it loads with RecycleGPT.load and generates what the converted model generates
      const m = await RecycleGPT.load(out, { backend: createRefBackend() });
      assertSameWeights(m.model.weights, stored, `${dtype} RecycleGPT.load`);
      const mm = await RecycleGPT.load(dir, { backend: createRefBackend(), dtype });
      assertSameWeights(mm.model.weights, stored, `${dtype} RecycleGPT.load dtype`);
      const g = await m.generate('the cat', { max_new_tokens: 12, mode: 'verified' });
      const ref = decodeAll(new InferenceModel(config, stored, createRefBackend()), m.encode('the cat'), {
        max_new_tokens: 12,
        mode: 'standard',
      });
      assert.deepEqual(g.ids, ref.ids, `${dtype}: verified output of the quantized directory`);
    }
    assert.throws(() => quantizeModelDir(dir, 'int8', path.join(tmp, `${preset}-int8`)), /exists and is not empty/);
    quantizeModelDir(dir, 'int8', path.join(tmp, `${preset}-int8`), true);
  });
}

test('RecycleGPT.load: a backend that cannot read the dtype gets the same values in f32, and a warning', async () => {
  const { dir, model } = tinyDir('tiny');
  const f32Only = { ...createRefBackend(), weightDtypes: ['f32'] as const, name: 'ref' as const };
  const warnings: string[] = [];
  const m = await RecycleGPT.load(dir, { backend: f32Only, dtype: 'int8', onWarning: (w) => warnings.push(w) });
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /backend reads f32 weights, not q8_0(, f16)?: the int8 weights are widened to f32 at load/,
  );
  const q = convertWeights(model.weights, model.config, 'int8');
  assertSameWeights(m.model.weights, convertWeights(q, model.config, 'f32'), 'widened int8');
  await assert.rejects(() => RecycleGPT.load(dir, { dtype: 'int4' as UserDtype }), /dtype must be one of f32, f16/);
});

test('the shipped model quantizes and loads back: q8_0 = quantizeQ8 of its weights, f16 / bf16 exact', () => {
  const dir = resolveModelDir('recycle-small');
  const { config, weights } = loadModelDir(dir);
  for (const dtype of ['int8', 'f16', 'bf16'] as const) {
    const out = path.join(tmp, `small-${dtype}`);
    const r = quantizeModelDir(dir, dtype, out);
    if (dtype === 'int8') assert.ok(r.bytes_out < 0.6 * r.bytes_in, `int8 ${r.bytes_out} vs ${r.bytes_in} bytes`);
    checkAgainstF32(weights, loadModelDir(out, { dtypes: ALL_DTYPES }).weights, dtype, config);
  }
});

/** A quantized tiny directory whose model.safetensors is rewritten from its tensors through `edit`. */
function corrupt(name: string, edit: (t: WriteTensor[]) => WriteTensor[], cfgEdit?: (c: object) => object): string {
  const { dir, model } = tinyDir('tiny');
  const out = path.join(tmp, `bad-${name}`);
  quantizeModelDir(dir, 'int8', out);
  const q = loadModelDir(out, { dtypes: ALL_DTYPES }).weights;
  writeSafetensors(path.join(out, 'model.safetensors'), edit(exportStoredTensors(allParamSpecs(model.config), q)));
  if (cfgEdit) {
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as object;
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(cfgEdit(cfg)));
  }
  return out;
}

test('a corrupt quantized directory gives an error naming the tensor', async () => {
  const W = 'h.0.attn.c_attn.weight';
  const S = `${W}.q8_0_scales`;
  const cases: Array<[string, (t: WriteTensor[]) => WriteTensor[], RegExp, ((c: object) => object)?]> = [
    [
      'scales-shape',
      (ts) => ts.map((t) => (t.name === S ? { ...t, shape: [t.shape[1]!, t.shape[0]!] } : t)),
      /"h\.0\.attn\.c_attn\.weight\.q8_0_scales" has shape \[2, 192\], the q8_0 scales of \[192, 64\] are \[192, 2\]/,
    ],
    [
      'missing-scales',
      (ts) => ts.filter((t) => t.name !== S),
      new RegExp(
        'tensor "h\\.0\\.attn\\.c_attn\\.weight" holds q8_0 quants \\(I8\\) ' +
          'but its scales "h\\.0\\.attn\\.c_attn\\.weight\\.q8_0_scales" are missing',
      ),
    ],
    [
      'i8-norm',
      (ts) =>
        ts.map((t) => (t.name === 'h.0.ln_1.weight' ? { ...t, data: new Int8Array(t.data.length), dtype: 'I8' } : t)),
      /tensor "h\.0\.ln_1\.weight" is I8 \(q8_0 quants\), but config\.json implies it is a float32 vector/,
    ],
    [
      'stray-scales',
      (ts) => [...ts, { name: 'h.0.ln_1.weight.q8_0_scales', shape: [2], data: new Uint16Array(2), dtype: 'F16' }],
      /tensor "h\.0\.ln_1\.weight\.q8_0_scales" holds q8_0 scales but "h\.0\.ln_1\.weight" is F32, not I8 quants/,
    ],
    [
      'scales-f32',
      (ts) => ts.map((t) => (t.name === S ? { ...t, data: new Float32Array(t.data.length), dtype: 'F32' } : t)),
      /tensor "h\.0\.attn\.c_attn\.weight\.q8_0_scales": q8_0 scales must be F16, got F32/,
    ],
    [
      'nan-scale',
      (ts) => ts.map((t) => (t.name === S ? { ...t, data: new Uint16Array(t.data.length).fill(0x7e00) } : t)),
      /tensor "h\.0\.attn\.c_attn\.weight\.q8_0_scales" holds a non-finite q8_0 scale at index 0/,
    ],
    [
      'no-section',
      (ts) => ts,
      /tensor "wte\.weight" is I8 \(q8_0 quants\), but config\.json has no "quantization" section/,
      (c) => ({ ...c, quantization: undefined }),
    ],
    [
      'bad-section',
      (ts) => ts,
      /config\.json: field "quantization\.block_size": must be 32 \(q8_0\), got 64/,
      (c) => ({ ...c, quantization: { dtype: 'int8', format: 'q8_0', block_size: 64 } }),
    ],
  ];
  for (const [name, edit, re, cfgEdit] of cases) {
    const out = corrupt(name, edit, cfgEdit);
    for (const dtypes of [[], ALL_DTYPES]) {
      assert.throws(
        () => loadModelDir(out, { dtypes }),
        (e: Error) => {
          assert.match(e.message, re, name);
          assert.ok(e.message.includes(out), `${name}: the error names the directory: ${e.message}`);
          return true;
        },
      );
    }
    await assert.rejects(() => RecycleGPT.load(out, { backend: createRefBackend() }), re);
  }
});

test('safetensors: I8 tensors are read as stored into an Int8Array, widened exactly by get()', () => {
  const file = path.join(tmp, 'i8.safetensors');
  const q = Int8Array.from([-128, -1, 0, 1, 127, 5]);
  writeSafetensors(file, [
    { name: 'q', shape: [2, 3], data: q, dtype: 'I8' },
    { name: 'h', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]), dtype: 'BF16' },
  ]);
  const r = new SafetensorsReader(file);
  try {
    assert.equal(r.info('q').dtype, 'I8');
    const dst = new Int8Array(6);
    r.readInto('q', dst);
    assert.deepEqual(dst, q);
    assert.deepEqual(r.get('q').data, Float32Array.from(q));
    assert.throws(
      () => r.readInto('q', new Uint16Array(6)),
      /tensor "q" is I8; it cannot be read as stored into Uint16Array/,
    );
    assert.throws(
      () => r.readInto('h', new Int8Array(2)),
      /tensor "h" is BF16; it cannot be read as stored into Int8Array/,
    );
    const h = new Uint16Array(2);
    r.readInto('h', h);
    assert.deepEqual(h, Uint16Array.from([0x3c00, 0xc000]));
  } finally {
    r.close();
  }
  assert.deepEqual(readSafetensors(file).tensors.get('q')!.shape, [2, 3]);
  assert.throws(
    () => writeSafetensors(file, [{ name: 'q', shape: [2], data: new Int8Array(2), dtype: 'F16' }]),
    /tensor "q": Int8Array data cannot be written as "F16"/,
  );
  assert.throws(
    () => writeSafetensors(file, [{ name: 'q', shape: [2], data: new Uint16Array(2) }]),
    /tensor "q": Uint16Array data cannot be written as "F32"/,
  );
});

test('random preset models built in a dtype equal the f32 model converted (slice by slice)', () => {
  const b = createRefBackend();
  for (const preset of ['tiny', 'tiny-llama']) {
    const f = randomPresetModel(preset, b, 3);
    for (const dtype of ['int8', 'f16', 'bf16'] as const) {
      const q = randomPresetModel(preset, b, 3, dtype, { sliceValues: 300 });
      assertSameWeights(q.weights, convertWeights(f.weights, f.config, dtype), `${preset} ${dtype}`);
    }
  }
  const f32Only = { ...b, weightDtypes: ['f32'] as const };
  assert.throws(() => randomPresetModel('tiny', f32Only, 1, 'int8'), /backend reads f32 weights, not q8_0/);
});

test('the llama-1b preset is TinyLlama-1.1B shaped, with an untied head and a 1-block module', () => {
  const c = presetConfig('llama-1b');
  assert.deepEqual(
    [c.arch, c.nLayers, c.hidden, c.nHeads, c.nKvHeads, c.intermediate, c.vocabSize, c.tieEmbeddings],
    ['llama', 22, 2048, 32, 4, 5632, 32000, false],
  );
  assert.equal(c.recycle?.numLayers, 1);
  const n = allParamSpecs(c).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  assert.ok(n > 1.1e9 && n < 1.2e9, `${n} parameters`);
  assert.equal(toHfConfig(c).tie_word_embeddings, false);
});

// ---- CLI --------------------------------------------------------------------------------------------------------

const runCli = (args: string[]): CliResult =>
  runCli0(args, { env: { RECYCLEGPT_BACKEND: 'ref', RECYCLEGPT_THREADS: '1' } });

test('CLI: quantize, then generate --dtype and eval --dtype give what the quantized directory gives', () => {
  const { dir } = tinyDir('tiny');
  const out = path.join(tmp, 'cli-int8');
  const q = runCli(['quantize', '--model', dir, '--dtype', 'int8', '--out', out]);
  assert.equal(q.status, 0, q.stderr);
  assert.match(
    q.stdout,
    /^wrote .*cli-int8: int8, model\.safetensors [\d.]+ MB -> [\d.]+ MB \([\d.]+x smaller; tensors: \d+ q8_0, \d+ f32/,
  );
  const gen = (model: string, extra: string[]): Record<string, unknown> => {
    const r = runCli([
      'generate',
      '--model',
      model,
      '--prompt',
      'the cat',
      '--max-new-tokens',
      '10',
      '--json',
      ...extra,
    ]);
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r.stdout);
  };
  const a = gen(dir, ['--dtype', 'int8', '--mode', 'verified']);
  const b = gen(out, ['--mode', 'verified']);
  assert.deepEqual(a.ids, b.ids);
  assert.deepEqual([a.dtype, a.weight_storage], ['int8', ['q8_0']]);
  assert.deepEqual([b.dtype, b.weight_storage], ['as stored', ['q8_0']]);
  const data = path.join(tmp, 'data.txt');
  fs.writeFileSync(data, TEXT);
  const ev = (model: string, extra: string[]): Record<string, unknown> => {
    const r = runCli(['eval', '--model', model, '--data', data, '--seq-len', '16', '--json', ...extra]);
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r.stdout);
  };
  const e8 = ev(dir, ['--dtype', 'int8']);
  const eq = ev(out, []);
  const e32 = ev(dir, []);
  assert.equal(e8.dtype, 'int8');
  assert.equal(eq.dtype, 'int8');
  assert.equal(e32.dtype, 'f32');
  assert.equal(e8.ppl_next, eq.ppl_next);
  assert.equal(e8.ppl_recycle, eq.ppl_recycle);
  assert.notEqual(e8.ppl_next, e32.ppl_next);
  const bad = runCli(['generate', '--model', dir, '--prompt', 'x', '--dtype', 'int4']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--dtype must be one of f32, f16, bf16, int8, got "int4"/);
});

// ---- verified == standard in int8 on held-out text -------------------------------------------------------------

const backend = getBackend();
const native = backend.name !== 'ref' && backend.weightDtypes.includes('q8_0');
const PROMPTS = native ? 30 : 4;
test(
  `int8 weights: verified greedy == standard greedy on ${PROMPTS} held-out Brown prompts of the shipped model ` +
    `(${native ? backend.name : 'ref'} backend)`,
  (t) => {
    const b = native ? backend : createRefBackend();
    const dir = resolveModelDir('recycle-small');
    const { config, weights, storage } = loadModelDirAs(dir, {
      dtype: 'int8',
      alloc: b.alloc,
      dtypes: b.weightDtypes,
    });
    assert.deepEqual(storage, ['q8_0'], 'the kernels read int8 weights as stored');
    const model = new InferenceModel(config, weights, b);
    const tokens = tokenizeDocuments(loadCorpus('brown').val, loadTokenizer(dir));
    const K = native ? 48 : 24;
    const prompts = heldoutPrompts(tokens, PROMPTS, 32, K).map((p) => p.prompt);
    const { accepted, rejected } = checkVerifiedGreedy(model, prompts, { max_new_tokens: K });
    t.diagnostic(`int8 on ${b.name}: drafts accepted ${accepted}, rejected ${rejected}`);
    assert.ok(accepted > 0 && rejected > 0, `both paths must run (accepted ${accepted}, rejected ${rejected})`);
  },
);
