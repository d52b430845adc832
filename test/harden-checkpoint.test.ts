/**
 * Checkpoint hardening (issue 9, items 1, 2, 11, 12): training never touches folders next to --out that it did not
 * make; a swap stopped between any two of its steps (a kill) is completed or undone so --resume always works and
 * continues bit-exactly; an inconsistent train_state is refused naming the field; a full disk names the checkpoint
 * being written and leaves the previous one intact.
 */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCorpus } from '../src/data/corpus.js';
import { DirSwap, recoverReplacedDir, replaceDirAtomic, SWAP_MARKER } from '../src/io/atomic.js';
import { getBackend } from '../src/kernels/index.js';
import { trainBpe, writeTokenizerJson } from '../src/tokenizer/index.js';
import { readLog, type LogRow } from '../src/train/log.js';
import { readTrainState } from '../src/train/checkpoint.js';
import { train, type GivenOptions } from '../src/train/trainer.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'harden-ckpt-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const quiet = { backend: getBackend() };

/** A small text file from Brown and a 300-token BPE for it: tokenizing takes milliseconds. */
const small = (() => {
  const docs = loadCorpus('brown').train.slice(0, 12);
  const file = path.join(tmp, 'small.txt');
  fs.writeFileSync(file, docs.join('\n\n'));
  const tokDir = path.join(tmp, 'tok300');
  fs.mkdirSync(tokDir);
  writeTokenizerJson(path.join(tokDir, 'tokenizer.json'), trainBpe(docs, { vocabSize: 300 }));
  return { file, tokDir };
})();

const STEPS = 4;
const run = (out: string, extra: Partial<GivenOptions> = {}): GivenOptions => ({
  out,
  data: small.file,
  preset: 'tiny',
  tokenizer: small.tokDir,
  steps: STEPS,
  batchSize: 2,
  seqLen: 16,
  evalEvery: 0,
  evalBatches: 1,
  ckptEvery: 1,
  ...extra,
});
const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
/** Log rows without the timing fields. */
const comparable = (rows: LogRow[]): unknown[] =>
  rows.map((r) => (r.type === 'train' ? { ...r, tokens_per_s: 0, elapsed_s: 0 } : r));
/** Names next to `dir` that start with its name and a dot (staging and old folders, ours or not). */
const siblings = (dir: string): string[] =>
  fs
    .readdirSync(path.dirname(dir))
    .filter((n) => n.startsWith(`${path.basename(dir)}.`))
    .sort();

/** The uninterrupted reference run, with copies of its checkpoints of steps 1 and 2. */
const ref = (() => {
  const out = path.join(tmp, 'ref');
  const copies: Record<number, string> = {};
  train(
    run(out),
    { resume: false },
    {
      ...quiet,
      onCheckpoint: (step, dir) => {
        if (step !== 1 && step !== 2) return;
        copies[step] = path.join(tmp, `ref-step${step}`);
        fs.cpSync(dir, copies[step]!, { recursive: true });
      },
    },
  );
  const log = comparable(readLog(path.join(out, 'train_log.jsonl')));
  return { out, step1: copies[1]!, step2: copies[2]!, log, weights: sha(path.join(out, 'model.safetensors')) };
})();

test('train --out X leaves folders named X.tmp-* / X.old-* that it did not make alone', () => {
  const parent = path.join(tmp, 'users');
  fs.mkdirSync(parent);
  const out = path.join(parent, 'res');
  const theirs = ['res.old-1234-abcd', 'res.old-mine', 'res.tmp-copy', 'res.tmp-mine'];
  for (const name of theirs) {
    fs.mkdirSync(path.join(parent, name));
    fs.writeFileSync(path.join(parent, name, 'notes.txt'), `precious ${name}`);
  }
  // a marker of ours copied into another folder does not make that folder ours (its name does not match)
  const forged = {
    format: 'recyclegpt-dir-swap',
    version: 1,
    target: 'res',
    old: 'res.old-1234-abcd',
    complete: true,
    created: Date.now(),
  };
  fs.writeFileSync(path.join(parent, 'res.tmp-copy', SWAP_MARKER), JSON.stringify(forged));

  train(run(out, { steps: 2 }), { resume: false }, quiet); // res did not exist: nothing may be "restored" into it
  assert.deepEqual(
    fs.readdirSync(out).filter((n) => n === 'notes.txt'),
    [],
    'no user folder was renamed into --out',
  );
  train(run(out, { steps: 3 }), { resume: true }, quiet);
  assert.equal(readTrainState(out).step, 3);
  assert.deepEqual(siblings(out), theirs, "only the user's folders are next to --out");
  for (const name of theirs) {
    assert.equal(fs.readFileSync(path.join(parent, name, 'notes.txt'), 'utf8'), `precious ${name}`);
  }
  assert.ok(!fs.existsSync(path.join(out, SWAP_MARKER)), 'no swap marker in the checkpoint');
});

