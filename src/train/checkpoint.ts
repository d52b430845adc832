/**
 * Checkpoints = model directories (ARCHITECTURE.md §5) plus train_state/:
 *
 *   config.json            HF config + "recycle"
 *   model.safetensors      every parameter under its HF name (GPT-2 Conv1D layout restored)
 *   tokenizer.json         (+ tokenizer_config.json when the tokenizer came with one)
 *   train_state/state.json       step, training options, data-sampler state (its RNG included), optimizer step
 *   train_state/optimizer.safetensors   AdamW moments "adamw.m", "adamw.v" over the trainable parameters
 *
 * The whole directory is replaced atomically (io/atomic.ts): the new checkpoint is written next to it and swapped
 * in only when complete; a crash during the swap is completed or undone by {@link recoverCheckpoint} before the
 * directory is read or written again, so it always holds the previous or the new checkpoint. Files of the directory
 * that are not part of the checkpoint (the training log, plots) are carried over. train_state/state.json is checked
 * for consistency on reading (steps, sampler and options agree), not only for shape.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { SamplerState } from '../data/dataset.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { readJsonFile } from '../io/files.js';
import { isDiskFull, recoverReplacedDir, replaceDirAtomic, SWAP_MARKER } from '../io/atomic.js';
import { toHfConfig, type ModelConfig } from '../model/config.js';
import { saveWeights } from '../io/model-dir.js';
import { moduleConfigJson, saveModuleWeights, type BaseRef, type ModuleDtype } from '../io/module-dir.js';
import type { AdamWState } from '../nn/optim.js';
import { LATER_OPTIONS, MAX_THREADS, validateOptions, type TrainOptions } from './options.js';
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
/** Counts: integers that a double holds exactly (1e300 would parse, then break every comparison). */
const count = (min: number): z.ZodNumber => z.number().int().min(min).max(Number.MAX_SAFE_INTEGER);
const stateSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  step: count(0),
  options: z.record(z.string(), z.unknown()),
  sampler: z.object({
    kind: z.literal('random-windows'),
    batchSize: count(1),
    seqLen: count(1),
    tokens: count(0),
    step: count(0),
    rng: z.object({ algo: z.literal('xoshiro128**'), s: z.tuple([u32, u32, u32, u32]) }),
  }),
  optimizer: z.object({ step: count(0), params: count(0) }),
  trainable: z.enum(['all', 'module']),
  data: z.object({ train_tokens: count(0), val_tokens: count(0) }),
  runtime: z.object({ backend: z.string(), threads: z.number().int().min(1).max(MAX_THREADS) }),
});

export interface CheckpointContent {
  config: ModelConfig;
  params: TrainParams;
  /** File name → text (tokenizer.json, tokenizer_config.json). */
  tokenizerFiles: Record<string, string>;
  state: Omit<TrainStateJson, 'format' | 'version' | 'optimizer'>;
  optimizer: AdamWState;
  /**
   * Module-only checkpoint (frozen base): config.json refers to the base, model.safetensors holds recycle.* in the
   * base's dtype, and train_state/module.safetensors the float32 values the optimizer works on (exact resume).
   */
  module?: { base: BaseRef; dtype: ModuleDtype };
}

export const MODULE_MASTER_FILE = 'module.safetensors';

const CHECKPOINT_ENTRIES = new Set([
  'config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  STATE_DIR,
  SWAP_MARKER, // the staging folder's own marker; never carried from one checkpoint into the next
]);

/** Carry the files of `from` that are not checkpoint entries into `to` (hard links; copies where links fail). */
function carryOver(from: string, to: string): void {
  if (!fs.existsSync(from)) return;
  for (const ent of fs.readdirSync(from, { withFileTypes: true })) {
    if (CHECKPOINT_ENTRIES.has(ent.name) || !ent.isFile()) continue;
    const src = path.join(from, ent.name),
      dst = path.join(to, ent.name);
    try {
      fs.linkSync(src, dst);
    } catch {
      fs.copyFileSync(src, dst);
    }
  }
}

/** The step of the checkpoint in `dir`, or null when there is none (or its state cannot be read). */
function savedStep(dir: string): number | null {
  try {
    const json = readJsonFile(path.join(dir, STATE_DIR, STATE_FILE));
    const step = typeof json === 'object' && json !== null && !Array.isArray(json) ? json.step : undefined;
    return typeof step === 'number' ? step : null;
  } catch {
    return null;
  }
}

/**
 * Write a checkpoint into `dir`, atomically replacing the previous one. A failure (a full disk above all) leaves the
 * previous checkpoint as it was and says which file of the checkpoint was being written.
 */
