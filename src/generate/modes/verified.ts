/**
 * Verified decoding (lossless; ARCHITECTURE.md §1.3). Invariant at the top of the loop: both caches hold positions
 * 0..L−1, x_L is emitted but pending, and the module has drafted d for x_{L+1}. Each iteration:
 *   full call on [x_L, d] (M = 2) → p for x_{L+1} (row 0) and for x_{L+2} given d (row 1);
 *   accept (greedy: d = argmax p; sampling: the speculative rule) → emit d, then x_{L+2} from row 1;
 *     module catch-up on (h_L, d), (h_{L+1}, x_{L+2}) → next draft;
 *   reject → emit the replacement r, drop d's KV entry (rollback 1), module catch-up on (h_L, r) → next draft.
 * When a single token is left to emit, a plain 1-row full call makes it (no draft needed). Since kernels are
 * row-independent, row 0 of the 2-row call is bit-identical to standard decoding's 1-row call: greedy output
 * equals standard greedy token for token, and sampled output has standard decoding's distribution.
 */
import type { DecodeSession, DecodeStep } from '../session.js';

export function* verifiedDecode(s: DecodeSession): Generator<DecodeStep, void, void> {
  const C = s.model.config.hidden;
  const out = yield* s.prefill();
  let x = s.sampler.pick(out.logits, s.history);
  yield s.emit(x, 'full');
  if (s.done) return;
  let draft = s.room() >= 2 ? s.sampler.draft(yield* s.module(out.hidden, [...s.prompt.slice(1), x]), s.history) : -1;
  for (;;) {
    if (draft < 0) {
      // One token left (max_new_tokens or the context): a standard step.
      x = s.sampler.pick((yield* s.full([x], 'last')).logits, s.history);
      yield s.emit(x, 'full');
      if (s.done) return;
      continue;
    }
    const o = yield* s.full([x, draft], 'all');
    const V = s.model.config.vocabSize;
    const verdict = s.sampler.verify(o.logits.subarray(0, V), s.history);
    if (verdict.accepted) {
      yield s.emit(draft, 'accepted');
      if (s.done) return;
      const y = s.sampler.pick(o.logits.subarray(V, 2 * V), s.history);
      yield s.emit(y, 'full');
      if (s.done) return;
      draft = s.room() >= 2 ? s.sampler.draft(yield* s.module(o.hidden, [draft, y]), s.history) : -1;
      x = y;
    } else {
      s.caches.base.rollback(1);
      const r = verdict.token;
      yield s.emit(r, 'replaced');
      if (s.done) return;
      draft = s.room() >= 2 ? s.sampler.draft(yield* s.module(o.hidden.subarray(0, C), [r]), s.history) : -1;
      x = r;
    }
  }
}
