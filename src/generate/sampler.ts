/**
 * The sampler of one generation: the logits processors composed in transformers' order, a seeded uniform
 * source, and the three operations the decoding modes need — pick the next token (argmax or a draw), draft a
 * token from the module (remembering its distribution q, one per draft depth of a chain), and verify a draft
 * against the base's distribution p (greedy: accept iff the draft is p's argmax; sampling: the speculative-sampling
 * rule, accept with probability min(1, p(d)/q(d)), else draw from normalize(max(0, p − q)), which leaves the output
 * distributed as p). p and q are always the distributions after the same processors with the same history. A chain
 * of drafts d_1..d_k is verified depth by depth, each against the base's row given the accepted d_1..d_{j−1}; the
 * first rejection ends it, which keeps every emitted token distributed as standard decoding's.
 *
 * Numerics: the processors work on a float32 row. The rescaling ones (repetition penalty, temperature) can overflow
 * it at extreme settings (temperature 1e-38, penalty 1e-50: ±Infinity, then NaN), so a row they leave non-finite is
 * recomputed in float64, shifted by its max (see `rescaleStably`): every accepted setting gives the right
 * distribution, a temperature → 0 gives the argmax (greedy), and a non-finite distribution is an error, never a
 * token.
 */
import { Rng } from '../data/rng.js';
import type { TokenHistory } from './history.js';
import { MinP, RepetitionPenalty, Temperature, TopK, TopP, type LogitsProcessor } from './processors.js';

/** Uniform numbers in [0, 1). */
export interface UniformSource {
  next(): number;
}

/** The project's seeded generator (xoshiro128**, src/data/rng.ts) as a uniform source: 53-bit uniforms. */
export function seededUniform(seed: number): UniformSource {
  const rng = new Rng(seed);
  return { next: () => rng.random() };
}

/**
 * repetition_penalty's accepted range. Far beyond any useful value (transformers' are 1–2), and small enough that a
 * penalized float32 logit (|l| < 3.5e38) and the difference of two of them stay finite in float64 (< 1e139).
 */
export const MIN_REPETITION_PENALTY = 1e-100;
export const MAX_REPETITION_PENALTY = 1e100;

export interface SamplerSettings {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

export interface Verdict {
  accepted: boolean;
  /** The token to emit: the draft when accepted, else the base's replacement. */
  token: number;
}

export class Sampler {
  readonly processors: readonly LogitsProcessor[];
  private readonly work: Float32Array;
  private readonly p: Float64Array;
  /** The module's distribution of the pending draft at each depth (allocated on first use of a depth). */
  private readonly qs: Float64Array[] = [];
  /** The stable path's float64 row (allocated on first use). */
  private wide: Float64Array | null = null;
  /** How many leading processors rescale the row (penalty, temperature); the others only filter it. */
  private readonly scaling: number;
  /** The pending draft at each depth (−1: none). */
  private readonly draftIds: number[] = [];

  constructor(
    readonly settings: SamplerSettings,
    readonly vocabSize: number,
    private readonly rng: UniformSource,
  ) {
    const s = settings,
      list: LogitsProcessor[] = [];
    const rp = s.repetitionPenalty;
    if (!(rp >= MIN_REPETITION_PENALTY && rp <= MAX_REPETITION_PENALTY)) {
      throw new RangeError(`sampler: repetition_penalty must be in [1e-100, 1e100], got ${rp}`);
    }
    if (s.doSample && !(s.temperature > 0 && s.temperature < Infinity)) {
      throw new RangeError(`sampler: temperature must be a finite number > 0, got ${s.temperature}`);
    }
    if (rp !== 1) list.push(new RepetitionPenalty(rp));
    if (s.doSample) {
      if (s.temperature !== 1) list.push(new Temperature(s.temperature));
    }
    this.scaling = list.length;
    if (s.doSample) {
      if (s.topK > 0 && s.topK < vocabSize) list.push(new TopK(s.topK));
      if (s.topP < 1) list.push(new TopP(s.topP));
      if (s.minP > 0) list.push(new MinP(s.minP));
    }
    this.processors = list;
    this.work = new Float32Array(vocabSize);
    this.p = new Float64Array(vocabSize);
    this.qs.push(new Float64Array(vocabSize));
  }

  get greedy(): boolean {
    return !this.settings.doSample;
  }