/** Where a kill stops a checkpoint swap: after this step, nothing further runs. */
const CRASH_POINTS = ['begun', 'filled', 'sealed', 'old-moved', 'new-moved', 'old-removed'] as const;
type CrashPoint = (typeof CRASH_POINTS)[number];
/** The checkpoint step found after recovery: before the new folder is sealed the swap is undone, after it finished. */
const RECOVERED_STEP: Record<CrashPoint, number> = {
  begun: 1,
  filled: 1,
  sealed: 1,
  'old-moved': 2,
  'new-moved': 2,
  'old-removed': 2,
};

/** `dir` holds the step-1 checkpoint and a swap to the step-2 one was stopped after `point`. */
function crashedSwap(dir: string, point: CrashPoint): void {
  fs.cpSync(ref.step1, dir, { recursive: true });
  const swap = DirSwap.begin(dir);
  fs.copyFileSync(path.join(ref.step2, 'config.json'), path.join(swap.tmp, 'config.json'));
  if (point === 'begun') return;
  fs.cpSync(ref.step2, swap.tmp, { recursive: true });
  if (point === 'filled') return;
  swap.seal();
  if (point === 'sealed') return;
  swap.moveOldAway();
  if (point === 'old-moved') {
    const only = !fs.existsSync(dir) && fs.existsSync(swap.tmp) && fs.existsSync(swap.old);
    assert.ok(only, 'the state of the issue: only X.old-* and X.tmp-*');
    return;
  }
  swap.moveNewIn();
  if (point === 'new-moved') return;
  fs.rmSync(swap.old, { recursive: true });
}

for (const point of CRASH_POINTS) {
  test(`a kill after swap step "${point}": --resume continues bit-exactly; a run without it refuses cleanly`, () => {
    const resumed = path.join(tmp, `crash-${point}`, 'ckpt');
    fs.mkdirSync(path.dirname(resumed));
    crashedSwap(resumed, point);
    const summary = train({ out: resumed }, { resume: true }, quiet);
    assert.equal(summary.step, STEPS);
    const log = comparable(readLog(path.join(resumed, 'train_log.jsonl')));
    assert.deepEqual(log, ref.log, 'log rows as in the uninterrupted run');
    assert.equal(sha(path.join(resumed, 'model.safetensors')), ref.weights, 'final weights');
    assert.deepEqual(siblings(resumed), [], 'no staging or old folder left');
    assert.ok(!fs.existsSync(path.join(resumed, SWAP_MARKER)), 'no swap marker in the checkpoint');

    const fresh = path.join(tmp, `crash-${point}`, 'fresh');
    crashedSwap(fresh, point);
    const refused = /already holds a training checkpoint; pass --resume/;
    assert.throws(() => train(run(fresh), { resume: false }, quiet), refused);
    assert.equal(readTrainState(fresh).step, RECOVERED_STEP[point]);
    assert.deepEqual(siblings(fresh), []);
  });
}

test('recovery undoes a swap whose staging folder is not sealed, and restores nothing it did not make', () => {
  const parent = path.join(tmp, 'unit');
  fs.mkdirSync(parent);
  const dir = path.join(parent, 'd');
  const v = (): string => fs.readFileSync(path.join(dir, 'v'), 'utf8');
  replaceDirAtomic(dir, (t) => fs.writeFileSync(path.join(t, 'v'), '1'));
  const swap = DirSwap.begin(dir);
  fs.writeFileSync(path.join(swap.tmp, 'v'), '2');
  swap.seal();
  swap.moveOldAway();
  // were the staging folder not marked complete, it must not be rolled forward: the old one is put back
  const marker = path.join(swap.tmp, SWAP_MARKER);
  fs.writeFileSync(marker, fs.readFileSync(marker, 'utf8').replace('"complete":true', '"complete":false'));
  assert.equal(recoverReplacedDir(dir), true);
  assert.equal(v(), '1');
  assert.deepEqual(siblings(dir), []);
  assert.deepEqual(fs.readdirSync(dir), ['v']);
  // DIR missing and only folders we did not make next to it: nothing is renamed in or removed
  fs.renameSync(dir, `${dir}.old-backup`);
  fs.mkdirSync(`${dir}.tmp-x`);
  assert.equal(recoverReplacedDir(dir), false);
  assert.ok(!fs.existsSync(dir));
  assert.deepEqual(siblings(dir), ['d.old-backup', 'd.tmp-x']);
});

