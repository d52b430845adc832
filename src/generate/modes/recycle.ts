/**
 * Recycle decoding, the paper's alternating schedule (lossy; ARCHITECTURE.md §1.3). Invariant at the top of the
 * loop: both caches hold positions 0..L−1 and x_L, x_{L+1} are emitted but pending. Each iteration:
 *   full call on [x_L, x_{L+1}] (one 2-row forward) → h_L, h_{L+1} and the distribution of x_{L+2};
 *   module call on (h_L, x_{L+1}), (h_{L+1}, x_{L+2}) → the distribution of x_{L+3}.
 * The prefill plays the first full call: prompt → x_n, then the module over every prompt position → x_{n+1}.
 * So tokens alternate full / recycled, and each full call yields two tokens.
 */
import type { DecodeSession, DecodeStep } from '../session.js';

export function* recycleDecode(s: DecodeSession): Generator<DecodeStep, void, void> {
  const out = yield* s.prefill();
  let a = s.sampler.pick(out.logits, s.history);
  yield s.emit(a, 'full');
  if (s.done) return;
  // Module positions 0..n−1: (h_t, x_{t+1}) for the prompt, the last pairing h_{n−1} with the new token.
  const next = [...s.prompt.slice(1), a];
  let b = s.sampler.pick(yield* s.module(out.hidden, next), s.history);
  yield s.emit(b, 'recycled');
  for (;;) {
    if (s.done) return;
    const o = yield* s.full([a, b], 'last');
    const c = s.sampler.pick(o.logits, s.history);
    yield s.emit(c, 'full');
    if (s.done) return;
    const d = s.sampler.pick(yield* s.module(o.hidden, [b, c]), s.history);
    yield s.emit(d, 'recycled');
    a = c;
    b = d;
  }
}