  /**
   * Copy a row of raw logits [V] and apply the processors. Returns a buffer valid until the next call. `masked`: the
   * row may hold −Infinity for ids that cannot be drawn (a draft row over a draft vocabulary, model/draft-vocab.ts);
   * NaN and +Infinity are errors always, and so is a row with nothing left.
   */
  process(logits: Float32Array, history: TokenHistory, masked = false): Float32Array {
    const V = this.vocabSize,
      w = this.work,
      procs = this.processors,
      n = this.scaling;
    if (logits.length < V) throw new Error(`sampler: a logits row has ${logits.length} values, the vocabulary ${V}`);
    let open = 0;
    for (let i = 0; i < V; i++) {
      const x = logits[i]!;
      if (Number.isFinite(x)) open++;
      else if (!(masked && x === -Infinity))
        throw new Error(`sampler: the model produced a non-finite logit (${x}) for token ${i}`);
      w[i] = x;
    }
    if (open === 0) throw new Error('sampler: every logit of a draft row is masked (−Infinity)');
    // The float32 path first: ordinary settings keep exactly the values they always had.
    for (let i = 0; i < n; i++) procs[i]!.process(w, history);
    if (n > 0 && !finiteWhereOpen(w, logits, V)) this.rescaleStably(logits, history);
    for (let i = n; i < procs.length; i++) procs[i]!.process(w, history);
    return w;
  }

  /**
   * The penalty and the temperature again, in float64, shifted before dividing: w_i = (pen_i − max pen) / T. The
   * softmax, the argmax and the filters after it are shift-invariant, so this is the float32 row's distribution
   * without its overflow: the max maps to 0, the rest to ≤ 0, −Infinity only where exp() is 0 anyway (a
   * temperature → 0 leaves the argmax alone: greedy). pen is finite as the penalty is bounded
   * (MAX_REPETITION_PENALTY).
   */
  private rescaleStably(logits: Float32Array, history: TokenHistory): void {
    const V = this.vocabSize,
      w = this.work,
      s = this.settings;
    const z = (this.wide ??= new Float64Array(V));
    for (let i = 0; i < V; i++) z[i] = logits[i]!;
    const p = s.repetitionPenalty;
    if (p !== 1) {
      for (const id of history.distinct) {
        const l = z[id]!;
        z[id] = l > 0 ? l / p : l * p;
      }
    }
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (z[i]! > max) max = z[i]!;
    const T = s.doSample ? s.temperature : 1;
    if (!(max > -Infinity && max < Infinity))
      throw new Error(`sampler: the rescaled logits are not finite (max ${max})`);
    for (let i = 0; i < V; i++) w[i] = (z[i]! - max) / T;
  }

  /** The processed distribution (softmax in float64) into `out`. */
  distribution(
    logits: Float32Array,
    history: TokenHistory,
    out: Float64Array = new Float64Array(this.vocabSize),
    masked = false,
  ): Float64Array {
    const w = this.process(logits, history, masked),
      V = this.vocabSize;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (w[i]! > max) max = w[i]!;
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = w[i] === -Infinity ? 0 : Math.exp(w[i]! - max);
      out[i] = e;
      sum += e;
    }
    // Never a token from a broken distribution: NaN or an empty row is an error here.
    if (!(sum >= 1 && sum < Infinity)) {
      if (max === -Infinity) throw new Error('sampler: every token was filtered out');
      throw new Error(`sampler: the distribution is not finite (max ${max}, sum ${sum})`);
    }
    const inv = 1 / sum;
    for (let i = 0; i < V; i++) out[i]! *= inv;
    return out;
  }

  /**
   * The processed argmax. With no processors (plain greedy) it is one pass over the raw row, checking for
   * non-finite logits on the way, rather than a checked copy and then a second pass (a 50k vocabulary: ~90 → ~45 µs
   * a token).
   */
  private greedyPick(logits: Float32Array, history: TokenHistory, masked = false): number {
    if (this.processors.length > 0) return argmax(this.process(logits, history, masked));
    const V = this.vocabSize;
    if (logits.length < V) throw new Error(`sampler: a logits row has ${logits.length} values, the vocabulary ${V}`);
    let best = 0,
      bv = -Infinity;
    for (let i = 0; i < V; i++) {
      const x = logits[i]!;
      // NaN, ±Infinity (−Infinity allowed in a masked draft row)
      if (x - x !== 0 && !(masked && x === -Infinity))
        throw new Error(`sampler: the model produced a non-finite logit (${x}) for token ${i}`);
      if (x > bv) {
        bv = x;
        best = i;
      }
    }
    if (bv === -Infinity) throw new Error('sampler: every logit of a draft row is masked (−Infinity)');
    return best;
  }