test('an inconsistent train_state is refused, naming the file and the fields that disagree', () => {
  interface State {
    step: number;
    trainable: string;
    options: Record<string, unknown>;
    sampler: { step: number; batchSize: number; seqLen: number; tokens: number; rng: { s: number[] } };
    optimizer: { step: number; params: number };
    runtime: { threads: number };
  }
  const cases: Array<[string, (s: State) => void, RegExp]> = [
    [
      'step past the run',
      (s) => {
        s.step = 1e9;
      },
      /field "step" is 1000000000, more than options\.steps 4/,
    ],
    [
      'optimizer step',
      (s) => {
        s.optimizer.step = 7;
      },
      /field "optimizer\.step" is 7, field "step" is 2/,
    ],
    [
      'sampler step',
      (s) => {
        s.sampler.step = 5;
      },
      /field "sampler\.step" is 5, expected step × options\.gradAccum = 2/,
    ],
    [
      'huge batch',
      (s) => {
        s.options.batchSize = 1e6;
      },
      /training option "batchSize" must be an integer in \[1, 65536\], got 1000000/,
    ],
    [
      'batch size',
      (s) => {
        s.options.batchSize = 3;
      },
      /field "options\.batchSize" is 3, field "sampler\.batchSize" is 2/,
    ],
    [
      'sequence length',
      (s) => {
        s.sampler.seqLen = 17;
      },
      /field "options\.seqLen" is 16, field "sampler\.seqLen" is 17/,
    ],
    [
      'token count',
      (s) => {
        s.sampler.tokens = 99;
      },
      /field "sampler\.tokens" is 99, field "data\.train_tokens" is \d+/,
    ],
    [
      'trainable',
      (s) => {
        s.trainable = 'module';
      },
      /field "trainable" is "module", options\.freezeBase is false/,
    ],
    [
      'threads',
      (s) => {
        s.options.threads = 3;
        s.runtime.threads = 2;
      },
      /field "runtime\.threads" is 2, options\.threads is 3/,
    ],
    [
      'rng',
      (s) => {
        s.sampler.rng.s = [0, 0, 0, 0];
      },
      /field "sampler\.rng\.s" is all zeros/,
    ],
    [
      'parameters',
      (s) => {
        s.optimizer.params += 1;
      },
      /field "optimizer\.params" is \d+, the model has \d+ trainable parameters/,
    ],
    [
      'context',
      (s) => {
        s.options.seqLen = 4096;
        s.sampler.seqLen = 4096;
      },
      /options\.seqLen 4096 exceeds the model's context length \d+/,
    ],
  ];
  for (const [what, mutate, want] of cases) {
    const dir = path.join(tmp, `bad-state-${what.replace(/ /g, '-')}`);
    fs.cpSync(ref.step2, dir, { recursive: true });
    const file = path.join(dir, 'train_state', 'state.json');
    const state = JSON.parse(fs.readFileSync(file, 'utf8')) as State;
    mutate(state);
    fs.writeFileSync(file, JSON.stringify(state));
    const before = sha(path.join(dir, 'model.safetensors'));
    assert.throws(
      () => train({ out: dir }, { resume: true }, quiet),
      (e: Error) => {
        assert.match(e.message, want, what);
        assert.ok(
          e.message.includes(file) || /model's context/.test(e.message),
          `${what}: names ${file}: ${e.message}`,
        );
        assert.ok(!e.message.includes('\n'), `${what}: one line`);
        return true;
      },
    );
    assert.equal(sha(path.join(dir, 'model.safetensors')), before, `${what}: the checkpoint is untouched`);
  }
  const dir = path.join(tmp, 'resume-fewer-steps');
  fs.cpSync(ref.step2, dir, { recursive: true });
  assert.throws(
    () => train({ out: dir, steps: 1 }, { resume: true }, quiet),
    /--steps 1 is below the checkpoint's step 2/,
  );
});

