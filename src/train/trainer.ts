/**
 * The training loop (nanoGPT's train.py in spirit): random windows from the training split, the joint loss of
 * both heads (graph.ts), gradient accumulation, clipping, AdamW with warm-up + cosine decay, held-out evaluation
 * of both heads, a JSONL log, and atomic checkpoints that --resume continues bit-exactly (same thread count).
 *
 * A non-finite loss, gradient norm or parameter stops training with a TrainingDivergedError; nothing is written
 * after the last good checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCorpus } from '../data/corpus.js';
import { BatchSampler } from '../data/dataset.js';
import { createBackend } from '../kernels/index.js';
import type { Backend } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import { TrainGraph } from '../model/graph.js';
import { loadModelDir, readConfig } from '../io/model-dir.js';
import { AdamW, cosineSchedule } from '../nn/optim.js';
import { Tape } from '../nn/tape.js';
import { isDiskFull } from '../io/atomic.js';
import {
  hasCheckpoint,
  readModuleMaster,
  readOptimizerState,
  readTrainState,
  recoverCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
import { evaluateModule, evaluateParams } from './eval.js';
import { CachedWindowSampler, HiddenCache, tokensFingerprint } from './hidden-cache.js';
import { FrozenBase, ModuleGraph } from './module-graph.js';
import {
  baseDtype,
  baseFingerprint,
  checkBase,
  makeBaseRef,
  readBaseRef,
  resolveBase,
  type BaseRef,
  type ModuleDtype,
} from '../io/module-dir.js';
import { LOG_FILE, TrainLog, type EvalRow, type TrainRow } from './log.js';
import { chainOf, mergeResumeOptions, resolveOptions, scheduleOf, type TrainOptions } from './options.js';
import { TrainParams } from './params.js';
import { chooseTokenizer, initialModel, plannedVocab, tokenizeCorpus, tokenizerFromDir } from './setup.js';

/** Options as given by a caller: `out` always; `data` may be left out when resuming. */
export type GivenOptions = Partial<TrainOptions> & { out: string };

export interface StartInfo {
  resumed: boolean;
  startStep: number;
  options: TrainOptions;
  config: ModelConfig;
  trainableParams: number;
  totalParams: number;
  trainTokens: number;
  valTokens: number;
  backend: string;
  threads: number;
  messages: string[];
}

export interface TrainHooks {
  /** Kernel backend (default: a new one for this run, native when the addon is built, else ref). */
  backend?: Backend;
  /** Warnings (e.g. the native addon is missing); the library prints nothing itself. */
  onWarning?(message: string): void;
  onStart?(info: StartInfo): void;
  onStep?(row: TrainRow, totalSteps: number): void;
  onEval?(row: EvalRow): void;
  onCheckpoint?(step: number, dir: string): void;
  /** Test hook: with cacheHidden, run the live base on the cached windows instead of reading the file. */
  liveHidden?: boolean;
  /** Progress of building a hidden-state cache (windows done, total). */
  onCacheProgress?(done: number, total: number): void;
  /** Test hook: make the loss (or a gradient) of this step NaN. */
  injectNaN?: { step: number; where: 'loss' | 'grad' };
}

export interface TrainSummary {
  out: string;
  /** Steps completed (= options.steps on success). */
  step: number;
  lastTrain: TrainRow | null;
  lastEval: EvalRow | null;
}

/** Training hit a non-finite value; `checkpointStep` is the step of the intact checkpoint on disk. */
export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly checkpointStep: number,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

interface Session {
  options: TrainOptions;
  config: ModelConfig;
  params: TrainParams;
  optimizer: AdamW;
  sampler: BatchSampler | CachedWindowSampler;
  train: Int32Array;
  val: Int32Array;
  tokenizerFiles: Record<string, string>;
  step: number;
  messages: string[];
  /** Backend and threads of this process (saved; compared on resume). */
  runtime: { backend: string; threads: number };
  /** Frozen base: it runs in inference mode, only the module is on the tape (module-graph.ts). */
  frozenBase: FrozenBase | null;
  /** Module-only output: the base reference and the dtype the module is written in (null: a full directory). */
  moduleOut: { base: BaseRef; dtype: ModuleDtype } | null;
  /** The frozen base's states read from a file (--cache-hidden) instead of running it per batch. */
  hiddenCache: HiddenCache | null;
}

