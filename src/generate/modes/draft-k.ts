/**
 * `draft_tokens: 'auto'` for verified decoding: before each full call, the number of chained drafts k with the most
 * expected tokens per second, from what this generation and the model's earlier ones have measured.
 *
 * A round with k drafts emits 1 + α_1 + α_1·α_2 + … + α_1···α_k tokens on average (α_j: the acceptance at depth j
 * given that depth j was reached) and costs one full call on k + 1 rows, k − 1 chained module calls on one row and
 * a catch-up module call on (accepted + 1) rows. The costs are measured, never assumed: once per model and thread
 * count, full calls and module calls on every M = 1..8 rows are timed round-robin on a scratch cache (`calibrate`).
 * During decoding the mode times its own calls: a full call size already used costs the median of its recent calls
 * (WINDOW), the others the calibration times a scale factor (the median of recent observed ÷ calibrated times), so
 * a machine that slows down or a longer context shifts every cost while the shape of the cost curve over M comes from
 * the calibration; catch-up and chained module calls keep a scale each (a chained call finds the module's
 * weights in cache, the catch-up after a full call does not). (Under a driver that batches sessions, a call's observed
 * time is the batched call's: the latency this session sees.)
 *
 * What is learned outlives the generation (`DraftMemory`, one per model and calibration): the call times and scale
 * factors, and the acceptance by depth over the model's recent rounds (counts decayed by DECAY a round). A
 * generation's α_j is its own count smoothed toward that memory (MEMORY_PRIOR pseudo observations), or, for a depth
 * the memory has not seen, toward α_{j−1} (and α_1 toward ½) with PRIOR pseudo observations, so an untried depth looks
 * as good as the one above it — optimistic, so it gets tried when it could pay, and dropped once measured acceptance
 * says it does not. k stays ≥ 1 (auto never turns drafting off: verified with k = 1 keeps measuring acceptance;
 * standard mode is the choice without drafts). Every EXPLORE-th round may try a k next to the best (see EXPLORE).
 */
import type { InferenceModel } from '../../model/infer.js';
import { MAX_DRAFT_TOKENS, type GenerationStats } from '../types.js';

/** Median wall times (ms) of full calls and of module calls on M = 1..8 rows (index M − 1; module: 0 without one). */
export interface CallCosts {
  fullMs: number[];
  moduleMs: number[];
}

/** What auto has learned about a model across its generations (per calibration). */
export interface DraftMemory {
  /** The latest observed times of full calls by M (index M − 1), at most WINDOW each. */
  fullTimes: number[][];
  /** The latest observed ÷ calibrated times of full calls, catch-up module calls and chained module calls. */
  fullRatios: number[];
  moduleRatios: number[];
  chainRatios: number[];
  /** Drafts checked and accepted at depth j (index j − 1) over recent rounds, decayed by DECAY a round. */
  checked: number[];
  accepted: number[];
  /** Rounds observed (for the periodic exploration of a neighbouring k). */
  rounds: number;
}

/**
 * Observations kept per cost (their median is the cost): one call's time varies by tens of percent on a busy machine,
 * and a median of recent calls ignores the outliers a moving average would follow.
 */
const WINDOW = 9;
/** Pseudo-observations pulling an under-measured depth's acceptance toward the depth above it. */
const PRIOR = 2;
/** Pseudo-observations pulling a generation's acceptance toward the model's recent acceptance at that depth. */
const MEMORY_PRIOR = 8;
/** Per-round decay of the remembered acceptance counts (a window of ~30 rounds). */
const DECAY = 0.97;
/**
 * Every EXPLORE-th round takes a k next to the best one when its expected rate is within EXPLORE_SLACK of the best:
 * a single call's time varies by tens of percent on a busy machine, so a size once measured (or calibrated) high
 * would otherwise never be tried again. The cost is at most (1 − EXPLORE_SLACK) / EXPLORE of the rate (~1%).
 */
const EXPLORE = 16;
const EXPLORE_SLACK = 0.85;

export function newDraftMemory(): DraftMemory {
  const fullTimes = Array.from({ length: MAX_DRAFT_TOKENS + 1 }, (): number[] => []);
  return { fullTimes, fullRatios: [], moduleRatios: [], chainRatios: [], checked: [], accepted: [], rounds: 0 };
}

interface Calibration {
  costs: CallCosts;
  memory: DraftMemory;
}
const CALIBRATIONS = new WeakMap<InferenceModel, Map<string, Calibration>>();

