/**
 * Chained drafts (draft_tokens k) on small random models of both architectures: verified greedy with k = 1..4 equals
 * standard greedy token for token, with drafts accepted, rejected and partly accepted (a rejection after accepted
 * drafts) at every depth; recycle with k emits exactly the chain the decode contract defines (each token checked
 * against a from-scratch recomputation); after a partly accepted round both KV caches equal a recomputation; the
 * draft_tokens option is validated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/kernels/backend.js';
import { getBackend } from '../src/kernels/index.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { createCaches, decodeAll, decodeSteps } from '../src/generate/decode.js';
import { resolveOptions } from '../src/generate/options.js';
import { argmax } from '../src/generate/sampler.js';
import { isModelCall } from '../src/generate/session.js';
import type { InferenceModel } from '../src/model/infer.js';
import type { KVCache } from '../src/model/kv-cache.js';
import { randomModel } from './helpers/models.js';
import { baseLogitsFresh, moduleLogitsFresh, randomPrompts } from './helpers/decoding.js';

const backends: Backend[] = [createRefBackend()];
const def = getBackend();
if (def.name !== 'ref') backends.push(def);

const shapes = [
  { preset: 'tiny' as const, scale: 4, moduleScale: 1 },
  { preset: 'tiny-llama' as const, scale: 4, moduleScale: 1 },
];

/** Sums of the per-depth counters over runs. */
function addInto(total: number[], part: readonly number[]): void {
  part.forEach((v, i) => (total[i] = (total[i] ?? 0) + v));
}

/**
 * Logits of a chain recomputed from scratch: the base over seq[0..T−2], the module over every real pair (h_t,
 * seq[t+1]), then one chained row per draft on the previous row's module hidden u and that draft (the decode
 * contract). Returns the logits after the last draft.
 */
function chainedLogitsFresh(model: InferenceModel, seq: readonly number[], drafts: readonly number[]): Float32Array {
  const T = seq.length,
    C = model.config.hidden;
  const h = model.forwardBase(seq.slice(0, T - 1), model.newBaseCache(), 'none').hidden.slice(0, (T - 1) * C);
  const cache = model.newModuleCache();
  let out = model.forwardModuleOut(h, seq.slice(1), cache, 'last');
  for (const d of drafts) {
    const u = out.hidden.slice(out.hidden.length - C);
    out = model.forwardModuleOut(u, [d], cache, 'last');
  }
  return out.logits.slice();
}