/** Opens (or builds) the hidden-state cache of a frozen-base run; notes what happened in `messages`. */
function openCache(
  o: TrainOptions,
  baseDir: string,
  train: Int32Array,
  frozen: FrozenBase,
  messages: string[],
  hooks: TrainHooks,
): HiddenCache {
  const t0 = performance.now();
  const { cache, built } = HiddenCache.openOrBuild(
    o.cacheHidden!,
    {
      base: baseFingerprint(baseDir),
      data: tokensFingerprint(train),
      tokens: train.length,
      seq_len: o.seqLen!,
      hidden: frozen.config.hidden,
    },
    train,
    frozen,
    o.batchSize,
    hooks.onCacheProgress,
  );
  const h = cache.header;
  const mb = (h.windows * (h.seq_len - 1) * h.hidden * 2) / 1e6;
  messages.push(
    `hidden states: ${built ? 'built' : 'read from'} ${o.cacheHidden} (${h.windows} windows of ${h.seq_len}, ` +
      `${mb.toFixed(1)} MB f16${built ? `, ${((performance.now() - t0) / 1000).toFixed(1)} s` : ''})`,
  );
  return cache;
}

/** The backend and thread count this run will use (threads are set before training starts). */
function runtimeOf(be: Backend, o: TrainOptions): { backend: string; threads: number } {
  return { backend: be.name, threads: o.threads ?? be.threads() };
}

function startFresh(given: GivenOptions, be: Backend, hooks: TrainHooks): Session {
  if (given.data === undefined) throw new Error('train: --data SPEC is required');
  if (hasCheckpoint(given.out))
    throw new Error(
      `${given.out} already holds a training checkpoint; pass --resume to continue it, or choose another --out`,
    );
  if (fs.existsSync(path.join(given.out, 'config.json')))
    throw new Error(`${given.out} already holds a model (config.json); choose another --out`);
  let o = resolveOptions({ ...given, data: given.data });
  const corpus = loadCorpus(o.data);
  const tok = chooseTokenizer(o, corpus, plannedVocab(o));
  const init = initialModel(o, tok.tokenizer, { alloc: be.alloc, dtypes: be.weightDtypes });
  const config = init.config;
  const sched = scheduleOf(o);
  o = {
    ...o,
    seqLen: o.seqLen ?? Math.min(config.maxPositions, 256),
    scheduleSteps: sched.total,
    warmup: sched.warmup,
    minLr: sched.minLr,
  };
  if (o.seqLen! > config.maxPositions)
    throw new Error(`--seq-len ${o.seqLen} exceeds the model's context length ${config.maxPositions}`);
  const inPlace = o.freezeBase ? init.weights : undefined;
  const params = new TrainParams(config, o.freezeBase, be.alloc, inPlace);
  init.fill(params);
  const { train, val } = tokenizeCorpus(corpus, tok.tokenizer, o.data);
  const optimizer = new AdamW(be, params.store, { weightDecay: o.weightDecay });
  const messages = [`model: ${init.source}`, `tokenizer: ${tok.source}`];
  const frozen = inPlace ? new FrozenBase(config, inPlace, be) : null;
  const hiddenCache = o.cacheHidden !== null && frozen ? openCache(o, o.base!, train, frozen, messages, hooks) : null;
  const sampler = hiddenCache
    ? new CachedWindowSampler(train, o.batchSize, o.seqLen!, o.seed)
    : new BatchSampler(train, { batchSize: o.batchSize, seqLen: o.seqLen!, seed: o.seed });
  // a module trained on a frozen base is written alone, referring to the base (and to its tokenizer, unless another
  // one was chosen)
  const moduleOut =
    o.freezeBase && o.base !== null ? { base: makeBaseRef(o.base, o.out), dtype: baseDtype(o.base) } : null;
  if (moduleOut) messages.push(`output: the module only (${moduleOut.dtype}), referring to the base ${o.base}`);
  return {
    options: o,
    config,
    params,
    optimizer,
    sampler,
    train,
    val,
    tokenizerFiles: moduleOut && o.tokenizer === null ? {} : tok.files,
    step: 0,
    messages,
    runtime: runtimeOf(be, o),
    frozenBase: frozen,
    moduleOut,
    hiddenCache,
  };
}

