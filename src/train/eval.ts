/**
 * Held-out evaluation of both heads (ARCHITECTURE.md §9): sequential, non-overlapping windows of T tokens; the
 * next-token head is scored at every position (x_{t+1}), the recycle head at t ≤ T−2 (x_{t+2}), and top-1
 * agreement counts argmax recycle at t == argmax base at t+1 (how often the module's guess is what the base
 * itself would say next).
 */
import { countEvalWindows, evalBatches } from '../data/dataset.js';
import type { Backend } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import { TrainGraph, weightsSource, type ParamSource } from '../model/graph.js';
import type { Weights } from '../model/weights.js';
import { Tape } from '../nn/tape.js';
import type { DepthEval } from './log.js';
import type { FrozenBase, ModuleGraph } from './module-graph.js';

export interface EvalResult {
  /** Mean CE of the next-token head (nats per token). */
  loss_next: number;
  ppl_next: number;
  /** null when the model has no module. */
  loss_recycle: number | null;
  ppl_recycle: number | null;
  agreement_top1: number | null;
  /** Positions scored by the next-token head. */
  tokens: number;
  /** Positions scored by the recycle head. */
  tokens_recycle: number;
  /** The module chain at each depth 1..EvalOptions.depth (empty without a module). */
  depths: DepthEval[];
}

export interface EvalOptions {
  backend: Backend;
  /** Window length T (default: the model's context). */
  seqLen?: number;
  /** Windows per forward (default 4). */
  batchSize?: number;
  /** Stop after this many batches (default: the whole stream). */
  maxBatches?: number;
  /** A no-grad tape to reuse between calls (its arena is recycled). */
  tape?: Tape;
  /** Depths of the module chain to evaluate (default 1; model/module-chain.ts). */
  depth?: number;
  /** Called before each batch with the batches done and the batches in all (for a progress bar). */
  onBatch?: (done: number, total: number) => void;
}

/** Sums per depth: loss over the rows with a target, agreement where the base has a prediction for that token. */
class DepthTally {
  private readonly loss: number[];
  private readonly rows: number[];
  private readonly agree: number[];
  private readonly compared: number[];

  constructor(readonly depth: number) {
    [this.loss, this.rows, this.agree, this.compared] = [0, 0, 0, 0].map(() => new Array<number>(depth).fill(0));
  }

  /**
   * One batch: per depth j the chain's mean loss, logits and targets (rows b·(T−1)+t); `baseTop(b, s)` is the base's
   * argmax at position s (s ≤ T−1), the token the base would put at s+1.
   */
  add(
    B: number,
    T: number,
    V: number,
    d: { losses: { data: Float32Array }[]; logits: { data: Float32Array }[]; targets: Int32Array[] },
    baseTop: (b: number, s: number) => number,
  ): void {
    const Tm = T - 1;
    for (let j = 1; j <= this.depth; j++) {
      const targets = d.targets[j - 1]!,
        logits = d.logits[j - 1]!.data;
      let counted = 0;
      for (let r = 0; r < targets.length; r++) if (targets[r] !== -1) counted++;
      this.loss[j - 1]! += d.losses[j - 1]!.data[0]! * counted;
      this.rows[j - 1]! += counted;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t + j <= T - 1; t++) {
          const r = b * Tm + t;
          if (targets[r] === -1) continue;
          this.compared[j - 1]!++;
          if (argmax(logits, r * V, V) === baseTop(b, t + j)) this.agree[j - 1]!++;
        }
      }
    }
  }

  result(): DepthEval[] {
    return this.loss.map((sum, i) => {
      const loss = sum / Math.max(1, this.rows[i]!);
      return {
        depth: i + 1,
        loss,
        ppl: Math.exp(loss),
        agreement_top1: this.agree[i]! / Math.max(1, this.compared[i]!),
        tokens: this.rows[i]!,
        tokens_agreement: this.compared[i]!,
      };
    });
  }
}

/** Mean losses, perplexities and agreement from the sums over the evaluated rows. */
function evalResult(
  sumNext: number,
  nNext: number,
  sumRec: number,
  nRec: number,
  agree: number,
  depths: DepthEval[],
): EvalResult {
  const lossNext = sumNext / nNext;
  const lossRec = nRec > 0 ? sumRec / nRec : null;
  return {
    loss_next: lossNext,
    ppl_next: Math.exp(lossNext),
    loss_recycle: lossRec,
    ppl_recycle: lossRec === null ? null : Math.exp(lossRec),
    agreement_top1: nRec > 0 ? agree / nRec : null,
    tokens: nNext,
    tokens_recycle: nRec,
    depths: nRec > 0 ? depths : [],
  };
}

