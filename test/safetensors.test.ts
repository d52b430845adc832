import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openSafetensors, readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../src/kernels/half.js';
import { loadTensorsFromDir } from '../src/io/sharded.js';
import { DirSwap, recoverReplacedDir, replaceDirAtomic, writeFileAtomic } from '../src/io/atomic.js';
import { fixturesDir } from './helpers/fixtures.js';

const fixtures = fixturesDir;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Builds a safetensors file by hand so tests can break any part of it. */
function craft(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): string {
  const hb = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(hb.length));
  const p = path.join(tmp, name);
  fs.writeFileSync(p, Buffer.concat([len, hb, data]));
  return p;
}

// Reference F16 rounding, independent of the bit tricks: nearest representable value, ties to the even pattern.
// 65536 stands in for +inf (the value the next pattern would have), which makes the overflow threshold 65520 a tie.
const refValues: Array<{ v: number; bits: number }> = [];
for (let h = 0; h < 0x7c00; h++) refValues.push({ v: f16BitsToF32(h), bits: h });
refValues.push({ v: 65536, bits: 0x7c00 });
function refF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65536) return sign | 0x7c00;
  let lo = 0;
  let hi = refValues.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (refValues[mid].v <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - refValues[lo].v;
  const dh = refValues[hi].v - a;
  const pick = dl < dh ? lo : dh < dl ? hi : refValues[lo].bits % 2 === 0 ? lo : hi;
  return sign | refValues[pick].bits;
}

test('F16 conversion matches a reference on edge values and random floats', () => {
  const edges = [
    0,
    -0,
    1,
    -1,
    0.1,
    1 / 3,
    65504,
    65505,
    65519.99,
    65520,
    65536,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.0001,
    3 * 2 ** -25,
    2 ** -26,
    1e-10,
    2 ** -14 - 2 ** -25,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    2049,
    2051,
    1.401298464324817e-45,
  ];
  for (const x of edges) {
    const xf = Math.fround(x);
    assert.equal(f32ToF16Bits(xf).toString(16), refF16(xf).toString(16), `value ${x}`);
  }
  assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const buf = new Float32Array(1);
  const bits = new Uint32Array(buf.buffer);
  for (let i = 0; i < 20000; i++) {
    // random bit patterns around the half range exercise every rounding path
    bits[0] = (((rnd() * 2 ** 32) >>> 0) & 0xbfffffff) | (rnd() < 0.5 ? 0x30000000 : 0);
    if (Number.isNaN(buf[0])) continue;
    assert.equal(f32ToF16Bits(buf[0]), refF16(buf[0]), `value ${buf[0]} bits ${bits[0].toString(16)}`);
  }
  // every half round-trips through float32
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToF32(h);
    if (!Number.isNaN(v)) assert.equal(f32ToF16Bits(v), h);
  }
});

test('F32 round trip is exact, header 8-byte aligned, metadata kept', () => {
  const a = new Float32Array([0, -0, 1.5, -2.25, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38]);
  const b = new Float32Array(12).map((_, i) => Math.fround(Math.sin(i) * 100));
  const p = path.join(tmp, 'rt32.safetensors');
  writeSafetensors(
    p,
    [
      { name: 'a', shape: [9], data: a },
      { name: 'b.w', shape: [3, 4], data: b },
      { name: 'e', shape: [0, 5], data: new Float32Array(0) },
    ],
    {
      metadata: { format: 'pt', note: 'x' },
    },
  );
  const raw = fs.readFileSync(p);
  assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
  const f = readSafetensors(p);
  assert.deepEqual(f.metadata, { format: 'pt', note: 'x' });
  assert.deepEqual([...f.tensors.keys()], ['a', 'b.w', 'e']);
  assert.deepEqual(new Uint32Array(f.tensors.get('a')!.data.buffer), new Uint32Array(a.buffer));
  assert.deepEqual(f.tensors.get('b.w')!.shape, [3, 4]);
  assert.deepEqual(f.tensors.get('b.w')!.data, b);
  assert.deepEqual(f.tensors.get('e')!.shape, [0, 5]);
  assert.deepEqual(
    fs.readdirSync(tmp).filter((n) => n.includes('.tmp-')),
    [],
  );
});