function resume(given: GivenOptions, be: Backend, extendSchedule: boolean, hooks: TrainHooks): Session {
  const dir = given.out;
  // a kill between the renames of a checkpoint swap leaves dir missing: finish or undo that swap first
  recoverCheckpoint(dir);
  const state = readTrainState(dir);
  const stateFile = path.join(dir, 'train_state', 'state.json');
  // a checkpoint from before scheduleSteps ran its schedule over its steps
  const saved = { ...state.options, scheduleSteps: state.options.scheduleSteps ?? state.options.steps };
  const o = mergeResumeOptions(saved, given, stateFile);
  if (o.steps < state.step) {
    throw new Error(
      `--resume: --steps ${o.steps} is below the checkpoint's step ${state.step} (${stateFile}); ` +
        `give --steps ${state.step} or more`,
    );
  }
  const scheduleNote = resumedSchedule(o, state.step, extendSchedule);
  const cfgFile = path.join(dir, 'config.json');
  const config = readConfig(cfgFile);
  if (o.seqLen! > config.maxPositions) {
    throw new Error(
      `${stateFile}: options.seqLen ${o.seqLen} exceeds the model's context length ` +
        `${config.maxPositions} (${cfgFile})`,
    );
  }
  const moduleOnly = state.trainable === 'module';
  const ref = moduleOnly ? readBaseRef(dir) : null;
  const baseDir = ref ? resolveBase(dir, ref) : null;
  if (ref && baseDir) checkBase(dir, baseDir, ref);
  const frozenLoad = moduleOnly ? { alloc: be.alloc, dtypes: be.weightDtypes, allowMissingModule: ref !== null } : {};
  const { weights } = loadModelDir(baseDir ?? dir, { config, ...frozenLoad });
  const ownTokenizer = !ref || fs.existsSync(path.join(dir, 'tokenizer.json'));
  const tok = tokenizerFromDir(ownTokenizer ? dir : baseDir!);
  if (tok.tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `${cfgFile}: vocab_size ${config.vocabSize} is smaller than the checkpoint tokenizer's ` +
        `${tok.tokenizer.vocabSize} tokens`,
    );
  }
  const params = new TrainParams(config, moduleOnly, be.alloc, moduleOnly ? weights : undefined);
  if (ref) params.store.data.set(readModuleMaster(dir, params.store.size));
  else params.copyFrom((n) => weights.get(n));
  const optimizer = new AdamW(be, params.store, { weightDecay: o.weightDecay });
  optimizer.importState(readOptimizerState(dir, state, params.store.size));
  const { train, val } = tokenizeCorpus(loadCorpus(o.data), tok.tokenizer, o.data);
  if (train.length !== state.data.train_tokens || val.length !== state.data.val_tokens) {
    throw new Error(
      `--resume: data "${o.data}" now gives ${train.length} training / ${val.length} held-out tokens, ` +
        `the checkpoint was trained on ${state.data.train_tokens} / ${state.data.val_tokens} ` +
        `(the data or tokenizer changed)`,
    );
  }
  const messages = [`resumed from ${dir} at step ${state.step}`, ...scheduleNote];
  const frozen = moduleOnly ? new FrozenBase(config, weights, be) : null;
  const hiddenCache =
    o.cacheHidden !== null && frozen && baseDir ? openCache(o, baseDir, train, frozen, messages, hooks) : null;
  const sampler = hiddenCache
    ? CachedWindowSampler.resume(train, state.sampler)
    : BatchSampler.resume(train, state.sampler);
  const runtime = runtimeOf(be, o);
  if (runtime.backend !== state.runtime.backend || runtime.threads !== state.runtime.threads) {
    messages.push(
      `note: the checkpoint was trained with the ${state.runtime.backend} backend ` +
        `on ${state.runtime.threads} thread(s), this run uses ` +
        `${runtime.backend} on ${runtime.threads}: losses will not repeat an uninterrupted run bit for bit`,
    );
  }
  return {
    options: o,
    config,
    params,
    optimizer,
    sampler,
    train,
    val,
    tokenizerFiles: ownTokenizer ? tok.files : {},
    step: state.step,
    messages,
    runtime,
    frozenBase: frozen,
    moduleOut: ref && baseDir ? { base: ref, dtype: baseDtype(baseDir) } : null,
    hiddenCache,
  };
}

