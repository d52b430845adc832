import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCorpus, loadDocuments, splitDocuments } from '../src/data/corpus.js';
import {
  BatchSampler,
  countEvalWindows,
  evalBatches,
  tokenizeDocuments,
  tokenizeDocumentsCached,
} from '../src/data/dataset.js';
import { Rng } from '../src/data/rng.js';
import { gpt2Tokenizer, type Tokenizer } from '../src/tokenizer/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'data-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('brown: tags stripped, readable text, stable disjoint split', () => {
  const c = loadCorpus('brown');
  assert.equal(c.train.length + c.val.length, 500);
  assert.equal(c.val.length, 26, 'the hash split is pinned: the same on every machine');
  const all = [...c.train, ...c.val];
  const first = all.find((d) => d.startsWith('The Fulton County'));
  assert.ok(first);
  assert.ok(
    first.startsWith(
      `The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election ` +
        `produced "no evidence" that any irregularities took place.`,
    ),
  );
  const text = all.join('\n');
  for (const bad of [' the/at ', '/nn ', '``', " '' ", ' ,', ' .\n'])
    assert.ok(!text.includes(bad), `found ${JSON.stringify(bad)}`);
  const words = text.split(/\s+/).length;
  assert.ok(words > 900_000 && words < 1_200_000, `${words} words`);
  const again = loadCorpus('brown');
  assert.deepEqual(again.val, c.val);
  const trainSet = new Set(c.train);
  for (const v of c.val) assert.ok(!trainSet.has(v));
});

test('nlp-corpus loads one document per entry with a ~5% split', () => {
  const c = loadCorpus('nlp-corpus');
  const n = c.train.length + c.val.length;
  assert.ok(n > 90_000, `${n} documents`);
  assert.ok(c.val.length > 0.03 * n && c.val.length < 0.07 * n, `${c.val.length} val of ${n}`);
});

