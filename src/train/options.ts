/**
 * Training options: the user's choices (CLI flags or a caller's object), their defaults, validation with errors
 * naming the option and the value, and the rules for --resume (the checkpoint's options win; only a few may
 * change when continuing).
 */

import { defaultDepthWeights, MAX_RECYCLE_DEPTH } from '../model/module-chain.js';

export interface TrainOptions {
  /** Corpus SPEC: a text file, a folder of .txt files, `brown` or `nlp-corpus`. */
  data: string;
  /** Model directory written as the checkpoint. */
  out: string;
  /** Model shape from a preset (default "tiny" when neither config nor base is given). */
  preset: string | null;
  /** An HF-style config.json for the model shape. */
  config: string | null;
  /** Start from this HF GPT-2/Llama model directory (a module is added when it has none). */
  base: string | null;
  /** Train only recycle.* (requires base). */
  freezeBase: boolean;
  /**
   * Frozen base: its hidden states over fixed windows of the training split, computed once into this file and read
   * back every step (train/hidden-cache.ts); null: the base runs for every batch.
   */
  cacheHidden: string | null;
  /** "gpt2", a directory/tokenizer.json, or null: the base's tokenizer, else a new byte-level BPE. */
  tokenizer: string | null;
  /** Vocabulary of the trained BPE (null: the preset's / config's vocab_size). */
  vocabSize: number | null;
  /** N_r when a module is added to a base (null: ceil(L/4)). */
  recycleLayers: number | null;
  steps: number;
  /**
   * Length of the learning-rate schedule (warm-up + cosine) in steps (null: steps). Fixed when a run starts and kept
   * by --resume, so a resumed run continues the same schedule; steps past its end run at the floor minLr. A resume
   * with `extendSchedule` sets it to the new steps (the cosine restretched over the longer run).
   */
  scheduleSteps: number | null;
  batchSize: number;
  /** Tokens per sequence (null: min(context, 256)). */
  seqLen: number | null;
  gradAccum: number;
  lr: number;
  /** Cosine floor (null: lr/10). */
  minLr: number | null;
  /** Linear warm-up steps (null: min(100, steps/10)). */
  warmup: number | null;
  weightDecay: number;
  gradClip: number;
  /** λ of the recycle loss (null: the config's loss_weight). */
  lambda: number | null;
  /** k of the k-step recycle loss: the module unrolled on its own states over k depths (model/module-chain.ts). */
  recycleDepth: number;
  /** w_1..w_k of the depths (null: 1, 1/2, 1/4, …). */
  recycleDepthWeights: number[] | null;
  /**
   * α of distilling the module toward the base: each depth's target is (1 − α)·onehot + α·the base's distribution
   * for the same token (model/module-chain.ts); 0: the one-hot targets alone (the paper).
   */
  recycleDistill: number;
  /**
   * β of the reverse KL(module ‖ base) added to each depth's recycle loss (nn.crossEntropyDistill): mode-seeking,
   * so the module's samples fall where the base's mass is (the lossy recycle mode); 0: none.
   */
  recycleReverseKl: number;
  /** Evaluate both heads every N steps (0: never, except at the end). */
  evalEvery: number;
  evalBatches: number;
  /** Write a checkpoint every N steps (and at the end). */
  ckptEvery: number;
  /** Also write one when N minutes have passed since the last (null: by steps only). */
  ckptMinutes: number | null;
  /** Evaluate before step 1 too (default only at evalEvery steps and the end). */
  evalFirst: boolean;
  seed: number;
  /** Kernel threads (null: the backend's default). */
  threads: number | null;
}

export const DEFAULT_TRAIN_OPTIONS: Omit<TrainOptions, 'data' | 'out'> = {
  preset: null,
  config: null,
  base: null,
  freezeBase: false,
  cacheHidden: null,
  tokenizer: null,
  vocabSize: null,
  recycleLayers: null,
  steps: 1000,
  scheduleSteps: null,
  batchSize: 8,
  seqLen: null,
  gradAccum: 1,
  lr: 1e-3,
  minLr: null,
  warmup: null,
  weightDecay: 0.1,
  gradClip: 1.0,
  lambda: null,
  recycleDepth: 1,
  recycleDepthWeights: null,
  recycleDistill: 0,
  recycleReverseKl: 0,
  evalEvery: 100,
  evalBatches: 20,
  ckptEvery: 200,
  ckptMinutes: null,
  evalFirst: false,
  seed: 1337,
  threads: null,
};