  /**
   * The next token from a row of raw logits: the processed argmax (greedy) or a draw. `masked`: a module row that may
   * hold −Infinity outside a draft vocabulary (recycle mode's module tokens).
   */
  pick(logits: Float32Array, history: TokenHistory, masked = false): number {
    if (this.greedy) return this.greedyPick(logits, history, masked);
    return this.draw(this.distribution(logits, history, this.p, masked));
  }

  /**
   * A draft from the module's logits row at chain depth `depth` (0 = the first draft of a full call; a depth-0 draft
   * starts a new chain and drops any pending one); its distribution q is kept for `verify` at the same depth.
   */
  draft(logits: Float32Array, history: TokenHistory, depth = 0): number {
    const q = this.qAt(depth);
    if (depth === 0) this.draftIds.fill(-1);
    // a draft row may mask ids (−Infinity outside a draft vocabulary): q is then 0 there, which the rule allows
    const id = this.greedy
      ? this.greedyPick(logits, history, true)
      : this.draw(this.distribution(logits, history, q, true));
    this.draftIds[depth] = id;
    return id;
  }

  /**
   * Verify the pending draft at `depth` against the base's logits row for the same position, with the history the
   * base row saw (the prompt, the output and the accepted shallower drafts). A rejection drops the deeper drafts.
   */
  verify(logits: Float32Array, history: TokenHistory, depth = 0): Verdict {
    const d = this.draftIds[depth] ?? -1;
    if (d < 0) throw new Error(`sampler.verify: no pending draft at depth ${depth}`);
    this.draftIds[depth] = -1;
    const v = this.judge(d, logits, history, this.qs[depth]!);
    if (!v.accepted) this.draftIds.fill(-1);
    return v;
  }

  /** The q buffer of a draft depth (depths 0..7). */
  private qAt(depth: number): Float64Array {
    if (!(Number.isInteger(depth) && depth >= 0 && depth < 8))
      throw new RangeError(`sampler.draft: depth must be an integer in [0, 8), got ${depth}`);
    while (this.qs.length <= depth) this.qs.push(new Float64Array(this.vocabSize));
    return this.qs[depth]!;
  }

  /** The acceptance test of one draft d drawn from q (the speculative-sampling rule; greedy: d = argmax p). */
  private judge(d: number, logits: Float32Array, history: TokenHistory, q: Float64Array): Verdict {
    if (this.greedy) {
      const a = this.greedyPick(logits, history);
      return { accepted: a === d, token: a };
    }
    const p = this.distribution(logits, history, this.p);
    const u = this.rng.next();
    if (u * q[d]! < p[d]!) return { accepted: true, token: d }; // u < min(1, p/q); q[d] > 0 as d was drawn from q
    let sum = 0;
    for (let i = 0; i < this.vocabSize; i++) {
      const r = p[i]! - q[i]!;
      const v = r > 0 ? r : 0;
      q[i] = v;
      sum += v;
    }
    // sum > 0 whenever a rejection is possible; rounding could leave it 0 only when p ≈ q, where p is right.
    return { accepted: false, token: sum > 0 ? this.draw(q, sum) : this.draw(p) };
  }

  /** Inverse-CDF draw from non-negative weights summing to `total`. */
  private draw(w: Float64Array, total = 1): number {
    if (!(total > 0 && total < Infinity)) throw new Error(`sampler: cannot draw from weights summing to ${total}`);
    const target = this.rng.next() * total;
    let cum = 0,
      last = -1;
    for (let i = 0; i < this.vocabSize; i++) {
      const v = w[i]!;
      if (!(v > 0)) {
        if (v !== 0) throw new Error(`sampler: token ${i} has weight ${v}: the distribution is not finite`);
        continue;
      }
      cum += v;
      last = i;
      if (target < cum) return i;
    }
    if (last < 0) throw new Error('sampler: every token was filtered out');
    return last; // rounding: the target fell past the last cumulative sum
  }
}

/** No NaN or ±Infinity in x, except −Infinity where the raw row `raw` was −Infinity already (a masked id). */
function finiteWhereOpen(x: Float32Array, raw: Float32Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (x[i]! - x[i]! !== 0 && raw[i] !== -Infinity) return false; // NaN, ±Infinity
  return true;
}

/** Index of the first maximum. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0,
    bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i]! > bv) {
      bv = x[i]!;
      best = i;
    }
  }
  return best;
}
