/**
 * The GGUF writer (src/io/gguf.ts), read back by a small GGUF reader here: header, every metadata type, tensor
 * infos (dims innermost first, types, aligned offsets), tensor data (F32, F16 bits, Q8_0 blocks {d, qs[32]});
 * a model export's names, shapes, tied head, llama's q/k RoPE row order and tokenizer metadata; the module file;
 * clear errors. (llama.cpp itself loads the exports in test/gguf-llama-cpp.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  exportModelDirGguf,
  ggufModelTensors,
  moduleFileFor,
  ropeRowOrder,
  writeGguf,
  GGUF_ALIGNMENT,
  GGUF_TOKEN_TYPE,
  type GgufValue,
} from '../src/io/gguf.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { f32ToF16Bits, f16BitsToF32 } from '../src/kernels/half.js';
import { quantizeQ8 } from '../src/kernels/quant.js';
import { convertWeights } from '../src/model/convert.js';
import { randomModel, writeModelDir } from './helpers/models.js';

const tmp = mkdtempSync(join(tmpdir(), 'recyclegpt-gguf-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

interface ReadTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}

/** A minimal GGUF v3 reader: metadata as JS values, tensor infos, and the data section's start. */
function readGguf(file: string) {
  const b = readFileSync(file);
  let o = 0;
  const u32 = () => ((o += 4), b.readUInt32LE(o - 4));
  const u64 = () => ((o += 8), Number(b.readBigUInt64LE(o - 8)));
  const str = () => {
    const n = u64();
    o += n;
    return b.toString('utf8', o - n, o);
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 0:
        return b.readUInt8(o++);
      case 1:
        return b.readInt8(o++);
      case 2:
        return ((o += 2), b.readUInt16LE(o - 2));
      case 3:
        return ((o += 2), b.readInt16LE(o - 2));
      case 4:
        return u32();
      case 5:
        return ((o += 4), b.readInt32LE(o - 4));
      case 6:
        return ((o += 4), b.readFloatLE(o - 4));
      case 7:
        return b.readUInt8(o++) !== 0;
      case 8:
        return str();
      case 10:
        return BigInt(u64());
      case 11:
        return ((o += 8), b.readBigInt64LE(o - 8));
      case 12:
        return ((o += 8), b.readDoubleLE(o - 8));
      case 9: {
        const it = u32(),
          n = u64();
        return Array.from({ length: n }, () => scalar(it));
      }
    }
    throw new Error(`bad type ${t}`);
  };
  assert.equal(b.toString('latin1', 0, 4), 'GGUF');
  o = 4;
  const version = u32(),
    nt = u64(),
    nkv = u64();
  const meta = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) {
    const k = str();
    meta.set(k, scalar(u32()));
  }
  const tensors: ReadTensor[] = [];
  for (let i = 0; i < nt; i++) {
    const name = str(),
      nd = u32();
    const dims = Array.from({ length: nd }, () => u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const data = Math.ceil(o / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  return { buf: b, version, meta, tensors, data };
}

test('writer: header, every metadata type, aligned tensor infos and F32 / F16 / Q8_0 data read back', () => {
  const file = join(tmp, 'kinds.gguf');
  const meta: [string, GgufValue][] = [
    ['a.u8', { type: 'u8', value: 200 }],
    ['a.i8', { type: 'i8', value: -5 }],
    ['a.u16', { type: 'u16', value: 60000 }],
    ['a.i16', { type: 'i16', value: -300 }],
    ['a.u32', { type: 'u32', value: 4e9 }],
    ['a.i32', { type: 'i32', value: -2e9 }],
    ['a.f32', { type: 'f32', value: 1.5 }],
    ['a.bool', { type: 'bool', value: true }],
    ['a.str', { type: 'string', value: 'héllo' }],
    ['a.u64', { type: 'u64', value: 2n ** 40n }],
    ['a.i64', { type: 'i64', value: -7 }],
    ['a.f64', { type: 'f64', value: Math.PI }],
    ['a.strs', { type: 'array', itemType: 'string', values: ['x', 'Ġy', ''] }],
    ['a.i32s', { type: 'array', itemType: 'i32', values: new Int32Array([1, -2, 3]) }],
  ];
  const f32 = Float32Array.from({ length: 3 }, (_, i) => i + 0.25); // 12 bytes: the next offset is padded
  const f16 = Uint16Array.from([1, 2, 3, 4, 5, 6], (x) => f32ToF16Bits(x / 8));
  const w = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i));
  const q = { dtype: 'q8_0' as const, data: new Int8Array(128), scales: new Uint16Array(4) };
  quantizeQ8(w, 2, 64, q);
  writeGguf(file, meta, [
    { name: 'v', shape: [3], type: 'f32', data: f32 },
    { name: 'h', shape: [2, 3], type: 'f16', data: f16 },
    { name: 'q', shape: [2, 64], type: 'q8_0', data: { qs: q.data, d: q.scales } },
  ]);
  const g = readGguf(file);
  assert.equal(g.version, 3);
  assert.deepEqual(
    [...g.meta.entries()].map(([k, v]) => [k, v instanceof Array ? v : v]),
    [
      ['a.u8', 200],
      ['a.i8', -5],
      ['a.u16', 60000],
      ['a.i16', -300],
      ['a.u32', 4e9],
      ['a.i32', -2e9],
      ['a.f32', 1.5],
      ['a.bool', true],
      ['a.str', 'héllo'],
      ['a.u64', 2n ** 40n],
      ['a.i64', -7n],
      ['a.f64', Math.PI],
      ['a.strs', ['x', 'Ġy', '']],
      ['a.i32s', [1, -2, 3]],
    ],
  );
  assert.deepEqual(
    g.tensors.map((t) => [t.name, t.dims, t.type, t.offset]),
    [
      ['v', [3], 0, 0],
      ['h', [3, 2], 1, 32],
      ['q', [64, 2], 8, 64],
    ],
  );
  assert.equal(g.data % 32, 0);
  const at = (t: number) => g.data + g.tensors[t]!.offset;
  for (let i = 0; i < 3; i++) assert.equal(g.buf.readFloatLE(at(0) + 4 * i), f32[i]);
  for (let i = 0; i < 6; i++) assert.equal(f16BitsToF32(g.buf.readUInt16LE(at(1) + 2 * i)), (i + 1) / 8);
  for (let blk = 0; blk < 4; blk++) {
    const o = at(2) + blk * 34;
    assert.equal(g.buf.readUInt16LE(o), q.scales[blk]);
    for (let j = 0; j < 32; j++) assert.equal(g.buf.readInt8(o + 2 + j), q.data[blk * 32 + j]);
  }
  assert.equal(g.buf.length, at(2) + 4 * 34 + 24); // the data section ends padded to the alignment
});

