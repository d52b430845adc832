import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ByteLevelBpe,
  HfTokenizer,
  bpeFromTrained,
  createStreamDecoder,
  gpt2Tokenizer,
  loadHfTokenizer,
  loadTokenizer,
  trainBpe,
  writeTokenizerJson,
  type Tokenizer,
} from '../src/tokenizer/index.js';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { loadCorpus } from '../src/data/corpus.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const SAMPLES = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  'naïve café — “quotes” and ünïcödé, 日本語のテキスト, Ελληνικά',
  'emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷!',
  '  leading and trailing spaces   ',
  'tabs\tand\nnewlines\r\n\n\n   runs      of     spaces',
  "it's we're they'll I'd you've I'm",
  '',
];

function roundTrips(tok: Tokenizer, label: string): void {
  for (const s of SAMPLES) assert.equal(tok.decode(tok.encode(s)), s, `${label}: ${JSON.stringify(s)}`);
}

test('gpt2: known ids, round trips, <|endoftext|>, no state leaks between decodes', () => {
  const tok = gpt2Tokenizer();
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosTokenId, 50256);
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  roundTrips(tok, 'gpt2');
  assert.deepEqual(tok.encode('a<|endoftext|>b'), [64, 50256, 65]);
  assert.equal(tok.decode([64, 50256, 65]), 'a<|endoftext|>b');
  const ids = tok.encode('😀');
  assert.ok(ids.length > 1, 'the emoji spans several tokens');
  assert.equal(tok.decode(ids.slice(0, 1)), '\uFFFD'.repeat(tok.decode(ids.slice(0, 1)).length));
  assert.equal(tok.decode(ids.slice(1)).includes('😀'), false, 'a later call does not see bytes of an earlier one');
  assert.throws(() => tok.decode([50257]), /token id 50257 at index 0 is outside the vocabulary/);
  assert.throws(() => tok.decode([1.5]), /token id 1.5/);
});

test("gpt2: the shipped tokenizer.json encodes as tiktoken's r50k_base (gpt-tokenizer) does, on real text", () => {
  const tok = gpt2Tokenizer();
  const texts = [
    ...loadCorpus('brown').train.slice(0, 120),
    ...loadCorpus('nlp-corpus').train.slice(0, 40),
    ...SAMPLES,
    "I'm don't they'll we've 's 'S  \n\n\t  x   y 1234567 ½ ﬁ \u00a0 ",
  ];
  let tokens = 0;
  for (const t of texts) {
    const want = r50kEncode(t, { disallowedSpecial: new Set() });
    assert.deepEqual(tok.encode(t), want, JSON.stringify(t.slice(0, 60)));
    tokens += want.length;
  }
  assert.ok(tokens > 100_000, `${tokens} tokens`);
});

function streamAll(tok: Tokenizer, ids: number[]): string[] {
  const sd = createStreamDecoder(tok);
  const chunks = ids.map((id) => sd.push(id));
  chunks.push(sd.flush());
  return chunks;
}

test('stream decoder never emits half a character (bytes path and text path)', () => {
  const tok = gpt2Tokenizer();
  const text = 'héllo 😀👍🏽 wörld 日本語 🇫🇷 end';
  const ids = tok.encode(text);
  // a tokenizer without decodeBytes exercises the text-window path
  const textOnly: Tokenizer = {
    encode: (s) => tok.encode(s),
    decode: (x) => tok.decode(x),
    vocabSize: tok.vocabSize,
    eosTokenId: tok.eosTokenId,
    bosTokenId: tok.bosTokenId,
  };
  for (const t of [tok, textOnly]) {
    const chunks = streamAll(t, ids);
    assert.equal(chunks.join(''), text);
    for (const c of chunks) assert.ok(!c.includes('\uFFFD'), `chunk ${JSON.stringify(c)}`);
  }
  // an incomplete character at the end comes out on flush as U+FFFD
  const sd = createStreamDecoder(tok);
  assert.equal(sd.push(tok.encode('😀')[0]), '');
  assert.match(sd.flush(), /^\uFFFD+$/);
  assert.equal(sd.push(...tok.encode('ok')), 'ok');
});

const TRAIN_TEXT = [
  'the cat sat on the mat. the cat ate the rat. the rat sat on the hat.',
  'There is a theory that the thing on the other side is the same as this thing here.',
  'Unicode: café café naïve 日本 日本 😀 😀; numbers 1234 1234 5678.',
  'whitespace    runs\n\n\tand tabs',
].map((s) => s.repeat(5));

