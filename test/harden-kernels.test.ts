/**
 * Hardening of the kernel entry points (issue 9, items 5 and 12): the raw N-API addon (reachable as
 * `backend.addon`) and the checked backends (ref, native) must answer bad arguments with a JS error naming the
 * kernel and the argument: never a crash, an abort, a hang or "Cannot read properties of null".
 *
 * Calls that used to crash or hang run in a child process with a timeout, so that a regression fails the test
 * (naming the call that did not come back) instead of killing or stalling the runner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRefBackend } from '../src/kernels/ref.js';
import { tryLoadNativeBackend } from '../src/kernels/native.js';
import { MAX_DIM } from '../src/kernels/checks.js';
import { KERNEL_NAMES } from '../src/kernels/validate.js';
import type { Backend } from '../src/kernels/backend.js';

const skipNative = process.env.RECYCLEGPT_BACKEND === 'ref' ? 'RECYCLEGPT_BACKEND=ref' : false;
const nativeTs = fileURLToPath(new URL('../src/kernels/native.ts', import.meta.url));
const refTs = fileURLToPath(new URL('../src/kernels/ref.ts', import.meta.url));

// ---- one valid call per kernel, argument by argument ----------------------------------------------------------------
// Arguments, space-separated, are source text: f(n) a Float32Array of n zeros, i(a,b,…) an Int32Array, or a
// literal. Names: "#M" a dimension, "@x" an array, "?bias" an array that may be null, else a scalar or flag.
type Call = readonly [op: string, names: string, args: string];

const CALLS: readonly Call[] = [
  ['gemm', '#M #N #K @a transA @b transB @c accumulate', '2 3 4 f(8) false f(12) false f(6) false'],
  ['linear', '#M #N #K @x @w ?bias @y', '2 3 4 f(8) f(12) f(3) f(6)'],
  ['biasBackward', '#M #N @dy @db', '2 3 f(6) f(3)'],
  ['embeddingForward', '#T #C #V @ids @table @out', '2 3 4 i(0,3) f(12) f(6)'],
  ['embeddingBackward', '#T #C #V @ids @dout @dtable', '2 3 4 i(0,3) f(6) f(12)'],
  ['layerNormForward', '#N #C @x @w @b eps @out @mean @rstd', '2 3 f(6) f(3) f(3) 1e-5 f(6) f(2) f(2)'],
  ['layerNormBackward', '#N #C @dout @x @w @mean @rstd @dx @dw @db', '2 3 f(6) f(6) f(3) f(2) f(2) f(6) f(3) f(3)'],
  ['rmsNormForward', '#N #C @x @w eps @out @rstd', '2 3 f(6) f(3) 1e-5 f(6) f(2)'],
  ['rmsNormBackward', '#N #C @dout @x @w @rstd @dx @dw', '2 3 f(6) f(6) f(3) f(2) f(6) f(3)'],
  ['geluForward', '#n @x @out', '4 f(4) f(4)'],
  ['geluBackward', '#n @x @dout @dx', '4 f(4) f(4) f(4)'],
  ['swigluForward', '#n @gate @up @out', '4 f(4) f(4) f(4)'],
  ['swigluBackward', '#n @gate @up @dout @dgate @dup', '4 f(4) f(4) f(4) f(4) f(4)'],
  ['rope', '#R #H #D @x @pos theta inverse', '2 2 4 f(16) i(0,1) 10000 false'],
  ['attentionForward', '#B #T #H #G #D @q @k @v @out @probs', '1 2 2 1 4 f(16) f(8) f(8) f(16) f(8)'],
  [
    'attentionBackward',
    '#B #T #H #G #D @q @k @v @probs @dout @dq @dk @dv',
    '1 2 2 1 4 f(16) f(8) f(8) f(8) f(16) f(16) f(8) f(8)',
  ],
  ['attentionDecode', '#M #H #G #D @q @kCache @vCache #pos0 @out', '1 2 1 4 f(8) f(8) f(8) 1 f(8)'],
  ['crossEntropyForward', '#N #V @logits @targets @losses', '2 3 f(6) i(0,2) f(2)'],
  ['crossEntropyBackward', '#N #V @logits @targets scale @dlogits', '2 3 f(6) i(0,2) 1 f(6)'],
  [
    'adamw',
    '#n @param @grad @m @v lr beta1 beta2 eps weightDecay step',
    '3 f(3) f(3) f(3) f(3) 1e-3 0.9 0.999 1e-8 0 1',
  ],
  ['add', '#n @a @b @out', '3 f(3) f(3) f(3)'],
  ['axpy', '#n alpha @x @y', '3 2 f(3) f(3)'],
  ['scale', '#n @x alpha', '3 f(3) 2'],
  ['sumSquares', '#n @x', '3 f(3)'],
];

/** A case: a kernel call (source text) and what must come of it: an error message matching, or a return. */
interface Case {
  name: string;
  op: string;
  args: readonly string[];
  want: RegExp | 'returns';
}

