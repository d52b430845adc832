/**
 * Reusable decoding checks (random models now, a trained model later): the whole-sequence references that
 * decoding with caches must reproduce, exact next-token distributions under a sampler, and a chi-square test.
 */
import assert from 'node:assert/strict';
import type { InferenceModel } from '../../src/model/infer.js';
import { decodeAll } from '../../src/generate/decode.js';
import { TokenHistory } from '../../src/generate/history.js';
import { resolveOptions, type GenerationOptions } from '../../src/generate/options.js';
import { Sampler, argmax, seededUniform } from '../../src/generate/sampler.js';
import { randomModel } from './models.js';

/** Base logits for the token after `seq`, recomputed from scratch (fresh cache, whole sequence). */
export function baseLogitsFresh(model: InferenceModel, seq: readonly number[]): Float32Array {
  return model.forwardBase(seq, model.newBaseCache(), 'last').logits.slice();
}

/** Module logits for the token after seq[T−1] from (h_{T−2}, seq[T−1]), recomputed from scratch. */
export function moduleLogitsFresh(model: InferenceModel, seq: readonly number[]): Float32Array {
  const T = seq.length,
    C = model.config.hidden;
  const h = model.forwardBase(seq.slice(0, T - 1), model.newBaseCache(), 'none').hidden.slice(0, (T - 1) * C);
  return model.forwardModule(h, seq.slice(1), model.newModuleCache(), 'last').slice();
}

/** Greedy decoding without any cache reuse: the whole sequence recomputed for every new token. */
export function greedyWithoutCache(model: InferenceModel, prompt: readonly number[], n: number): number[] {
  const seq = [...prompt],
    out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = argmax(baseLogitsFresh(model, seq));
    out.push(id);
    seq.push(id);
  }
  return out;
}

/** Prompts of random ids (deterministic in `seed`), lengths in [1, maxLen]. */
export function randomPrompts(count: number, vocab: number, maxLen: number, seed: number): number[][] {
  const u = seededUniform(seed);
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + Math.floor(u.next() * maxLen) }, () => Math.floor(u.next() * vocab)),
  );
}

/**
 * Verified greedy must equal standard greedy token for token on every prompt. Returns the summed draft
 * counters so a caller can assert both paths (accept and reject) ran.
 */
export function checkVerifiedGreedy(
  model: InferenceModel,
  prompts: number[][],
  opts: GenerationOptions = {},
): { accepted: number; rejected: number } {
  let accepted = 0,
    rejected = 0;
  for (const p of prompts) {
    const std = decodeAll(model, p, { ...opts, mode: 'standard' });
    const ver = decodeAll(model, p, { ...opts, mode: 'verified' });
    assert.deepEqual(ver.ids, std.ids, `verified greedy differs from standard greedy for prompt [${p.join(',')}]`);
    accepted += ver.stats.accepted;
    rejected += ver.stats.rejected;
  }
  return { accepted, rejected };
}

/**
 * The exact joint distribution of the first `n` generated tokens under standard decoding with `opts`
 * (sampling settings), by enumeration: a Map from "a,b,…" to probability.
 */
export function exactJoint(
  model: InferenceModel,
  prompt: readonly number[],
  opts: GenerationOptions,
  n: number,
): Map<string, number> {
  const r = resolveOptions(opts),
    V = model.config.vocabSize;
  const sampler = new Sampler(r, V, seededUniform(0));
  const out = new Map<string, number>();
  const walk = (seq: number[], prob: number, depth: number): void => {
    if (depth === n) {
      out.set(seq.slice(prompt.length).join(','), prob);
      return;
    }
    const dist = sampler.distribution(baseLogitsFresh(model, seq), new TokenHistory(V, seq));
    for (let v = 0; v < V; v++) if (dist[v]! > 0) walk([...seq, v], prob * dist[v]!, depth + 1);
  };
  walk([...prompt], 1, 0);
  return out;
}

/** Counts of the first `n` generated tokens over runs seeded 1..runs. */
export function empiricalJoint(
  model: InferenceModel,
  prompt: readonly number[],
  opts: GenerationOptions,
  n: number,
  runs: number,
): { counts: Map<string, number>; accepted: number; rejected: number } {
  const counts = new Map<string, number>();
  let accepted = 0,
    rejected = 0;
  for (let s = 1; s <= runs; s++) {
    const r = decodeAll(model, prompt, { ...opts, max_new_tokens: n, seed: s });
    const key = r.ids.slice(0, n).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
    accepted += r.stats.accepted;
    rejected += r.stats.rejected;
  }
  return { counts, accepted, rejected };
}

