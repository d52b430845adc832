/**
 * Small random models for decoding tests: a preset shape with a tiny vocabulary and weights scaled up from
 * the N(0, 0.02) init so that distributions are peaked enough for greedy decoding to be meaningful and drafts
 * are right sometimes and wrong sometimes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../../src/kernels/backend.js';
import { createRefBackend } from '../../src/kernels/ref.js';
import { toHfConfig, type ModelConfig } from '../../src/model/config.js';
import { saveWeights } from '../../src/io/model-dir.js';
import { InferenceModel } from '../../src/model/infer.js';
import { initParams } from '../../src/model/init.js';
import { allParamSpecs } from '../../src/model/names.js';
import { presetConfig } from '../../src/model/presets.js';
import { Weights } from '../../src/model/weights.js';
import { trainBpe, writeTokenizerJson } from '../../src/tokenizer/index.js';

/** Text for a small model's tokenizer (writeModelDir): varied enough that a byte-level BPE fills 300 ids. */
export const BPE_TEXT = Array.from({ length: 3000 }, (_, i) => {
  const n = (i * 2654435761) >>> 0;
  return Array.from({ length: 2 + (n % 6) }, (_, j) => String.fromCharCode(97 + ((n >>> (3 * j)) % 26))).join('');
}).join(' ');

export interface RandomModelOptions {
  preset?: string;
  vocabSize?: number;
  seed?: number;
  /** Multiplies every matrix and embedding after init (1 = the training init). */
  scale?: number;
  /** Multiplies the module's e half of W_in and its block matrices on top of `scale` (how far drafts stray). */
  moduleScale?: number;
  withModule?: boolean;
  maxPositions?: number;
  eosTokenId?: number | null;
  backend?: Backend;
}

export function randomModel(o: RandomModelOptions = {}): InferenceModel {
  const base = presetConfig(o.preset ?? 'tiny', { vocabSize: o.vocabSize ?? 12, eosTokenId: o.eosTokenId ?? null });
  const config: ModelConfig = {
    ...base,
    maxPositions: o.maxPositions ?? base.maxPositions,
    recycle: o.withModule === false ? null : base.recycle,
  };
  const specs = allParamSpecs(config);
  const weights = new Weights(specs);
  initParams(specs, (n) => weights.get(n), config, o.seed ?? 1);
  const scale = o.scale ?? 1,
    ms = o.moduleScale ?? 1;
  for (const s of specs) {
    if (s.init !== 'normal' && s.init !== 'residual' && s.init !== 'in_proj') continue;
    const w = weights.get(s.name);
    const isModule = s.name.startsWith('recycle.');
    if (s.init === 'in_proj') {
      const C = config.hidden;
      for (let r = 0; r < C; r++) for (let k = C; k < 2 * C; k++) w[r * 2 * C + k]! *= scale * ms;
      continue;
    }
    const f = isModule ? scale * ms : scale;
    for (let i = 0; i < w.length; i++) w[i]! *= f;
  }
  return new InferenceModel(config, weights, o.backend ?? createRefBackend());
}

/**
 * Write `model` as a model directory (config.json, model.safetensors and, given a training text, a byte-level
 * BPE tokenizer.json whose vocabulary is the model's, with "<|endoftext|>" as the last id and EOS).
 */
export function writeModelDir(dir: string, model: InferenceModel, tokenizerText: string | null): void {
  mkdirSync(dir, { recursive: true });
  const c = model.config;
  if (tokenizerText !== null) {
    const bpe = trainBpe([tokenizerText], { vocabSize: c.vocabSize, minFrequency: 1 });
    if (bpe.tokens.length > c.vocabSize)
      throw new Error(`writeModelDir: the BPE has ${bpe.tokens.length} tokens, the model ${c.vocabSize}`);
    writeTokenizerJson(join(dir, 'tokenizer.json'), bpe);
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(c), null, 2));
  saveWeights(join(dir, 'model.safetensors'), c, (n) => model.weights.get(n));
}