test('trainer: learns merges, respects vocab size, HF library encodes identically, exact round trips', () => {
  const t0 = performance.now();
  const tr = trainBpe(TRAIN_TEXT, { vocabSize: 400 });
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `training took ${ms} ms`);
  assert.ok(tr.tokens.length <= 400);
  assert.ok(tr.merges.length > 50, `${tr.merges.length} merges`);
  assert.equal(tr.tokens[tr.tokens.length - 1], '<|endoftext|>');
  assert.equal(new Set(tr.tokens).size, tr.tokens.length, 'token strings are unique');
  // the first merge is the most frequent byte pair: 'Ġ' 't' (" t") or 't' 'h' dominate this text
  assert.ok(['Ġ t', 't h', 'h e'].includes(tr.merges[0].join(' ')), `first merge ${tr.merges[0].join(' ')}`);
  assert.ok(tr.tokens.includes('Ġthe'), 'learned " the"');

  const file = path.join(tmp, 'tokenizer.json');
  writeTokenizerJson(file, tr);
  const hf = loadHfTokenizer(file);
  const ours = bpeFromTrained(tr);
  assert.equal(hf.vocabSize, tr.tokens.length);
  assert.equal(ours.vocabSize, tr.tokens.length);
  assert.equal(hf.eosTokenId, tr.tokens.length - 1);
  assert.equal(ours.eosTokenId, tr.tokens.length - 1);
  const probe = [...TRAIN_TEXT, ...SAMPLES, 'unseen words: antidisestablishmentarianism xyzzy <|endoftext|> after'];
  for (const s of probe) assert.deepEqual(ours.encode(s), hf.encode(s), JSON.stringify(s));
  roundTrips(ours, 'ours');
  roundTrips(hf, 'hf');
  assert.ok(ours.encode('a <|endoftext|> b').includes(tr.tokens.length - 1));
  // streaming through the HF wrapper (byte-level, so it has exact bytes)
  assert.ok(hf.decodeBytes);
  assert.equal(streamAll(hf, hf.encode(SAMPLES[3])).join(''), SAMPLES[3]);
  assert.throws(() => trainBpe(['x'], { vocabSize: 100 }), /vocabSize must be an integer in \[257/);
});

test('loadTokenizer: tokenizer.json, gpt2 marker, gpt2 config, and clear errors', () => {
  const tr = trainBpe(TRAIN_TEXT, { vocabSize: 300 });
  const d1 = path.join(tmp, 'm1');
  fs.mkdirSync(d1);
  writeTokenizerJson(path.join(d1, 'tokenizer.json'), tr);
  const fast = loadTokenizer(d1);
  const lib = loadTokenizer(d1, { engine: 'hf' });
  assert.ok(fast instanceof ByteLevelBpe);
  assert.ok(lib instanceof HfTokenizer);
  for (const s of SAMPLES) assert.deepEqual(fast.encode(s), lib.encode(s));

  const d2 = path.join(tmp, 'm2');
  fs.mkdirSync(d2);
  fs.writeFileSync(path.join(d2, 'tokenizer.json'), '{"type":"gpt2"}');
  assert.equal(loadTokenizer(d2).vocabSize, 50257);
  const d3 = path.join(tmp, 'm3');
  fs.mkdirSync(d3);
  fs.writeFileSync(path.join(d3, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 50257 }));
  assert.equal(loadTokenizer(d3).eosTokenId, 50256);

  const bad = (name: string, content: string) => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'tokenizer.json'), content);
    return d;
  };
  const good = JSON.parse(fs.readFileSync(path.join(d1, 'tokenizer.json'), 'utf8'));
  const cases: Array<[string, RegExp]> = [
    [bad('b1', '{"model": {"type": "Magic", "vocab": {}}}'), /tokenizer\.json: model\.type "Magic" is not supported/],
    [bad('b2', '{"model": '), /tokenizer\.json: not valid JSON/],
    [bad('b3', '{"model": {"type": "BPE", "vocab": {}, "merges": 3}}'), /model\.merges must be an array, got 3/],
    [bad('b4', JSON.stringify({ ...good, added_tokens: [{ id: -1, content: 'x' }] })), /added_tokens\[0\] must have/],
    [
      bad('b5', JSON.stringify({ ...good, pre_tokenizer: { type: 'Nope' } })),
      /tokenizer\.json: @huggingface\/tokenizers cannot load it: .*Nope/,
    ],
    [bad('b6', '{"type":"sentencepiece"}'), /marker type "sentencepiece" is not known/],
  ];
  for (const [dir, re] of cases) {
    assert.throws(
      () => loadTokenizer(dir, { engine: 'hf' }),
      (e: Error) => {
        assert.match(e.message, re);
        assert.ok(e.message.includes(dir), e.message);
        return true;
      },
    );
  }
  const d4 = path.join(tmp, 'm4');
  fs.mkdirSync(d4);
  fs.writeFileSync(path.join(d4, 'config.json'), JSON.stringify({ model_type: 'llama', vocab_size: 32000 }));
  assert.throws(() => loadTokenizer(d4), /no tokenizer\.json.*model_type "llama"/);
  assert.throws(() => loadTokenizer(path.join(tmp, 'nope')), /does not exist/);
});
