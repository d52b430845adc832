/**
 * What a fresh training run starts from: the tokenizer (a new byte-level BPE trained on the training split,
 * GPT-2's, a given one, or the base's), the model config (preset, config file, or an imported HF base with a
 * module added) and the initial parameters; and the tokenized train/val streams.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Corpus } from '../data/corpus.js';
import { tokenizeDocuments } from '../data/dataset.js';
import { defaultRecycleLayers, validateConfig, type ModelConfig } from '../model/config.js';
import { initParams } from '../model/init.js';
import { weightToF32 } from '../model/convert.js';
import { loadModelDir, readConfig } from '../io/model-dir.js';
import { baseParamSpecs, countParams, moduleParamSpecs } from '../model/names.js';
import type { Allocator, KernelWeightDtype } from '../kernels/backend.js';
import type { Weights } from '../model/weights.js';
import { presetConfig } from '../model/presets.js';
import {
  bpeFromTrained,
  gpt2Tokenizer,
  loadTokenizer,
  toTokenizerJson,
  trainBpe,
  type Tokenizer,
} from '../tokenizer/index.js';
import type { TrainOptions } from './options.js';
import type { TrainParams } from './params.js';

/** A tokenizer and the files that describe it in a model directory (tokenizer.json, maybe tokenizer_config.json). */
export interface TokenizerChoice {
  tokenizer: Tokenizer;
  files: Record<string, string>;
  /** How it was chosen, for the start-up message. */
  source: string;
}

const GPT2_MARKER = `${JSON.stringify({ type: 'gpt2' })}\n`;

/** The tokenizer of a directory (or tokenizer.json) together with its files, to copy into checkpoints. */
export function tokenizerFromDir(dirOrFile: string): TokenizerChoice {
  const tokenizer = loadTokenizer(dirOrFile);
  const isFile = fs.statSync(dirOrFile).isFile();
  const dir = isFile ? path.dirname(dirOrFile) : dirOrFile;
  const tokFile = isFile ? dirOrFile : path.join(dir, 'tokenizer.json');
  const files: Record<string, string> = {};
  files['tokenizer.json'] = fs.existsSync(tokFile) ? fs.readFileSync(tokFile, 'utf8') : GPT2_MARKER;
  const cfg = path.join(dir, 'tokenizer_config.json');
  if (fs.existsSync(cfg)) files['tokenizer_config.json'] = fs.readFileSync(cfg, 'utf8');
  return { tokenizer, files, source: dirOrFile };
}

/**
 * `--base` must be a local model directory: a name such as `gpt2` is not one, and nothing is downloaded, so the error
 * says both.
 */
export function checkBaseDir(base: string): void {
  if (fs.existsSync(base) && fs.statSync(base).isDirectory()) return;
  throw new Error(
    `--base ${base}: no such directory. --base takes a local Hugging Face model directory (config.json, ` +
      `model.safetensors, tokenizer files); recyclegpt cannot download weights, so fetch them first ` +
      `(e.g. \`huggingface-cli download ${base} --local-dir models/${path.basename(base)}\`) and give that folder`,
  );
}

/** The tokenizer of a fresh run (see TrainOptions.tokenizer). `defaultVocab`: the BPE size when none is given. */
export function chooseTokenizer(o: TrainOptions, corpus: Corpus, defaultVocab: number): TokenizerChoice {
  if (o.base !== null) checkBaseDir(o.base);
  if (o.tokenizer === 'gpt2')
    return { tokenizer: gpt2Tokenizer(), files: { 'tokenizer.json': GPT2_MARKER }, source: 'GPT-2 BPE' };
  if (o.tokenizer !== null) return tokenizerFromDir(o.tokenizer);
  if (o.base !== null) return tokenizerFromDir(o.base);
  const vocabSize = o.vocabSize ?? defaultVocab;
  const trained = trainBpe(corpus.train, { vocabSize });
  return {
    tokenizer: bpeFromTrained(trained),
    files: { 'tokenizer.json': JSON.stringify(toTokenizerJson(trained)) },
    source: `byte-level BPE trained on the training split (${trained.tokens.length} tokens)`,
  };
}

/** The vocabulary a fresh model would have before the tokenizer is known (the BPE trainer's target). */
export function plannedVocab(o: TrainOptions): number {
  if (o.config !== null) return readConfig(o.config).vocabSize;
  return presetConfig(o.preset ?? 'tiny').vocabSize;
}