/** The value of one argument's source text (the child evaluates the same text as JavaScript). */
function value(src: string): unknown {
  const fm = /^f\((.*)\)$/.exec(src);
  if (fm) return new Float32Array(value(fm[1]) as number);
  const im = /^i\((.*)\)$/.exec(src);
  if (im) return Int32Array.from(im[1] === '' ? [] : im[1].split(',').map(Number));
  const pow = /^(\d+)\*\*(\d+)(-\d+)?$/.exec(src);
  if (pow) return Number(pow[1]) ** Number(pow[2]) + Number(pow[3] ?? 0);
  if (src === 'undefined') return undefined;
  if (src === 'NaN') return NaN;
  return JSON.parse(src) as unknown;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const replaced = (args: readonly string[], i: number, v: string): string[] => args.map((a, j) => (j === i ? v : a));

/** For every kernel: the valid call returns; a null, undefined or wrongly typed array and an out-of-range dim throw. */
function argumentCases(): Case[] {
  const cases: Case[] = [];
  for (const [op, names, argText] of CALLS) {
    const args = argText.split(' ');
    cases.push({ name: `${op} valid`, op, args, want: 'returns' });
    names.split(' ').forEach((tagged, i) => {
      const kind = tagged[0],
        name = tagged.slice(1);
      if (kind === '@' || kind === '?') {
        const int = args[i].startsWith('i(');
        // Weights may also be handles: the checked layer says so, the raw addon (float32 storage only) does not.
        const weight = (op === 'linear' && name === 'w') || (op === 'embeddingForward' && name === 'table');
        const type = int ? 'Int32Array' : weight ? 'Float32Array(?: or a weight \\{dtype, data\\})?' : 'Float32Array';
        const must = `${op}: argument ${name} must be an? ${type}${kind === '?' ? ' or null' : ''}, got`;
        const wrong = int ? ['f(4)', 'Float32Array'] : ['i(0)', 'Int32Array'];
        for (const [v, got] of [['null', 'null'], ['undefined', 'undefined'], wrong, ['[0, 0, 0, 0]', 'object']]) {
          if (kind === '?' && (v === 'null' || v === 'undefined')) continue; // no bias is valid
          const want = new RegExp(`^${must} ${got}$`);
          cases.push({ name: `${op} ${name}=${v}`, op, args: replaced(args, i, v), want });
        }
      } else if (kind === '#') {
        for (const v of ['2**40', String(MAX_DIM + 1), '-1', '1.5', 'NaN']) {
          const shown = String(value(v));
          const want = new RegExp(`^${op}: ${name} must be an integer in \\[0, ${MAX_DIM}\\], got ${esc(shown)}$`);
          cases.push({ name: `${op} ${name}=${v}`, op, args: replaced(args, i, v), want });
        }
      }
    });
  }
  return cases;
}

/** The calls of issue 9 (item 5) and neighbours: size products that wrapped, scratch that could not be allocated. */
const ISSUE_CASES: Case[] = [
  {
    name: 'gemm 2^32 dims, 1-element arrays (segfaulted)',
    op: 'gemm',
    args: ['2**32', '2**32', '2**32', 'f(1)', 'false', 'f(1)', 'false', 'f(1)', 'false'],
    want: /^gemm: M must be an integer in \[0, 2147483647\], got 4294967296$/,
  },
  {
    name: 'gemm largest dims, 1-element arrays',
    op: 'gemm',
    args: ['2**31-1', '2**31-1', '2**31-1', 'f(1)', 'false', 'f(1)', 'false', 'f(1)', 'false'],
    want: /^gemm: a has 1 elements? but .* needs (4611686014132420609|more than 9007199254740991)$/,
  },
  {
    name: 'linear 2^32 dims (segfaulted)',
    op: 'linear',
    args: ['2**32', '2**32', '2**32', 'f(1)', 'f(1)', 'null', 'f(1)'],
    want: /^linear: M must be an integer/,
  },
  {
    name: 'linear largest dims',
    op: 'linear',
    args: ['2**31-1', '2**31-1', '2**31-1', 'f(1)', 'f(1)', 'null', 'f(1)'],
    want: /^linear: x has 1 elements? but/,
  },
  {
    name: 'attentionForward 2^32 dims (segfaulted)',
    op: 'attentionForward',
    args: ['2**32', '2**32', '2**32', '1', '2**32', 'f(1)', 'f(1)', 'f(1)', 'f(1)', 'f(1)'],
    want: /^attentionForward: B must be an integer/,
  },
  {
    name: 'attentionForward: B·T·H·D and B·H·T·T overflow 64 bits',
    op: 'attentionForward',
    args: ['2**31-1', '2**31-1', '2**31-1', '1', '2**31-1', 'f(1)', 'f(1)', 'f(1)', 'f(1)', 'f(1)'],
    want: /^attentionForward: q has 1 elements? but .* needs (more than )?\d+/,
  },
  {
    name: 'attentionDecode: M·H·D wraps to 0 (aborted allocating)',
    op: 'attentionDecode',
    args: ['1', '2**32', '1', '2**32', 'f(1)', 'f(1)', 'f(1)', '2**32-1', 'f(1)'],
    want: /^attentionDecode: H must be an integer/,
  },
  {
    name: 'attentionDecode largest dims',
    op: 'attentionDecode',
    args: ['1', '2**31-1', '1', '2**31-1', 'f(1)', 'f(1)', 'f(1)', '2**31-2', 'f(1)'],
    want: /^attentionDecode: q has 1 elements? but/,
  },
  {
    name: 'attentionBackward B=2^40 T=0 (hung)',
    op: 'attentionBackward',
    args: ['2**40', '0', '1', '1', '1', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)'],
    want: /^attentionBackward: B must be an integer in \[0, 2147483647\], got 1099511627776$/,
  },
  {
    name: 'attentionBackward largest B and H, T=0: nothing to do, returns at once',
    op: 'attentionBackward',
    args: ['2**31-1', '0', '2**31-1', '1', '1', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)'],
    want: 'returns',
  },
  {
    name: 'attentionDecode M=0 H=2^40 (hung)',
    op: 'attentionDecode',
    args: ['0', '2**40', '1', '1', 'f(0)', 'f(0)', 'f(0)', '0', 'f(0)'],
    want: /^attentionDecode: H must be an integer in \[0, 2147483647\], got 1099511627776$/,
  },
  {
    name: 'attentionDecode M=0, largest H: returns at once',
    op: 'attentionDecode',
    args: ['0', '2**31-1', '1', '1', 'f(0)', 'f(0)', 'f(0)', '0', 'f(0)'],
    want: 'returns',
  },
  {
    name: 'attentionForward B=0, largest T: returns at once',
    op: 'attentionForward',
    args: ['0', '2**31-1', '1', '1', '1', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)'],
    want: 'returns',
  },
  {
    name: 'attentionForward B=0 T=2^40 (ref: "Invalid typed array length")',
    op: 'attentionForward',
    args: ['0', '2**40', '1', '1', '1', 'f(0)', 'f(0)', 'f(0)', 'f(0)', 'f(0)'],
    want: /^attentionForward: T must be an integer/,
  },
  {
    name: 'gemm N=0, largest M: returns at once',
    op: 'gemm',
    args: ['2**31-1', '0', '0', 'f(0)', 'false', 'f(0)', 'false', 'f(0)', 'false'],
    want: 'returns',
  },
  {
    name: 'rope H=0, largest D (odd)',
    op: 'rope',
    args: ['1', '0', '2**31-1', 'f(0)', 'i(0)', '10000', 'false'],
    want: /^rope: D=2147483647 must be even/,
  },
  {
    name: 'rope H=0, largest even D: returns at once',
    op: 'rope',
    args: ['1', '0', '2**31-2', 'f(0)', 'i(0)', '10000', 'false'],
    want: 'returns',
  },
  {
    name: 'embeddingBackward T=0, largest C: returns at once',
    op: 'embeddingBackward',
    args: ['0', '2**31-1', '0', 'i()', 'f(0)', 'f(0)'],
    want: 'returns',
  },
  {
    name: 'layerNormBackward: dw shorter than the largest C',
    op: 'layerNormBackward',
    args: ['0', '2**31-1', 'f(0)', 'f(0)', 'f(1)', 'f(0)', 'f(0)', 'f(0)', 'f(1)', 'f(1)'],
    want: /^layerNormBackward: w has 1 elements? but/,
  },
  {
    name: 'crossEntropyForward largest dims, short logits',
    op: 'crossEntropyForward',
    args: ['2**31-1', '2**31-1', 'f(1)', 'i(0)', 'f(1)'],
    want: /^crossEntropyForward: logits has 1 elements? but/,
  },
  {
    name: 'sumSquares n=2^53',
    op: 'sumSquares',
    args: ['2**53', 'f(1)'],
    want: /^sumSquares: n must be an integer in \[0, 2147483647\], got 9007199254740992$/,
  },
];

/** Raw-addon only: its scratch, argument count, non-number dims and the benchmark helper. */
const ADDON_CASES: Case[] = [
  {
    // 4 MB arrays, but 2^40 floats of score scratch: the kernel aborted when the allocation failed.
    name: 'attentionDecode: score scratch M·H·(pos0+M) too large (aborted)',
    op: 'attentionDecode',
    args: ['1', '2**20', '1', '1', 'f(2**20)', 'f(2**20)', 'f(2**20)', '2**20-1', 'f(2**20)'],
    want: /^attentionDecode: .*scores/,
  },
  { name: 'gemm without arguments', op: 'gemm', args: [], want: /^gemm: expected 9 arguments, got 0$/ },
  {
    name: 'linear with 3 arguments',
    op: 'linear',
    args: ['1', '1', '1'],
    want: /^linear: expected 7 arguments, got 3$/,
  },
  {
    name: 'gemm string dim',
    op: 'gemm',
    args: ['"2"', '3', '4', 'f(8)', 'false', 'f(12)', 'false', 'f(6)', 'false'],
    want: /^gemm: M must be an integer in \[0, 2147483647\], got string$/,
  },
  {
    name: 'embeddingForward id outside [0, V)',
    op: 'embeddingForward',
    args: ['2', '3', '4', 'i(0,4)', 'f(12)', 'f(6)'],
    want: /^embeddingForward: ids\[1\] = 4 is outside \[0, V=4\)$/,
  },
  {
    name: 'crossEntropyBackward target outside [0, V)',
    op: 'crossEntropyBackward',
    args: ['2', '3', 'f(6)', 'i(0,-2)', '1', 'f(6)'],
    want: /^crossEntropyBackward: targets\[1\] = -2 is outside/,
  },
  {
    name: 'readBandwidth 2^40 repeats',
    op: 'readBandwidth',
    args: ['4', '1', '2**40'],
    want: /^readBandwidth: repeats/,
  },
  { name: 'readBandwidth 2^53 bytes', op: 'readBandwidth', args: ['2**53', '1', '1'], want: /^readBandwidth: bytes/ },
  { name: 'setThreads 2^40', op: 'setThreads', args: ['2**40'], want: /^setThreads: n must be an integer 1\.\.256/ },
];

// ---- running cases in a child process -------------------------------------------------------------------------------
interface Outcome {
  name: string;
  ok: boolean;
  error?: string;
  type?: string;
  ms: number;
}

/**
 * Runs the cases, one after another, in a child process against `target` (source text of an expression over
 * `native` (native.ts) and `ref` (ref.ts)). Fails naming the call in progress if the child dies or times out.
 */
function runInChild(target: string, cases: readonly Case[], timeoutMs = 60_000): Map<string, Outcome> {
  const lines = cases.map((c) => `run(${JSON.stringify(c.name)}, () => be.${c.op}(${c.args.join(', ')}));`);
  const script = [
    `import * as native from ${JSON.stringify(nativeTs)};`,
    `import * as ref from ${JSON.stringify(refTs)};`,
    'const f = (n) => new Float32Array(n);',
    'const i = (...xs) => Int32Array.from(xs);',
    `const be = ${target};`,
    'const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");',
    'function run(name, fn) {',
    '  out({ start: name });',
    '  const t0 = performance.now();',
    '  try { fn(); out({ name, ok: true, ms: performance.now() - t0 }); }',
    '  catch (e) {',
    '    const ms = performance.now() - t0;',
    '    out({ name, ok: false, error: String(e?.message ?? e), type: e?.constructor?.name, ms });',
    '  }',
    '}',
    ...lines,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
    env: { ...process.env, RECYCLEGPT_THREADS: '2' },
  });
  const results = new Map<string, Outcome>();
  let started = '(none)';
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as Outcome & { start?: string };
    if (o.start !== undefined) started = o.start;
    else results.set(o.name, o);
  }
  const how = r.error ? `${r.error.message}` : r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
  assert.ok(
    r.status === 0 && results.size === cases.length,
    `child (${target}) died or hung (${how}) during "${started}"\nstderr: ${r.stderr.slice(-2000)}`,
  );
  return results;
}

