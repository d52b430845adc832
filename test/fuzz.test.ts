/**
 * The loader fuzz in the test suite (issue 9): a short run of fuzz/run.ts (2,000 mutated inputs over every file
 * kind) must end with no crash, hang, memory blow-up, unclear error or broken load; and every saved reproducer of
 * an earlier failure (test/fuzz-repro/<case>/, written by `npm run fuzz -- --save DIR`) must now give a clean error
 * or a working model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAILURES, runFuzz } from '../fuzz/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const reproRoot = path.join(root, 'test', 'fuzz-repro');

test(
  'fuzz: 2,000 mutated model files, train_state and tokenizers load cleanly or fail with a clear error',
  { timeout: 300_000 },
  async () => {
    const r = await runFuzz({
      iterations: 2000,
      seed: 20261201,
      workers: 2,
      timeoutMs: 10_000,
      maxRssMb: 2048,
      save: null,
      verbose: false,
    });
    const failures = r.failures.map((f) => `${f.outcome} ${f.seed}/${f.file} (${f.mutation}): ${f.message}`);
    assert.deepEqual(failures, [], `counts ${JSON.stringify(r.counts)}`);
    for (const k of FAILURES) assert.equal(r.counts[k], 0, k);
    assert.ok(r.counts.rejected > 1000, `most mutations must be rejected: ${JSON.stringify(r.counts)}`);
  },
);

const repros = fs.existsSync(reproRoot)
  ? fs.readdirSync(reproRoot).filter((d) => fs.existsSync(path.join(reproRoot, d, 'case.json')))
  : [];

test(
  'fuzz reproducers: every saved failing input now loads cleanly or fails with a clear error',
  { skip: repros.length === 0 },
  () => {
    for (const name of repros) {
      const dir = path.join(reproRoot, name);
      const c = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) as { kind: string; mutation: string };
      // Each in its own process with a time limit: these inputs once crashed, hung or blew up a process.
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'fuzz', 'replay.ts'), dir, c.kind], {
        cwd: root,
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(r.signal, null, `${name} (${c.mutation}): killed by ${r.signal}`);
      assert.equal(r.status, 0, `${name} (${c.mutation}): ${r.stdout}${r.stderr}`);
    }
  },
);
