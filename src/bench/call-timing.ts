/**
 * Median wall time of the calls decoding is made of, on a warm cache: a full call on 1 and on 2 tokens, and a
 * module call on 1 and 2 rows. They explain the mode speedups: with t1, t2 (full, M = 1, 2) and tm (module),
 * recycle makes 2 tokens per t2 + tm against standard's 1 per t1, so its ideal speedup is 2·t1 / (t2 + tm), and
 * verified's (1 + α)·t1 / (t2 + tm) at acceptance α (ARCHITECTURE.md §1.3: M = 2 must stream the weights once).
 */
import type { InferenceModel } from '../model/infer.js';
import { median } from './bandwidth.js';

export interface CallTimings {
  full_m1_ms: number;
  full_m2_ms: number;
  module_m1_ms: number | null;
  module_m2_ms: number | null;
  /** 2·t1 / (t2 + tm): the speedup recycle mode would get if decoding were nothing but these calls. */
  recycle_ideal_speedup: number | null;
}

/**
 * The four calls are timed round-robin (t1, t2, m1, m2, t1, …) rather than one after another, so a change in
 * what the shared machine gives us during the measurement hits all four alike; medians over the rounds.
 */
export function measureCallTimings(model: InferenceModel, contextTokens = 16, reps = 15): CallTimings {
  const c = model.config,
    base = model.newBaseCache();
  const ctx = Array.from({ length: contextTokens }, (_, i) => (i * 7919) % c.vocabSize);
  model.forwardBase(ctx, base, 'none');
  const calls: Array<() => void> = [[1], [1, 2]].map((ids) => () => {
    model.forwardBase(ids, base, 'last');
    base.rollback(ids.length);
  });
  if (model.hasModule) {
    const mod = model.newModuleCache(),
      h = new Float32Array(2 * c.hidden);
    for (const ids of [[1], [1, 2]]) {
      calls.push(() => {
        model.forwardModule(h, ids, mod, 'last');
        mod.rollback(ids.length);
      });
    }
  }
  const ms: number[][] = calls.map(() => []);
  for (let r = 0; r < reps; r++) {
    calls.forEach((f, i) => {
      const t0 = performance.now();
      f();
      ms[i]!.push(performance.now() - t0);
    });
  }
  const [t1, t2, m1, m2] = ms.map(median) as [number, number, number?, number?];
  if (m1 === undefined || m2 === undefined)
    return { full_m1_ms: t1, full_m2_ms: t2, module_m1_ms: null, module_m2_ms: null, recycle_ideal_speedup: null };
  return {
    full_m1_ms: t1,
    full_m2_ms: t2,
    module_m1_ms: m1,
    module_m2_ms: m2,
    recycle_ideal_speedup: (2 * t1) / (t2 + m2),
  };
}