function assertOutcomes(label: string, cases: readonly Case[], results: Map<string, Outcome>): void {
  const bad: string[] = [];
  for (const c of cases) {
    const o = results.get(c.name)!;
    if (c.want === 'returns') {
      if (!o.ok) bad.push(`${c.name}: threw "${o.error}"`);
      else if (o.ms > 2000) bad.push(`${c.name}: took ${o.ms.toFixed(0)} ms for nothing to do`);
    } else if (o.ok) {
      bad.push(`${c.name}: returned, want an error matching ${c.want}`);
    } else if (!c.want.test(o.error!)) {
      bad.push(`${c.name}: "${o.error}" does not match ${c.want}`);
    } else if (!['TypeError', 'RangeError', 'Error'].includes(o.type ?? '')) {
      bad.push(`${c.name}: threw a ${o.type}`);
    }
  }
  assert.deepEqual(bad, [], `${label}:\n${bad.join('\n')}`);
}

// ---- the raw addon --------------------------------------------------------------------------------------------------
test('raw addon: the calls of issue 9 throw a clean error (no segfault, abort or hang)', { skip: skipNative }, () => {
  const cases = [...ISSUE_CASES, ...ADDON_CASES];
  assertOutcomes('raw addon', cases, runInChild('native.loadNativeAddon()', cases));
});

