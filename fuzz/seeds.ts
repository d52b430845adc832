/**
 * The real files the fuzz mutates: small model directories written by the library itself, so every format path is
 * covered (GPT-2 F32 in one file; Llama F16 in two shards with an index and a tokenizer_config.json; a training
 * checkpoint with train_state/). Built once per run into a temporary folder, deterministically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../src/data/rng.js';
import { exportTensors, saveWeights } from '../src/io/model-dir.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { toHfConfig, type ModelConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { allParamSpecs } from '../src/model/names.js';
import { presetConfig } from '../src/model/presets.js';
import { Weights } from '../src/model/weights.js';
import { trainBpe, writeTokenizerJson } from '../src/tokenizer/index.js';
import { train } from '../src/train/trainer.js';

export interface Seed {
  name: string;
  dir: string;
  kind: 'model' | 'checkpoint';
  /** Files of the directory to mutate, relative to it, each with a weight (how often it is picked). */
  targets: Array<{ file: string; weight: number }>;
}

const WORDS = (
  'the of and to a in that is was he for it with as his on be at by had not are but from or have an ' +
  'they which one you were her all she there would their we him been has when who will more no if out so said what ' +
  'up its about into than them can only other new some could time these two may then do first any my now such like ' +
  'our over man me even most made after also did many before must through back years where much your way well down'
).split(' ');

/** A few KB of word salad from a fixed list: enough for a byte-level BPE to find its merges. */
function text(seed: number): string {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < 3000; i++) out.push(WORDS[rng.int(WORDS.length)]! + (rng.int(12) === 0 ? '.' : ''));
  return out.join(' ');
}

function randomWeights(config: ModelConfig): Weights {
  const specs = allParamSpecs(config);
  const w = new Weights(specs);
  initParams(specs, (n) => w.get(n), config, 1);
  // Scaled up from the N(0, 0.02) init, so that outputs depend on every weight and a changed byte shows.
  for (const s of specs)
    if (s.init === 'normal' || s.init === 'residual') w.get(s.name).forEach((x, i, a) => (a[i] = x * 10));
  return w;
}

function writeTokenizer(dir: string, vocab: number): void {
  const bpe = trainBpe([text(1)], { vocabSize: vocab, minFrequency: 1 });
  writeTokenizerJson(path.join(dir, 'tokenizer.json'), bpe);
}

/** Llama-3's pre-tokenizer layout (a Split regex, then ByteLevel without its own regex), so regexes get fuzzed. */
function useSplitPreTokenizer(file: string): void {
  const tok = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" +
    '\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
  tok.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
  fs.writeFileSync(file, JSON.stringify(tok));
}

/** Builds every seed under `root` (created if needed). */
export function buildSeeds(root: string, opts: { checkpoint: boolean } = { checkpoint: true }): Seed[] {
  fs.mkdirSync(root, { recursive: true });
  const seeds: Seed[] = [];

  const gpt2 = path.join(root, 'gpt2-f32');
  fs.mkdirSync(gpt2, { recursive: true });
  const g = presetConfig('tiny', { vocabSize: 320 });
  writeTokenizer(gpt2, g.vocabSize);
  fs.writeFileSync(path.join(gpt2, 'config.json'), JSON.stringify(toHfConfig(g), null, 2));
  const gw = randomWeights(g);
  saveWeights(path.join(gpt2, 'model.safetensors'), g, (n) => gw.get(n));
  seeds.push({
    name: 'gpt2-f32',
    dir: gpt2,
    kind: 'model',
    targets: [
      { file: 'model.safetensors', weight: 4 },
      { file: 'config.json', weight: 3 },
      { file: 'tokenizer.json', weight: 3 },
    ],
  });

  const llama = path.join(root, 'llama-f16-sharded');
  fs.mkdirSync(llama, { recursive: true });
  const l = presetConfig('tiny-llama', { vocabSize: 320 });
  writeTokenizer(llama, l.vocabSize);
  useSplitPreTokenizer(path.join(llama, 'tokenizer.json'));
  fs.writeFileSync(
    path.join(llama, 'tokenizer_config.json'),
    JSON.stringify({ eos_token: '<|endoftext|>', add_bos_token: false }),
  );
  fs.writeFileSync(path.join(llama, 'config.json'), JSON.stringify(toHfConfig(l), null, 2));
  const lw = randomWeights(l);
  const tensors = exportTensors(allParamSpecs(l), (n) => lw.get(n));
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((ts, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(llama, file), ts, { dtype: 'F16', metadata: { format: 'pt' } });
    for (const t of ts) weightMap[t.name] = file;
  });
  fs.writeFileSync(
    path.join(llama, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2),
  );
  seeds.push({
    name: 'llama-f16-sharded',
    dir: llama,
    kind: 'model',
    targets: [
      { file: 'model-00001-of-00002.safetensors', weight: 2 },
      { file: 'model-00002-of-00002.safetensors', weight: 1 },
      { file: 'model.safetensors.index.json', weight: 2 },
      { file: 'config.json', weight: 2 },
      { file: 'tokenizer.json', weight: 1 },
      { file: 'tokenizer_config.json', weight: 1 },
    ],
  });

  if (opts.checkpoint) {
    const data = path.join(root, 'corpus.txt');
    fs.writeFileSync(data, `${text(2)}\n\n${text(3)}`);
    const ckpt = path.join(root, 'checkpoint');
    train(
      { data, out: ckpt, preset: 'tiny', steps: 2, batchSize: 2, seqLen: 16, evalEvery: 0, vocabSize: 300 },
      { resume: false },
      {},
    );
    seeds.push({
      name: 'checkpoint',
      dir: ckpt,
      kind: 'checkpoint',
      targets: [
        { file: 'train_state/state.json', weight: 4 },
        { file: 'train_state/optimizer.safetensors', weight: 2 },
        { file: 'config.json', weight: 1 },
        { file: 'model.safetensors', weight: 1 },
      ],
    });
  }
  return seeds;
}
