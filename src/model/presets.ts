/**
 * Named model shapes for from-scratch training and speed work. Vocabulary sizes of trained presets follow the
 * tokenizer (set at training time); gpt2-small is the real GPT-2 124M shape and llama-1b the TinyLlama-1.1B shape,
 * for benchmarks.
 */
import { defaultRecycleLayers, validateConfig, type Arch, type ModelConfig } from './config.js';

interface PresetShape {
  arch: Arch;
  hidden: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number;
  intermediate?: number;
  maxPositions: number;
  vocabSize: number;
  recycleLayers?: number;
  /** Default: tied (the head is the embedding). */
  tieEmbeddings?: boolean;
  /** Default: 1e-5 for GPT-2, 1e-6 for Llama. */
  normEps?: number;
}

const SHAPES: Record<string, PresetShape> = {
  /** For tests: trains in seconds. */
  tiny: { arch: 'gpt2', hidden: 64, nLayers: 2, nHeads: 4, maxPositions: 64, vocabSize: 512, recycleLayers: 1 },
  /** Llama-style tiny, for tests. */
  'tiny-llama': {
    arch: 'llama',
    hidden: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    intermediate: 172,
    maxPositions: 64,
    vocabSize: 512,
    recycleLayers: 1,
  },
  /**
   * The shipped-model size class: ≈ 11M parameters with a 4096 vocabulary (base ≈ 8.8M, 2-block module ≈ 2.7M),
   * sized to train for a few epochs of Brown + nlp-corpus in about two hours on two cores.
   */
  small: { arch: 'gpt2', hidden: 320, nLayers: 6, nHeads: 5, maxPositions: 256, vocabSize: 4096, recycleLayers: 2 },
  /** GPT-2 124M shape (12 layers, 768 wide, 50257 vocab) with a 1-block module (≈ +6%): speed work. */
  'gpt2-small': {
    arch: 'gpt2',
    hidden: 768,
    nLayers: 12,
    nHeads: 12,
    maxPositions: 1024,
    vocabSize: 50257,
    recycleLayers: 1,
  },
  /**
   * TinyLlama-1.1B's shape (22 layers, 2048 wide, 32 heads, 4 KV heads, 5632 MLP, 32000 vocab, untied head, 2048
   * context) with a 1-block module (≈ +4.6%): speed and memory at the size the paper used (1.3B). ≈ 1.15B
   * parameters: 4.6 GB as f32, 1.2 GB as int8 (q8_0).
   */
  'llama-1b': {
    arch: 'llama',
    hidden: 2048,
    nLayers: 22,
    nHeads: 32,
    nKvHeads: 4,
    intermediate: 5632,
    maxPositions: 2048,
    vocabSize: 32000,
    recycleLayers: 1,
    tieEmbeddings: false,
    normEps: 1e-5,
  },
};

export function presetNames(): string[] {
  return Object.keys(SHAPES);
}

/** The config of a preset; `vocabSize` overrides the preset's (set from the tokenizer). */
export function presetConfig(
  name: string,
  overrides: { vocabSize?: number; eosTokenId?: number | null } = {},
): ModelConfig {
  const p = SHAPES[name];
  if (!p) throw new Error(`unknown preset "${name}" (known: ${presetNames().join(', ')})`);
  const vocabSize = overrides.vocabSize ?? p.vocabSize;
  const cfg: ModelConfig = {
    arch: p.arch,
    vocabSize,
    hidden: p.hidden,
    nLayers: p.nLayers,
    nHeads: p.nHeads,
    nKvHeads: p.nKvHeads ?? p.nHeads,
    headDim: p.hidden / p.nHeads,
    intermediate: p.intermediate ?? 4 * p.hidden,
    maxPositions: p.maxPositions,
    normEps: p.normEps ?? (p.arch === 'gpt2' ? 1e-5 : 1e-6),
    ropeTheta: 10000,
    tieEmbeddings: p.tieEmbeddings ?? true,
    bosTokenId: null,
    eosTokenId: overrides.eosTokenId ?? null,
    recycle: { numLayers: p.recycleLayers ?? defaultRecycleLayers(p.nLayers), lossWeight: 1 },
  };
  validateConfig(cfg, `preset ${name}`);
  return cfg;
}
