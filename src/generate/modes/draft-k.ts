/**
 * `draft_tokens: 'auto'` for verified decoding: before each full call, the number of chained drafts k with the most
 * expected tokens per second, from what this generation has measured so far.
 *
 * A round with k drafts emits 1 + α_1 + α_1·α_2 + … + α_1···α_k tokens on average (α_j: the acceptance at depth j
 * given that depth j was reached) and costs one full call on k + 1 rows, k − 1 chained module calls on one row and
 * a catch-up module call on (accepted + 1) rows. The costs are measured, never assumed: once per model and thread
 * count, full calls on M = 1, 2, 4, 8 rows and module calls on 1 and 8 rows are timed round-robin on a scratch cache
 * (`calibrate`, 24 calls; other M interpolated linearly). During a generation the mode times its own calls: a full
 * call size it has used costs its own moving average, the others the calibration times a scale factor (observed ÷
 * calibrated, moving average; one for full and one for module calls), so a machine that slows down or a longer
 * context shifts every cost while the shape of the cost curve over M comes from the calibration. (Under a driver
 * that batches sessions, a call's observed time is the batched call's: the latency this session sees.) The α_j are
 * smoothed toward α_{j−1} (and α_1 toward ½) with two pseudo observations, so an untried depth looks as good as the
 * one above it — optimistic, so it gets tried when it could pay, and dropped once measured acceptance says it does
 * not. k stays ≥ 1 (auto never turns drafting off: verified
 * with k = 1 keeps measuring acceptance; standard mode is the choice without drafts).
 */
import type { InferenceModel } from '../../model/infer.js';
import { MAX_DRAFT_TOKENS, type GenerationStats } from '../types.js';

/** Median wall times (ms) of full calls on M = 1..8 rows (index M − 1; interpolated between measured sizes) and of
 * module calls on 1 and 8 rows. */
export interface CallCosts {
  fullMs: number[];
  moduleMs1: number;
  moduleMs8: number;
}

/** Weight of a new observation in the cost scale factors' moving average. */
const EMA = 0.25;
/** Pseudo-observations pulling an under-measured depth's acceptance toward the depth above it. */
const PRIOR = 2;

const CALIBRATIONS = new WeakMap<InferenceModel, Map<string, CallCosts>>();

/**
 * The call costs of `model` at the backend's current thread count and the module's draft head (whose vocabulary and
 * dtype change a module call's cost: model/draft-head.ts), measured on first use and cached.
 */
export function callCosts(model: InferenceModel): CallCosts {
  const d = model.draftHead,
    key = `${model.backend.threads()} threads, draft head ${d ? `${d.dtype} × ${d.vocabSize ?? 'all'}` : 'none'}`;
  let byKey = CALIBRATIONS.get(model);
  if (!byKey) CALIBRATIONS.set(model, (byKey = new Map()));
  let costs = byKey.get(key);
  if (!costs) byKey.set(key, (costs = calibrate(model)));
  return costs;
}

/**
 * Time the call shapes round-robin (full M = 1, 2, 4, 8 with every row's logits, as verified asks; module M = 1 and
 * 8) after one warm-up round, on a fresh cache holding a short context; medians over the rounds; the full calls of
 * other M interpolated linearly.
 */
