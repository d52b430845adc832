/**
 * The training log: one JSON object per line in train_log.jsonl of the model directory. Train rows every step,
 * eval rows whenever both heads are evaluated. Rows are appended as they happen; after a crash, resuming from
 * the checkpoint of step s cuts the log back to the rows of steps ≤ s, so a resumed run's log reads like an
 * uninterrupted one.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';

export const LOG_FILE = 'train_log.jsonl';

export interface TrainRow {
  type: 'train';
  step: number;
  /** Joint loss lm_loss + λ·recycle_loss (mean over micro-batches). */
  loss: number;
  /** null when the base is frozen (its loss cannot change; evaluation reports it). */
  lm_loss: number | null;
  /** CE of the recycle head at depth 1 (the paper's recycle loss). */
  recycle_loss: number | null;
  /** With a k-step recycle loss (k > 1): CE at each depth 1..k; the loss uses λ·Σ_j w_j·CE_j. */
  recycle_loss_depths?: number[];
  lr: number;
  /** Global gradient L2 norm before clipping. */
  grad_norm: number;
  tokens_per_s: number;
  /** Seconds since this process started training. */
  elapsed_s: number;
}

export interface EvalRow {
  type: 'eval';
  step: number;
  val_loss_next: number;
  val_loss_recycle: number | null;
  ppl_next: number;
  ppl_recycle: number | null;
  agreement_top1: number | null;
  tokens: number;
  /** With a k-step recycle loss (k > 1): loss and top-1 agreement with the base at each depth 1..k. */
  depths?: DepthEval[];
}

/** One depth of the module chain on held-out text (train/eval.ts). */
export interface DepthEval {
  depth: number;
  /** Mean CE against x_{t+depth+1}. */
  loss: number;
  ppl: number;
  /** argmax at depth j, anchor t == the base's argmax at position t+j. */
  agreement_top1: number;
  /** Rows scored (loss) and rows compared with the base (agreement). */
  tokens: number;
  tokens_agreement: number;
}

export type LogRow = TrainRow | EvalRow;

function isRow(v: unknown): v is LogRow {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as { type?: unknown; step?: unknown };
  return (r.type === 'train' || r.type === 'eval') && Number.isInteger(r.step);
}

/** Parses a log; a torn last line (crash while appending) is dropped, any other bad line is an error. */
export function readLog(file: string): LogRow[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the training log: ${(e as Error).message}`);
  }
  const lines = text.split('\n');
  const rows: LogRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1) return; // unterminated last line: the write was cut off
      throw new Error(`${file}: line ${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
    if (!isRow(v))
      throw new Error(`${file}: line ${i + 1} is not a log row ({type: "train"|"eval", step: integer, ...})`);
    rows.push(v);
  });
  return rows;
}

export class TrainLog {
  constructor(readonly file: string) {}

  /** Start an empty log (fresh run). */
  reset(): void {
    writeFileAtomic(this.file, '');
  }

  /** Keep only the rows of steps ≤ `step` (resume after a crash); rewritten atomically. */
  truncateAfter(step: number): void {
    const rows = fs.existsSync(this.file) ? readLog(this.file).filter((r) => r.step <= step) : [];
    writeFileAtomic(this.file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  append(row: LogRow): void {
    fs.appendFileSync(this.file, `${JSON.stringify(row)}\n`);
  }
}
