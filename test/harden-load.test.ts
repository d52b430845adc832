/**
 * Loading untrusted model directories (issue 9, items 3, 4, 6, 9 and 12): each test reproduces what fuzzing found
 * and checks for a clear error that names the file and the field. Loads that could hang or exhaust memory run in a
 * child process with a time limit, so a regression fails the test instead of stalling the runner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadModelDir, readConfig } from '../src/io/model-dir.js';
import { loadWeights } from '../src/io/load-weights.js';
import type { TensorSource } from '../src/io/sharded.js';
import { openTensorsFromDir } from '../src/io/sharded.js';
import { parseJson } from '../src/io/json.js';
import { fixturesDir } from './helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'harden-load-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture model directory that a test may break. */
function copyFixture(name: string, as: string): string {
  const dst = path.join(tmp, as);
  fs.cpSync(path.join(fixturesDir, name), dst, { recursive: true });
  return dst;
}

/** Writes a safetensors file from a header object or text and data bytes. */
function craft(file: string, header: unknown, data: Uint8Array): string {
  const hb = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  fs.writeFileSync(file, Buffer.concat([len, hb, data]));
  return file;
}

/** Runs `code` (TypeScript, imports relative to the repo) in a child; returns its exit status, stdout and stderr. */
function inChild(
  code: string,
  timeoutMs = 20_000,
): { status: number | null; out: string; err: string; signal: string | null } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, RECYCLEGPT_BACKEND: 'ref' },
  });
  return { status: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
}

function configOf(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

test('item 3: config sizes are bounded and checked against the weights before anything is allocated', () => {
  const dir = copyFixture('tiny-recycle-gpt2', 'huge-config');
  const cfg = configOf(dir);
  const write = (c: Record<string, unknown>): void =>
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c));
  write({ ...cfg, n_layer: 123456789 });
  assert.throws(() => loadModelDir(dir), /config\.json: field "n_layer": .*123456789|config\.json: field "n_layer"/);
  write({ ...cfg, recycle: { num_layers: 1e6 } });
  assert.throws(() => loadModelDir(dir), /config\.json: field "recycle\.num_layers"/);
  // Within the bounds but not what the file holds: named by the missing tensors, found from the header alone.
  write({ ...cfg, n_layer: 1000 });
  assert.throws(() => loadModelDir(dir), /missing \d+ tensor\(s\): h\.\d+\./);
  write({ ...cfg, vocab_size: 4_000_000 });
  assert.throws(
    () => loadModelDir(dir),
    /tensor "wte\.weight" has shape \[\d+, \d+\], config\.json implies \[4000000, /,
  );
});

test('item 4: tensor shapes are checked from the header before any tensor byte is read', () => {
  const dir = path.join(fixturesDir, 'tiny-gpt2');
  const config = readConfig(path.join(dir, 'config.json'));
  const real = openTensorsFromDir(dir);
  try {
    const reads: string[] = [];
    // The header says wte.weight is F16 [2e9]; the loader must refuse it without calling get().
    const lying: TensorSource = {
      metadata: {},
      names: () => real.names(),
      has: (n) => real.has(n),
      info: (n) => (n === 'wte.weight' ? { ...real.info(n), dtype: 'F16', shape: [2e9] } : real.info(n)),
      get: (n) => {
        reads.push(n);
        return real.get(n);
      },
      readInto: (n, dst) => {
        reads.push(n);
        real.readInto(n, dst);
      },
      close: () => undefined,
    };
    assert.throws(
      () => loadWeights(config, lying, dir),
      /tensor "wte\.weight" has shape \[2000000000\], config\.json implies/,
    );
    assert.deepEqual(reads, [], 'no tensor may be read before every shape is checked');
  } finally {
    real.close();
  }
});

test('item 4: a 4 GB sparse file whose header claims a huge tensor fails at once, without reading it', () => {
  const dir = copyFixture('tiny-gpt2', 'sparse');
  const file = path.join(dir, 'model.safetensors');
  const bytes = 4e9;
  const hb = Buffer.from(
    JSON.stringify({ 'wte.weight': { dtype: 'F16', shape: [bytes / 2], data_offsets: [0, bytes] } }),
  );
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  fs.writeFileSync(file, Buffer.concat([len, hb]));
  fs.truncateSync(file, 8 + hb.length + bytes); // sparse: no disk blocks
  const r = inChild(`
    import { loadModelDir } from './src/io/model-dir.ts';
    try { loadModelDir(${JSON.stringify(dir)}); console.log('LOADED'); }
    catch (e) { console.log('ERR ' + e.message); }
    console.log('RSS ' + process.memoryUsage().rss);`);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /ERR .*tensor "wte\.weight" has shape \[2000000000\], config\.json implies/);
  const rss = Number(/RSS (\d+)/.exec(r.out)![1]);
  assert.ok(rss < 1e9, `RSS after the failed load was ${rss} bytes`);
});

