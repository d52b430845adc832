/**
 * Logits processors (transformers' LogitsProcessor / LogitsWarper): each rewrites a row of logits [V] in place,
 * a filtered token becoming −Infinity. The sampler composes them in transformers' order: repetition penalty,
 * then (sampling only) temperature, top-k, top-p, min-p. They read the token history but never change it.
 */
import type { TokenHistory } from './history.js';

export interface LogitsProcessor {
  readonly name: string;
  process(logits: Float32Array, history: TokenHistory): void;
}

/** CTRL penalty: a logit of a token already in the history is divided by θ when positive, multiplied when negative. */
export class RepetitionPenalty implements LogitsProcessor {
  readonly name = 'repetition_penalty';
  constructor(readonly penalty: number) {}
  process(logits: Float32Array, history: TokenHistory): void {
    const p = this.penalty;
    for (const id of history.distinct) {
      const l = logits[id]!;
      logits[id] = l > 0 ? l / p : l * p;
    }
  }
}

export class Temperature implements LogitsProcessor {
  readonly name = 'temperature';
  constructor(readonly temperature: number) {}
  process(logits: Float32Array): void {
    if (this.temperature === 1) return;
    const inv = 1 / this.temperature;
    for (let i = 0; i < logits.length; i++) logits[i]! *= inv;
  }
}

/** Keep the tokens whose logit is ≥ the k-th largest (ties at the boundary are kept, as in transformers). */
export class TopK implements LogitsProcessor {
  readonly name = 'top_k';
  private heap: Float32Array;
  constructor(readonly k: number) {
    this.heap = new Float32Array(Math.max(1, Math.min(k, 1 << 16)));
  }
  process(logits: Float32Array): void {
    const k = this.k,
      V = logits.length;
    if (k <= 0 || k >= V) return;
    if (this.heap.length < k) this.heap = new Float32Array(k);
    // Min-heap of the k largest values seen so far: O(V log k).
    const h = this.heap;
    let n = 0;
    for (let i = 0; i < V; i++) {
      const x = logits[i]!;
      if (n < k) {
        let j = n++;
        h[j] = x;
        while (j > 0) {
          const parent = (j - 1) >> 1;
          if (h[parent]! <= h[j]!) break;
          const t = h[parent]!;
          h[parent] = h[j]!;
          h[j] = t;
          j = parent;
        }
      } else if (x > h[0]!) {
        h[0] = x;
        let j = 0;
        for (;;) {
          const l = 2 * j + 1,
            r = l + 1;
          let m = j;
          if (l < k && h[l]! < h[m]!) m = l;
          if (r < k && h[r]! < h[m]!) m = r;
          if (m === j) break;
          const t = h[m]!;
          h[m] = h[j]!;
          h[j] = t;
          j = m;
        }
      }
    }
    const kth = h[0]!;
    for (let i = 0; i < V; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  }
}

/**
 * Nucleus: keep the shortest prefix of the tokens ordered by probability (descending, ties by id) whose mass
 * reaches p — a token is kept iff the mass strictly before it is < p (transformers' rule, mirrored).
 * Only tokens with probability ≥ (1 − p)/V can be in it (the rest together hold < 1 − p), and the prefix is found
 * by a quickselect on mass (expected O(V)), not a sort: flat distributions have tens of thousands of candidates.
 */
export class TopP implements LogitsProcessor {
  readonly name = 'top_p';
  private exps = new Float64Array(0);
  private idx = new Int32Array(0);
  private keep = new Uint8Array(0);
  constructor(readonly p: number) {}
  process(logits: Float32Array): void {
    const V = logits.length,
      p = this.p;
    if (p >= 1) return;
    if (this.exps.length < V) {
      this.exps = new Float64Array(V);
      this.idx = new Int32Array(V);
      this.keep = new Uint8Array(V);
    }
    const e = this.exps,
      idx = this.idx,
      keep = this.keep;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!;
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const v = Math.exp(logits[i]! - max);
      e[i] = v;
      sum += v;
    }
    const floor = ((1 - p) / V) * sum;
    let n = 0;
    for (let i = 0; i < V; i++) if (e[i]! >= floor) idx[n++] = i;
    const kept = nucleusSelect(e, idx, n, p * sum);
    keep.fill(0, 0, V);
    for (let j = 0; j < kept; j++) keep[idx[j]!] = 1;
    for (let i = 0; i < V; i++) if (!keep[i]) logits[i] = -Infinity;
  }
}

/** a comes before b in the nucleus order: larger weight first, then smaller id. */
const before = (e: Float64Array, a: number, b: number): boolean => e[a]! > e[b]! || (e[a] === e[b] && a < b);

/**
 * Reorders idx[0..n) so that idx[0..k) is the nucleus of mass `target` (the tokens whose preceding mass in the
 * nucleus order is < target) and returns k. Quickselect: partition around a pivot; if the part before it already
 * holds the target, the nucleus lies inside it; otherwise that part and the pivot are kept and the rest is searched
 * for the remaining mass.
 */
export function nucleusSelect(e: Float64Array, idx: Int32Array, n: number, target: number): number {
  let lo = 0,
    hi = n,
    need = target;
  while (hi > lo && need > 0) {
    const mid = (lo + hi) >> 1;
    const pv = idx[mid]!;
    idx[mid] = idx[hi - 1]!;
    idx[hi - 1] = pv;
    let store = lo,
      mass = 0;
    for (let j = lo; j < hi - 1; j++) {
      const t = idx[j]!;
      if (before(e, t, pv)) {
        idx[j] = idx[store]!;
        idx[store++] = t;
        mass += e[t]!;
      }
    }
    idx[hi - 1] = idx[store]!;
    idx[store] = pv;
    if (mass >= need)
      hi = store; // the pivot and everything after it are out
    else {
      need -= mass + e[pv]!;
      lo = store + 1; // idx[lo0..store] are in; search the rest
    }
  }
  return lo;
}

/** Keep tokens with probability ≥ min_p · max probability, i.e. logit ≥ max logit + ln(min_p). */
export class MinP implements LogitsProcessor {
  readonly name = 'min_p';
  constructor(readonly minP: number) {}
  process(logits: Float32Array): void {
    if (this.minP <= 0) return;
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
    const cut = max + Math.log(this.minP);
    for (let i = 0; i < logits.length; i++) if (logits[i]! < cut) logits[i] = -Infinity;
  }
}
