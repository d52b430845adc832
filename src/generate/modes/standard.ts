/** Standard decoding (ARCHITECTURE.md §1.3): the prompt in one batched forward, then one full call per token. */
import type { DecodeSession } from '../session.js';
import type { TokenEvent } from '../types.js';

export function* standardDecode(s: DecodeSession): Generator<TokenEvent, void> {
  let logits = s.prefill().logits;
  for (;;) {
    const id = s.sampler.pick(logits, s.history);
    yield s.emit(id, 'full');
    if (s.done) return;
    logits = s.full([id], 'last').logits;
  }
}