test('F16 file round trip equals the reference conversion', () => {
  const a = new Float32Array([0, -0, 1, 0.1, 65504, 70000, -70000, 2 ** -24, 2 ** -26, 1 / 3, Infinity]);
  const p = path.join(tmp, 'rt16.safetensors');
  writeSafetensors(p, [{ name: 'a', shape: [a.length], data: a }], { dtype: 'F16' });
  const t = readSafetensors(p).tensors.get('a')!;
  assert.equal(t.dtype, 'F16');
  for (let i = 0; i < a.length; i++) assert.ok(Object.is(t.data[i], f16BitsToF32(refF16(a[i]))), `index ${i}`);
});

test('BF16 is read and widened exactly', () => {
  const vals = [1, -2.5, 3.140625, 0, Infinity];
  const bits = new Uint16Array(vals.map((v) => f32ToBf16Bits(v)));
  const p = craft(
    'bf16.safetensors',
    { x: { dtype: 'BF16', shape: [5], data_offsets: [0, 10] } },
    new Uint8Array(bits.buffer),
  );
  assert.deepEqual([...readSafetensors(p).tensors.get('x')!.data], vals);
  const ints = new Int32Array([-3, 7, 2 ** 24]);
  const pi = craft(
    'i32.safetensors',
    { i: { dtype: 'I32', shape: [3], data_offsets: [0, 12] } },
    new Uint8Array(ints.buffer),
  );
  assert.deepEqual([...readSafetensors(pi).tensors.get('i')!.data], [-3, 7, 2 ** 24]);
  const inexact = new Int32Array([2 ** 24 + 1]);
  const pe = craft(
    'i32b.safetensors',
    { i: { dtype: 'I32', shape: [1], data_offsets: [0, 4] } },
    new Uint8Array(inexact.buffer),
  );
  assert.throws(() => readSafetensors(pe), /"i": I32 value 16777217 at index 0 is not exact in float32/);
});

test('reads the tiny-gpt2 fixture, lazily too', () => {
  const file = path.join(fixtures, 'tiny-gpt2/model.safetensors');
  const f = readSafetensors(file);
  const wte = f.tensors.get('wte.weight')!;
  assert.deepEqual(wte.shape, [300, 64]);
  assert.equal(wte.data.length, 300 * 64);
  assert.ok(wte.data.every(Number.isFinite));
  const r = openSafetensors(file);
  try {
    assert.ok(r.names().includes('ln_f.bias'));
    assert.deepEqual(r.get('wpe.weight').data, f.tensors.get('wpe.weight')!.data);
  } finally {
    r.close();
  }
});

