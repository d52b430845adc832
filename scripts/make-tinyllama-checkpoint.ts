/**
 * Writes a TinyLlama-1.1B-shaped bf16 checkpoint with random weights (for memory and speed measurements; never
 * committed): config.json (hidden 2048, 22 layers, 32 heads / 4 kv heads, MLP 5632, vocab 32000, context 2048),
 * two safetensors shards + model.safetensors.index.json (~2.2 GB), and a byte-level BPE tokenizer trained on Brown
 * (tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json).
 *
 *   npx tsx scripts/make-tinyllama-checkpoint.ts OUT_DIR [--layers N] [--vocab-bpe N] [--gpt2]
 *
 * --gpt2: GPT-2 124M's shape instead (12 layers, 768 wide, vocab 50257, context 1024) as one float16
 * model.safetensors (~249 MB), HF layout (Conv1D weights [in, out]).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCorpus } from '../src/data/corpus.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/kernels/half.js';
import { parseConfig } from '../src/model/config.js';
import { allParamSpecs } from '../src/model/names.js';
import { writeSafetensors, type WriteTensor } from '../src/io/safetensors.js';
import { trainBpe, writeTokenizerJson } from '../src/tokenizer/index.js';

const args = process.argv.slice(2);
const out = args.find((a) => !a.startsWith('--'));
if (!out) throw new Error('usage: make-tinyllama-checkpoint.ts OUT_DIR [--layers N] [--vocab-bpe N]');
const flag = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const layers = flag('--layers', 22);
const bpe = flag('--vocab-bpe', 2000);

const gpt2 = args.includes('--gpt2');
const hfGpt2 = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  n_ctx: 1024,
  vocab_size: 50257,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  bos_token_id: 50256,
  eos_token_id: 50256,
  torch_dtype: 'float16',
};
const hfLlama = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: layers,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  hidden_act: 'silu',
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  vocab_size: 32000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: 'bfloat16',
};
const hf = gpt2 ? hfGpt2 : hfLlama;
const config = parseConfig(hf, gpt2 ? 'GPT-2 shape' : 'TinyLlama shape');
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'config.json'), `${JSON.stringify(hf, null, 2)}\n`);

// random bf16 values, uniform with std 0.02 (a table of 65536 draws indexed by an LCG: fast for 1.1B values)
const table = new Uint16Array(65536);
let seed = 12345;
const rnd = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const toBits = gpt2 ? f32ToF16Bits : f32ToBf16Bits;
for (let i = 0; i < table.length; i++) table[i] = toBits((rnd() * 2 - 1) * 0.02 * Math.sqrt(3));
const ONE = toBits(1);

const specs = allParamSpecs(config);
const size = (s: (typeof specs)[number]): number => s.shape.reduce((a, b) => a * b, 1);
const total = specs.reduce((n, s) => n + size(s), 0);
const shards: WriteTensor[][] = [[], []];
let acc = 0;
const weightMap: Record<string, string> = {};
const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
for (const s of specs) {
  const n = size(s);
  const data = new Uint16Array(n);
  if (s.shape.length === 1) data.fill(s.name.endsWith('.weight') && !s.name.includes('wpe') ? ONE : 0);
  else {
    let x = (seed ^ n) >>> 0;
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      data[i] = table[x >>> 16]!;
    }
  }
  const k = acc < total / 2 ? 0 : 1;
  acc += n;
  const shape = s.fileTransposed ? [s.shape[1]!, s.shape[0]!] : s.shape;
  shards[gpt2 ? 0 : k]!.push({ name: s.name, shape, data, dtype: gpt2 ? 'F16' : 'BF16' });
  weightMap[s.name] = names[k]!;
}
if (gpt2) writeSafetensors(path.join(out, 'model.safetensors'), shards[0]!, { metadata: { format: 'pt' } });
for (let k = 0; k < 2 && !gpt2; k++) {
  writeSafetensors(path.join(out, names[k]!), shards[k]!, { metadata: { format: 'pt' } });
  shards[k] = [];
}
if (!gpt2)
  fs.writeFileSync(
    path.join(out, 'model.safetensors.index.json'),
    `${JSON.stringify({ metadata: { total_size: total * 2 }, weight_map: weightMap }, null, 2)}\n`,
  );
const corpus = loadCorpus('brown');
writeTokenizerJson(path.join(out, 'tokenizer.json'), trainBpe(corpus.train.slice(0, 400), { vocabSize: bpe }));
fs.writeFileSync(path.join(out, 'tokenizer_config.json'), `${JSON.stringify({ model_max_length: 2048 })}\n`);
fs.writeFileSync(path.join(out, 'special_tokens_map.json'), `${JSON.stringify({ eos_token: '<|endoftext|>' })}\n`);
fs.writeFileSync(path.join(out, 'generation_config.json'), `${JSON.stringify({ do_sample: false })}\n`);
const what = gpt2 ? 'f16' : 'bf16';
process.stdout.write(
  `wrote ${out}: ${(total / 1e6).toFixed(1)}M parameters, ${((total * 2) / 1e9).toFixed(2)} GB ${what}\n`,
);