/** Bases above this many parameters get a 1-block module by default (a laptop trains it; EAGLE uses one). */
export const LARGE_BASE_PARAMS = 300e6;

/** Default module depth: 1 block for a base above LARGE_BASE_PARAMS, else ceil(L/4) (ARCHITECTURE.md §1.1). */
export function defaultModuleDepth(c: ModelConfig): number {
  return countParams(baseParamSpecs(c)) > LARGE_BASE_PARAMS ? 1 : defaultRecycleLayers(c.nLayers);
}

function withRecycle(c: ModelConfig, o: TrainOptions): ModelConfig {
  const numLayers = o.recycleLayers ?? c.recycle?.numLayers ?? defaultModuleDepth(c);
  const lossWeight = o.lambda ?? c.recycle?.lossWeight ?? 1;
  return { ...c, recycle: { numLayers, lossWeight } };
}

function checkVocab(c: ModelConfig, tok: Tokenizer, where: string): void {
  if (tok.vocabSize > c.vocabSize) {
    throw new Error(`${where}: vocab_size ${c.vocabSize} is smaller than the tokenizer's ${tok.vocabSize} tokens`);
  }
}

export interface InitialModel {
  config: ModelConfig;
  /** Fills the parameters of a TrainParams built for `config`. */
  fill(params: TrainParams): void;
  /** For the start-up message. */
  source: string;
  /** The loaded base (with the new module's initial values), when starting from one. */
  weights?: Weights;
}

/** Config and initial weights of a fresh run (preset, config file, or HF base + module). */
export function initialModel(
  o: TrainOptions,
  tok: Tokenizer,
  frozenLoad: { alloc?: Allocator; dtypes?: readonly KernelWeightDtype[] } = {},
): InitialModel {
  if (o.base !== null) {
    checkBaseDir(o.base);
    const cfgPath = path.join(o.base, 'config.json');
    if (!fs.existsSync(cfgPath)) throw new Error(`--base ${o.base}: no config.json (is this a model directory?)`);
    const config = withRecycle(readConfig(cfgPath), o);
    checkVocab(config, tok, cfgPath);
    // a frozen base is used as loaded (module-only training): the backend's memory and dtypes
    const load = o.freezeBase ? frozenLoad : {};
    const { weights, missing } = loadModelDir(o.base, { config, allowMissingModule: true, ...load });
    const missingSet = new Set(missing);
    initParams(
      moduleParamSpecs(config).filter((s) => missingSet.has(s.name)),
      (n) => weights.get(n),
      config,
      o.seed,
    );
    const source =
      missing.length > 0
        ? `${o.base} + a new ${config.recycle!.numLayers}-block module`
        : `${o.base} (with its module)`;
    // a frozen base keeps its stored dtypes, the module's too: the trainable copy is float32 whatever it was stored as
    return { config, fill: (p) => p.copyFrom((n) => weightToF32(weights.weight(n))), source, weights };
  }
  let config: ModelConfig;
  let source: string;
  if (o.config !== null) {
    config = withRecycle(readConfig(o.config), o);
    checkVocab(config, tok, o.config);
    source = `config ${o.config}`;
  } else {
    const name = o.preset ?? 'tiny';
    config = withRecycle(presetConfig(name, { vocabSize: tok.vocabSize, eosTokenId: tok.eosTokenId }), o);
    source = `preset ${name}`;
  }
  validateConfig(config, source);
  return {
    config,
    fill: (p) => initParams(p.specs, (n) => p.data(n), config, o.seed),
    source: `${source}, random init (seed ${o.seed})`,
  };
}

/** Tokenized streams of both splits (EOS after every document). */
export function tokenizeCorpus(corpus: Corpus, tok: Tokenizer, spec: string): { train: Int32Array; val: Int32Array } {
  if (corpus.train.length === 0 || corpus.val.length === 0) {
    throw new Error(`data spec "${spec}": the ${corpus.train.length === 0 ? 'training' : 'held-out'} split is empty`);
  }
  if (tok.eosTokenId === null) throw new Error(`the tokenizer has no end-of-text token, needed between documents`);
  return { train: tokenizeDocuments(corpus.train, tok), val: tokenizeDocuments(corpus.val, tok) };
}
