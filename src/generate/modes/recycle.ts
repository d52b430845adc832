/**
 * Recycle decoding, the paper's alternating schedule (lossy; ARCHITECTURE.md §1.3), with k module tokens per full
 * call (draft_tokens; the paper's k = 1). Invariant at the top of the loop: the base cache holds positions 0..L−1,
 * x_L (the full model's token) is emitted, and the module is owed its catch-up rows (h_t, x_{t+1}) up to position
 * L−1. Each iteration:
 *   catch-up module call → r_1 (for x_{L+1}) and the module's hidden u_1;
 *   chained module calls j = 2..k, one row each on (u_{j−1}, r_{j−1}) → r_j; r_1..r_k are emitted unverified;
 *   the module cache drops the k−1 chained rows;
 *   full call on [x_L, r_1..r_k] (one (k+1)-row forward) → h for each and the distribution of x_{L+k+1}, emitted;
 *   the module is owed rows (h_L, r_1), …, (h_{L+k}, x_{L+k+1}).
 * The prefill plays the first full call. So each full call yields k + 1 tokens, k of them from the module.
 */
import type { DecodeSession, DecodeStep } from '../session.js';

export function* recycleDecode(s: DecodeSession): Generator<DecodeStep, void, void> {
  const C = s.model.config.hidden;
  const opt = s.options.draftTokens ?? 1;
  if (opt === 'auto') throw new Error('decode: draft_tokens "auto" needs verified mode');
  const moduleCache = s.caches.module;
  if (!moduleCache) throw new Error('decode: recycle mode needs a module cache');
  const chainInput = new Float32Array(C);
  const out = yield* s.prefill();
  let a = s.sampler.pick(out.logits, s.history);
  yield s.emit(a, 'full');
  if (s.done) return;
  // Owed module rows: every prompt position, the last pairing h_{n−1} with the new token.
  let oweHidden = out.hidden,
    oweIds: number[] = [...s.prompt.slice(1), a];
  const pending: number[] = [];
  for (;;) {
    pending.length = 0;
    pending.push(a);
    let m = yield* s.moduleOut(oweHidden, oweIds);
    for (let j = 1; j <= opt; j++) {
      if (j > 1) {
        chainInput.set(m.hidden.subarray(m.hidden.length - C));
        m = yield* s.moduleOut(chainInput, [pending[j - 1]!], true);
      }
      const r = s.sampler.pick(m.logits, s.history, true); // a module row: masked outside a draft vocabulary
      pending.push(r);
      yield s.emit(r, 'recycled', j);
      if (s.done) return;
    }
    moduleCache.rollback(opt - 1);
    const st = s.stats;
    st.rounds_by_draft_tokens[opt] = (st.rounds_by_draft_tokens[opt] ?? 0) + 1;
    st.draft_tokens_chosen = opt;
    const o = yield* s.full(pending, 'last');
    a = s.sampler.pick(o.logits, s.history);
    yield s.emit(a, 'full');
    if (s.done) return;
    oweHidden = o.hidden;
    oweIds = [...pending.slice(1), a];
  }
}
