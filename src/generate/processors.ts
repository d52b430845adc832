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
    const k = this.k, V = logits.length;
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
          const t = h[parent]!; h[parent] = h[j]!; h[j] = t; j = parent;
        }
      } else if (x > h[0]!) {
        h[0] = x;
        let j = 0;
        for (;;) {
          const l = 2 * j + 1, r = l + 1;
          let m = j;
          if (l < k && h[l]! < h[m]!) m = l;
          if (r < k && h[r]! < h[m]!) m = r;
          if (m === j) break;
          const t = h[m]!; h[m] = h[j]!; h[j] = t; j = m;
        }
      }
    }
    const kth = h[0]!;
    for (let i = 0; i < V; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  }
}

/**
 * Nucleus: keep the shortest prefix of the tokens sorted by probability (descending, ties by id) whose mass
 * reaches p — a token is kept iff the mass strictly before it is < p (transformers' rule, mirrored).
 * Only tokens with probability ≥ (1 − p)/V can be in it (the rest together hold < 1 − p), so only they are sorted.
 */
export class TopP implements LogitsProcessor {
  readonly name = 'top_p';
  private exps = new Float64Array(0);
  constructor(readonly p: number) {}
  process(logits: Float32Array): void {
    const V = logits.length, p = this.p;
    if (p >= 1) return;
    if (this.exps.length < V) this.exps = new Float64Array(V);
    const e = this.exps;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!;
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const v = Math.exp(logits[i]! - max);
      e[i] = v;
      sum += v;
    }
    const floor = ((1 - p) / V) * sum;
    const cand: number[] = [];
    for (let i = 0; i < V; i++) if (e[i]! >= floor) cand.push(i);
    cand.sort((a, b) => e[b]! - e[a]! || a - b);
    const target = p * sum;
    let cum = 0, kept = cand.length;
    for (let j = 0; j < cand.length; j++) {
      if (cum >= target) {
        kept = j;
        break;
      }
      cum += e[cand[j]!]!;
    }
    const keep = new Uint8Array(V);
    for (let j = 0; j < kept; j++) keep[cand[j]!] = 1;
    for (let i = 0; i < V; i++) if (!keep[i]) logits[i] = -Infinity;
  }
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