export function saveCheckpoint(dir: string, c: CheckpointContent): void {
  const bad = c.params.firstNonFinite();
  if (bad >= 0)
    throw new Error(
      `checkpoint ${dir}: parameter value ${bad} is not finite; refusing to overwrite the last good checkpoint`,
    );
  let writing = `${dir} (its staging folder next to it)`;
  const stage = (tmp: string, rel: string): string => {
    writing = path.join(dir, rel);
    return path.join(tmp, rel);
  };
  try {
    replaceDirAtomic(dir, (tmp) => {
      const n = c.params.store.size;
      if (c.module) {
        fs.writeFileSync(stage(tmp, 'config.json'), moduleConfigJson(c.config, c.module.base));
        saveModuleWeights(stage(tmp, 'model.safetensors'), c.config, (n) => c.params.data(n), c.module.dtype);
      } else {
        fs.writeFileSync(stage(tmp, 'config.json'), `${JSON.stringify(toHfConfig(c.config), null, 2)}\n`);
        saveWeights(stage(tmp, 'model.safetensors'), c.config, (n) => c.params.data(n));
      }
      for (const [name, text] of Object.entries(c.tokenizerFiles)) fs.writeFileSync(stage(tmp, name), text);
      fs.mkdirSync(stage(tmp, STATE_DIR));
      if (c.module) {
        writeSafetensors(stage(tmp, path.join(STATE_DIR, MODULE_MASTER_FILE)), [
          { name: 'module.params', shape: [n], data: c.params.store.data },
        ]);
      }
      writeSafetensors(stage(tmp, path.join(STATE_DIR, OPTIMIZER_FILE)), [
        { name: 'adamw.m', shape: [n], data: c.optimizer.m },
        { name: 'adamw.v', shape: [n], data: c.optimizer.v },
      ]);
      const json: TrainStateJson = {
        format: FORMAT,
        version: 1,
        ...c.state,
        optimizer: { step: c.optimizer.step, params: n },
      };
      fs.writeFileSync(stage(tmp, path.join(STATE_DIR, STATE_FILE)), `${JSON.stringify(json, null, 2)}\n`);
      writing = `the files carried over from ${dir}`;
      carryOver(dir, tmp);
      writing = `${dir} (swapping the new checkpoint in)`;
    });
  } catch (err) {
    const prev = savedStep(dir);
    const kept =
      prev === null ? `${dir} holds no checkpoint yet` : `the last good checkpoint (step ${prev}) in ${dir} is intact`;
    const msg = (err as Error).message.replace(/\s*\n\s*/g, ' ');
    if (isDiskFull(err)) {
      throw new Error(
        `cannot write checkpoint ${dir}: the disk is full (no space left on device) ` +
          `while writing ${writing}; ${kept}; free some space, then continue with --resume`,
        { cause: err },
      );
    }
    throw new Error(`cannot write checkpoint ${dir}: ${msg} (while writing ${writing}); ${kept}`, { cause: err });
  }
}

/**
 * Completes or undoes a checkpoint swap of `dir` that a crash interrupted (io/atomic.ts), so that `dir` holds the
 * last complete checkpoint; folders next to `dir` that this program did not make are left alone.
 */
export function recoverCheckpoint(dir: string): void {
  recoverReplacedDir(dir);
}

/** True when `dir` holds a training checkpoint (after repairing an interrupted swap). */
export function hasCheckpoint(dir: string): boolean {
  recoverCheckpoint(dir);
  return fs.existsSync(path.join(dir, STATE_DIR, STATE_FILE));
}