for (const backend of backends) {
  for (const { preset, scale, moduleScale } of shapes) {
    const tag = `${preset}, ${backend.name}`;

    test(`verified greedy with k = 1..4 equals standard greedy; every depth accepts and rejects (${tag})`, () => {
      const model = randomModel({ preset, scale, moduleScale, seed: 7, backend });
      const prompts = randomPrompts(8, 12, 8, 3);
      const std = prompts.map((p) => decodeAll(model, p, { max_new_tokens: 40 }).ids);
      for (let k = 1; k <= 4; k++) {
        const checked: number[] = [],
          accepted: number[] = [];
        let partial = 0;
        prompts.forEach((p, i) => {
          const run = decodeAll(model, p, { mode: 'verified', draft_tokens: k, max_new_tokens: 40 });
          assert.deepEqual(run.ids, std[i], `k = ${k}: verified differs from standard for prompt [${p}]`);
          addInto(checked, run.stats.checked_by_depth);
          addInto(accepted, run.stats.accepted_by_depth);
          partial += run.events.filter((e) => e.source === 'replaced' && e.depth! >= 2).length;
          assert.equal(run.stats.draft_tokens_chosen !== null, true);
          assert.equal(run.stats.accepted_by_depth.length, run.stats.checked_by_depth.length, 'one entry per depth');
          const sum = run.stats.accepted_by_depth.reduce((a, b) => a + b, 0);
          assert.equal(sum, run.stats.accepted, 'per-depth acceptances add up');
        });
        for (let j = 0; j < k; j++) {
          assert.ok(accepted[j]! > 0, `k = ${k}: no draft accepted at depth ${j + 1}`);
          assert.ok(checked[j]! > accepted[j]!, `k = ${k}: no draft rejected at depth ${j + 1}`);
        }
        if (k > 1) assert.ok(partial > 0, `k = ${k}: no partly accepted round`);
      }
    });

    test(`recycle with k = 2, 3 emits the module's chain as the decode contract defines it (${tag})`, () => {
      const model = randomModel({ preset, scale, moduleScale, seed: 5, backend });
      for (const k of [2, 3]) {
        for (const prompt of randomPrompts(3, 12, 6, 11)) {
          const run = decodeAll(model, prompt, { mode: 'recycle', draft_tokens: k, max_new_tokens: 17 });
          const seq = [...prompt];
          let depth = 0,
            anchor = seq.length;
          for (const ev of run.events) {
            const want = ev.source === 'full' ? 0 : ++depth;
            assert.equal(ev.depth ?? 0, want, `token ${ev.index}: depth`);
            let expected: number;
            if (ev.source === 'full') {
              assert.ok(depth === 0 || depth === k, `a full token after ${depth} recycled ones`);
              expected = argmax(baseLogitsFresh(model, seq));
              depth = 0;
              anchor = seq.length + 1;
            } else if (depth === 1) {
              assert.equal(ev.source, 'recycled');
              expected = argmax(moduleLogitsFresh(model, seq));
            } else {
              expected = argmax(chainedLogitsFresh(model, seq.slice(0, anchor), seq.slice(anchor)));
            }
            assert.equal(ev.id, expected, `k = ${k}, prompt [${prompt}], token ${ev.index} (${ev.source})`);
            seq.push(ev.id);
          }
          assert.equal(run.stats.drafted_by_depth.length, k);
          assert.equal(run.stats.full_calls, 1 + Math.floor((run.ids.length - 1) / (k + 1)));
        }
      }
    });

    test(`after a partly accepted round both caches equal a recomputation from scratch (${tag})`, () => {
      const model = randomModel({ preset, scale, moduleScale, seed: 7, backend });
      let checkedRounds = 0;
      for (const prompt of randomPrompts(6, 12, 8, 3)) {
        const caches = createCaches(model);
        const { session, steps } = decodeSteps(
          model,
          prompt,
          { mode: 'verified', draft_tokens: 4, max_new_tokens: 40 },
          caches,
        );
        // Run until a draft at depth ≥ 2 is rejected, then through the catch-up module call: the round's end.
        let partial = false,
          caughtUp = false;
        for (const step of steps) {
          if (isModelCall(step)) {
            if (caughtUp) break;
            session.run(step);
            if (partial && step.call === 'module') caughtUp = true;
          } else if (step.source === 'replaced' && step.depth! >= 2) partial = true;
        }
        if (!caughtUp) continue;
        checkedRounds++;
        const seq = [...prompt, ...session.output];
        const L = caches.base.length;
        assert.equal(seq.length, L + 1, 'the base cache holds every token but the pending one');
        assert.equal(caches.module!.length, L, 'the module caught up with the base');
        const ref = recompute(model, prompt, seq.slice(0, L + 1));
        assertCacheEqual(caches.base, ref.base, L, 'base');
        assertCacheEqual(caches.module!, ref.module, L, 'module');
      }
      assert.ok(checkedRounds >= 2, `only ${checkedRounds} prompts had a partly accepted round`);
    });
  }
}

/**
 * Both caches for `seq` built one token at a time, as standard decoding does: the prompt's prefill and the module
 * over the prompt's pairs in one call each (as every mode does), then a 1-row base call and a 1-row module call per
 * later position. The last token of `seq` is pending (not in the caches). Module calls as verified's (checked: they
 * read the module's copy where auto makes one, model/module-dtype.ts).
 */
function recompute(
  model: InferenceModel,
  prompt: readonly number[],
  seq: readonly number[],
): { base: KVCache; module: KVCache } {
  const base = model.newBaseCache(),
    module = model.newModuleCache(),
    bs = model.newScratch(),
    ms = model.newScratch();
  const n = prompt.length;
  const pre = model.forwardBase(prompt, base, 'none', bs);
  model.forwardModule(pre.hidden, seq.slice(1, n + 1), module, 'last', ms, true);
  for (let t = n; t < seq.length - 1; t++) {
    const o = model.forwardBase([seq[t]!], base, 'none', bs);
    model.forwardModule(o.hidden, [seq[t + 1]!], module, 'last', ms, true);
  }
  return { base, module };
}