/**
 * Pearson chi-square of counts against exact probabilities, cells with an expected count under 5 pooled.
 * Returns the statistic, the degrees of freedom and the critical value at significance `alpha`.
 */
export function chiSquare(
  counts: Map<string, number>,
  probs: Map<string, number>,
  alpha = 1e-3,
): { stat: number; df: number; critical: number; tv: number } {
  let total = 0;
  for (const c of counts.values()) total += c;
  for (const k of counts.keys()) assert.ok(probs.has(k), `outcome ${k} was generated but has probability 0`);
  let stat = 0,
    cells = 0,
    pooledE = 0,
    pooledO = 0,
    tv = 0;
  for (const [k, p] of probs) {
    const e = p * total,
      o = counts.get(k) ?? 0;
    tv += Math.abs(o / total - p) / 2;
    if (e < 5) {
      pooledE += e;
      pooledO += o;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  if (pooledE > 0) {
    stat += (pooledO - pooledE) ** 2 / pooledE;
    cells++;
  }
  const df = Math.max(1, cells - 1);
  return { stat, df, critical: chiSquareCritical(df, alpha), tv };
}

/** Upper critical value of chi-square(df) by the Wilson–Hilferty approximation. */
export function chiSquareCritical(df: number, alpha: number): number {
  const z = normalQuantile(1 - alpha),
    a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/** Standard normal quantile (Acklam's rational approximation; |error| < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const q = p < 0.5 ? p : 1 - p;
  let x: number;
  if (q < 0.02425) {
    const r = Math.sqrt(-2 * Math.log(q));
    x =
      (((((c[0]! * r + c[1]!) * r + c[2]!) * r + c[3]!) * r + c[4]!) * r + c[5]!) /
      ((((d[0]! * r + d[1]!) * r + d[2]!) * r + d[3]!) * r + 1);
  } else {
    const r = q - 0.5,
      s = r * r;
    x =
      ((((((a[0]! * s + a[1]!) * s + a[2]!) * s + a[3]!) * s + a[4]!) * s + a[5]!) * r) /
      (((((b[0]! * s + b[1]!) * s + b[2]!) * s + b[3]!) * s + b[4]!) * s + 1);
  }
  return p < 0.5 ? x : -x;
}

/**
 * The sampling-distribution tests' setting: the tiny preset over 8 tokens with weights ×4 (seed 21), peaked enough
 * that drafts are accepted and rejected often, small enough to enumerate the exact joint; and their prompt.
 */
export const SAMPLING_VOCAB = 8;
export const SAMPLING_PROMPT: readonly number[] = [3, 1, 4];
export function samplingModel(): InferenceModel {
  return randomModel({ preset: 'tiny', vocabSize: SAMPLING_VOCAB, scale: 4, seed: 21 });
}

/** The sampling settings the distribution tests run: temperature 1 alone, and every logits processor at once. */
export const SAMPLING_CASES: ReadonlyArray<{ name: string; opts: GenerationOptions }> = [
  { name: 'temperature 1', opts: { do_sample: true, top_k: 0 } },
  {
    name: 'temperature 0.8, top-k 6, top-p 0.9, min-p 0.05, repetition penalty 1.3',
    opts: { do_sample: true, temperature: 0.8, top_k: 6, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.3 },
  },
];

/** A distribution over "a,b,c,…" keys marginalised onto the positions in `keep`. */
export function marginal(m: Map<string, number>, keep: readonly number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of m) {
    const parts = k.split(',');
    const key = keep.map((i) => parts[i]).join(',');
    out.set(key, (out.get(key) ?? 0) + v);
  }
  return out;
}

/**
 * Counts of n-token sequences against their exact distribution: a chi-square test on each margin in `margins` and
 * on the whole n-token joint, each at α = 0.001.
 */
export function assertSameDistribution(
  counts: Map<string, number>,
  exact: Map<string, number>,
  margins: readonly (readonly number[])[],
  n: number,
): void {
  for (const keep of margins) {
    const r = chiSquare(marginal(counts, keep), marginal(exact, keep));
    assert.ok(
      r.stat < r.critical,
      `tokens ${keep}: chi-square ${r.stat.toFixed(1)} ≥ ${r.critical.toFixed(1)} (df ${r.df}), ` +
        `TV ${r.tv.toFixed(3)}`,
    );
  }
  const all = chiSquare(counts, exact);
  assert.ok(
    all.stat < all.critical,
    `${n}-token joint: chi-square ${all.stat.toFixed(1)} ≥ ${all.critical.toFixed(1)} (df ${all.df})`,
  );
}