/** Options that may differ from the checkpoint's when resuming. */
export const RESUME_OVERRIDABLE: readonly (keyof TrainOptions)[] = [
  'steps',
  'evalEvery',
  'evalBatches',
  'ckptEvery',
  'ckptMinutes',
  'evalFirst',
  'threads',
];

/** Options added after checkpoints were first written: an older state.json without them gets these values. */
export const LATER_OPTIONS: Partial<TrainOptions> = {
  ckptMinutes: null,
  evalFirst: false,
  recycleDepth: 1,
  recycleDepthWeights: null,
  recycleDistill: 0,
  recycleReverseKl: 0,
  cacheHidden: null,
  // checkpoints from before scheduleSteps ran a schedule over their steps; resume reads null as that
  scheduleSteps: null,
};

/**
 * Upper bounds: far beyond any run this CPU trainer can do, low enough that a typo or a hand-edited checkpoint
 * (batchSize 1e6, steps 1e12) is refused with the option's name instead of exhausting memory or running for ever.
 */
export const MAX_THREADS = 256;
export const LIMITS = {
  steps: 1_000_000_000,
  batchSize: 65_536,
  seqLen: 1 << 20,
  gradAccum: 65_536,
  evalEvery: 1_000_000_000,
  evalBatches: 1_000_000,
  ckptEvery: 1_000_000_000,
  vocabSize: 1 << 24,
  recycleLayers: 1024,
  threads: MAX_THREADS,
} as const;

type Check = (v: unknown) => boolean;
const isInt =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const inRange = (min: number, max: number): string => `an integer in [${min}, ${max}]`;
const isNum =
  (min: number, open = false): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && (open ? v > min : v >= min);
const isStr: Check = (v) => typeof v === 'string' && v.length > 0;
const orNull =
  (c: Check): Check =>
  (v) =>
    v === null || c(v);

const RULES: Record<keyof TrainOptions, [Check, string]> = {
  data: [isStr, 'a non-empty string'],
  out: [isStr, 'a non-empty string'],
  preset: [orNull(isStr), 'a preset name'],
  config: [orNull(isStr), 'a file path'],
  base: [orNull(isStr), 'a directory'],
  freezeBase: [(v) => typeof v === 'boolean', 'true or false'],
  cacheHidden: [orNull(isStr), 'a file path'],
  tokenizer: [orNull(isStr), '"gpt2" or a directory'],
  vocabSize: [orNull(isInt(257, LIMITS.vocabSize)), `${inRange(257, LIMITS.vocabSize)} (256 bytes + EOS at least)`],
  recycleLayers: [orNull(isInt(1, LIMITS.recycleLayers)), inRange(1, LIMITS.recycleLayers)],
  steps: [isInt(1, LIMITS.steps), inRange(1, LIMITS.steps)],
  scheduleSteps: [orNull(isInt(1, LIMITS.steps)), inRange(1, LIMITS.steps)],
  batchSize: [isInt(1, LIMITS.batchSize), inRange(1, LIMITS.batchSize)],
  seqLen: [orNull(isInt(2, LIMITS.seqLen)), inRange(2, LIMITS.seqLen)],
  gradAccum: [isInt(1, LIMITS.gradAccum), inRange(1, LIMITS.gradAccum)],
  lr: [isNum(0, true), 'a number > 0'],
  minLr: [orNull(isNum(0)), 'a number >= 0'],
  warmup: [orNull(isInt(0)), 'an integer >= 0'],
  weightDecay: [isNum(0), 'a number >= 0'],
  gradClip: [isNum(0, true), 'a number > 0'],
  lambda: [orNull(isNum(0)), 'a number >= 0'],
  recycleDepth: [isInt(1, MAX_RECYCLE_DEPTH), inRange(1, MAX_RECYCLE_DEPTH)],
  recycleDepthWeights: [
    orNull((v) => Array.isArray(v) && v.length >= 1 && v.every((w) => isNum(0)(w))),
    'a list of numbers >= 0, one per depth',
  ],
  recycleDistill: [(v) => typeof v === 'number' && v >= 0 && v <= 1, 'a number in [0, 1]'],
  recycleReverseKl: [isNum(0), 'a number >= 0'],
  evalEvery: [isInt(0, LIMITS.evalEvery), inRange(0, LIMITS.evalEvery)],
  evalBatches: [isInt(1, LIMITS.evalBatches), inRange(1, LIMITS.evalBatches)],
  ckptEvery: [isInt(1, LIMITS.ckptEvery), inRange(1, LIMITS.ckptEvery)],
  ckptMinutes: [orNull(isNum(0, true)), 'a number of minutes > 0'],
  evalFirst: [(v) => typeof v === 'boolean', 'true or false'],
  seed: [isInt(0), 'an integer >= 0'],
  threads: [orNull(isInt(1, LIMITS.threads)), inRange(1, LIMITS.threads)],
};