/**
 * The schedule of a resumed run (ARCHITECTURE.md §6): the checkpoint's, unless `extend` stretches the cosine over
 * the new --steps (then `o.scheduleSteps` is updated). Returns what to tell the user about it.
 */
function resumedSchedule(o: TrainOptions, step: number, extend: boolean): string[] {
  const was = o.scheduleSteps!;
  if (extend) {
    if (o.steps === was) return [`--extend-schedule: the schedule already ends at step ${was}; nothing to extend`];
    if (o.steps < was) throw new Error(`--extend-schedule: --steps ${o.steps} is below the schedule's ${was} steps`);
    const at = (total: number): string =>
      cosineSchedule({ warmup: o.warmup!, total, maxLr: o.lr, minLr: o.minLr! })(step).toExponential(2);
    o.scheduleSteps = o.steps;
    return [
      `schedule extended from ${was} to ${o.steps} steps: the cosine is restretched, ` +
        `so the learning rate at step ${step + 1} is ${at(o.steps)} (it was ${at(was)})`,
    ];
  }
  if (o.steps <= was) return [];
  return [
    `note: the schedule ends at step ${was}, so steps ${Math.max(was, step) + 1}–${o.steps} run at the floor ` +
      `learning rate ${o.minLr!.toExponential(2)}; --extend-schedule restretches the cosine over ${o.steps} steps`,
  ];
}

function checkpoint(s: Session): void {
  saveCheckpoint(s.options.out, {
    config: s.config,
    params: s.params,
    tokenizerFiles: s.tokenizerFiles,
    optimizer: s.optimizer.stateView(), // written before the next step: no copy needed
    ...(s.moduleOut ? { module: s.moduleOut } : {}),
    state: {
      step: s.step,
      options: s.options,
      sampler: s.sampler.state(),
      trainable: s.options.freezeBase ? 'module' : 'all',
      data: { train_tokens: s.train.length, val_tokens: s.val.length },
      runtime: s.runtime,
    },
  });
}

/** Clip the gradients and return their norm; a non-finite norm stops training (nothing has been updated yet). */
function clipOrStop(s: Session, maxNorm: number, be: Backend, diverged: (what: string) => never): number {
  const grad = s.params.store.grad;
  const norm = Math.sqrt(be.sumSquares(grad.length, grad));
  if (!Number.isFinite(norm)) diverged(`the gradient norm is ${norm}`);
  if (norm > maxNorm) be.scale(grad.length, grad, maxNorm / norm);
  return norm;
}