/**
 * The calibration of `model` at the backend's current thread count, the module's draft head (whose vocabulary and
 * dtype change a module call's cost: model/draft-head.ts) and module dtype (model/module-dtype.ts), measured on first
 * use and cached, with its memory.
 */
function calibration(model: InferenceModel): Calibration {
  const d = model.draftHead,
    head = d ? `${d.checkedWeight.dtype} × ${d.vocabSize ?? 'all'}` : 'none',
    key = `${model.backend.threads()} threads, draft head ${head}, module ${model.moduleWeightDtype(true) ?? 'none'}`;
  let byKey = CALIBRATIONS.get(model);
  if (!byKey) CALIBRATIONS.set(model, (byKey = new Map()));
  let c = byKey.get(key);
  if (!c) byKey.set(key, (c = { costs: calibrate(model), memory: newDraftMemory() }));
  return c;
}

/** The call costs of `model` (calibration), measured on first use and cached. */
export function callCosts(model: InferenceModel): CallCosts {
  return calibration(model).costs;
}

/** A chooser for one generation of `model`, starting from what its earlier generations learned. */
export function autoDraftTokens(model: InferenceModel): AutoDraftTokens {
  const c = calibration(model);
  return new AutoDraftTokens(c.costs, c.memory);
}

/**
 * Time the call shapes round-robin (full M = 1..8 with every row's logits, as verified asks; module M = 1..8 with the
 * last row's) after one warm-up round, on fresh caches holding a short context; medians over the rounds. (The cost over
 * M is not linear: a product on 8 rows can take twice the time of one on 4, where 1..4 cost nearly the same.)
 */
