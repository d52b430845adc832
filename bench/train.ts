/**
 * Training throughput: tokens/s of full training steps (forward + backward of both heads, clipping, AdamW) on a
 * preset with random weights and random tokens, at 1 and 2 threads, and the share of the step spent in matrix
 * products (the backend is wrapped so every gemm / linear call is timed). Thread counts are interleaved step by
 * step so that load from another process hits both alike; medians are reported.
 *
 *   node --import tsx bench/train.ts [--preset small] [--threads 1,2] [--batch-size 4] [--seq-len 128] [--steps 6]
 *     [--json]
 *
 * `benchTrain(options)` is the same measurement for bench/all.ts. --json prints one object on the last line:
 *   {preset, backend, params, tokens_per_step, runs: [{threads, tokens_per_s, step_ms, gemm_share, gemm_gflops}]}
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { getBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { TrainGraph, type GraphBatch } from '../src/model/graph.js';
import { initParams } from '../src/model/init.js';
import { presetConfig } from '../src/model/presets.js';
import { AdamW, clipGradNorm } from '../src/nn/optim.js';
import { Tape } from '../src/nn/tape.js';
import { TrainParams } from '../src/train/params.js';

export interface BenchTrainOptions {
  preset?: string;
  threads?: number[];
  batchSize?: number;
  seqLen?: number;
  /** Measured steps per thread count (after one warm-up step each). */
  steps?: number;
  log?: (line: string) => void;
}

export interface BenchTrainRun {
  threads: number;
  tokens_per_s: number;
  step_ms: number;
  /** Fraction of the step's wall time inside gemm + linear calls. */
  gemm_share: number;
  gemm_gflops: number;
}

export interface BenchTrainResult {
  preset: string;
  backend: string;
  params: number;
  tokens_per_step: number;
  runs: BenchTrainRun[];
}

/** Time and FLOPs spent in the backend's matrix products. */
class GemmTimer {
  ms = 0;
  flops = 0;

  /** The same backend with gemm and linear timed. */
  wrap(be: Backend): Backend {
    const timed = (t0: number, flops: number): void => {
      this.ms += performance.now() - t0;
      this.flops += flops;
    };
    return new Proxy(be, {
      get(target, prop, receiver): unknown {
        if (prop === 'gemm') {
          return (...a: Parameters<Backend['gemm']>): void => {
            const t0 = performance.now();
            target.gemm(...a);
            timed(t0, 2 * a[0] * a[1] * a[2]);
          };
        }
        if (prop === 'linear') {
          return (...a: Parameters<Backend['linear']>): void => {
            const t0 = performance.now();
            target.linear(...a);
            timed(t0, 2 * a[0] * a[1] * a[2]);
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
}

function randomBatch(B: number, T: number, V: number, seed: number): GraphBatch {
  let s = seed >>> 0;
  const id = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V;
  const stream = Int32Array.from({ length: B * (T + 2) }, id);
  const batch: GraphBatch = {
    B,
    T,
    inputs: new Int32Array(B * T),
    targets: new Int32Array(B * T),
    targets2: new Int32Array(B * T),
  };
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = b * (T + 2) + t;
      batch.inputs[b * T + t] = stream[o]!;
      batch.targets[b * T + t] = stream[o + 1]!;
      batch.targets2[b * T + t] = stream[o + 2]!;
    }
  }
  return batch;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function benchTrain(o: BenchTrainOptions = {}): BenchTrainResult {
  const preset = o.preset ?? 'small',
    threads = o.threads ?? [1, 2];
  const B = o.batchSize ?? 4,
    steps = o.steps ?? 6;
  const base = getBackend(),
    timer = new GemmTimer(),
    be = timer.wrap(base);
  const config = presetConfig(preset);
  const T = Math.min(o.seqLen ?? 128, config.maxPositions);
  const params = new TrainParams(config, false);
  initParams(params.specs, (n) => params.data(n), config, 1);
  const graph = new TrainGraph(config),
    tape = new Tape(be),
    optimizer = new AdamW(be, params.store);
  const step = (seed: number): { ms: number; gemmMs: number; flops: number } => {
    const [ms0, fl0] = [timer.ms, timer.flops];
    const t0 = performance.now();
    params.store.zeroGrad();
    tape.reset();
    const out = graph.forward(tape, params, randomBatch(B, T, config.vocabSize, seed));
    tape.backward(out.loss);
    clipGradNorm(params.store, 1, be);
    optimizer.step(1e-4);
    return { ms: performance.now() - t0, gemmMs: timer.ms - ms0, flops: timer.flops - fl0 };
  };
  o.log?.(`${preset}: ${(params.store.size / 1e6).toFixed(2)}M parameters, batch ${B}×${T}, ${base.name} backend`);
  const samples = new Map<number, { ms: number; gemmMs: number; flops: number }[]>(threads.map((n) => [n, []]));
  for (const n of threads) {
    base.setThreads(n);
    step(0);
  } // warm-up: arena, caches, thread pool
  for (let i = 0; i < steps; i++) {
    for (const n of threads) {
      base.setThreads(n);
      samples.get(n)!.push(step(i + 1));
    }
  }
  const runs = threads.map((n): BenchTrainRun => {
    const xs = samples.get(n)!,
      ms = median(xs.map((x) => x.ms));
    const gemmMs = xs.reduce((a, x) => a + x.gemmMs, 0),
      totalMs = xs.reduce((a, x) => a + x.ms, 0);
    const run = {
      threads: n,
      tokens_per_s: (B * T) / (ms / 1000),
      step_ms: ms,
      gemm_share: gemmMs / totalMs,
      gemm_gflops: xs.reduce((a, x) => a + x.flops, 0) / (gemmMs / 1000) / 1e9,
    };
    o.log?.(
      `  ${n} thread(s): ${run.tokens_per_s.toFixed(0)} tokens/s (${ms.toFixed(0)} ms/step), ` +
        `GEMM ${(100 * run.gemm_share).toFixed(1)}% of the step at ${run.gemm_gflops.toFixed(1)} GFLOP/s`,
    );
    return run;
  });
  return { preset, backend: base.name, params: params.store.size, tokens_per_step: B * T, runs };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string' },
      threads: { type: 'string' },
      'batch-size': { type: 'string' },
      'seq-len': { type: 'string' },
      steps: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const int = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const result = benchTrain({
    preset: values.preset,
    threads: values.threads?.split(',').map((t) => int('threads', t)!),
    batchSize: int('batch-size', values['batch-size']),
    seqLen: int('seq-len', values['seq-len']),
    steps: int('steps', values.steps),
    log: (line) => void process.stderr.write(`${line}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
}