test('CLI: a train_state with step 1e9 fails in one line, exit 1 (it printed "trained 1000000000 steps")', () => {
  const dir = path.join(tmp, 'cli-bad-step');
  fs.cpSync(ref.step2, dir, { recursive: true });
  const file = path.join(dir, 'train_state', 'state.json');
  fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, 'utf8')) as object), step: 1e9 }));
  const cli = ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts')];
  const r = spawnSync(process.execPath, [...cli, 'train', '--out', dir, '--resume', '--no-progress'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^recyclegpt: .*state\.json: field "step" is 1000000000, more than options\.steps 4\n$/);
});

/** Makes writes to paths that `fail(path)` selects throw ENOSPC as the kernel would, while `armed()`. */
function fullDisk(armed: () => boolean, fail: (file: string) => boolean): () => void {
  const enospc = (syscall: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });
  const { openSync, writeSync, writeFileSync, appendFileSync } = fs;
  const fds = new Map<number, string>();
  mock.method(fs, 'openSync', (...args: Parameters<typeof fs.openSync>) => {
    const fd = openSync(...args);
    fds.set(fd, String(args[0]));
    return fd;
  });
  mock.method(fs, 'writeSync', (...args: Parameters<typeof fs.writeSync>) => {
    if (armed() && fail(fds.get(args[0]) ?? '')) throw enospc('write');
    return (writeSync as (...a: unknown[]) => number)(...args);
  });
  mock.method(fs, 'writeFileSync', (...args: Parameters<typeof fs.writeFileSync>) => {
    if (armed() && fail(String(args[0]))) throw enospc('write');
    writeFileSync(...args);
  });
  mock.method(fs, 'appendFileSync', (...args: Parameters<typeof fs.appendFileSync>) => {
    if (armed() && fail(String(args[0]))) throw enospc('write');
    appendFileSync(...args);
  });
  syncBuiltinESMExports();
  return () => {
    mock.restoreAll();
    syncBuiltinESMExports();
  };
}

test('a full disk while checkpointing or logging: the error names the file and the full disk; --resume works', () => {
  const cases: Array<[string, (file: string, out: string) => boolean, RegExp]> = [
    ['config', (f, out) => f.includes(`${path.basename(out)}.tmp-`) && !f.includes(SWAP_MARKER), /config\.json/],
    ['weights', (f) => path.basename(f).includes('model.safetensors'), /model\.safetensors/],
    ['log', (f) => f.endsWith('train_log.jsonl'), /train_log\.jsonl/],
  ];
  for (const [what, fail, names] of cases) {
    const out = path.join(tmp, `enospc-${what}`);
    let armed = false,
      hash2 = '';
    const restore = fullDisk(
      () => armed,
      (f) => fail(f, out),
    );
    try {
      const onCheckpoint = (step: number, dir: string): void => {
        if (step !== 2) return;
        hash2 = sha(path.join(dir, 'model.safetensors'));
        armed = true;
      };
      const hooks = { ...quiet, onCheckpoint };
      assert.throws(
        () => train(run(out, { ckptEvery: 2 }), { resume: false }, hooks),
        (e: Error) => {
          assert.match(e.message, /the disk is full/, what);
          assert.match(e.message, names, what);
          assert.ok(e.message.includes(out), `${what}: names ${out}: ${e.message}`);
          assert.match(e.message, /checkpoint \(step 2\) in .* is intact/, what);
          assert.ok(!e.message.includes('\n'), `${what}: one line`);
          return true;
        },
      );
    } finally {
      restore();
    }
    assert.equal(readTrainState(out).step, 2, what);
    assert.equal(sha(path.join(out, 'model.safetensors')), hash2, `${what}: the step-2 checkpoint is intact`);
    assert.deepEqual(siblings(out), [], `${what}: the staging folder was removed`);
    train({ out }, { resume: true }, quiet);
    assert.equal(sha(path.join(out, 'model.safetensors')), ref.weights, `${what}: resumed bit-exactly`);
  }
});
