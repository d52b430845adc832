/**
 * Choosing a draft vocabulary: the frequency ranking (model/draft-vocab.ts rankByFrequency), draft_vocab.json
 * (io/draft-vocab-file.ts: round trip, errors naming the file and field), and the CLI end to end — `recyclegpt
 * draft-vocab` writes the ranking into a copy of the shipped model, `generate --draft-vocab N` in verified mode then
 * gives standard greedy's text, `bench --draft-vocab N` reports it and the smaller module call, `eval --mode-quality
 * --draft-vocab N` reports it, and a model without the file gets an error naming the command that makes one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './helpers/cli.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/cli/default-model.js';
import { draftVocabOf, readDraftVocabFile, writeDraftVocabFile } from '../src/io/draft-vocab-file.js';
import { rankByFrequency } from '../src/model/draft-vocab.js';

const root = packageRoot();

test('rankByFrequency: most frequent first, ties by the lower id, every id once', () => {
  assert.deepEqual(Array.from(rankByFrequency([3, 1, 3, 2, 1, 3, 0], 5)), [3, 1, 0, 2, 4]);
  assert.deepEqual(Array.from(rankByFrequency([], 3)), [0, 1, 2]);
});

test('draft_vocab.json round-trips, and bad files fail naming the file and the field', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-dv-'));
  try {
    const file = path.join(dir, 'draft_vocab.json');
    const ids = Int32Array.from([2, 0, 3, 1]);
    writeDraftVocabFile(file, { vocab_size: 4, source: 'test', tokens_counted: 9, ids });
    const back = readDraftVocabFile(file, 4);
    assert.deepEqual(Array.from(back.ids), [2, 0, 3, 1]);
    assert.equal(back.tokens_counted, 9);
    assert.deepEqual(Array.from(draftVocabOf(dir, 2, 4)), [2, 0]);
    assert.throws(() => readDraftVocabFile(file, 5), /vocab_size 4 does not match the model's 5/);
    assert.throws(() => draftVocabOf(dir, 5, 4), /--draft-vocab: 5 must be an integer in 1\.\.4/);
    const write = (o: unknown): void => fs.writeFileSync(file, JSON.stringify(o));
    const base = { format: 'recyclegpt-draft-vocab', version: 1, vocab_size: 4, ids: [2, 0, 3, 1] };
    write({ ...base, ids: [2, 0, 2, 1] });
    assert.throws(() => readDraftVocabFile(file, 4), /draft_vocab\.json: ids: draft id 2 appears twice/);
    write({ ...base, ids: [2, 0, 3] });
    assert.throws(() => readDraftVocabFile(file, 4), /ids must rank all 4 ids, it has 3/);
    write({ ...base, ids: [2, 0, 3, 4] });
    assert.throws(() => readDraftVocabFile(file, 4), /draft id 4 at index 3 is outside the vocabulary/);
    write({ ...base, format: 'other' });
    assert.throws(() => readDraftVocabFile(file, 4), /format must be "recyclegpt-draft-vocab"/);
    fs.rmSync(file);
    assert.throws(() => draftVocabOf(dir, 2, 4), /has no draft_vocab\.json; make one with `recyclegpt draft-vocab/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('draft-vocab, then generate / bench --draft-vocab on a copy of the shipped model', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-dv-model-'));
  try {
    const model = path.join(dir, 'model');
    fs.cpSync(path.join(root, 'models', 'recycle-small'), model, { recursive: true });
    fs.rmSync(path.join(model, 'draft_vocab.json'), { force: true });
    const text = path.join(dir, 'text.txt');
    fs.writeFileSync(text, 'The jury said that the city had a good year. '.repeat(40));
    const gen = ['generate', '--model', model, '--prompt', 'The jury said', '--max-new-tokens', '24', '--json'];
    const missing = runCli([...gen, '--mode', 'verified', '--draft-vocab', '64']);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /has no draft_vocab\.json; make one with `recyclegpt draft-vocab --model /);
    const made = runCli(['draft-vocab', '--model', model, '--data', text, '--json']);
    assert.equal(made.status, 0, made.stderr);
    assert.ok(fs.existsSync(path.join(model, 'draft_vocab.json')));
    const std = runCli([...gen, '--mode', 'standard']);
    const ver = runCli([...gen, '--mode', 'verified', '--draft-vocab', '64']);
    assert.equal(std.status, 0, std.stderr);
    assert.equal(ver.status, 0, ver.stderr);
    const ids = (s: string): unknown => (JSON.parse(s.trim().split('\n').at(-1)!) as { ids: unknown }).ids;
    assert.deepEqual(ids(ver.stdout), ids(std.stdout), 'verified greedy over a draft vocabulary == standard');
    const b = runCli(['bench', '--model', model, '--tokens', '8', '--repeats', '1', '--prompts', '1']);
    const bv = runCli([
      ...['bench', '--model', model, '--tokens', '8', '--repeats', '1', '--prompts', '1'],
      ...['--draft-vocab', '64', '--no-bandwidth', '--draft-tokens', '1', '--json'],
    ]);
    assert.equal(b.status, 0, b.stderr);
    assert.equal(bv.status, 0, bv.stderr);
    const r = JSON.parse(bv.stdout.trim().split('\n').at(-1)!) as {
      draft_vocab: number;
      module_call_bytes: number;
      runs: { dtype: string }[];
    };
    assert.equal(r.draft_vocab, 64);
    // without --dtypes, bench runs the model as stored (float16), as generate does
    assert.ok(r.runs.length > 0 && r.runs.every((x) => x.dtype === 'f16'));
    assert.match(b.stdout, /^f16 +standard /m);
    // a backend that does not read f16 (wasm) gets what generate gives it there: the weights widened to f32
    // (and without --prompts, a model with a tokenizer is benched on all 4 English openings)
    const w = runCli([
      ...['bench', '--model', model, '--backend', 'wasm', '--tokens', '4', '--repeats', '1'],
      ...['--modes', 'standard', '--no-bandwidth', '--json', '--quiet'],
    ]);
    assert.equal(w.status, 0, w.stderr);
    const wj = JSON.parse(w.stdout.trim().split('\n').at(-1)!) as { prompts: number; runs: { dtype: string }[] };
    assert.deepEqual(
      wj.runs.map((x) => x.dtype),
      ['f32'],
    );
    assert.equal(wj.prompts, 4);
    // a preset (no tokenizer): 2 prompts of random ids by default
    const p = runCli([
      ...['bench', '--preset', 'tiny', '--tokens', '2', '--repeats', '1', '--modes', 'standard'],
      ...['--no-bandwidth', '--prefill', '4', '--json', '--quiet'],
    ]);
    assert.equal(p.status, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout.trim().split('\n').at(-1)!) as { prompts: number }).prompts, 2);
    const whole = /module call ([\d.]+) MB/.exec(b.stdout)?.[1];
    assert.ok(whole && r.module_call_bytes / 1e6 < Number(whole), `module call ${r.module_call_bytes} vs ${whole} MB`);
    const eq = ['eval', '--model', model, '--data', text, '--mode-quality', '--prompts', '2', '--prompt-tokens', '8'];
    const q = runCli([...eq, '--new-tokens', '8', '--draft-vocab', '64', '--json', '--quiet']);
    assert.equal(q.status, 0, q.stderr);
    assert.equal((JSON.parse(q.stdout.trim().split('\n').at(-1)!) as { draft_vocab: number }).draft_vocab, 64);
    const noMq = runCli(['eval', '--model', model, '--data', text, '--draft-vocab', '64']);
    assert.notEqual(noMq.status, 0);
    assert.match(noMq.stderr, /--draft-vocab applies to --mode-quality/);
    const srv = runCli(['serve', '--preset', 'tiny', '--draft-vocab', '8']);
    assert.notEqual(srv.status, 0);
    assert.match(srv.stderr, /--draft-vocab needs a model directory/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
