/**
 * The continuous-batching scheduler (server/scheduler.ts): many generations of every mode (chained drafts too)
 * decoded together give, token for token, what each gives alone (greedy and seeded sampling, gpt2 and llama random
 * models), while their calls really are batched; a full queue is refused; a cancelled job frees its slot for the next.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeAll } from '../src/generate/decode.js';
import { resolveOptions, type GenerationOptions } from '../src/generate/options.js';
import type { DecodeMode } from '../src/generate/types.js';
import type { InferenceModel } from '../src/model/infer.js';
import { QueueFullError, Scheduler } from '../src/server/scheduler.js';
import { randomPrompts } from './helpers/decoding.js';
import { randomModel } from './helpers/models.js';
import { native, nativeSkip } from './helpers/native.js';

const MODES: DecodeMode[] = ['standard', 'recycle', 'verified'];

async function runTogether(
  model: InferenceModel,
  jobs: { prompt: number[]; opts: GenerationOptions }[],
  parallel: number,
) {
  const sched = new Scheduler(model, { parallel, maxQueue: jobs.length, contextLength: model.config.maxPositions });
  const ac = new AbortController();
  const results = await Promise.all(
    jobs.map(async (j) => {
      const ids: number[] = [];
      const r = await sched.submit({
        prompt: j.prompt,
        options: resolveOptions(j.opts),
        eos: [],
        signal: ac.signal,
        onToken: (ev) => ids.push(ev.id),
      });
      assert.deepEqual(ids, r.session.output);
      return { ids, stats: r.session.stats };
    }),
  );
  return { results, counters: sched.counters };
}

function checkUnderLoad(model: InferenceModel, label: string): Promise<void> {
  const V = model.config.vocabSize;
  const prompts = randomPrompts(16, V, 14, 7);
  const jobs = prompts.map((prompt, i) => {
    const sample = i % 2 === 1;
    const mode = MODES[i % 3]!;
    // chained drafts (k = 2, 3) for some recycle / verified jobs: their module calls feed back u (resultHidden)
    const k = mode !== 'standard' && i >= 8 ? 2 + (i % 2) : undefined;
    const opts: GenerationOptions = {
      mode,
      ...(k !== undefined ? { draft_tokens: k } : {}),
      max_new_tokens: 6 + (i % 5) * 3,
      do_sample: sample,
      seed: 100 + i,
      eos_token_id: [],
      ...(sample ? { temperature: 0.9, top_k: 0 } : {}),
    };
    return { prompt, opts };
  });
  return runTogether(model, jobs, 8).then(({ results, counters }) => {
    jobs.forEach((j, i) => {
      const alone = decodeAll(model, j.prompt, j.opts);
      assert.deepEqual(results[i]!.ids, alone.ids, `${label}: job ${i} (${j.opts.mode}) differs under load`);
      assert.equal(results[i]!.stats.accepted, alone.stats.accepted, `${label}: job ${i} accepted`);
    });
    assert.ok(counters.batchedBaseCalls > 0 && counters.batchedModuleCalls > 0, `${label}: nothing was batched`);
    assert.ok(counters.maxBatchRows > 8, `${label}: batches never exceeded one chunk (${counters.maxBatchRows} rows)`);
  });
}

for (const preset of ['tiny', 'tiny-llama']) {
  test(`every request gives under load what it gives alone (${preset}, ref)`, async () => {
    await checkUnderLoad(randomModel({ preset, vocabSize: 61, scale: 3, maxPositions: 64 }), `${preset}/ref`);
  });
  test(`every request gives under load what it gives alone (${preset}, native)`, { skip: nativeSkip }, async () => {
    const model = randomModel({ preset, vocabSize: 61, scale: 3, maxPositions: 64, backend: native() });
    await checkUnderLoad(model, `${preset}/native`);
  });
}

test('a full queue is refused; a cancelled job frees its slot; drain waits for the rest', async () => {
  const model = randomModel({ vocabSize: 40, maxPositions: 64 });
  const sched = new Scheduler(model, { parallel: 1, maxQueue: 1, contextLength: 64 });
  const opts = resolveOptions({ max_new_tokens: 40, eos_token_id: [] });
  const ac = new AbortController();
  let seen = 0;
  const first = sched.submit({
    prompt: [1, 2],
    options: opts,
    eos: [],
    signal: ac.signal,
    onToken: () => {
      if (++seen === 3) ac.abort(new Error('client went away'));
    },
  });
  const second = sched.submit({
    prompt: [3],
    options: opts,
    eos: [],
    signal: new AbortController().signal,
    onToken() {},
  });
  assert.throws(
    () => sched.submit({ prompt: [4], options: opts, eos: [], signal: new AbortController().signal, onToken() {} }),
    (e: unknown) => e instanceof QueueFullError && /queue of 1 is full/.test((e as Error).message),
  );
  await assert.rejects(first, /client went away/);
  assert.equal(seen, 3);
  const r = await second;
  assert.equal(r.session.output.length, 40);
  await sched.drain();
  assert.equal(sched.activeCount + sched.queuedCount, 0);
});

test("one job's failure or cancellation mid-batch leaves the others' output as it is alone", async () => {
  const model = randomModel({ vocabSize: 40, maxPositions: 64 });
  const sched = new Scheduler(model, { parallel: 6, maxQueue: 6, contextLength: 64 });
  const prompts = randomPrompts(6, 40, 5, 11);
  const opts = (i: number): GenerationOptions => ({
    mode: MODES[i % 3]!,
    max_new_tokens: 12,
    eos_token_id: [],
    ...(i % 3 === 2 ? { draft_tokens: 2 } : {}),
  });
  const outcomes = await Promise.allSettled(
    prompts.map(async (prompt, i) => {
      const ac = new AbortController();
      const ids: number[] = [];
      await sched.submit({
        // job 5: a prompt token outside the vocabulary fails when it takes its slot
        prompt: i === 5 ? [...prompt, 99] : prompt,
        options: resolveOptions(opts(i)),
        eos: [],
        signal: ac.signal,
        onToken: (ev) => {
          ids.push(ev.id);
          if (i === 0 && ids.length === 3) ac.abort(new Error('job 0 cancelled')); // cancelled between steps
          if (i === 1 && ids.length === 4) throw new Error('job 1 sink failed'); // its token sink throws
        },
      });
      return ids;
    }),
  );
  assert.match(String((outcomes[0] as PromiseRejectedResult).reason), /job 0 cancelled/);
  assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /job 1 sink failed/);
  assert.match(String((outcomes[5] as PromiseRejectedResult).reason), /outside the vocabulary/);
  for (const i of [2, 3, 4]) {
    const o = outcomes[i]!;
    assert.equal(o.status, 'fulfilled', `job ${i}: ${String((o as PromiseRejectedResult).reason)}`);
    assert.deepEqual((o as PromiseFulfilledResult<number[]>).value, decodeAll(model, prompts[i]!, opts(i)).ids);
  }
  assert.ok(sched.counters.batchedBaseCalls > 0);
  await sched.drain();
  assert.equal(sched.activeCount + sched.queuedCount, 0);
});
