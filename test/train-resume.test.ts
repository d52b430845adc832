/**
 * Crash safety of `recyclegpt train` as a user runs it: the CLI is killed with SIGKILL in the middle of training,
 * `--resume` continues from the last checkpoint (losing at most one checkpoint interval), and the resumed run's
 * log equals an uninterrupted run's row for row (losses, learning rates, gradient norms, evaluations).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCorpus } from '../src/data/corpus.js';
import { readLog, type LogRow } from '../src/train/log.js';
import { readTrainState } from '../src/train/checkpoint.js';
import { getBackend } from '../src/kernels/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-resume-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** The plain-TS "ref" backend is ~50x slower than the addon: these CLI runs need the addon. */
const skip =
  getBackend().name === 'ref'
    ? 'the native addon is not built (npm run build:native); the ref backend is too slow for these runs'
    : false;
const cli = ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts')];
const env = { ...process.env, RECYCLEGPT_THREADS: '1' };

// a 1 MB slice of Brown keeps tokenizer training and tokenization short in every child process
const data = path.join(tmp, 'brown-part.txt');
fs.writeFileSync(data, loadCorpus('brown').train.slice(0, 150).join('\n\n'));

const STEPS = 150,
  CKPT = 20;
const trainArgs = (out: string): string[] => [
  'train',
  '--data',
  data,
  '--out',
  out,
  '--preset',
  'tiny',
  '--vocab-size',
  '400',
  '--steps',
  String(STEPS),
  '--batch-size',
  '4',
  '--seq-len',
  '48',
  '--eval-every',
  '25',
  '--eval-batches',
  '4',
  '--ckpt-every',
  String(CKPT),
  '--no-progress',
];

function runCli(args: string[]): string {
  const r = spawnSync(process.execPath, [...cli, ...args], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `recyclegpt ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Log rows without the timing fields (which differ between runs). */
function comparable(rows: LogRow[]): unknown[] {
  return rows.map((r) => (r.type === 'train' ? { ...r, tokens_per_s: 0, elapsed_s: 0 } : r));
}

function lastStep(logFile: string): number {
  if (!fs.existsSync(logFile)) return 0;
  const rows = readLog(logFile);
  return rows.length > 0 ? rows[rows.length - 1]!.step : 0;
}

test(
  'kill -9 mid-training, then --resume: at most one checkpoint interval lost, same losses as an uninterrupted run',
  { skip },
  async () => {
    const ref = path.join(tmp, 'uninterrupted');
    runCli(trainArgs(ref));
    const refRows = readLog(path.join(ref, 'train_log.jsonl'));
    assert.equal(refRows.filter((r) => r.type === 'train').length, STEPS);

    const out = path.join(tmp, 'killed');
    const child = spawn(process.execPath, [...cli, ...trainArgs(out)], {
      cwd: root,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const logFile = path.join(out, 'train_log.jsonl');
    const target = 3 * CKPT + 7; // between checkpoints
    const deadline = Date.now() + 40_000;
    while (lastStep(logFile) < target) {
      assert.ok(Date.now() < deadline, `training did not reach step ${target} in time:\n${stderr}`);
      assert.equal(child.exitCode, null, `training exited early:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await exited;
    const killedAt = lastStep(logFile);
    assert.ok(killedAt < STEPS, 'killed before the end');

    const saved = readTrainState(out).step;
    assert.ok(saved % CKPT === 0 && killedAt - saved <= CKPT, `checkpoint at step ${saved}, killed at ${killedAt}`);

    runCli(['train', '--out', out, '--resume', '--no-progress']);
    assert.deepEqual(
      readTrainState(out).runtime,
      readTrainState(ref).runtime,
      'both runs must use the same backend and thread count',
    );
    const [got, want] = [comparable(readLog(logFile)), comparable(refRows)];
    assert.equal(got.length, want.length, 'log rows');
    for (let i = 0; i < want.length; i++)
      assert.deepEqual(got[i], want[i], `log row ${i} (checkpoint ${saved}, killed at ${killedAt})`);
    assert.equal(readTrainState(out).step, STEPS);
    assert.ok(
      fs.readFileSync(path.join(out, 'model.safetensors')).equals(fs.readFileSync(path.join(ref, 'model.safetensors'))),
      'final weights are bit-identical',
    );
  },
);

test('eval --json and plot on the trained model directory', { skip }, () => {
  const model = path.join(tmp, 'uninterrupted');
  assert.ok(fs.existsSync(path.join(model, 'model.safetensors')), 'needs the model of the previous test');
  const lines = runCli([
    'eval',
    '--model',
    model,
    '--data',
    data,
    '--seq-len',
    '48',
    '--batch-size',
    '4',
    '--max-batches',
    '4',
    '--json',
  ])
    .trim()
    .split('\n');
  const r = JSON.parse(lines[lines.length - 1]!) as Record<string, number>;
  const lastEval = readLog(path.join(model, 'train_log.jsonl'))
    .filter((x) => x.type === 'eval')
    .pop()!;
  assert.ok(lastEval.type === 'eval');
  assert.ok(
    Math.abs(r.ppl_next! - lastEval.ppl_next) < 1e-3 && Math.abs(r.ppl_recycle! - lastEval.ppl_recycle!) < 1e-3,
    JSON.stringify(r),
  );
  assert.equal(r.agreement_top1, lastEval.agreement_top1);
  assert.equal(r.tokens, 4 * 4 * 48);
  const svg = path.join(tmp, 'loss.svg');
  runCli(['plot', '--log', path.join(model, 'train_log.jsonl'), '--out', svg]);
  const text = fs.readFileSync(svg, 'utf8');
  assert.ok(text.startsWith('<svg') && text.trimEnd().endsWith('</svg>') && text.includes('val recycle'));
});