function argmax(a: Float32Array, from: number, n: number): number {
  let best = 0,
    bestV = a[from]!;
  for (let i = 1; i < n; i++) {
    const v = a[from + i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** Evaluate `params` (a training ParamSource; gradients are never taken) on a token stream. */
export function evaluateParams(
  config: ModelConfig,
  params: ParamSource,
  tokens: Int32Array,
  opts: EvalOptions,
): EvalResult {
  const T = Math.min(opts.seqLen ?? config.maxPositions, config.maxPositions);
  const batchSize = opts.batchSize ?? 4;
  const maxBatches = opts.maxBatches ?? Number.POSITIVE_INFINITY;
  if (tokens.length < T + 2) {
    throw new Error(
      `eval: the held-out split has ${tokens.length} tokens, fewer than one window of ${T} + 2; ` +
        `use a shorter --seq-len or more data`,
    );
  }
  const graph = new TrainGraph(config);
  const tape = opts.tape ?? new Tape(opts.backend, { grad: false });
  if (tape.gradEnabled) throw new Error('eval: the tape must be created with {grad: false}');
  const V = config.vocabSize;
  const tally = new DepthTally(opts.depth ?? 1);
  let sumNext = 0,
    nNext = 0,
    sumRec = 0,
    nRec = 0,
    agree = 0,
    batches = 0;
  const totalBatches = Math.min(maxBatches, Math.ceil(countEvalWindows(tokens, T) / batchSize));
  for (const batch of evalBatches(tokens, batchSize, T)) {
    if (batches++ >= maxBatches) break;
    opts.onBatch?.(batches - 1, totalBatches);
    tape.reset();
    const out = graph.forward(tape, params, batch, { depth: tally.depth });
    const rowsNext = batch.B * T;
    sumNext += out.lmLoss.data[0]! * rowsNext;
    nNext += rowsNext;
    if (out.recycleLoss && out.recycleLogits) {
      const rowsRec = batch.B * (T - 1);
      sumRec += out.recycleLoss.data[0]! * rowsRec;
      nRec += rowsRec;
      const base = out.logits.data,
        rec = out.recycleLogits.data;
      tally.add(batch.B, T, V, out.recycleDepths!, (b, s) => argmax(base, (b * T + s) * V, V));
      for (let b = 0; b < batch.B; b++) {
        for (let t = 0; t < T - 1; t++) {
          if (argmax(rec, (b * (T - 1) + t) * V, V) === argmax(base, (b * T + t + 1) * V, V)) agree++;
        }
      }
    }
  }
  tape.reset();
  return evalResult(sumNext, nNext, sumRec, nRec, agree, tally.result());
}

/** Evaluate a loaded model (loadModelDir) on a token stream. */
export function evaluateModel(
  config: ModelConfig,
  weights: Weights,
  tokens: Int32Array,
  opts: EvalOptions,
): EvalResult {
  return evaluateParams(config, weightsSource(weights), tokens, opts);
}

/**
 * Evaluate a module on a frozen base the module-only trainer's way (module-graph.ts): the base in inference mode
 * (its next-token loss from its own logits, per sequence), the module on a no-grad tape. Same windows and the same
 * quantities as evaluateParams.
 */
export function evaluateModule(
  graph: ModuleGraph,
  base: FrozenBase,
  params: ParamSource,
  tokens: Int32Array,
  opts: EvalOptions,
): EvalResult {
  const config = graph.config;
  const T = Math.min(opts.seqLen ?? config.maxPositions, config.maxPositions);
  const batchSize = opts.batchSize ?? 4;
  const maxBatches = opts.maxBatches ?? Number.POSITIVE_INFINITY;
  if (tokens.length < T + 2) {
    throw new Error(
      `eval: the held-out split has ${tokens.length} tokens, fewer than one window of ${T} + 2; ` +
        `use a shorter --seq-len or more data`,
    );
  }
  const tape = opts.tape ?? new Tape(opts.backend, { grad: false });
  if (tape.gradEnabled) throw new Error('eval: the tape must be created with {grad: false}');
  const V = config.vocabSize,
    C = config.hidden;
  const tally = new DepthTally(opts.depth ?? graph.chainOptions.depth);
  let sumNext = 0,
    nNext = 0,
    sumRec = 0,
    nRec = 0,
    agree = 0,
    batches = 0;
  let h = new Float32Array(0);
  const totalBatches = Math.min(maxBatches, Math.ceil(countEvalWindows(tokens, T) / batchSize));
  for (const batch of evalBatches(tokens, batchSize, T)) {
    if (batches++ >= maxBatches) break;
    opts.onBatch?.(batches - 1, totalBatches);
    const rows = batch.B * (T - 1);
    if (h.length < rows * C) h = new Float32Array(rows * C);
    const baseTop = new Int32Array(batch.B * T);
    base.hidden(batch, h, (b, logits) => {
      for (let t = 0; t < T; t++) {
        const target = batch.targets[b * T + t]!;
        baseTop[b * T + t] = argmax(logits, t * V, V);
        if (target === -1) continue;
        let max = -Infinity;
        for (let i = 0; i < V; i++) max = Math.max(max, logits[t * V + i]!);
        let s = 0;
        for (let i = 0; i < V; i++) s += Math.exp(logits[t * V + i]! - max);
        sumNext += Math.log(s) + max - logits[t * V + target]!;
        nNext++;
      }
    });
    tape.reset();
    const out = graph.forward(tape, params, batch, h, tally.depth);
    tally.add(batch.B, T, V, out.depths, (b, s) => baseTop[b * T + s]!);
    sumRec += out.recycleLoss.data[0]! * rows;
    nRec += rows;
    const rec = out.recycleLogits.data;
    for (let b = 0; b < batch.B; b++)
      for (let t = 0; t < T - 1; t++) if (argmax(rec, (b * (T - 1) + t) * V, V) === baseTop[b * T + t + 1]) agree++;
  }
  tape.reset();
  return evalResult(sumNext, nNext, sumRec, nRec, agree, tally.result());
}
