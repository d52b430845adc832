// Writes test/fixtures/hf-tokenizers/<name>/ : tokenizer.json, tokenizer_config.json, generation_config.json and
// expected.json, in the layouts Hugging Face model repositories use, with small vocabularies trained here.
// expected.json holds what the REFERENCE tokenizer (Hugging Face's Rust `tokenizers`, npm package `tokenizers`,
// native binaries) gives for a set of texts: ids with and without special tokens, and the decoded strings.
//
// Usage (not run by `npm test`; the fixtures it writes are committed):
//   mkdir /tmp/reftok && cd /tmp/reftok && npm init -y && npm install tokenizers@0.23.2
//   node scripts/make-hf-tokenizer-fixtures.mjs /tmp/reftok
// The argument is the folder the `tokenizers` package was installed in (the one holding node_modules/).
//
// Fixtures:
// - gpt2-bpe: GPT-2's tokenizer.json layout (its "model" has no "type"; ByteLevel pre-tokenizer, post-processor and
//   decoder; <|endoftext|>), a byte-level BPE trained here, and the tokenizer_config.json transformers saves for it.
// - llama-bpe: Llama-2 / TinyLlama layout: SentencePiece-style BPE with byte_fallback, <0x00>..<0xFF>, the
//   Prepend("▁") + Replace(" " -> "▁") normalizer, TemplateProcessing adding <s>, Replace/ByteFallback/Fuse/Strip
//   decoder; tokenizer_config.json with add_bos_token, AddedToken objects and a chat_template.
// - mistral-bpe: the newer (legacy: false) layout of the same vocabulary: no normalizer, Metaspace pre-tokenizer
//   (prepend_scheme "first", split false), merges as pairs; tokenizer_config.json with added_tokens_decoder and plain
//   token strings; generation_config.json with an eos list and sampling defaults.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const refDir = process.argv[2];
if (!refDir) {
  console.error('usage: node scripts/make-hf-tokenizer-fixtures.mjs <folder with node_modules/tokenizers>');
  process.exit(2);
}
const require = createRequire(path.resolve(refDir, 'package.json'));
const { Tokenizer } = require('tokenizers');
const refVersion = require('tokenizers/package.json').version;
const outRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'hf-tokenizers');

const TRAIN = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs into the woods.',
  'Hello world! Hello there, how are you today? I am fine, thank you. We are going to the market.',
  "It's a nice day; we're out walking, they'll come later and I'd like some tea. You've seen it, I'm sure.",
  'Numbers: 1 2 3 10 42 100 2024. Prices: $5.99 and 12%. Lists: a, b, c; x-y-z (brackets) [more] {braces}.',
  'A café in a naïve town sells crème brûlée. Déjà vu, résumé, façade, coöperate, élan, über.',
  'def main():\n    print("hello")\n    return 0\n\nif __name__ == "__main__":\n    main()\n',
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.',
  'Generation works token by token: the model reads the prompt, then writes one token at a time.',
];

// Texts the fixtures are checked on: ASCII, unicode in and out of the vocabulary (byte fallback), emoji, leading and
// repeated spaces, newlines, tabs, special tokens written in the text.
const TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  ' leading space',
  '   three leading spaces and  double  spaces',
  'trailing space ',
  'line one\nline two\n\n  indented\n',
  'tabs\tand\r\nCRLF',
  'café naïve crème brûlée',
  '日本語のテキスト and Ελληνικά',
  'emoji: 😀👍🏽 👨‍👩‍👧 🇫🇷!',
  "it's we're they'll I'd you've I'm",
  'x',
  '',
];

const write = (dir, name, obj) => fs.writeFileSync(path.join(dir, name), JSON.stringify(obj, null, 2) + '\n');