export function calibrate(model: InferenceModel, rounds = 3): CallCosts {
  const c = model.config,
    maxM = MAX_DRAFT_TOKENS + 1;
  const ctx = Math.max(0, Math.min(16, c.maxPositions - maxM));
  const base = model.newBaseCache(Math.min(c.maxPositions, ctx + maxM));
  const ids = Array.from({ length: ctx + maxM }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  if (ctx > 0) model.forwardBase(ids.slice(0, ctx), base, 'none', model.newScratch());
  const scratch = model.newScratch();
  const calls: Array<() => void> = [];
  const top = Math.min(maxM, c.maxPositions - ctx);
  const sizes = [...new Set([1, 2, 4, 8].map((M) => Math.min(M, top)))];
  for (const M of sizes)
    calls.push(() => {
      model.forwardBase(ids.slice(0, M), base, 'all', scratch);
      base.rollback(M);
    });
  if (model.hasModule) {
    const mod = model.newModuleCache(Math.min(c.maxPositions, ctx + maxM)),
      h = new Float32Array(Math.max(ctx, maxM) * c.hidden),
      mScratch = model.newScratch();
    if (ctx > 0) model.forwardModule(h, ids.slice(0, ctx), mod, 'last', mScratch);
    for (const M of [1, top])
      calls.push(() => {
        model.forwardModule(h, ids.slice(0, M), mod, 'last', mScratch);
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
  const fullMs: number[] = [];
  for (let M = 1; M <= maxM; M++) {
    const hi = sizes.findIndex((x) => x >= M);
    if (hi < 0)
      fullMs.push(med[sizes.length - 1]!); // a context shorter than 8 rows: never asked for
    else if (sizes[hi] === M || hi === 0) fullMs.push(med[hi]!);
    else {
      const a = sizes[hi - 1]!,
        b = sizes[hi]!;
      fullMs.push(med[hi - 1]! + ((med[hi]! - med[hi - 1]!) * (M - a)) / (b - a));
    }
  }
  const m1 = model.hasModule ? med[sizes.length]! : 0,
    m8 = model.hasModule ? med[sizes.length + 1]! : 0;
  return { fullMs, moduleMs1: m1, moduleMs8: m8 };
}

function median(x: number[]): number {
  const s = [...x].sort((a, b) => a - b),
    n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** The chooser of one generation: the calibrated costs, this generation's scale factors, its acceptance counts. */
export class AutoDraftTokens {
  private fullScale = 1;
  private moduleScale = 1;
  /** Moving averages of this generation's full calls by M (index M − 1); NaN where none was made. */
  private readonly fullSeen: number[] = Array.from({ length: MAX_DRAFT_TOKENS + 1 }, () => Number.NaN);

  constructor(readonly costs: CallCosts) {}

  /** The calibrated time (ms) of a full call on M rows, before scaling. */
  fullMs(M: number): number {
    return this.costs.fullMs[Math.min(M, this.costs.fullMs.length) - 1]!;
  }

  /** The calibrated time (ms) of a module call on M rows (linear between the 1- and 8-row measurements). */
  moduleMs(M: number): number {
    const { moduleMs1: a, moduleMs8: b } = this.costs,
      top = MAX_DRAFT_TOKENS + 1;
    return a + ((b - a) * (Math.min(M, top) - 1)) / (top - 1);
  }

  /** A full call on M rows took `ms` in this generation. */
  observeFull(M: number, ms: number): void {
    this.fullScale = blend(this.fullScale, ms / this.fullMs(M));
    const seen = this.fullSeen[M - 1]!;
    this.fullSeen[M - 1] = Number.isNaN(seen) ? ms : blend(seen, ms);
  }

  /** The expected time (ms) of a full call on M rows now: its own average once seen, else calibration × scale. */
  fullCost(M: number): number {
    const seen = this.fullSeen[M - 1]!;
    return Number.isNaN(seen) ? this.fullScale * this.fullMs(M) : seen;
  }

  /** A module call on M rows took `ms` in this generation. */
  observeModule(M: number, ms: number): void {
    if (this.moduleMs(M) > 0) this.moduleScale = blend(this.moduleScale, ms / this.moduleMs(M));
  }

  /** Smoothed conditional acceptance α_1..α_K from the generation's counts. */
  acceptance(stats: GenerationStats, K = MAX_DRAFT_TOKENS): number[] {
    const out: number[] = [];
    let prior = 0.5;
    for (let j = 0; j < K; j++) {
      const n = stats.checked_by_depth[j] ?? 0,
        a = stats.accepted_by_depth[j] ?? 0;
      const alpha = (a + PRIOR * prior) / (n + PRIOR);
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
      this.fullCost(k + 1) + this.moduleScale * (this.moduleMs(Math.round(tokens)) + (k - 1) * this.moduleMs(1));
    return tokens / ms;
  }

  /** The k in 1..maxK with the most expected tokens per second. */
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
    return best;
  }
}

function blend(old: number, x: number): number {
  return Number.isFinite(x) && x > 0 ? old + EMA * (x - old) : old;
}