/** Throws naming the first option (as `where`.name) whose value is invalid or unknown. */
export function validateOptions(o: Record<string, unknown>, where: string): TrainOptions {
  for (const key of Object.keys(o)) {
    if (!(key in RULES)) throw new Error(`${where}: unknown training option "${key}"`);
  }
  for (const [key, [ok, want]] of Object.entries(RULES)) {
    if (!(key in o)) throw new Error(`${where}: training option "${key}" is missing`);
    if (!ok(o[key]))
      throw new Error(`${where}: training option "${key}" must be ${want}, got ${JSON.stringify(o[key])}`);
  }
  const opts = o as unknown as TrainOptions;
  const shapes = [opts.preset, opts.config, opts.base].filter((v) => v !== null);
  if (shapes.length > 1)
    throw new Error(
      `${where}: give only one of preset (${opts.preset}), config (${opts.config}) and base (${opts.base})`,
    );
  if (opts.freezeBase && opts.base === null) throw new Error(`${where}: freezeBase needs a base model (--base DIR)`);
  if (opts.cacheHidden !== null && !opts.freezeBase)
    throw new Error(
      `${where}: cacheHidden (${opts.cacheHidden}) caches a frozen base's states: it needs --freeze-base`,
    );
  if (opts.recycleDepthWeights !== null && opts.recycleDepthWeights.length !== opts.recycleDepth)
    throw new Error(
      `${where}: recycleDepthWeights has ${opts.recycleDepthWeights.length} weights ` +
        `(${opts.recycleDepthWeights.join(',')}), recycleDepth is ${opts.recycleDepth}: give one weight per depth`,
    );
  if (opts.minLr !== null && opts.minLr > opts.lr)
    throw new Error(`${where}: minLr ${opts.minLr} is above lr ${opts.lr}`);
  if (opts.warmup !== null && opts.warmup > (opts.scheduleSteps ?? opts.steps))
    throw new Error(
      `${where}: warmup ${opts.warmup} is longer than the schedule's ${opts.scheduleSteps ?? opts.steps} steps`,
    );
  return opts;
}

/** Defaults + the given options, validated. */
export function resolveOptions(given: Partial<TrainOptions> & Pick<TrainOptions, 'data' | 'out'>): TrainOptions {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  return validateOptions({ ...DEFAULT_TRAIN_OPTIONS, ...defined }, 'train');
}

/**
 * The options of a resumed run: the checkpoint's, with the given overridable ones applied. Any other given option
 * that differs from the checkpoint is an error (it would silently change the run being continued).
 */
export function mergeResumeOptions(saved: TrainOptions, given: Partial<TrainOptions>, where: string): TrainOptions {
  const merged: TrainOptions = { ...saved, out: given.out ?? saved.out };
  for (const [key, value] of Object.entries(given) as [keyof TrainOptions, unknown][]) {
    if (value === undefined || key === 'out') continue;
    if (RESUME_OVERRIDABLE.includes(key)) (merged as unknown as Record<string, unknown>)[key] = value;
    else if (JSON.stringify(value) !== JSON.stringify(saved[key])) {
      throw new Error(
        `--resume: option ${key} = ${JSON.stringify(value)} ` +
          `differs from the checkpoint's ${JSON.stringify(saved[key])} (${where}); ` +
          `only ${RESUME_OVERRIDABLE.join(', ')} may change when resuming`,
      );
    }
  }
  return validateOptions(merged as unknown as Record<string, unknown>, where);
}

/** The k-step recycle loss of a run: depth, per-depth weights after defaults, distillation α, reverse-KL β. */
export function chainOf(o: TrainOptions): { depth: number; weights: number[]; distill: number; reverseKl: number } {
  return {
    depth: o.recycleDepth,
    weights: o.recycleDepthWeights ?? defaultDepthWeights(o.recycleDepth),
    distill: o.recycleDistill,
    reverseKl: o.recycleReverseKl,
  };
}

/** Schedule length, warm-up steps and the cosine floor after defaults. */
export function scheduleOf(o: TrainOptions): { total: number; warmup: number; minLr: number } {
  const total = o.scheduleSteps ?? o.steps;
  return { total, warmup: o.warmup ?? Math.min(100, Math.floor(total / 10)), minLr: o.minLr ?? o.lr / 10 };
}
