/**
 * Checkpoints = model directories (DESIGN.md §3) plus train_state/:
 *
 *   config.json            HF config + "recycle"
 *   model.safetensors      every parameter under its HF name (GPT-2 Conv1D layout restored)
 *   tokenizer.json         (+ tokenizer_config.json when the tokenizer came with one)
 *   train_state/state.json       step, training options, data-sampler state (its RNG included), optimizer step
 *   train_state/optimizer.safetensors   AdamW moments "adamw.m", "adamw.v" over the trainable parameters
 *
 * The whole directory is replaced atomically (io/atomic.ts): the new checkpoint is written next to it and swapped
 * in only when complete, so a crash leaves the previous one. Files of the directory that are not part of the
 * checkpoint (the training log, plots) are carried over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { SamplerState } from '../data/dataset.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { recoverReplacedDir, replaceDirAtomic } from '../io/atomic.js';
import { toHfConfig, type ModelConfig } from '../model/config.js';
import { saveWeights } from '../io/model-dir.js';
import type { AdamWState } from '../nn/optim.js';
import { validateOptions, type TrainOptions } from './options.js';
import type { TrainParams } from './params.js';

export const STATE_DIR = 'train_state';
export const STATE_FILE = 'state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
const FORMAT = 'recyclegpt-train-state';

/** What train_state/state.json holds (the moments live in optimizer.safetensors). */
export interface TrainStateJson {
  format: typeof FORMAT;
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  options: TrainOptions;
  sampler: SamplerState;
  optimizer: { step: number; params: number };
  /** Which parameters train: all, or only recycle.* (frozen base). */
  trainable: 'all' | 'module';
  data: { train_tokens: number; val_tokens: number };
  /** Kernel backend and threads: resuming with the same pair repeats the uninterrupted run bit for bit. */
  runtime: { backend: string; threads: number };
}

const u32 = z.number().int().min(0).max(0xffffffff);
const stateSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  step: z.number().int().min(0),
  options: z.record(z.string(), z.unknown()),
  sampler: z.object({
    kind: z.literal('random-windows'), batchSize: z.number().int().min(1), seqLen: z.number().int().min(1),
    tokens: z.number().int().min(0), step: z.number().int().min(0),
    rng: z.object({ algo: z.literal('xoshiro128**'), s: z.tuple([u32, u32, u32, u32]) }),
  }),
  optimizer: z.object({ step: z.number().int().min(0), params: z.number().int().min(0) }),
  trainable: z.enum(['all', 'module']),
  data: z.object({ train_tokens: z.number().int().min(0), val_tokens: z.number().int().min(0) }),
  runtime: z.object({ backend: z.string(), threads: z.number().int().min(1) }),
});

export interface CheckpointContent {
  config: ModelConfig;
  params: TrainParams;
  /** File name → text (tokenizer.json, tokenizer_config.json). */
  tokenizerFiles: Record<string, string>;
  state: Omit<TrainStateJson, 'format' | 'version' | 'optimizer'>;
  optimizer: AdamWState;
}

const CHECKPOINT_ENTRIES = new Set(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', STATE_DIR]);

/** Carry the files of `from` that are not checkpoint entries into `to` (hard links; copies where links fail). */
function carryOver(from: string, to: string): void {
  if (!fs.existsSync(from)) return;
  for (const ent of fs.readdirSync(from, { withFileTypes: true })) {
    if (CHECKPOINT_ENTRIES.has(ent.name) || !ent.isFile()) continue;
    const src = path.join(from, ent.name), dst = path.join(to, ent.name);
    try {
      fs.linkSync(src, dst);
    } catch {
      fs.copyFileSync(src, dst);
    }
  }
}

/** Write a checkpoint into `dir`, atomically replacing the previous one. */
export function saveCheckpoint(dir: string, c: CheckpointContent): void {
  const bad = c.params.firstNonFinite();
  if (bad >= 0) throw new Error(`checkpoint ${dir}: parameter value ${bad} is not finite; refusing to overwrite the last good checkpoint`);
  replaceDirAtomic(dir, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(toHfConfig(c.config), null, 2)}\n`);
    saveWeights(path.join(tmp, 'model.safetensors'), c.config, (n) => c.params.data(n));
    for (const [name, text] of Object.entries(c.tokenizerFiles)) fs.writeFileSync(path.join(tmp, name), text);
    const stateDir = path.join(tmp, STATE_DIR);
    fs.mkdirSync(stateDir);
    const n = c.params.store.size;
    writeSafetensors(path.join(stateDir, OPTIMIZER_FILE), [
      { name: 'adamw.m', shape: [n], data: c.optimizer.m },
      { name: 'adamw.v', shape: [n], data: c.optimizer.v },
    ]);
    const json: TrainStateJson = { format: FORMAT, version: 1, ...c.state, optimizer: { step: c.optimizer.step, params: n } };
    fs.writeFileSync(path.join(stateDir, STATE_FILE), `${JSON.stringify(json, null, 2)}\n`);
    carryOver(dir, tmp);
  });
}

/** True when `dir` holds a training checkpoint (after repairing an interrupted swap). */
export function hasCheckpoint(dir: string): boolean {
  recoverReplacedDir(dir);
  return fs.existsSync(path.join(dir, STATE_DIR, STATE_FILE));
}

/** Read and validate train_state/state.json; errors name the file and the field. */
export function readTrainState(dir: string): TrainStateJson {
  const file = path.join(dir, STATE_DIR, STATE_FILE);
  if (!fs.existsSync(file)) throw new Error(`--resume: ${dir} holds no checkpoint (${file} not found)`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const r = stateSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`${file}: field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  const options = validateOptions(r.data.options, `${file} options`);
  return { ...r.data, options } as TrainStateJson;
}

/** The AdamW moments of a checkpoint, checked against the number of trainable parameters. */
export function readOptimizerState(dir: string, state: TrainStateJson, params: number): AdamWState {
  const file = path.join(dir, STATE_DIR, OPTIMIZER_FILE);
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (the checkpoint is incomplete)`);
  const { tensors } = readSafetensors(file);
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: tensor "${name}" is missing`);
    if (t.shape.length !== 1 || t.shape[0] !== params) {
      throw new Error(`${file}: tensor "${name}" has shape [${t.shape.join(', ')}], the model has ${params} trainable parameters`);
    }
    for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i]!)) throw new Error(`${file}: tensor "${name}" holds a non-finite value at index ${i}`);
    return t.data;
  };
  if (state.optimizer.params !== params) {
    throw new Error(`${path.join(dir, STATE_DIR, STATE_FILE)}: field "optimizer.params" is ${state.optimizer.params}, the model has ${params} trainable parameters`);
  }
  return { step: state.optimizer.step, m: get('adamw.m'), v: get('adamw.v') };
}
