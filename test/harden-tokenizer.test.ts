/**
 * Hardening of tokenizer.json loading (issue 9, items 9 and 10): regexes that could backtrack catastrophically are
 * refused at load (naming the file, the field and the pattern) while real tokenizers' patterns load, and an added
 * token with empty content is refused (naming the file and the id).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ByteLevelBpe, loadTokenizer, toTokenizerJson, trainBpe } from '../src/tokenizer/index.js';
import { findCatastrophicNesting } from '../src/tokenizer/regex-safety.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-harden-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const corpus = "the cat sat on the mat. aaaa bbbb 1234 5678, it's we're\n\n  x".repeat(3);
const trained = trainBpe([corpus], { vocabSize: 300 });
const good = toTokenizerJson(trained);
let n = 0;

/** Writes `json` as <tmp>/tN/tokenizer.json and returns the directory. */
function dirWith(json: Record<string, unknown>): string {
  const d = path.join(tmp, `t${n++}`);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(json));
  return d;
}

const split = (regex: string) => ({
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
});

// Pre-tokenizer patterns of real tokenizers (GPT-2, Llama-3 / cl100k, o200k, Qwen2, DeepSeek-style).
const CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
const TAIL = '| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
const UPPER = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]',
  LOWER = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
const REAL = [
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}${TAIL}`,
  `[^\\r\\n\\p{L}\\p{N}]?${UPPER}*${LOWER}+${CONTRACTIONS}?|` +
    `[^\\r\\n\\p{L}\\p{N}]?${UPPER}+${LOWER}*${CONTRACTIONS}?|` +
    '\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}${TAIL}`,
  '[\\r\\n]|\\s?[A-Za-zµÀ-ÖØ-öø-ƺ]+|\\s?[!-/:-~！-／：-～‘-‟　-。]+|\\s+$|[一-龥ࠀ-一가-퟿]+|\\p{N}+',
  '\\d{1,3}(?=(?:\\d{3})*\\b)',
];

test('real tokenizer patterns load and encode quickly through the library', () => {
  for (const re of REAL) {
    assert.equal(findCatastrophicNesting(re), null, re);
    const tok = loadTokenizer(dirWith({ ...good, pre_tokenizer: split(re) }), { engine: 'hf' });
    const text = `it's 12345 cats, ${'a'.repeat(5000)}!\n\n  ${' '.repeat(5000)}x`;
    const t0 = performance.now();
    assert.equal(tok.decode(tok.encode(text)), text, re);
    assert.ok(performance.now() - t0 < 5000, `${re}: ${performance.now() - t0} ms`);
  }
});

test('nested unbounded repetition is refused at load, naming the file, the field and the pattern', () => {
  const replace = (regex: string) => ({ type: 'Replace', pattern: { Regex: regex }, content: '' });
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { pre_tokenizer: split('(a+)+$') },
      /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex "\(a\+\)\+\$" has nested repetition "\(a\+\)\+"/,
    ],
    [
      { pre_tokenizer: { type: 'Split', pattern: { Regex: '(?:\\s*x)+' }, behavior: 'Isolated' } },
      /pre_tokenizer\.pattern\.Regex "\(\?:\\\\s\*x\)\+"/,
    ],
    [{ normalizer: replace('(a*)*b') }, /normalizer\.pattern\.Regex "\(a\*\)\*b"/],
    [
      { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, replace('(\\w{1,4})+$')] } },
      /normalizer\.normalizers\[1\]\.pattern\.Regex/,
    ],
    [
      { decoder: { type: 'Sequence', decoders: [replace('(x|x)*y'), { type: 'ByteLevel' }] } },
      /decoder\.decoders\[0\]\.pattern\.Regex "\(x\|x\)\*y" has repeated identical alternatives/,
    ],
  ];
  for (const [patch, want] of cases) {
    const d = dirWith({ ...good, ...patch });
    for (const engine of ['auto', 'hf'] as const) {
      const t0 = performance.now();
      assert.throws(
        () => loadTokenizer(d, { engine }),
        (e: Error) => {
          assert.match(e.message, want);
          assert.match(e.message, /catastrophic backtracking/);
          assert.ok(e.message.includes(path.join(d, 'tokenizer.json')), e.message);
          return true;
        },
      );
      assert.ok(performance.now() - t0 < 2000);
    }
  }
  // A String pattern is matched literally: nothing to refuse.
  const literal = { type: 'Replace', pattern: { String: '(a+)+' }, content: 'x' };
  const lit = loadTokenizer(dirWith({ ...good, normalizer: literal }));
  assert.ok(lit.encode('(a+)+ b').length > 0);
});

test('an added token with empty content is refused, naming the file and the id', () => {
  const added = (good.added_tokens as Array<Record<string, unknown>>)[0]!;
  const d = dirWith({ ...good, added_tokens: [added, { ...added, id: 300, content: '' }] });
  for (const engine of ['auto', 'hf'] as const) {
    assert.throws(
      () => loadTokenizer(d, { engine }),
      (e: Error) => {
        assert.match(e.message, /added_tokens\[1\] \(id 300\) has an empty "content"/);
        assert.ok(e.message.includes(path.join(d, 'tokenizer.json')), e.message);
        return true;
      },
    );
  }
  const vocab = new Map(Object.entries((good.model as { vocab: Record<string, number> }).vocab));
  assert.throws(
    () => new ByteLevelBpe({ vocab, merges: [], specialTokens: [{ content: '', id: 7 }], source: 'my.json' }),
    /my\.json: special token 7 has empty content/,
  );
});