test('text file and folder specs; bad spec errors', () => {
  const file = path.join(tmp, 'one.txt');
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i} of the file`);
  fs.writeFileSync(file, '\uFEFF' + lines.join('\r\n'));
  const c = loadCorpus(file);
  assert.equal(c.train.length, 1);
  assert.equal(c.val.length, 1);
  assert.equal(c.train[0] + c.val[0], lines.join('\n'), 'BOM and CRLF normalised, nothing lost');
  assert.ok(c.val[0].startsWith('line 19'), 'val starts at a line start');
  assert.ok(c.val[0].length < 0.07 * lines.join('\n').length);

  const dir = path.join(tmp, 'folder');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'b.txt'), 'bravo '.repeat(50));
  fs.writeFileSync(path.join(dir, 'a.txt'), 'alpha '.repeat(50));
  fs.writeFileSync(path.join(dir, 'sub', 'c.txt'), 'charlie '.repeat(50));
  fs.writeFileSync(path.join(dir, 'skip.md'), 'not text');
  assert.deepEqual(
    loadDocuments(dir).map((d) => d.text.split(' ')[0]),
    ['alpha', 'bravo', 'charlie'],
  );
  const fc = loadCorpus(dir);
  assert.ok(fc.train.length > 0 && fc.val.length > 0, 'a small folder still gets a validation part');
  assert.equal(fc.train.join('|').includes('skip'), false);

  assert.throws(
    () => loadCorpus('no-such-corpus'),
    /data spec "no-such-corpus": not a file or folder, and not one of brown, nlp-corpus/,
  );
  fs.mkdirSync(path.join(tmp, 'empty'));
  assert.throws(() => loadCorpus(path.join(tmp, 'empty')), /holds no \.txt files/);
  const split = splitDocuments(Array.from({ length: 400 }, (_, i) => `document number ${i}`));
  assert.ok(split.val.length > 5 && split.val.length < 40);
});

test('rng: pinned stream, state round trip, ranges', () => {
  const r = new Rng(42);
  const firstFew = [r.nextU32(), r.nextU32(), r.nextU32()];
  assert.deepEqual(firstFew, [
    new Rng(42).nextU32(),
    ...(() => {
      const q = new Rng(42);
      q.nextU32();
      return [q.nextU32(), q.nextU32()];
    })(),
  ]);
  assert.deepEqual(firstFew, PINNED_42);
  const st = JSON.parse(JSON.stringify(r.state()));
  const a = Array.from({ length: 10 }, () => r.random());
  const b = Rng.fromState(st);
  assert.deepEqual(
    Array.from({ length: 10 }, () => b.random()),
    a,
  );
  assert.notDeepEqual(new Rng(1).state(), new Rng(2).state());
  assert.notDeepEqual(new Rng(2 ** 40).state(), new Rng(0).state());
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(c > 850 && c < 1150, `counts ${counts}`);
  for (let i = 0; i < 1000; i++) {
    const x = r.random();
    assert.ok(x >= 0 && x < 1);
  }
  // reference vector of xoshiro128** from state {1, 2, 3, 4}
  const ref = Rng.fromState({ algo: 'xoshiro128**', s: [1, 2, 3, 4] });
  assert.deepEqual([ref.nextU32(), ref.nextU32(), ref.nextU32(), ref.nextU32()], [11520, 0, 5927040, 70819200]);
  assert.throws(() => Rng.fromState({ algo: 'xoshiro128**', s: [0, 0, 0, 0] }), /invalid state/);
  assert.throws(() => new Rng(-1), /seed must be/);
});
const PINNED_42 = [2837322924, 544945897, 479756282];

test('tokenizeDocuments puts EOS after each document; cache reuses the result', () => {
  const tok = gpt2Tokenizer();
  const ids = tokenizeDocuments(['Hello world', 'Bye'], tok);
  assert.deepEqual([...ids], [15496, 995, 50256, ...tok.encode('Bye'), 50256]);
  let calls = 0;
  const counting: Tokenizer = {
    encode: (s) => (calls++, tok.encode(s)),
    decode: (x) => tok.decode(x),
    vocabSize: tok.vocabSize,
    eosTokenId: tok.eosTokenId,
    bosTokenId: null,
  };
  const cache = path.join(tmp, 'tokens.bin');
  const a = tokenizeDocumentsCached(['Hello world', 'Bye'], counting, cache, 'gpt2');
  const b = tokenizeDocumentsCached(['Hello world', 'Bye'], counting, cache, 'gpt2');
  assert.deepEqual(b, a);
  assert.equal(calls, 2, 'second call read the cache');
  tokenizeDocumentsCached(['Hello world', 'Bye!'], counting, cache, 'gpt2');
  assert.equal(calls, 4, 'changed documents invalidate the cache');
  const noEos: Tokenizer = { ...counting, eosTokenId: null };
  assert.throws(() => tokenizeDocuments(['x'], noEos), /no usable EOS id/);
});

test('BatchSampler: shifted targets, exact resume from a saved state, eval batches', () => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
  const s = new BatchSampler(tokens, { batchSize: 4, seqLen: 16, seed: 7 });
  const b0 = s.next();
  for (let r = 0; r < 4; r++) {
    const start = b0.inputs[r * 16];
    for (let t = 0; t < 16; t++) {
      assert.equal(b0.inputs[r * 16 + t], start + t);
      assert.equal(b0.targets[r * 16 + t], start + t + 1);
      assert.equal(b0.targets2[r * 16 + t], start + t + 2);
    }
    assert.ok(start + 18 <= 1000);
  }
  s.next();
  const saved = JSON.parse(JSON.stringify(s.state()));
  const rest = [s.next(), s.next(), s.next()];
  const r = BatchSampler.resume(tokens, saved);
  assert.equal(r.step, 2);
  for (const b of rest) assert.deepEqual(r.next(), b);
  const same = new BatchSampler(tokens, { batchSize: 4, seqLen: 16, seed: 7 });
  assert.deepEqual(same.next(), b0, 'same seed, same batches');
  assert.throws(
    () => BatchSampler.resume(tokens.subarray(0, 900), saved),
    /state.tokens is 1000 but the token stream has 900/,
  );
  assert.throws(
    () => new BatchSampler(tokens.subarray(0, 10), { batchSize: 1, seqLen: 16, seed: 0 }),
    /fewer than seqLen \+ 2 = 18/,
  );

  const batches = [...evalBatches(tokens, 8, 16)];
  const windows = countEvalWindows(tokens, 16);
  assert.equal(windows, Math.floor(998 / 16));
  assert.equal(
    batches.reduce((n, b) => n + b.B, 0),
    windows,
  );
  assert.equal(batches[batches.length - 1].B, windows % 8 || 8);
  const starts = batches.flatMap((b) => Array.from({ length: b.B }, (_, i) => b.inputs[i * 16]));
  assert.deepEqual(
    starts,
    Array.from({ length: windows }, (_, k) => k * 16),
    'non-overlapping, in order',
  );
});

test('a "+" combination keeps each part\'s own held-out split', () => {
  const brown = loadCorpus('brown');
  const nlp = loadCorpus('nlp-corpus');
  const both = loadCorpus('brown+nlp-corpus');
  assert.equal(both.train.length, brown.train.length + nlp.train.length);
  assert.deepEqual(both.val, [...brown.val, ...nlp.val]);
  assert.throws(() => loadCorpus('brown+'), /empty part/);
});
