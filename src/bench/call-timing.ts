/**
 * Median wall time of the calls decoding is made of, on a warm cache: a full call on 1 and on 2 tokens, and a
 * module call on 1 and 2 rows. They explain the mode speedups: with t1, t2 (full, M = 1, 2) and tm (module),
 * recycle makes 2 tokens per t2 + tm against standard's 1 per t1, so its ideal speedup is 2·t1 / (t2 + tm), and
 * verified's (1 + α)·t1 / (t2 + tm) at acceptance α (DESIGN.md §1.3: M = 2 must stream the weights once).
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

function time(f: () => void, reps: number): number {
  const xs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

export function measureCallTimings(model: InferenceModel, contextTokens = 16, reps = 15): CallTimings {
  const c = model.config, base = model.newBaseCache();
  const ctx = Array.from({ length: contextTokens }, (_, i) => (i * 7919) % c.vocabSize);
  model.forwardBase(ctx, base, 'none');
  const full = (ids: number[]) => time(() => {
    model.forwardBase(ids, base, 'last');
    base.rollback(ids.length);
  }, reps);
  const t1 = full([1]), t2 = full([1, 2]);
  if (!model.hasModule) return { full_m1_ms: t1, full_m2_ms: t2, module_m1_ms: null, module_m2_ms: null, recycle_ideal_speedup: null };
  const mod = model.newModuleCache(), h = new Float32Array(2 * c.hidden);
  const module = (ids: number[]) => time(() => {
    model.forwardModule(h, ids, mod, 'last');
    mod.rollback(ids.length);
  }, reps);
  const m1 = module([1]), m2 = module([1, 2]);
  return { full_m1_ms: t1, full_m2_ms: t2, module_m1_ms: m1, module_m2_ms: m2, recycle_ideal_speedup: (2 * t1) / (t2 + m2) };
}
