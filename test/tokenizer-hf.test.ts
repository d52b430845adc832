/**
 * Tokenizers as Hugging Face repositories store them (test/fixtures/hf-tokenizers, made by
 * scripts/make-hf-tokenizer-fixtures.mjs with the Rust reference): GPT-2's tokenizer.json without model.type, Llama's
 * SentencePiece-style BPE with byte fallback, tokenizer_config.json (add_bos_token, special tokens, chat_template),
 * generation_config.json. Our loader must give the reference's ids and text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ByteLevelBpe,
  HfTokenizer,
  checkTokenizerJson,
  createStreamDecoder,
  gpt2Tokenizer,
  loadGenerationConfig,
  loadTokenizer,
  parseGenerationConfig,
  parseTokenizerConfig,
  tokenizerFromJson,
} from '../src/tokenizer/index.js';
import { resolveOptions } from '../src/generate/options.js';
import { RecycleGPT } from '../src/generate/recyclegpt.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { randomModel, writeModelDir } from './helpers/models.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'hf-tokenizers');
const NAMES = ['gpt2-bpe', 'llama-bpe', 'mistral-bpe'] as const;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-hf-test-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Case {
  text: string;
  ids: number[];
  ids_with_special: number[];
  decoded: string;
  decoded_with_special: string;
  decoded_skip_special: string;
}
interface Expected {
  vocab_size: number;
  cases: Case[];
  decode_only: Array<{ ids: number[]; text: string }>;
}

const read = (name: string, file: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, name, file), 'utf8')) as Record<string, unknown>;
const expected = (name: string) => read(name, 'expected.json') as unknown as Expected;

for (const name of NAMES) {
  for (const engine of ['auto', 'hf'] as const) {
    test(`${name} (${engine}): the reference's ids with and without special tokens, and its decoded text`, () => {
      const exp = expected(name);
      const tok = loadTokenizer(path.join(FIXTURES, name), { engine });
      assert.equal(tok.vocabSize, exp.vocab_size);
      for (const c of exp.cases) {
        const what = `${name} ${JSON.stringify(c.text)}`;
        assert.deepEqual(tok.encode(c.text), c.ids, what);
        assert.deepEqual(tok.encode(c.text, { addSpecialTokens: true }), c.ids_with_special, what);
        assert.equal(tok.decode(c.ids), c.decoded, what);
        assert.equal(tok.decode(c.ids_with_special), c.decoded_with_special, what);
        assert.equal(tok.decode(c.ids_with_special, { skipSpecialTokens: true }), c.decoded_skip_special, what);
        // generation output: streamed, special tokens left out, never half a character
        const sd = createStreamDecoder(tok);
        const parts = c.ids_with_special.map((id) => sd.push(id));
        parts.push(sd.flush());
        assert.equal(parts.join(''), c.decoded_skip_special, `stream ${what}`);
        assert.ok(
          parts.every((p) => !p.includes('\uFFFD')),
          `stream ${what}`,
        );
      }
      // an incomplete character: the reference's replacement characters (one per byte for byte fallback)
      for (const d of exp.decode_only) assert.equal(tok.decode(d.ids), d.text);
    });
  }
}

test("gpt2-bpe: GPT-2's layout (no model.type) reads as BPE, our fast encoder takes it, no BOS is added", () => {
  const raw = read('gpt2-bpe', 'tokenizer.json');
  assert.equal((raw.model as Record<string, unknown>).type, undefined, 'the fixture keeps the real layout');
  const checked = checkTokenizerJson(raw, 'tokenizer.json');
  assert.equal((checked.model as Record<string, unknown>).type, 'BPE');
  const tok = loadTokenizer(path.join(FIXTURES, 'gpt2-bpe'));
  assert.ok(tok instanceof ByteLevelBpe);
  assert.equal(tok.eosTokenId, 341);
  assert.equal(tok.bosTokenId, 341);
  assert.equal(tok.chatTemplate, null);
  assert.deepEqual(tok.encode('Hello', { addSpecialTokens: true }), tok.encode('Hello'));
  // the offline GPT-2 adds nothing either, and leaves <|endoftext|> out when asked
  const g = gpt2Tokenizer();
  assert.deepEqual(g.encode('Hello world', { addSpecialTokens: true }), [15496, 995]);
  assert.equal(g.decode([64, 50256, 65], { skipSpecialTokens: true }), 'ab');
});

test('a missing model.type is inferred as Hugging Face does (BPE, WordPiece, WordLevel, Unigram)', () => {
  const infer = (model: Record<string, unknown>) => {
    const json = checkTokenizerJson({ model }, 'x.json');
    return (json.model as Record<string, unknown>).type;
  };
  assert.equal(infer({ vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] }), 'BPE');
  const wp = { vocab: { '[UNK]': 0, a: 1 }, unk_token: '[UNK]', continuing_subword_prefix: '##' };
  assert.equal(infer({ ...wp, max_input_chars_per_word: 100 }), 'WordPiece');
  assert.equal(
    infer({
      vocab: [
        ['<unk>', 0],
        ['a', -1],
      ],
      unk_id: 0,
    }),
    'Unigram',
  );
  // without max_input_chars_per_word, HF reads it as WordLevel, which neither we nor the library implement
  assert.throws(() => infer(wp), /model\.type \(absent, read as "WordLevel" as Hugging Face does\) is not supported/);
  assert.throws(() => infer({ merges: [] }), /model has no "type" and no "vocab"/);
  // the library needs every pipeline part: absent ones are given as null, as HF's reader takes them
  const tok = tokenizerFromJson({ model: { vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] } }, 'min.json');
  assert.ok(tok instanceof HfTokenizer);
  assert.deepEqual(tok.encode('ab'), [2]);
});

test('llama-bpe: BOS from tokenizer_config.json, from the post-processor, or from the tokenizer class', () => {
  const json = read('llama-bpe', 'tokenizer.json');
  const config = read('llama-bpe', 'tokenizer_config.json');
  const hello = expected('llama-bpe').cases[0];
  assert.equal(hello.text, 'Hello world');
  const enc = (cfg: Record<string, unknown>, j: Record<string, unknown> = json) =>
    tokenizerFromJson(j, 'tokenizer.json', { config: cfg }).encode(hello.text, { addSpecialTokens: true });
  assert.deepEqual(enc(config), [1, ...hello.ids]);
  // no tokenizer_config.json: the tokenizer.json post-processor (TemplateProcessing "<s> $A") adds it, as the reference
  assert.deepEqual(enc({}), [1, ...hello.ids]);
  // the config's flags win over the post-processor, as transformers' LlamaTokenizerFast rebuilds it from them
  assert.deepEqual(enc({ ...config, add_bos_token: false }), hello.ids);
  assert.deepEqual(enc({ ...config, add_eos_token: true }), [1, ...hello.ids, 2]);
  // a Llama tokenizer class adds BOS by default even when the post-processor adds nothing
  const noPost = { ...json, post_processor: null };
  assert.deepEqual(enc({}, noPost), hello.ids);
  assert.deepEqual(enc({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<s>' }, noPost), [1, ...hello.ids]);
  assert.deepEqual(enc({ tokenizer_class: 'GPT2Tokenizer', bos_token: '<s>' }, noPost), hello.ids);

  const tok = loadTokenizer(path.join(FIXTURES, 'llama-bpe'));
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosTokenId, 2);
  assert.deepEqual([...(tok.specialTokenIds ?? [])].sort(), [0, 1, 2]);
  assert.equal(tok.chatTemplate, config.chat_template);
  assert.ok(tok.chatTemplate?.includes('<|assistant|>'));
  assert.equal(tok.decode([1, ...hello.ids, 2], { skipSpecialTokens: true }), 'Hello world');
});

test('tokenizer_config.json: token forms, chat_template forms and clear errors', () => {
  const cfg = parseTokenizerConfig(read('mistral-bpe', 'tokenizer_config.json'), 'c.json');
  assert.equal(cfg.addBosToken, true);
  assert.equal(cfg.addEosToken, false);
  assert.equal(cfg.bosToken, '<s>');
  assert.equal(cfg.unkToken, '<unk>');
  assert.equal(cfg.padToken, null);
  assert.ok(cfg.chatTemplate?.startsWith("{% if messages[0]['role'] == 'system' %}"));
  const obj = parseTokenizerConfig(read('llama-bpe', 'tokenizer_config.json'), 'c.json');
  assert.equal(obj.eosToken, '</s>', 'AddedToken objects give their content');
  const named = parseTokenizerConfig(
    {
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D' },
      ],
    },
    'c.json',
  );
  assert.equal(named.chatTemplate, 'D');
  assert.equal(parseTokenizerConfig({}, 'c.json').addBosToken, null);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ add_bos_token: 'yes' }, /c\.json: add_bos_token must be true or false, got "yes"/],
    [{ add_bos_token: true }, /c\.json: add_bos_token is true but there is no bos_token/],
    [{ eos_token: 5 }, /c\.json: eos_token must be a token string or an AddedToken object/],
    [{ chat_template: 3 }, /c\.json: chat_template must be a string or a list/],
    [{ chat_template: [{ name: 'x' }] }, /c\.json: chat_template\[0\] must be/],
  ];
  for (const [raw, re] of bad) assert.throws(() => parseTokenizerConfig(raw, 'c.json'), re);
  // a bos_token the vocabulary lacks, with add_bos_token: the loader names the config file
  const json = read('llama-bpe', 'tokenizer.json');
  assert.throws(
    () =>
      tokenizerFromJson(json, 't.json', { config: { add_bos_token: true, bos_token: '<bos>' }, configFile: 'k.json' }),
    /k\.json: add_bos_token is true but bos_token "<bos>" is not a token/,
  );
  // chat_template.jinja beside the files, as newer repositories store it
  const dir = path.join(tmp, 'jinja');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(FIXTURES, 'gpt2-bpe', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{{ messages }}');
  assert.equal(loadTokenizer(dir).chatTemplate, '{{ messages }}');
});

test('generation_config.json: GenerationOptions-shaped defaults and clear errors', () => {
  const llama = loadGenerationConfig(path.join(FIXTURES, 'llama-bpe'));
  assert.deepEqual(llama, { defaults: { eos_token_id: [2] }, maxLength: 2048, bosTokenId: 1, padTokenId: 0 });
  const mistral = loadGenerationConfig(path.join(FIXTURES, 'mistral-bpe'));
  assert.deepEqual(mistral?.defaults, {
    do_sample: true,
    eos_token_id: [2, 0],
    max_new_tokens: 64,
    repetition_penalty: 1.1,
    temperature: 0.6,
    top_k: 40,
    top_p: 0.9,
  });
  assert.equal(mistral?.maxLength, null);
  // the defaults are options generation accepts as they are
  assert.equal(resolveOptions(mistral!.defaults).topP, 0.9);
  assert.equal(loadGenerationConfig(tmp), null);
  assert.deepEqual(parseGenerationConfig({ temperature: 0, top_p: null }, 'g.json').defaults, { do_sample: false });
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ temperature: 'hot' }, /g\.json: temperature must be a number >= 0, got "hot"/],
    [{ top_p: 1.5 }, /g\.json: top_p must be a number in \(0, 1\], got 1\.5/],
    [{ max_new_tokens: 0 }, /g\.json: max_new_tokens must be an integer >= 1, got 0/],
    [{ eos_token_id: [2, -1] }, /g\.json: eos_token_id must be a token id or a list of token ids/],
    [{ do_sample: 'true' }, /g\.json: do_sample must be true or false/],
    [{ repetition_penalty: 0 }, /g\.json: repetition_penalty must be a number > 0/],
  ];
  for (const [raw, re] of bad) assert.throws(() => parseGenerationConfig(raw, 'g.json'), re);
});

test("RecycleGPT's prompt path adds BOS for the Llama tokenizer, not for GPT-2's; output never shows <s>", async () => {
  const backend = createRefBackend();
  for (const name of NAMES) {
    const dir = path.join(tmp, `model-${name}`);
    writeModelDir(dir, randomModel({ vocabSize: expected(name).vocab_size, seed: 3 }), null);
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dir, f));
    const m = await RecycleGPT.load(dir, { backend });
    const hello = expected(name).cases[0];
    assert.deepEqual(m.encode(hello.text), name === 'gpt2-bpe' ? hello.ids : [1, ...hello.ids], name);
    assert.deepEqual(m.encode([5, 6]), [5, 6], 'ids are taken as they are');
    const r = await m.generate(hello.text, { max_new_tokens: 12, eos_token_id: [] });
    assert.equal(r.stats.prompt_tokens, m.encode(hello.text).length);
    assert.equal(r.text, m.tokenizer!.decode(r.ids, { skipSpecialTokens: true }), name);
  }
  // whatever the model emits, special tokens never reach the text
  const tok = loadTokenizer(path.join(FIXTURES, 'llama-bpe'));
  const sd = createStreamDecoder(tok);
  const ids = [1, ...expected('llama-bpe').cases[0].ids, 2, 1, 0];
  const text = ids.map((id) => sd.push(id)).join('') + sd.flush();
  assert.equal(text, 'Hello world');
  assert.ok(!/<s>|<\/s>|<unk>/.test(text));
  // asked to, the stream keeps them (the old behaviour)
  const keep = createStreamDecoder(tok, { skipSpecialTokens: false });
  assert.equal(ids.map((id) => keep.push(id)).join('') + keep.flush(), tok.decode(ids));
});