export function calibrate(model: InferenceModel, rounds = 5): CallCosts {
  const c = model.config,
    maxM = MAX_DRAFT_TOKENS + 1;
  const ctx = Math.max(0, Math.min(16, c.maxPositions - maxM));
  const base = model.newBaseCache(Math.min(c.maxPositions, ctx + maxM));
  const ids = Array.from({ length: ctx + maxM }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  if (ctx > 0) model.forwardBase(ids.slice(0, ctx), base, 'none', model.newScratch());
  const scratch = model.newScratch();
  const calls: Array<() => void> = [];
  const top = Math.min(maxM, c.maxPositions - ctx);
  const sizes = Array.from({ length: top }, (_, i) => i + 1);
  for (const M of sizes)
    calls.push(() => {
      model.forwardBase(ids.slice(0, M), base, 'all', scratch);
      base.rollback(M);
    });
  if (model.hasModule) {
    const mod = model.newModuleCache(Math.min(c.maxPositions, ctx + maxM)),
      h = new Float32Array(Math.max(ctx, maxM) * c.hidden),
      mScratch = model.newScratch();
    // verified's module calls (checked: they may read the module's cheaper copy, model/module-dtype.ts)
    if (ctx > 0) model.forwardModule(h, ids.slice(0, ctx), mod, 'last', mScratch, true);
    for (const M of sizes)
      calls.push(() => {
        model.forwardModule(h, ids.slice(0, M), mod, 'last', mScratch, true);
        mod.rollback(M);
      });
  }
  const ms: number[][] = calls.map(() => []);
  for (let r = 0; r <= rounds; r++) {
    calls.forEach((f, i) => {
      const t0 = performance.now();
      f();
      if (r > 0) ms[i]!.push(performance.now() - t0); // round 0 warms up
    });
  }
  const med = ms.map(median);
  // M past the context's room (a context shorter than 8 rows) is never asked for: the largest size stands in
  const bySize = (first: number) => Array.from({ length: maxM }, (_, i) => med[first + Math.min(i + 1, top) - 1]!);
  return { fullMs: bySize(0), moduleMs: model.hasModule ? bySize(top) : new Array<number>(maxM).fill(0) };
}

function median(x: number[]): number {
  const s = [...x].sort((a, b) => a - b),
    n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** The chooser of one generation: the calibrated costs and the model's memory. */
export class AutoDraftTokens {
  constructor(
    readonly costs: CallCosts,
    readonly memory: DraftMemory = newDraftMemory(),
  ) {}

  /** The calibrated time (ms) of a full call on M rows, before scaling. */
  fullMs(M: number): number {
    return this.costs.fullMs[Math.min(M, this.costs.fullMs.length) - 1]!;
  }

  /** The calibrated time (ms) of a module call on M rows, before scaling. */
  moduleMs(M: number): number {
    return this.costs.moduleMs[Math.min(M, this.costs.moduleMs.length) - 1]!;
  }

  /** A full call on M rows took `ms`. */
  observeFull(M: number, ms: number): void {
    keep(this.memory.fullRatios, ms / this.fullMs(M));
    keep(this.memory.fullTimes[M - 1]!, ms);
  }

  /** Observed ÷ calibrated time of full calls (1 before any). */
  fullScale(): number {
    return medianOr(this.memory.fullRatios, 1);
  }

  /** The expected time (ms) of a full call on M rows now: its recent median once used, else calibration × scale. */
  fullCost(M: number): number {
    const seen = this.memory.fullTimes[M - 1]!;
    return seen.length > 0 ? median(seen) : this.fullScale() * this.fullMs(M);
  }

  /** A module call on M rows took `ms`: a round's catch-up call, or (`chained`) a chained draft's one-row call. */
  observeModule(M: number, ms: number, chained = false): void {
    if (this.moduleMs(M) > 0) keep(chained ? this.memory.chainRatios : this.memory.moduleRatios, ms / this.moduleMs(M));
  }

  /** Observed ÷ calibrated time of catch-up module calls, and of chained ones (1 before any). */
  moduleScale(): number {
    return medianOr(this.memory.moduleRatios, 1);
  }
  chainScale(): number {
    return medianOr(this.memory.chainRatios, 1);
  }

  /** A round with k drafts accepted `accepted` of them: the model's remembered acceptance by depth. */
  observeRound(k: number, accepted: number): void {
    const { checked, accepted: acc } = this.memory;
    this.memory.rounds++;
    for (let j = 0; j < checked.length; j++) {
      checked[j]! *= DECAY;
      acc[j]! *= DECAY;
    }
    for (let j = 0; j < Math.min(accepted + 1, k); j++) {
      if (checked.length <= j) {
        checked.push(0);
        acc.push(0);
      }
      checked[j]! += 1;
      if (j < accepted) acc[j]! += 1;
    }
  }

  /**
   * Smoothed conditional acceptance α_1..α_K from the generation's counts: toward the model's remembered acceptance
   * at that depth where it has one, else toward the depth above.
   */
  acceptance(stats: GenerationStats, K = MAX_DRAFT_TOKENS): number[] {
    const out: number[] = [];
    const { checked, accepted } = this.memory;
    let prior = 0.5;
    for (let j = 0; j < K; j++) {
      const n = stats.checked_by_depth[j] ?? 0,
        a = stats.accepted_by_depth[j] ?? 0,
        seen = checked[j] ?? 0;
      const alpha =
        seen >= 1 ? (a + (MEMORY_PRIOR * accepted[j]!) / seen) / (n + MEMORY_PRIOR) : (a + PRIOR * prior) / (n + PRIOR);
      out.push(alpha);
      prior = alpha;
    }
    return out;
  }

  /** Expected tokens per ms of a round with k drafts at acceptances `alpha`. */
  rate(k: number, alpha: readonly number[]): number {
    let reach = 1,
      tokens = 1;
    for (let j = 0; j < k; j++) {
      reach *= alpha[j]!;
      tokens += reach;
    }
    // The catch-up module call after the round has (accepted + 1) rows, on average `tokens` of them.
    const ms =
      this.fullCost(k + 1) +
      this.moduleScale() * this.moduleMs(Math.round(tokens)) +
      this.chainScale() * (k - 1) * this.moduleMs(1);
    return tokens / ms;
  }

  /** The k in 1..maxK with the most expected tokens per second (every EXPLORE-th round maybe a neighbour). */
  choose(stats: GenerationStats, maxK: number): number {
    const K = Math.max(1, Math.min(maxK, MAX_DRAFT_TOKENS));
    const alpha = this.acceptance(stats, K);
    let best = 1,
      bestRate = -Infinity;
    for (let k = 1; k <= K; k++) {
      const r = this.rate(k, alpha);
      if (r > bestRate) {
        bestRate = r;
        best = k;
      }
    }
    const n = this.memory.rounds;
    if (n % EXPLORE === EXPLORE - 1) {
      const up = Math.floor(n / EXPLORE) % 2 === 0,
        other = up ? (best < K ? best + 1 : best - 1) : best > 1 ? best - 1 : best + 1;
      if (other >= 1 && other <= K && this.rate(other, alpha) >= EXPLORE_SLACK * bestRate) return other;
    }
    return best;
  }
}

/** Appends a finite positive observation to `buf`, dropping the oldest past WINDOW. */
function keep(buf: number[], x: number): void {
  if (!(Number.isFinite(x) && x > 0)) return;
  buf.push(x);
  if (buf.length > WINDOW) buf.shift();
}

function medianOr(x: number[], fallback: number): number {
  return x.length > 0 ? median(x) : fallback;
}