/** Repeatedly merges the most frequent adjacent pair (ties: the smaller pair string) over weighted words. */
function trainMerges(words, numMerges, allowed = () => true) {
  const seqs = [...words].map(([w, n]) => ({ s: w, n }));
  const merges = [];
  for (let k = 0; k < numMerges; k++) {
    const counts = new Map();
    for (const { s, n } of seqs) {
      for (let i = 0; i + 1 < s.length; i++) {
        if (!allowed(s[i], s[i + 1])) continue;
        const key = s[i] + '\u0000' + s[i + 1];
        counts.set(key, (counts.get(key) ?? 0) + n);
      }
    }
    let best = null;
    let bestN = 1;
    for (const [key, n] of counts)
      if (n > bestN || (n === bestN && best !== null && key < best)) [best, bestN] = [key, n];
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const q of seqs) {
      const out = [];
      for (let i = 0; i < q.s.length; i++) {
        if (i + 1 < q.s.length && q.s[i] === a && q.s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(q.s[i]);
      }
      q.s = out;
    }
  }
  return merges;
}

// ---- GPT-2 style byte-level BPE -----------------------------------------------------------------------------------

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

function gpt2Fixture() {
  const table = bytesToUnicode(); // GPT-2's vocabulary starts with the 256 byte characters in this order
  const byteChar = new Map(table);
  const split = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const enc = new TextEncoder();
  const words = new Map();
  for (const t of TRAIN) {
    for (const m of t.matchAll(split)) {
      const w = Array.from(enc.encode(m[0]), (b) => byteChar.get(b));
      const key = w.join('\u0001');
      words.set(key, (words.get(key) ?? 0) + 1);
    }
  }
  const merges = trainMerges(
    [...words].map(([k, n]) => [k.split('\u0001'), n]),
    300,
  );
  const vocab = {};
  table.forEach(([, c], i) => (vocab[c] = i));
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = Object.keys(vocab).length;
  const eosId = Object.keys(vocab).length;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: eosId,
        special: true,
        content: '<|endoftext|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
    // as in GPT-2's own file: no "type" (the library infers BPE from "merges")
    model: {
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  // what transformers (4.4x) saves for a GPT-2 tokenizer
  const config = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: {
      [eosId]: {
        content: '<|endoftext|>',
        lstrip: false,
        normalized: true,
        rstrip: false,
        single_word: false,
        special: true,
      },
    },
    bos_token: '<|endoftext|>',
    clean_up_tokenization_spaces: false,
    eos_token: '<|endoftext|>',
    errors: 'replace',
    model_max_length: 1024,
    pad_token: null,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: '<|endoftext|>',
  };
  const generation = {
    _from_model_config: true,
    bos_token_id: eosId,
    eos_token_id: eosId,
    transformers_version: '4.44.0',
  };
  const texts = [...TEXTS, 'a<|endoftext|>b', '<|endoftext|> starts'];
  return { tokenizer, config, generation, texts };
}

// ---- SentencePiece-style BPE (Llama) ------------------------------------------------------------------------------

const SPECIAL = (id, content) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});
const ADDED = (content) => ({
  __type: 'AddedToken',
  content,
  lstrip: false,
  normalized: false,
  rstrip: false,
  single_word: false,
});
const ZEPHYR_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + " +
  "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}" +
  "\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = " +
  "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  '{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = ' +
  "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = " +
  "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + " +
  "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}" +
  '{% endfor %}';

function llamaVocab() {
  // SentencePiece's layout: <unk> <s> </s>, the 256 byte pieces, merged pieces, then single characters
  const words = new Map();
  const chars = new Map();
  for (const t of TRAIN) {
    const s = '▁' + t.replaceAll(' ', '▁');
    for (const ch of s) chars.set(ch, (chars.get(ch) ?? 0) + 1);
    for (const w of s.split(/(?=▁)/u)) words.set(w, (words.get(w) ?? 0) + 1);
  }
  const merges = trainMerges(
    [...words].map(([w, n]) => [Array.from(w), n]),
    250,
    (a, b) => !b.startsWith('▁'), // pieces never carry a ▁ inside
  );
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = Object.keys(vocab).length;
  const singles = [...chars].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([c]) => c);
  for (const c of singles) if (vocab[c] === undefined) vocab[c] = Object.keys(vocab).length;
  return { vocab, merges };
}

