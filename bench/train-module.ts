/**
 * Frozen-base module training throughput (issue 12): `train --base DIR --freeze-base [--cache-hidden FILE]` through
 * the library's train(), with the backend wrapped so that every kernel call is timed by name (gemm/linear also by
 * shape). Per step: tokens/s, and where the step's time went (kernels, the rest = JS: copies, the hidden-cache read,
 * the sampler, the tape). Medians over the measured steps (the first step is a warm-up and is left out).
 *
 *   node --import tsx bench/train-module.ts --base DIR [--data brown] [--cache-hidden FILE] [--batch-size 8]
 *     [--seq-len 256] [--steps 6] [--threads 2] [--recycle-layers N] [--profile] [--json]
 *
 * --config FILE instead of --base: a from-scratch joint training step of that shape (with --recycle-depth N and
 * --recycle-depth-weights W1,W2,… for the k-step loss), profiled the same way.
 *
 * --compare-base N: instead, the frozen base's forward for N batches, one forward over the batch (FrozenBase.hidden)
 * and the former one forwardBase per sequence, interleaved; medians.
 *
 * --json prints one object on the last line: {tokens_per_step, steps, tokens_per_s (median), step_ms (median),
 * tokens_per_s_all, ops: {name: ms per step}}. Peak RSS: run it under /usr/bin/time -v.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { loadModelDir, readConfig } from '../src/io/model-dir.js';
import { InferenceModel } from '../src/model/infer.js';
import { FrozenBase } from '../src/train/module-graph.js';
import { train } from '../src/train/trainer.js';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    data: { type: 'string', default: 'brown' },
    'cache-hidden': { type: 'string' },
    'batch-size': { type: 'string', default: '8' },
    'seq-len': { type: 'string', default: '256' },
    steps: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
    'recycle-layers': { type: 'string' },
    config: { type: 'string' },
    'recycle-depth': { type: 'string' },
    'recycle-depth-weights': { type: 'string' },
    tokenizer: { type: 'string' },
    profile: { type: 'boolean' },
    'compare-base': { type: 'string' },
    json: { type: 'boolean' },
  },
});
if (!values.base && !values.config) throw new Error('--base DIR or --config FILE is required');

/** ms per kernel name since the last snapshot. */
class OpTimer {
  ms = new Map<string, number>();
  flops = new Map<string, number>();
  wrap(be: Backend, byShape: boolean): Backend {
    const add = (name: string, ms: number, flops = 0): void => {
      this.ms.set(name, (this.ms.get(name) ?? 0) + ms);
      if (flops) this.flops.set(name, (this.flops.get(name) ?? 0) + flops);
    };
    return new Proxy(be, {
      get(target, prop, receiver): unknown {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        const fn = v as (...a: unknown[]) => unknown;
        if (typeof prop !== 'string' || ['threads', 'setThreads', 'alloc'].includes(prop)) return fn.bind(target);
        return (...a: unknown[]): unknown => {
          const t0 = performance.now();
          const r = fn.apply(target, a);
          let name = prop;
          let flops = 0;
          if (prop === 'gemm' || prop === 'linear') {
            const [M, N, K] = a as number[];
            flops = 2 * M! * N! * K!;
            if (byShape) {
              const tr = prop === 'gemm' ? ` ${a[4] ? 'T' : 'N'}${a[6] ? 'T' : 'N'}${a[8] ? '+=' : '='}` : '';
              name = `${prop} ${M}x${N}x${K}${tr}`;
            }
          }
          add(name, performance.now() - t0, flops);
          return r;
        };
      },
    });
  }
  take(): { ms: Map<string, number>; flops: Map<string, number> } {
    const r = { ms: this.ms, flops: this.flops };
    this.ms = new Map();
    this.flops = new Map();
    return r;
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const base = createBackend({ kind: 'native' });
if (values['compare-base']) {
  compareBase(Number(values['compare-base']));
  process.exit(0);
}

/** Batched vs per-sequence frozen base (the change of issue 12's speed work), interleaved in one process. */
function compareBase(reps: number): void {
  const B = Number(values['batch-size']),
    T = Number(values['seq-len']);
  base.setThreads(Number(values.threads));
  const config = readConfig(path.join(values.base!, 'config.json'));
  const { weights } = loadModelDir(values.base!, { config, alloc: base.alloc, dtypes: base.weightDtypes });
  const fb = new FrozenBase(config, weights, base);
  const model = new InferenceModel(config, weights, base),
    scratch = model.newScratch(),
    cache = model.newBaseCache(T);
  const C = config.hidden,
    h = new Float32Array(B * (T - 1) * C);
  const ms: Record<string, number[]> = { batched: [], perSequence: [] };
  for (let i = 0; i <= reps; i++) {
    let s = i + 1;
    const inputs = Int32Array.from({ length: B * T }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % 2000);
    const batch = { B, T, inputs, targets: inputs, targets2: inputs };
    let t0 = performance.now();
    fb.hidden(batch, h);
    const a = performance.now() - t0;
    t0 = performance.now();
    for (let b = 0; b < B; b++) {
      cache.reset();
      model.forwardBase(inputs.subarray(b * T, (b + 1) * T), cache, 'none', scratch);
    }
    const p = performance.now() - t0;
    if (i === 0) continue; // warm-up
    ms.batched!.push(a);
    ms.perSequence!.push(p);
    process.stderr.write(`batch ${i}: one forward ${a.toFixed(0)} ms, per sequence ${p.toFixed(0)} ms\n`);
  }
  const [a, p] = [median(ms.batched!), median(ms.perSequence!)];
  process.stderr.write(
    `frozen base, ${B}x${T}: grouped ${a.toFixed(0)} ms, per sequence ${p.toFixed(0)} ms (${(p / a).toFixed(2)}x)\n`,
  );
  if (values.json) process.stdout.write(`${JSON.stringify({ batched_ms: a, per_sequence_ms: p, ratio: p / a })}\n`);
}
const timer = new OpTimer();
const be = timer.wrap(base, values.profile ?? false);
const B = Number(values['batch-size']),
  T = Number(values['seq-len']),
  steps = Number(values.steps);
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-train-module-'));
const rows: { ms: number; cpuMs: number; ops: Map<string, number>; flops: Map<string, number> }[] = [];
let last = performance.now();
let lastCpu = process.cpuUsage();
try {
  train(
    {
      out: path.join(out, 'run'),
      data: values.data,
      ...(values.base ? { base: values.base, freezeBase: true } : { config: values.config! }),
      ...(values['recycle-depth'] ? { recycleDepth: Number(values['recycle-depth']) } : {}),
      ...(values['recycle-depth-weights']
        ? { recycleDepthWeights: values['recycle-depth-weights'].split(',').map(Number) }
        : {}),
      cacheHidden: values['cache-hidden'] ?? null,
      batchSize: B,
      seqLen: T,
      steps,
      threads: Number(values.threads),
      evalBatches: 1,
      ckptEvery: 1_000_000,
      ...(values['recycle-layers'] ? { recycleLayers: Number(values['recycle-layers']) } : {}),
      ...(values.tokenizer ? { tokenizer: values.tokenizer } : {}),
    },
    { resume: false },
    {
      backend: be,
      onStart: (info) => {
        process.stderr.write(
          `${info.backend} backend, ${info.threads} threads, ${(info.trainableParams / 1e6).toFixed(2)}M trainable, ` +
            `batch ${B}x${T}; ${info.messages.join('; ')}\n`,
        );
        timer.take();
        last = performance.now();
        lastCpu = process.cpuUsage();
      },
      onStep: (row) => {
        const now = performance.now();
        const { ms, flops } = timer.take();
        const cpu = process.cpuUsage(lastCpu);
        lastCpu = process.cpuUsage();
        rows.push({ ms: now - last, cpuMs: (cpu.user + cpu.system) / 1000, ops: ms, flops });
        process.stderr.write(
          `step ${row.step}: ${row.tokens_per_s.toFixed(1)} tokens/s, loss ${row.loss.toFixed(4)}\n`,
        );
        last = now;
      },
    },
  );
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
const measured = rows.slice(1);
const stepMs = median(measured.map((r) => r.ms));
const names = new Set(measured.flatMap((r) => [...r.ops.keys()]));
const ops: Record<string, number> = {};
for (const n of names) ops[n] = median(measured.map((r) => r.ops.get(n) ?? 0));
const kernelMs = median(measured.map((r) => [...r.ops.values()].reduce((a, b) => a + b, 0)));
const sorted = Object.entries(ops).sort((a, b) => b[1] - a[1]);
const cpuMs = median(measured.map((r) => r.cpuMs)),
  threads = Number(values.threads);
process.stderr.write(
  `median step ${stepMs.toFixed(0)} ms = ${((B * T) / (stepMs / 1000)).toFixed(1)} tokens/s; ` +
    `${(cpuMs / 1000).toFixed(2)} CPU-s = ${((B * T * threads) / (cpuMs / 1000)).toFixed(1)} tokens/s on ${threads} ` +
    `cores of its own\n`,
);
for (const [n, ms] of sorted) {
  const fl = median(measured.map((r) => r.flops.get(n) ?? 0));
  const gf = fl ? `  ${(fl / (ms / 1000) / 1e9).toFixed(1)} GFLOP/s` : '';
  process.stderr.write(`  ${ms.toFixed(1).padStart(8)} ms  ${n}${gf}\n`);
}
process.stderr.write(`  ${(stepMs - kernelMs).toFixed(1).padStart(8)} ms  (outside kernels)\n`);
if (values.json) {
  process.stdout.write(
    `${JSON.stringify({
      tokens_per_step: B * T,
      steps: measured.length,
      tokens_per_s: (B * T) / (stepMs / 1000),
      step_ms: stepMs,
      cpu_s: cpuMs / 1000,
      tokens_per_s_cpu: (B * T * threads) / (cpuMs / 1000),
      tokens_per_s_all: measured.map((r) => (B * T) / (r.ms / 1000)),
      ops,
    })}\n`,
  );
}