/** Run (or resume) a training job; see TrainOptions. Synchronous: the kernels are. */
export function train(
  given: GivenOptions,
  mode: { resume: boolean; extendSchedule?: boolean },
  hooks: TrainHooks = {},
): TrainSummary {
  if (mode.extendSchedule && !mode.resume) throw new Error('--extend-schedule applies to --resume only');
  const be = hooks.backend ?? createBackend({ kind: 'auto', onWarning: hooks.onWarning });
  const out = given.out;
  const s = mode.resume ? resume(given, be, mode.extendSchedule === true, hooks) : startFresh(given, be, hooks);
  const o = s.options;
  if (o.threads !== null) be.setThreads(o.threads);
  const log = new TrainLog(path.join(out, LOG_FILE));
  const graph = new TrainGraph(s.config);
  const chain = chainOf(o);
  const moduleGraph = s.frozenBase ? new ModuleGraph(s.config, chain) : null;
  const hidden = s.frozenBase ? be.alloc.f32(o.batchSize * (o.seqLen! - 1) * s.config.hidden) : null;
  const tape = new Tape(be);
  const evalTape = new Tape(be, { grad: false });
  const lr = cosineSchedule({ warmup: o.warmup!, total: o.scheduleSteps!, maxLr: o.lr, minLr: o.minLr! });
  let lastTrain: TrainRow | null = null,
    lastEval: EvalRow | null = null,
    savedStep = s.step,
    saved = mode.resume;
  /** Log writes: a full disk is named, with what is safe on disk (the raw ENOSPC names neither). */
  const logged = (write: () => void): void => {
    try {
      write();
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      const kept = saved
        ? `the last good checkpoint (step ${savedStep}) in ${out} is intact`
        : `${out} holds no checkpoint yet`;
      throw new Error(
        `cannot write the training log ${log.file}: the disk is full (no space left on device); ` +
          `${kept}; free some space, then continue with --resume`,
        { cause: err },
      );
    }
  };

  const evaluate = (): void => {
    const evalOpts = {
      backend: be,
      seqLen: o.seqLen!,
      batchSize: o.batchSize,
      maxBatches: o.evalBatches,
      tape: evalTape,
      depth: chain.depth,
    };
    // a frozen base's module is evaluated 2 windows at a time (the same windows): its no-grad tape holds logits
    // [windows·(T−1), V] beside the training tape's, which at a 32k vocabulary is what sets the peak memory
    const split = o.batchSize % 2 === 0 ? 2 : 1;
    const moduleEvalOpts = { ...evalOpts, batchSize: split, maxBatches: (o.evalBatches * o.batchSize) / split };
    const r =
      moduleGraph && s.frozenBase
        ? evaluateModule(moduleGraph, s.frozenBase, s.params, s.val, moduleEvalOpts)
        : evaluateParams(s.config, s.params, s.val, evalOpts);
    lastEval = {
      type: 'eval',
      step: s.step,
      val_loss_next: r.loss_next,
      val_loss_recycle: r.loss_recycle,
      ppl_next: r.ppl_next,
      ppl_recycle: r.ppl_recycle,
      agreement_top1: r.agreement_top1,
      tokens: r.tokens,
      ...(chain.depth > 1 ? { depths: r.depths } : {}),
    };
    const row = lastEval;
    logged(() => log.append(row));
    hooks.onEval?.(lastEval);
  };
  let lastSave = performance.now();
  const save = (): void => {
    checkpoint(s);
    lastSave = performance.now();
    savedStep = s.step;
    saved = true;
    hooks.onCheckpoint?.(s.step, out);
  };
  const diverged = (what: string, step = s.step + 1): never => {
    throw new TrainingDivergedError(
      `training stopped at step ${step}: ${what}. ` +
        `The last good checkpoint (step ${savedStep}) in ${out} is intact; try a lower --lr or more --warmup`,
      step,
      savedStep,
    );
  };

  if (mode.resume) logged(() => log.truncateAfter(s.step));
  else {
    fs.mkdirSync(out, { recursive: true });
    logged(() => log.reset());
    save(); // step 0: the tokenizer and initial weights are on disk, so --resume works from the start
  }
  hooks.onStart?.({
    resumed: mode.resume,
    startStep: s.step,
    options: o,
    config: s.config,
    trainableParams: s.params.store.size,
    totalParams: s.params.specs.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0),
    trainTokens: s.train.length,
    valTokens: s.val.length,
    backend: be.name,
    threads: be.threads(),
    messages: s.messages,
  });
  if (!mode.resume && o.evalFirst) evaluate();

  const started = performance.now();
  const tokensPerStep = o.batchSize * o.seqLen! * o.gradAccum;
  while (s.step < o.steps) {
    const t0 = performance.now();
    const rate = lr(s.step);
    s.params.store.zeroGrad();
    let loss = 0,
      lmLoss: number | null = 0,
      recLoss = 0,
      hasRec = false;
    // CE per depth of the k-step recycle loss (mean over micro-batches), logged when k > 1
    const depthLoss = new Array<number>(chain.depth).fill(0);
    const addDepths = (losses: readonly { data: Float32Array }[]): void =>
      losses.forEach((l, j) => (depthLoss[j]! += l.data[0]! / o.gradAccum));
    for (let micro = 0; micro < o.gradAccum && moduleGraph && s.frozenBase && hidden; micro++) {
      // frozen base: the base in inference mode gives h, only the module is on the tape
      tape.reset();
      let batch;
      if (s.sampler instanceof CachedWindowSampler) {
        const drawn = s.sampler.next();
        batch = drawn.batch;
        if (hooks.liveHidden || !s.hiddenCache) s.frozenBase.hidden(batch, hidden);
        else s.hiddenCache.read(drawn.windows, hidden);
      } else {
        batch = s.sampler.next();
        s.frozenBase.hidden(batch, hidden);
      }
      const outp = moduleGraph.forward(tape, s.params, batch, hidden);
      addDepths(outp.depths.losses);
      if (hooks.injectNaN?.step === s.step + 1 && hooks.injectNaN.where === 'loss')
        outp.recycleLoss.data[0] = Number.NaN;
      const r = outp.recycleLoss.data[0]!,
        chained = outp.loss.data[0]!;
      if (!Number.isFinite(r) || !Number.isFinite(chained)) diverged(`the loss is ${chained} (recycle)`);
      const lambda = s.config.recycle!.lossWeight;
      loss += (lambda * chained) / o.gradAccum;
      recLoss += r / o.gradAccum;
      hasRec = true;
      lmLoss = null;
      tape.backward(outp.loss, lambda * (1 / o.gradAccum));
    }
    for (let micro = 0; micro < o.gradAccum && !moduleGraph; micro++) {
      tape.reset();
      const drawn = s.sampler.next();
      const batch = 'windows' in drawn ? drawn.batch : drawn;
      const outp = graph.forward(tape, s.params, batch, {
        depth: chain.depth,
        depthWeights: chain.weights,
        distill: chain.distill,
        reverseKl: chain.reverseKl,
      });
      if (outp.recycleDepths) addDepths(outp.recycleDepths.losses);
      if (hooks.injectNaN?.step === s.step + 1 && hooks.injectNaN.where === 'loss') outp.loss.data[0] = Number.NaN;
      const l = outp.loss.data[0]!;
      if (!Number.isFinite(l))
        diverged(`the loss is ${l} (lm ${outp.lmLoss.data[0]}, recycle ${outp.recycleLoss?.data[0] ?? '-'})`);
      loss += l / o.gradAccum;
      lmLoss! += outp.lmLoss.data[0]! / o.gradAccum;
      if (outp.recycleLoss) {
        recLoss += outp.recycleLoss.data[0]! / o.gradAccum;
        hasRec = true;
      }
      tape.backward(outp.loss, 1 / o.gradAccum);
    }
    if (hooks.injectNaN?.step === s.step + 1 && hooks.injectNaN.where === 'grad') s.params.store.grad[0] = Number.NaN;
    const gnorm = clipOrStop(s, o.gradClip, be, diverged);
    s.optimizer.step(rate);
    s.step++;
    const dt = (performance.now() - t0) / 1000;
    lastTrain = {
      type: 'train',
      step: s.step,
      loss,
      lm_loss: lmLoss,
      recycle_loss: hasRec ? recLoss : null,
      ...(hasRec && chain.depth > 1 ? { recycle_loss_depths: depthLoss } : {}),
      lr: rate,
      grad_norm: gnorm,
      tokens_per_s: tokensPerStep / dt,
      elapsed_s: (performance.now() - started) / 1000,
    };
    const row = lastTrain;
    logged(() => log.append(row));
    hooks.onStep?.(lastTrain, o.steps);
    const last = s.step === o.steps;
    if ((o.evalEvery > 0 && s.step % o.evalEvery === 0) || last) evaluate();
    const byTime = o.ckptMinutes !== null && performance.now() - lastSave >= o.ckptMinutes * 60_000;
    if (s.step % o.ckptEvery === 0 || last || byTime) {
      if (s.params.firstNonFinite() >= 0) diverged('a parameter became non-finite after the update', s.step);
      save();
    }
  }
  s.hiddenCache?.close();
  return { out, step: s.step, lastTrain, lastEval };
}
