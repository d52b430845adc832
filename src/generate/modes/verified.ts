/**
 * Verified decoding with k chained drafts (lossless; ARCHITECTURE.md §1.3). Invariant at the top of the loop: the base
 * cache holds positions 0..L−1, x_L is emitted but pending, and the module is owed its catch-up rows (h_t, x_{t+1})
 * for the positions the base has and it has not. Each iteration (a round):
 *   catch-up module call → the draft d_1 for x_{L+1} and the module's hidden u_1 (last row);
 *   chained module calls j = 2..k, each one row at module position L+j−2 on (u_{j−1}, d_{j−1}) → d_j, u_j;
 *   one full call on [x_L, d_1..d_k] (M = k+1) → the base's rows p_0..p_k (p_i: x_{L+i+1} given d_1..d_i);
 *   the module cache drops its k−1 chained rows; drafts are verified in order (greedy: d_j = argmax p_{j−1};
 *   sampling: the speculative rule with d_j's own q), accepted ones emitted, the first rejection emits the base's
 *   replacement and ends the round; after k accepted drafts the base's own next token comes from p_k;
 *   the base cache drops the rows of the rejected drafts (k − accepted), and the module is owed rows 0..accepted.
 * With k = 1 this is the 2-row schedule of the paper's recycle mode with verification, call for call. When one token
 * is left to emit, a plain 1-row full call makes it (no draft needed); k never exceeds the tokens left − 1.
 * Row independence of the kernels (§4) makes each p_i bit-identical to standard decoding's 1-row call at that
 * position, so greedy output equals standard greedy token for token, and sampled output has its distribution.
 * `draft_tokens: 'auto'` picks k before each round (draft-k.ts).
 */
import type { DecodeSession, DecodeStep } from '../session.js';
import { bump } from '../session.js';
import { autoDraftTokens } from './draft-k.js';

export function* verifiedDecode(s: DecodeSession): Generator<DecodeStep, void, void> {
  const { hidden: C, vocabSize: V } = s.model.config;
  const opt = s.options.draftTokens ?? 1;
  const auto = opt === 'auto' ? autoDraftTokens(s.model) : null;
  const moduleCache = s.caches.module;
  if (!moduleCache) throw new Error('decode: verified mode needs a module cache');
  const chainInput = new Float32Array(C);
  const drafts: number[] = [];
  const out = yield* s.prefill();
  let x = s.sampler.pick(out.logits, s.history);
  yield s.emit(x, 'full');
  if (s.done) return;
  // Owed module rows: every prompt position, the last pairing h_{n−1} with the new token.
  let oweHidden = out.hidden,
    oweIds: number[] = [...s.prompt.slice(1), x];
  for (;;) {
    const room = s.room();
    if (room < 2) {
      // One token left (max_new_tokens or the context): a standard step.
      x = s.sampler.pick((yield* s.full([x], 'last')).logits, s.history);
      yield s.emit(x, 'full');
      if (s.done) return;
      continue;
    }
    let t0 = performance.now();
    let m = yield* s.moduleOut(oweHidden, oweIds);
    auto?.observeModule(oweIds.length, performance.now() - t0);
    const k = Math.min(auto ? auto.choose(s.stats, room - 1) : opt === 'auto' ? 1 : opt, room - 1);
    drafts.length = 0;
    drafts.push(s.sampler.draft(m.logits, s.history, 0));
    // Chained drafts: step j sees the drafts before it in the history (repetition penalty), popped afterwards.
    for (let j = 1; j < k; j++) {
      chainInput.set(m.hidden.subarray(m.hidden.length - C));
      s.history.push(drafts[j - 1]!);
      t0 = performance.now();
      m = yield* s.moduleOut(chainInput, [drafts[j - 1]!], true);
      auto?.observeModule(1, performance.now() - t0, true);
      drafts.push(s.sampler.draft(m.logits, s.history, j));
    }
    for (let j = 1; j < k; j++) s.history.pop();
    const st = s.stats;
    for (let j = 1; j <= k; j++) bump(st.drafted_by_depth, j);
    st.rounds_by_draft_tokens[k] = (st.rounds_by_draft_tokens[k] ?? 0) + 1;
    st.draft_tokens_chosen = k;

    t0 = performance.now();
    const o = yield* s.full([x, ...drafts], 'all');
    auto?.observeFull(k + 1, performance.now() - t0);
    moduleCache.rollback(k - 1);
    let accepted = 0,
      next = -1;
    for (; accepted < k; accepted++) {
      const row = o.logits.subarray(accepted * V, (accepted + 1) * V);
      const verdict = s.sampler.verify(row, s.history, accepted);
      if (!verdict.accepted) {
        next = verdict.token;
        yield s.emit(next, 'replaced', accepted + 1);
        if (s.done) return;
        break;
      }
      yield s.emit(drafts[accepted]!, 'accepted', accepted + 1);
      if (s.done) return;
    }
    auto?.observeRound(k, accepted);
    if (accepted === k) {
      next = s.sampler.pick(o.logits.subarray(k * V, (k + 1) * V), s.history);
      yield s.emit(next, 'full');
      if (s.done) return;
    }
    s.caches.base.rollback(k - accepted);
    oweHidden = o.hidden.subarray(0, (accepted + 1) * C);
    oweIds = [...drafts.slice(0, accepted), next];
    x = next;
  }
}
