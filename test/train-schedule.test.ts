/**
 * `train --resume` continues the learning-rate schedule the run started with; `--extend-schedule` restretches the
 * cosine over a larger --steps, as an explicit choice (issue 13).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cosineSchedule } from '../src/nn/optim.js';
import { readTrainState } from '../src/train/checkpoint.js';
import { readLog, type TrainRow } from '../src/train/log.js';
import { train, type GivenOptions } from '../src/train/trainer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-schedule-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const data = path.join(tmp, 'data.txt');
fs.writeFileSync(data, 'the cat sat on the mat and the dog sat on the log. '.repeat(40));

const base = (out: string, steps: number): GivenOptions => ({
  data,
  out,
  preset: 'tiny',
  vocabSize: 300,
  steps,
  batchSize: 1,
  seqLen: 8,
  warmup: 2,
  lr: 1e-3,
  minLr: 1e-4,
  evalEvery: 0,
  evalBatches: 1,
  threads: 1,
});

const lrs = (out: string): Map<number, number> =>
  new Map(
    readLog(path.join(out, 'train_log.jsonl'))
      .filter((r): r is TrainRow => r.type === 'train')
      .map((r) => [r.step, r.lr]),
  );

test('--resume with more steps continues the same schedule: past its end the rate stays at the floor', () => {
  const out = path.join(tmp, 'same');
  train(base(out, 10), { resume: false });
  assert.equal(readTrainState(out).options.scheduleSteps, 10);
  const messages: string[] = [];
  train({ out, steps: 16, threads: 1 }, { resume: true }, { onStart: (i) => messages.push(...i.messages) });
  const schedule = cosineSchedule({ warmup: 2, total: 10, maxLr: 1e-3, minLr: 1e-4 });
  const got = lrs(out);
  for (let step = 1; step <= 16; step++) assert.equal(got.get(step), schedule(step - 1), `step ${step}`);
  assert.equal(got.get(11), 1e-4);
  assert.ok(
    messages.some((m) => /schedule ends at step 10, so steps 11–16 run at the floor/.test(m)),
    messages.join('\n'),
  );
  assert.equal(readTrainState(out).options.scheduleSteps, 10);
});

test('--resume --extend-schedule restretches the cosine over the new --steps, and says so', () => {
  const out = path.join(tmp, 'extend');
  train(base(out, 10), { resume: false });
  const messages: string[] = [];
  train(
    { out, steps: 16, threads: 1 },
    { resume: true, extendSchedule: true },
    { onStart: (i) => messages.push(...i.messages) },
  );
  const before = cosineSchedule({ warmup: 2, total: 10, maxLr: 1e-3, minLr: 1e-4 });
  const after = cosineSchedule({ warmup: 2, total: 16, maxLr: 1e-3, minLr: 1e-4 });
  const got = lrs(out);
  for (let step = 1; step <= 10; step++) assert.equal(got.get(step), before(step - 1), `step ${step}`);
  for (let step = 11; step <= 16; step++) assert.equal(got.get(step), after(step - 1), `step ${step}`);
  assert.ok(
    messages.some((m) => /schedule extended from 10 to 16 steps/.test(m)),
    messages.join('\n'),
  );
  assert.equal(readTrainState(out).options.scheduleSteps, 16);
});

test('an interrupted run resumed to its own --steps is unchanged; --extend-schedule needs --resume', () => {
  const out = path.join(tmp, 'short');
  train({ ...base(out, 10), steps: 6, scheduleSteps: 10 }, { resume: false });
  train({ out, steps: 10, threads: 1 }, { resume: true });
  const schedule = cosineSchedule({ warmup: 2, total: 10, maxLr: 1e-3, minLr: 1e-4 });
  const got = lrs(out);
  for (let step = 1; step <= 10; step++) assert.equal(got.get(step), schedule(step - 1), `step ${step}`);
  assert.throws(() => train(base(path.join(tmp, 'x'), 5), { resume: false, extendSchedule: true }), /--resume only/);
  assert.throws(
    () => train({ out, steps: 8, threads: 1 }, { resume: true, extendSchedule: true }),
    /below the checkpoint's step 10/,
  );
});