test('malformed files give errors naming the problem', () => {
  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const d8 = new Uint8Array(8);
  const cases: Array<[string, () => string, RegExp]> = [
    [
      'tiny',
      () => {
        const p = path.join(tmp, 'tiny');
        fs.writeFileSync(p, Buffer.alloc(3));
        return p;
      },
      /too short/,
    ],
    ['truncated data', () => craft('trunc', ok, new Uint8Array(4)), /"t".*past the end/],
    ['header past EOF', () => craft('hdr', ok, d8, 5000n), /header length 5000 runs past the end/],
    ['huge header', () => craft('huge', ok, d8, 2n ** 62n), /exceeds the 100000000-byte limit/],
    ['bad JSON', () => craft('badjson', '{"t": {', d8), /not valid JSON/],
    ['not an object', () => craft('arr', '[1,2]', d8), /header must be a JSON object/],
    [
      'offsets past EOF',
      () => craft('eof', { t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d8),
      /"t".*\[0, 16\].*past the end/,
    ],
    [
      'end before begin',
      () => craft('rev', { t: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, d8),
      /end before begin/,
    ],
    [
      'overlap',
      () =>
        craft(
          'ovl',
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          d8,
        ),
      /"a".*"b".*overlap/,
    ],
    [
      'wrong shape size',
      () => craft('shape', { t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8),
      /"t".*needs 12 bytes.*hold 8/,
    ],
    [
      'negative dim',
      () => craft('neg', { t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d8),
      /"t".*shape\[0\].*-2/,
    ],
    [
      'fractional dim',
      () => craft('frac', { t: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, d8),
      /shape\[0\].*1\.5/,
    ],
    [
      'unknown dtype',
      () => craft('dt', { t: { dtype: 'Q7', shape: [2], data_offsets: [0, 8] } }, d8),
      /"t".*unknown dtype "Q7"/,
    ],
    [
      'unsupported dtype',
      () => craft('dt2', { t: { dtype: 'U8', shape: [8], data_offsets: [0, 8] } }, d8),
      /unsupported dtype "U8"/,
    ],
    [
      'bad offsets',
      () => craft('offs', { t: { dtype: 'F32', shape: [2], data_offsets: [0] } }, d8),
      /"t".*data_offsets must be \[begin, end\]/,
    ],
    ['bad metadata', () => craft('meta', { __metadata__: { a: 1 }, ...ok }, d8), /__metadata__\.a must be a string/],
  ];
  for (const [label, make, re] of cases) {
    const p = make();
    assert.throws(
      () => readSafetensors(p),
      (e: Error) => {
        assert.match(e.message, re, label);
        assert.ok(e.message.includes(p), `${label}: message names the file: ${e.message}`);
        return true;
      },
    );
  }
});

test('writer rejects bad input', () => {
  const p = path.join(tmp, 'w.safetensors');
  assert.throws(
    () => writeSafetensors(p, [{ name: 'a', shape: [3], data: new Float32Array(2) }]),
    /"a".*3 elements but data has 2/,
  );
  assert.throws(
    () =>
      writeSafetensors(p, [
        { name: 'a', shape: [1], data: new Float32Array(1) },
        { name: 'a', shape: [1], data: new Float32Array(1) },
      ]),
    /duplicate/,
  );
  assert.ok(!fs.existsSync(p));
});

test('sharded load: index, missing shard, missing tensor, bad weight_map', () => {
  const dir = path.join(tmp, 'sharded');
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [
    { name: 'a', shape: [2], data: new Float32Array([1, 2]) },
  ]);
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [
    { name: 'b', shape: [1], data: new Float32Array([3]) },
  ]);
  const index = (wm: unknown) =>
    writeFileAtomic(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: wm }));
  index({ a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' });
  const f = loadTensorsFromDir(dir);
  assert.deepEqual([...f.tensors.get('a')!.data], [1, 2]);
  assert.deepEqual([...f.tensors.get('b')!.data], [3]);
  index({ a: 'model-00001-of-00002.safetensors', b: 'model-00003-of-00002.safetensors' });
  assert.throws(() => loadTensorsFromDir(dir), /shard "model-00003-of-00002.safetensors" is listed but/);
  index({ a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' });
  assert.throws(
    () => loadTensorsFromDir(dir),
    /tensor "c" is mapped to model-00002-of-00002.safetensors but that shard has no such tensor/,
  );
  index({ a: '../etc/passwd' });
  assert.throws(() => loadTensorsFromDir(dir), /not a plain file name/);
  index([1]);
  assert.throws(() => loadTensorsFromDir(dir), /weight_map must be an object/);
  assert.throws(() => loadTensorsFromDir(path.join(tmp, 'nowhere')), /no model.safetensors/);
});

test('replaceDirAtomic swaps whole folders and keeps the old one on failure', () => {
  const dir = path.join(tmp, 'ckpt');
  replaceDirAtomic(dir, (d) => fs.writeFileSync(path.join(d, 'v'), '1'));
  replaceDirAtomic(dir, (d) => fs.writeFileSync(path.join(d, 'v'), '2'));
  assert.equal(fs.readFileSync(path.join(dir, 'v'), 'utf8'), '2');
  assert.throws(
    () =>
      replaceDirAtomic(dir, (d) => {
        fs.writeFileSync(path.join(d, 'v'), '3');
        throw new Error('disk full');
      }),
    /disk full/,
  );
  assert.equal(fs.readFileSync(path.join(dir, 'v'), 'utf8'), '2');
  assert.deepEqual(
    fs.readdirSync(tmp).filter((n) => n.startsWith('ckpt.')),
    [],
  );
  // a crash between the two renames of a sealed swap: recovery completes it
  const swap = DirSwap.begin(dir);
  fs.writeFileSync(path.join(swap.tmp, 'v'), '3');
  swap.seal();
  swap.moveOldAway();
  assert.equal(recoverReplacedDir(dir), true);
  assert.equal(fs.readFileSync(path.join(dir, 'v'), 'utf8'), '3');
  assert.deepEqual(
    fs.readdirSync(tmp).filter((n) => n.startsWith('ckpt.')),
    [],
  );
  // folders of the same names that we did not make are never touched
  fs.mkdirSync(`${dir}.old-123`);
  fs.mkdirSync(`${dir}.tmp-456`);
  recoverReplacedDir(dir);
  assert.deepEqual(
    fs
      .readdirSync(tmp)
      .filter((n) => n.startsWith('ckpt.'))
      .sort(),
    ['ckpt.old-123', 'ckpt.tmp-456'],
  );
});
