/** Standard decoding (ARCHITECTURE.md §1.3): the prompt in one batched forward, then one full call per token. */
import type { DecodeSession, DecodeStep } from '../session.js';

export function* standardDecode(s: DecodeSession): Generator<DecodeStep, void, void> {
  let logits = (yield* s.prefill()).logits;
  for (;;) {
    const id = s.sampler.pick(logits, s.history);
    yield s.emit(id, 'full');
    if (s.done) return;
    logits = (yield* s.full([id], 'last')).logits;
  }
}
