/** `recyclegpt plot`'s SVG (src/train/plot.ts): resumes marked, the step-0 evaluation unconnected, both markers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LogRow } from '../src/train/log.js';
import { lossCurvesSvg, resumeSteps } from '../src/train/plot.js';

const trainRow = (step: number, elapsed: number): LogRow => ({
  type: 'train',
  step,
  loss: 5 - step / 100,
  lm_loss: 2.5 - step / 200,
  recycle_loss: 2.5 - step / 200,
  lr: 1e-3,
  grad_norm: 1,
  tokens_per_s: 100,
  elapsed_s: elapsed,
});
const evalRow = (step: number, loss: number): LogRow => ({
  type: 'eval',
  step,
  val_loss_next: loss,
  val_loss_recycle: loss,
  ppl_next: Math.exp(loss),
  ppl_recycle: Math.exp(loss),
  agreement_top1: 0.5,
  tokens: 100,
});

// steps 1..6 in one process, 7..10 in a second one (resumed from the checkpoint of step 6)
const rows: LogRow[] = [
  evalRow(0, 8),
  ...[1, 2, 3, 4, 5, 6].map((s) => trainRow(s, s * 0.5)),
  evalRow(5, 3),
  ...[7, 8, 9, 10].map((s) => trainRow(s, (s - 6) * 0.5)),
  evalRow(10, 2.5),
];

test('plot: a resume is found where elapsed_s starts again, and drawn', () => {
  assert.deepEqual(resumeSteps(rows.filter((r) => r.type === 'train')), [6]);
  assert.match(lossCurvesSvg(rows), /resumed at 6/);
  assert.doesNotMatch(lossCurvesSvg(rows.filter((r) => r.type !== 'train' || r.step <= 6)), /resumed at/);
});

test('plot: the step-0 evaluation is a marker only; equal held-out losses show a dot and a diamond', () => {
  const svg = lossCurvesSvg(rows);
  const dashed = [...svg.matchAll(/<path d="([^"]+)" fill="none" stroke="[^"]+" stroke-width="1" stroke-dasharray/g)];
  assert.equal(dashed.length, 2); // val next and val recycle, each through steps 5 and 10 only
  for (const [, d] of dashed) assert.equal(d!.split('L').length, 2, d);
  assert.equal([...svg.matchAll(/<circle /g)].length, 3 + 1); // 3 evaluations + the legend
  assert.equal([...svg.matchAll(/ Z" fill="none"/g)].length, 3 + 1);
});