/** Read and validate train_state/state.json; errors name the file and the field. */
export function readTrainState(dir: string): TrainStateJson {
  const file = path.join(dir, STATE_DIR, STATE_FILE);
  if (!fs.existsSync(file)) throw new Error(`--resume: ${dir} holds no checkpoint (${file} not found)`);
  const r = stateSchema.safeParse(readJsonFile(file, 'training state'));
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`${file}: field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  const options = validateOptions({ ...LATER_OPTIONS, ...r.data.options }, `${file} options`);
  const state = { ...r.data, options } as TrainStateJson;
  checkConsistency(state, file);
  return state;
}

/**
 * The fields of a train state that must agree with each other: a hand-edited or mixed-up state would otherwise
 * resume silently into a different run (or "finish" a billion steps without training one).
 */
function checkConsistency(st: TrainStateJson, file: string): void {
  const bad = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  const o = st.options,
    sp = st.sampler;
  if (o.seqLen === null || o.warmup === null || o.minLr === null) {
    const key = o.seqLen === null ? 'seqLen' : o.warmup === null ? 'warmup' : 'minLr';
    bad(`field "options.${key}" is null; a checkpoint records the value the run used`);
  }
  if (st.step > o.steps) bad(`field "step" is ${st.step}, more than options.steps ${o.steps}`);
  if (st.optimizer.step !== st.step) {
    bad(`field "optimizer.step" is ${st.optimizer.step}, field "step" is ${st.step} (they must agree)`);
  }
  if (sp.step !== st.step * o.gradAccum) {
    bad(`field "sampler.step" is ${sp.step}, expected step × options.gradAccum = ${st.step * o.gradAccum}`);
  }
  if (sp.batchSize !== o.batchSize) {
    bad(`field "options.batchSize" is ${o.batchSize}, field "sampler.batchSize" is ${sp.batchSize}`);
  }
  if (sp.seqLen !== o.seqLen) bad(`field "options.seqLen" is ${o.seqLen}, field "sampler.seqLen" is ${sp.seqLen}`);
  if (sp.tokens !== st.data.train_tokens) {
    bad(`field "sampler.tokens" is ${sp.tokens}, field "data.train_tokens" is ${st.data.train_tokens}`);
  }
  if (sp.tokens < sp.seqLen + 2) {
    bad(`field "sampler.tokens" is ${sp.tokens}, fewer than sampler.seqLen + 2 = ${sp.seqLen + 2}`);
  }
  if (sp.rng.s.every((w) => w === 0)) bad('field "sampler.rng.s" is all zeros (not a valid xoshiro128** state)');
  const trainable = o.freezeBase ? 'module' : 'all';
  if (st.trainable !== trainable) bad(`field "trainable" is "${st.trainable}", options.freezeBase is ${o.freezeBase}`);
  if (o.threads !== null && st.runtime.threads !== o.threads) {
    bad(`field "runtime.threads" is ${st.runtime.threads}, options.threads is ${o.threads}`);
  }
}

/** The AdamW moments of a checkpoint, checked against the number of trainable parameters. */
export function readOptimizerState(dir: string, state: TrainStateJson, params: number): AdamWState {
  const file = path.join(dir, STATE_DIR, OPTIMIZER_FILE);
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (the checkpoint is incomplete)`);
  if (state.optimizer.params !== params) {
    throw new Error(
      `${path.join(dir, STATE_DIR, STATE_FILE)}: field "optimizer.params" is ${state.optimizer.params}, ` +
        `the model has ${params} trainable parameters`,
    );
  }
  const reader = new SafetensorsReader(file);
  try {
    // Shapes from the header first: no moment is read before it is known to be the right size.
    for (const name of ['adamw.m', 'adamw.v']) {
      if (!reader.has(name)) throw new Error(`${file}: tensor "${name}" is missing`);
      const shape = reader.info(name).shape;
      if (shape.length !== 1 || shape[0] !== params) {
        throw new Error(
          `${file}: tensor "${name}" has shape [${shape.join(', ')}], the model has ${params} trainable parameters`,
        );
      }
    }
    const get = (name: string): Float32Array => {
      const data = reader.get(name).data;
      for (let i = 0; i < data.length; i++)
        if (!Number.isFinite(data[i]!))
          throw new Error(`${file}: tensor "${name}" holds a non-finite value at index ${i}`);
      return data;
    };
    return { step: state.optimizer.step, m: get('adamw.m'), v: get('adamw.v') };
  } finally {
    reader.close();
  }
}

/** The float32 module values of a module-only checkpoint (train_state/module.safetensors), checked for size. */
export function readModuleMaster(dir: string, params: number): Float32Array {
  const file = path.join(dir, STATE_DIR, MODULE_MASTER_FILE);
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (the module-only checkpoint is incomplete)`);
  const reader = new SafetensorsReader(file);
  try {
    if (!reader.has('module.params')) throw new Error(`${file}: tensor "module.params" is missing`);
    const shape = reader.info('module.params').shape;
    if (shape.length !== 1 || shape[0] !== params)
      throw new Error(
        `${file}: tensor "module.params" has shape [${shape.join(', ')}], the module has ${params} values`,
      );
    const data = reader.get('module.params').data;
    for (let i = 0; i < data.length; i++)
      if (!Number.isFinite(data[i]!))
        throw new Error(`${file}: tensor "module.params" holds a non-finite value at ${i}`);
    return data;
  } finally {
    reader.close();
  }
}