function assertCacheEqual(got: KVCache, want: KVCache, L: number, name: string): void {
  assert.equal(want.length, L, `${name}: recomputed length`);
  const w = got.kvWidth;
  for (let l = 0; l < got.nLayers; l++) {
    for (const [kind, a, b] of [
      ['k', got.k[l]!, want.k[l]!],
      ['v', got.v[l]!, want.v[l]!],
    ] as const) {
      for (let i = 0; i < L * w; i++) {
        if (a[i] !== b[i])
          assert.fail(`${name} cache layer ${l} ${kind}: position ${Math.floor(i / w)} differs (${a[i]} vs ${b[i]})`);
      }
    }
  }
}

test('draft_tokens: 1..7 or "auto" (verified only); anything else is an error naming the option', () => {
  assert.equal(resolveOptions({ mode: 'verified' }).draftTokens, 1);
  assert.equal(resolveOptions({ mode: 'verified', draft_tokens: 7 }).draftTokens, 7);
  assert.equal(resolveOptions({ mode: 'verified', draft_tokens: 'auto' }).draftTokens, 'auto');
  assert.equal(resolveOptions({ mode: 'recycle', draft_tokens: 3 }).draftTokens, 3);
  for (const bad of [0, 8, 1.5, -1, 'x', null, '3'])
    assert.throws(
      () => resolveOptions({ mode: 'verified', draft_tokens: bad as never }),
      /draft_tokens must be an integer in \[1, 7\] or "auto"/,
    );
  assert.throws(() => resolveOptions({ mode: 'recycle', draft_tokens: 'auto' }), /"auto" needs mode "verified"/);
  assert.throws(() => resolveOptions({ draft_tokens: 2 }), /not "standard"/);
  assert.equal(resolveOptions({ draft_tokens: 1 }).draftTokens, 1);
});

test('near the end a round drafts no more than the tokens left − 1', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7 });
  for (let n = 1; n <= 6; n++) {
    const run = decodeAll(model, [1, 2, 3], { mode: 'verified', draft_tokens: 7, max_new_tokens: n });
    const std = decodeAll(model, [1, 2, 3], { max_new_tokens: n });
    assert.deepEqual(run.ids, std.ids);
    for (const k of Object.keys(run.stats.rounds_by_draft_tokens)) assert.ok(Number(k) <= n - 1, `k ${k}, n ${n}`);
  }
});

test('chained drafts run into the context length cleanly (k = 7; verified equals standard, recycle fills it)', () => {
  const model = randomModel({ preset: 'tiny-llama', scale: 4, seed: 7, maxPositions: 24 });
  for (const prompt of randomPrompts(4, 12, 10, 5)) {
    const std = decodeAll(model, prompt, { max_new_tokens: 100 });
    const ver = decodeAll(model, prompt, { mode: 'verified', draft_tokens: 7, max_new_tokens: 100 });
    assert.deepEqual(ver.ids, std.ids);
    assert.equal(ver.stats.finish_reason, 'context');
    const rec = decodeAll(model, prompt, { mode: 'recycle', draft_tokens: 7, max_new_tokens: 100 });
    assert.equal(rec.stats.finish_reason, 'context');
    assert.equal(rec.ids.length, std.ids.length);
  }
});

test('per-depth stats: a rejection at a depth with no acceptance yet still gives accepted_by_depth an entry', () => {
  const model = randomModel({ preset: 'tiny', scale: 4, seed: 7 });
  const { session } = decodeSteps(model, [1, 2, 3], { mode: 'verified', draft_tokens: 3, max_new_tokens: 10 });
  session.emit(4, 'accepted', 1);
  session.emit(5, 'replaced', 3);
  const ev = session.emit(6, 'recycled', 2);
  assert.equal(ev.depth, 2);
  assert.deepEqual(session.stats.checked_by_depth, [1, 0, 1]);
  assert.deepEqual(session.stats.accepted_by_depth, [1, 0, 0]);
  assert.deepEqual(session.stats.drafted_by_depth, [0, 1]);
});
