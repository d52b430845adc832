/**
 * Backends are instances (issue 10, item 3): two native backends in one process keep their own thread count and
 * SIMD path while their calls interleave, and each agrees with the ref backend; `createBackend({ kind: 'auto' })`
 * reports a missing addon through onWarning and writes nothing to stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../src/kernels/index.js';
import { createNativeBackend, loadNativeAddon, type NativeBackend } from '../src/kernels/native.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Rng } from './helpers/check.js';

const skipNative = process.env.RECYCLEGPT_BACKEND === 'ref' ? 'RECYCLEGPT_BACKEND=ref' : false;
const ref = createRefBackend();

/** |got − want| ≤ tol·(|want| + 1) elementwise. */
function assertClose(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (Math.abs(want[i]) + 1)))
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
  }
}

test('two native backends with 1 and 2 threads, calls interleaved, each equal to ref', { skip: skipNative }, () => {
  const one = createNativeBackend({ threads: 1 });
  const two = createNativeBackend({ threads: 2, simd: 'scalar' });
  assert.equal(one.threads(), 1);
  assert.equal(two.threads(), 2);
  assert.equal(two.simd, 'scalar');
  assert.equal(one.simd, one.availableSimd()[0], 'the default is the best path, whatever another backend chose');
  assert.notEqual(one.addon, two.addon, 'each backend has its own native context');
  const rng = new Rng(20);
  const [M, N, K] = [96, 160, 200];
  const x = rng.uniform(M * K),
    w = rng.uniform(N * K),
    bias = rng.uniform(N);
  const want = new Float32Array(M * N);
  ref.linear(M, N, K, x, w, bias, want);
  const [R, H, D] = [5, 3, 16];
  const q = rng.uniform(R * H * D);
  const pos = Int32Array.from([0, 7, 3, 2047, 5_000_000]); // the last one is outside the cached table
  const wantRope = q.slice();
  ref.rope(R, H, D, wantRope, pos, 10000, false);
  const p0 = rng.uniform(1000),
    g = rng.uniform(1000);
  const wantP = p0.slice(),
    wantM = new Float32Array(1000),
    wantV = new Float32Array(1000);
  ref.adamw(1000, wantP, g, wantM, wantV, 1e-3, 0.9, 0.999, 1e-8, 0.1, 3);
  for (let round = 0; round < 3; round++) {
    for (const be of [one, two, one, two] as NativeBackend[]) {
      const y = new Float32Array(M * N);
      be.linear(M, N, K, x, w, bias, y);
      assertClose(y, want, 1e-4, `linear on ${be.threads()} threads`);
      const r = q.slice();
      be.rope(R, H, D, r, pos, 10000, false);
      assertClose(r, wantRope, 1e-6, `rope on ${be.threads()} threads`);
      const p = p0.slice(),
        m = new Float32Array(1000),
        v = new Float32Array(1000);
      be.adamw(1000, p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 3);
      for (const [got, exp, what] of [
        [p, wantP, 'param'],
        [m, wantM, 'm'],
        [v, wantV, 'v'],
      ] as const)
        assertClose(got, exp, 1e-6, `adamw ${what} on ${be.threads()} threads`);
    }
    // one backend's settings never move the other's
    one.setThreads(1);
    two.setThreads(2);
    assert.equal(one.threads(), 1);
    assert.equal(two.threads(), 2);
  }
  one.setSimd('scalar');
  two.setSimd(two.availableSimd()[0]);
  assert.equal(one.simd, 'scalar');
  assert.equal(two.simd, two.availableSimd()[0]);
  assert.equal(createNativeBackend().threads() >= 1, true);
});

test(
  'RoPE tables are per context: another theta in one backend does not disturb the other',
  { skip: skipNative },
  () => {
    const a = createNativeBackend({ threads: 1 }),
      b = createNativeBackend({ threads: 2 });
    const rng = new Rng(21);
    const x = rng.uniform(4 * 2 * 8);
    const pos = Int32Array.from([1, 9, 100, 4]);
    for (const theta of [10000, 500000, 10000]) {
      const alone = x.slice(),
        gotA = x.slice(),
        gotB = x.slice();
      createNativeBackend({ threads: 1 }).rope(4, 2, 8, alone, pos, theta, true); // a fresh context's tables
      b.rope(4, 2, 8, gotB, pos, 10000 + 500000 - theta, true); // the other theta, interleaved
      a.rope(4, 2, 8, gotA, pos, theta, true);
      b.rope(4, 2, 8, gotB, pos, theta, true);
      assert.deepEqual(gotA, alone, `theta ${theta}`);
    }
  },
);

test('the raw context refuses bad options and a wrong argument count', { skip: skipNative }, () => {
  assert.throws(() => loadNativeAddon({ threads: 0 }), /createContext: threads must be an integer 1\.\.256, got 0/);
  assert.throws(
    () => loadNativeAddon({ simd: 'avx9000' as 'scalar' }),
    /createContext: "avx9000" is not available on this CPU/,
  );
  assert.throws(() => createBackend({ kind: 'native', threads: 300 }), /threads must be an integer 1\.\.256/);
  const ctx = loadNativeAddon({ threads: 3 });
  assert.equal(ctx.threads(), 3);
  assert.throws(() => (ctx.add as unknown as () => void)(), /^TypeError: add: expected 4 arguments, got 0$/);
});

test('createBackend: a fresh instance per call; threads apply to that instance only', () => {
  const a = createBackend({ kind: 'ref' }),
    b = createBackend({ kind: 'ref' });
  assert.notEqual(a, b);
  assert.equal(a.name, 'ref');
  if (!skipNative) {
    const n1 = createBackend({ kind: 'native', threads: 1 }),
      n2 = createBackend({ kind: 'auto', threads: 2 });
    assert.equal(n1.name, 'native');
    assert.equal(n2.name, 'native');
    n2.setThreads(1);
    n1.setThreads(2);
    assert.deepEqual([n1.threads(), n2.threads()], [2, 1]);
  }
});

test("createBackend({ kind: 'auto' }) without the addon: ref, a warning through onWarning, nothing on stderr", () => {
  const indexTs = fileURLToPath(new URL('../src/kernels/index.ts', import.meta.url));
  const nativeTs = fileURLToPath(new URL('../src/kernels/native.ts', import.meta.url));
  const script = [
    `import { createBackend } from ${JSON.stringify(indexTs)};`,
    `import { setNativeAddonFile } from ${JSON.stringify(nativeTs)};`,
    "setNativeAddonFile('/nonexistent/recyclegpt_native.node');",
    'const warnings = [];',
    "const be = createBackend({ kind: 'auto', threads: 2, onWarning: (m) => warnings.push(m) });",
    'let native = "";',
    "try { createBackend({ kind: 'native' }); } catch (e) { native = e.message; }",
    'const quiet = createBackend();', // no callback: still silent
    'console.log(JSON.stringify({ name: be.name, quiet: quiet.name, warnings, native }));',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, RECYCLEGPT_BACKEND: '' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing written to stderr');
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    name: string;
    quiet: string;
    warnings: string[];
    native: string;
  };
  assert.equal(out.name, 'ref');
  assert.equal(out.quiet, 'ref');
  assert.equal(out.warnings.length, 1);
  assert.match(out.warnings[0], /native kernels unavailable \(.*nonexistent.*is not built.*\); using the slow "ref"/);
  assert.match(out.native, /the native backend did not load: .*nonexistent/);
});