test('writer: clear errors for q8_0 rows not a multiple of 32, bad data, repeated names', () => {
  const file = join(tmp, 'bad.gguf');
  assert.throws(
    () =>
      writeGguf(
        file,
        [],
        [{ name: 'w', shape: [2, 48], type: 'q8_0', data: { qs: new Int8Array(96), d: new Uint16Array(3) } }],
      ),
    /"w" \[2, 48\] cannot be q8_0: rows of 48 are not a multiple of 32/,
  );
  assert.throws(
    () => writeGguf(file, [], [{ name: 'w', shape: [4], type: 'f32', data: new Float32Array(3) }]),
    /f32 data must be a Float32Array of 4 values/,
  );
  const v = { type: 'u32', value: 1 } as const;
  assert.throws(
    () =>
      writeGguf(
        file,
        [
          ['k', v],
          ['k', v],
        ],
        [],
      ),
    /metadata key "k" given twice/,
  );
  assert.equal(existsSync(file), false, 'nothing written on error');
});

test('llama q/k rows: GGUF row h·D + 2i + j is HF row h·D + j·D/2 + i', () => {
  assert.deepEqual([...ropeRowOrder(2, 4)], [0, 2, 1, 3, 4, 6, 5, 7]);
});

const TEXT = 'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log. ';