test('raw addon: every kernel checks its argument types and dimensions', { skip: skipNative }, () => {
  const cases = argumentCases();
  assertOutcomes('raw addon', cases, runInChild('native.loadNativeAddon()', cases));
});

// ---- the checked backends -------------------------------------------------------------------------------------------
test('checked backends: huge dims throw at once, empty calls next to huge dims return at once', () => {
  const targets = ['ref.createRefBackend()', ...(skipNative ? [] : ['native.createNativeBackend()'])];
  for (const target of targets) assertOutcomes(target, ISSUE_CASES, runInChild(target, ISSUE_CASES));
});

test('checked backends: argument types and dimensions, same messages for ref and native', () => {
  const backends: Backend[] = [createRefBackend()];
  if (!skipNative) {
    const loaded = tryLoadNativeBackend();
    assert.ok(loaded.backend, `the native addon did not load: ${loaded.error}`);
    backends.push(loaded.backend);
  }
  assert.deepEqual(CALLS.map((c) => c[0]).sort(), [...KERNEL_NAMES].sort(), 'one call per kernel');
  const cases = argumentCases();
  for (const be of backends) {
    const results = new Map<string, Outcome>();
    for (const c of cases) {
      const args = c.args.map(value);
      const kernel = (be as unknown as Record<string, (...a: unknown[]) => unknown>)[c.op];
      const t0 = performance.now();
      try {
        kernel.apply(be, args);
        results.set(c.name, { name: c.name, ok: true, ms: performance.now() - t0 });
      } catch (err) {
        const e = err as Error;
        results.set(c.name, { name: c.name, ok: false, error: e.message, type: e.constructor.name, ms: 0 });
      }
    }
    assertOutcomes(be.name, cases, results);
  }
});