test('item 6: files the reference safetensors reader rejects are rejected', () => {
  const data = new Uint8Array(16);
  const t = (a: number, b: number): object => ({ dtype: 'F32', shape: [(b - a) / 4], data_offsets: [a, b] });
  const f = (n: string): string => path.join(tmp, n);
  assert.throws(
    () => readSafetensors(craft(f('hole.st'), { a: t(0, 4), b: t(8, 16) }, data)),
    /data bytes \[4, 8\) before tensor "b" belong to no tensor/,
  );
  assert.throws(
    () => readSafetensors(craft(f('trail.st'), { a: t(0, 8) }, data)),
    /8 trailing bytes after the last tensor/,
  );
  assert.throws(
    () => readSafetensors(craft(f('bom.st'), `\uFEFF${JSON.stringify({ a: t(0, 16) })}`, data)),
    /byte-order mark/,
  );
  assert.throws(
    () =>
      readSafetensors(
        craft(f('dup.st'), '{"a":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,16]}}', data),
      ),
    /duplicate key "dtype"/,
  );
  assert.throws(
    () =>
      readSafetensors(
        craft(
          f('dupname.st'),
          '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},' +
            '"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
          data,
        ),
      ),
    /duplicate key "a"/,
  );
  // Still accepted: header padding with spaces (the reference writer pads to 8 bytes) and empty tensors.
  const ok = readSafetensors(craft(f('ok.st'), `${JSON.stringify({ e: t(0, 0), a: t(0, 16) })}    `, data));
  assert.deepEqual([...ok.tensors.keys()].sort(), ['a', 'e']);
});

test('item 6: a duplicated "dtype" key cannot reinterpret the shipped F16 model as BF16', () => {
  const dir = path.join(tmp, 'shipped-dup');
  fs.cpSync(path.join(root, 'models', 'recycle-small'), dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = buf.subarray(8, 8 + n).toString('utf8');
  const patched = header.replace('"dtype":"F16"', '"dtype":"F16","dtype":"BF16"');
  assert.notEqual(patched, header, 'the shipped model stores F16 tensors');
  const hb = Buffer.from(patched);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  fs.writeFileSync(file, Buffer.concat([len, hb, buf.subarray(8 + n)]));
  assert.throws(() => loadModelDir(dir), /model\.safetensors: header: not valid JSON: duplicate key "dtype"/);
});

test(
  'items 9, 12: FIFOs and directories in place of model files fail at once, naming the file',
  { skip: process.platform === 'win32' },
  () => {
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.json']) {
      const dir = copyFixture('tiny-gpt2', `fifo-${name}`);
      fs.writeFileSync(
        path.join(dir, 'tokenizer.json'),
        fs.readFileSync(path.join(root, 'models', 'recycle-small', 'tokenizer.json')),
      );
      const p = path.join(dir, name);
      fs.rmSync(p);
      assert.equal(spawnSync('mkfifo', [p]).status, 0, 'mkfifo');
      const r = inChild(
        `
      import { RecycleGPT } from './src/index.ts';
      try { await RecycleGPT.load(${JSON.stringify(dir)}); console.log('LOADED'); }
      catch (e) { console.log('ERR ' + e.message); }`,
        15_000,
      );
      assert.equal(r.signal, null, `loading with a FIFO as ${name} did not return`);
      assert.match(
        r.out,
        new RegExp(`ERR .*${name.replace('.', '\\.')}.*named pipe \\(FIFO\\), not a regular file`),
        r.out + r.err,
      );

      fs.rmSync(p);
      fs.mkdirSync(p);
      const r2 = inChild(
        `
      import { RecycleGPT } from './src/index.ts';
      try { await RecycleGPT.load(${JSON.stringify(dir)}); console.log('LOADED'); }
      catch (e) { console.log('ERR ' + e.message); }`,
        15_000,
      );
      assert.match(
        r2.out,
        new RegExp(`ERR .*${name.replace('.', '\\.')}.*is a directory, not a regular file`),
        r2.out + r2.err,
      );
    }
  },
);

test('item 12: JSON nested 10,000 levels deep is refused with the file named, not a stack overflow', () => {
  const dir = copyFixture('tiny-gpt2', 'deep');
  const cfgFile = path.join(dir, 'config.json');
  fs.writeFileSync(cfgFile, `{"model_type":"gpt2","x":${'['.repeat(10000)}${']'.repeat(10000)}}`);
  assert.throws(
    () => loadModelDir(dir),
    (e: Error) => e.message.startsWith(cfgFile) && /nesting deeper than/.test(e.message),
  );
  assert.throws(() => parseJson('['.repeat(1e6), 'x.json'), /x\.json: not valid JSON: nesting deeper than 128 levels/);
});

test('the strict JSON parser agrees with JSON.parse on valid JSON', () => {
  const texts = [
    '{"a":[1,2.5,-3e-2,{"b":null}],"c":"\\u00e9\\n\\"q\\"","d":true,"e":false}',
    '[]',
    '{}',
    '"x"',
    '0',
    ' [ 1 , 2 ] ',
    JSON.stringify({ __proto__: 1, constructor: { x: 1 } }),
    fs.readFileSync(path.join(root, 'models', 'recycle-small', 'tokenizer.json'), 'utf8'),
  ];
  for (const t of texts) assert.deepEqual(parseJson(t, 't'), JSON.parse(t) as unknown);
  assert.equal(Object.getPrototypeOf(parseJson('{"__proto__":{"x":1}}', 't')), Object.prototype);
  for (const bad of ['{"a":1,}', '[1,]', '01', '{a:1}', "'x'", 'NaN', '1 2', '', '"\t"', '{"a":1', '[1e]']) {
    assert.throws(() => parseJson(bad, 'bad.json'), /bad\.json: not valid JSON/, bad);
  }
});