for (const preset of ['tiny', 'tiny-llama'] as const) {
  test(`export ${preset}: names, dims, tied head, metadata, tokenizer, q8_0 blocks, the module beside it`, () => {
    const dir = join(tmp, preset);
    const model = randomModel({ preset, vocabSize: 300, scale: 2, seed: 3 });
    writeModelDir(dir, model, TEXT);
    const c = model.config;
    const file = join(tmp, `${preset}.gguf`);
    const res = exportModelDirGguf(dir, file, { dtype: 'q8_0' });
    const g = readGguf(file);
    const arch = c.arch;
    assert.equal(g.meta.get('general.architecture'), arch);
    assert.equal(g.meta.get('general.file_type'), 7);
    assert.equal(g.meta.get(`${arch}.block_count`), c.nLayers);
    assert.equal(g.meta.get(`${arch}.embedding_length`), c.hidden);
    assert.equal(g.meta.get(`${arch}.feed_forward_length`), c.intermediate);
    assert.equal(g.meta.get(`${arch}.context_length`), c.maxPositions);
    assert.equal(g.meta.get(`${arch}.attention.head_count`), c.nHeads);
    if (arch === 'llama') assert.equal(g.meta.get('llama.attention.head_count_kv'), c.nKvHeads);
    assert.equal(g.meta.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(g.meta.get('tokenizer.ggml.pre'), 'gpt-2');
    const tokens = g.meta.get('tokenizer.ggml.tokens') as string[];
    const types = g.meta.get('tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, c.vocabSize);
    const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
      model: { vocab: Record<string, number>; merges: [string, string][] };
      added_tokens: { id: number; content: string }[];
    };
    for (const [t, id] of Object.entries(tj.model.vocab)) assert.equal(tokens[id], t);
    for (const a of tj.added_tokens) assert.equal(types[a.id], GGUF_TOKEN_TYPE.control);
    assert.deepEqual(
      g.meta.get('tokenizer.ggml.merges'),
      tj.model.merges.map(([a, b]) => `${a} ${b}`),
    );
    const eos = tj.added_tokens[0]!.id;
    assert.equal(g.meta.get('tokenizer.ggml.eos_token_id'), eos);
    const names = g.tensors.map((t) => t.name);
    assert.ok(!names.includes('output.weight'), 'the tied head is token_embd');
    assert.ok(names.every((n) => !n.startsWith('recycle')));
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    assert.deepEqual(byName.get('token_embd.weight')!.dims, [c.hidden, c.vocabSize]);
    assert.equal(byName.get('token_embd.weight')!.type, 8);
    assert.equal(byName.get('output_norm.weight')!.type, 0);
    // The first block's first projection, read back from the file, is our weight (q/k rows in llama's order).
    const proj = arch === 'gpt2' ? 'blk.0.attn_qkv.weight' : 'blk.0.attn_k.weight';
    const hf = arch === 'gpt2' ? 'h.0.attn.c_attn.weight' : 'model.layers.0.self_attn.k_proj.weight';
    const info = byName.get(proj)!;
    const [K, N] = info.dims as [number, number];
    const stored = convertWeights(loadModelDir(dir).weights, c, 'int8').weight(hf);
    assert.equal(stored.dtype, 'q8_0');
    if (stored.dtype !== 'q8_0') return;
    const order = arch === 'gpt2' ? null : ropeRowOrder(c.nKvHeads, c.headDim);
    for (let row = 0; row < N; row++) {
      const src = order ? order[row]! : row;
      for (let blk = 0; blk < K / 32; blk++) {
        const o = g.data + info.offset + (row * (K / 32) + blk) * 34;
        assert.equal(g.buf.readUInt16LE(o), stored.scales[src * (K / 32) + blk]);
        assert.equal(g.buf.readInt8(o + 2 + 5), stored.data[src * K + blk * 32 + 5]);
      }
    }
    // The module beside it: every recycle.* tensor (F16 for a q8_0 export) and the config in its metadata.
    assert.equal(res.moduleFile, moduleFileFor(file));
    assert.equal(moduleFileFor('/x/m.gguf'), '/x/m.recycle.safetensors');
    const st = readSafetensors(res.moduleFile!);
    const stNames = [...st.tensors.keys()];
    assert.ok(stNames.length > 0 && stNames.every((n) => n.startsWith('recycle.')));
    assert.ok([...st.tensors.values()].every((t) => t.dtype === 'F16'));
    const cfg = JSON.parse(st.metadata.config!) as { recycle: { num_layers: number } };
    assert.equal(cfg.recycle.num_layers, c.recycle!.numLayers);
  });
}

test('export errors: no tokenizer.json; a tensor list from unsupported configs', () => {
  const dir = join(tmp, 'no-tok');
  writeModelDir(dir, randomModel({ vocabSize: 300, seed: 1 }), null);
  assert.throws(() => exportModelDirGguf(dir, join(tmp, 'x.gguf')), /has no tokenizer\.json/);
  const m = randomModel({ preset: 'tiny-llama', vocabSize: 300, seed: 1 });
  assert.throws(
    () => ggufModelTensors({ ...m.config, modelType: 'qwen2' }, m.weights),
    /model_type "qwen2" is not exported/,
  );
});