const LLAMA_DECODER = {
  type: 'Sequence',
  decoders: [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
    { type: 'Strip', content: ' ', start: 1, stop: 0 },
  ],
};
const LLAMA_POST = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [
    { SpecialToken: { id: '<s>', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '<s>', type_id: 1 } },
    { Sequence: { id: 'B', type_id: 1 } },
  ],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
};
const LLAMA_TEXTS = [...TEXTS, '<s>literal specials</s> in text', 'Hello</s> world', '▁already▁metaspace'];

function llamaFixture() {
  const { vocab, merges } = llamaVocab();
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [SPECIAL(0, '<unk>'), SPECIAL(1, '<s>'), SPECIAL(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: LLAMA_POST,
    decoder: LLAMA_DECODER,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  // TinyLlama-1.1B-Chat's tokenizer_config.json layout
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: ADDED('<s>'),
    clean_up_tokenization_spaces: false,
    eos_token: ADDED('</s>'),
    legacy: false,
    model_max_length: 2048,
    pad_token: null,
    padding_side: 'right',
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: ADDED('<unk>'),
    chat_template: ZEPHYR_TEMPLATE,
  };
  const generation = { bos_token_id: 1, eos_token_id: 2, max_length: 2048, pad_token_id: 0 };
  return { tokenizer, config, generation, texts: LLAMA_TEXTS };
}

function mistralFixture() {
  const { vocab, merges } = llamaVocab();
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [SPECIAL(0, '<unk>'), SPECIAL(1, '<s>'), SPECIAL(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: LLAMA_POST,
    decoder: LLAMA_DECODER,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenEntry = (content) => ({
    content,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  });
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    add_prefix_space: null,
    added_tokens_decoder: { 0: tokenEntry('<unk>'), 1: tokenEntry('<s>'), 2: tokenEntry('</s>') },
    additional_special_tokens: [],
    bos_token: '<s>',
    chat_template: LLAMA2_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    legacy: false,
    model_max_length: 1000000000000000019884624838656,
    pad_token: null,
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };
  const generation = {
    _from_model_config: true,
    bos_token_id: 1,
    do_sample: true,
    eos_token_id: [2, 0],
    max_new_tokens: 64,
    repetition_penalty: 1.1,
    temperature: 0.6,
    top_k: 40,
    top_p: 0.9,
    transformers_version: '4.44.0',
  };
  return { tokenizer, config, generation, texts: LLAMA_TEXTS };
}

async function expectedFor(tokenizerJson, texts) {
  const tok = Tokenizer.fromString(JSON.stringify(tokenizerJson));
  const cases = [];
  for (const text of texts) {
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    const withSpecial = special.getIds();
    cases.push({
      text,
      tokens: plain.getTokens(),
      ids,
      ids_with_special: withSpecial,
      decoded: await tok.decode(ids, false),
      decoded_with_special: await tok.decode(withSpecial, false),
      decoded_skip_special: await tok.decode(withSpecial, true),
    });
  }
  // pieces of a character: byte-fallback tokens of half an emoji decode as U+FFFD per byte in the reference
  const emoji = cases.find((c) => c.text.startsWith('emoji'));
  const partial = emoji.ids.slice(0, Math.max(1, emoji.ids.length - 3));
  const decodeOnly = [{ ids: partial, text: await tok.decode(partial, false) }];
  return { cases, decodeOnly, vocabSize: tok.getVocabSize(true) };
}

const fixtures = { 'gpt2-bpe': gpt2Fixture(), 'llama-bpe': llamaFixture(), 'mistral-bpe': mistralFixture() };
for (const [name, fx] of Object.entries(fixtures)) {
  const dir = path.join(outRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  write(dir, 'tokenizer.json', fx.tokenizer);
  write(dir, 'tokenizer_config.json', fx.config);
  write(dir, 'generation_config.json', fx.generation);
  const exp = await expectedFor(fx.tokenizer, fx.texts);
  write(dir, 'expected.json', {
    reference: `tokenizers (Hugging Face, Rust) ${refVersion} via npm`,
    vocab_size: exp.vocabSize,
    cases: exp.cases,
    decode_only: exp.decodeOnly,
  });
  console.log(`${name}: ${exp.cases.length} cases, vocab ${exp.vocabSize}`);
}
