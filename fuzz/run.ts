/**
 * The loader fuzz: mutates real model files (safetensors header and body, config.json, tokenizer.json, shard
 * index, tokenizer_config.json, train_state) and loads each mutated directory in a worker process, counting
 *
 *   rejected        a clean error: an Error whose message names the file or directory
 *   unclear         an error from the engine (TypeError, RangeError, stack overflow...) or one naming no file
 *   loaded_same     it loaded and generated exactly what the unmutated files give (the change did not matter)
 *   loaded_changed  it loaded and generated something else (e.g. a changed weight byte: there are no checksums, as
 *                   in Hugging Face, so this is allowed, and counted)
 *   refused_at_generation   it loaded, then generation stopped with a clear error (finite weights can still
 *                   overflow float32 logits; the sampler refuses a non-finite logit instead of picking a token)
 *   broken          it loaded, then generation failed otherwise or produced impossible ids
 *   crash           the worker died (signal, abort, out of memory)
 *   hang            no answer within --timeout-ms (default 10 s)
 *   blowup          the worker's resident memory passed --max-rss-mb (default 2048)
 *
 * Failures (unclear, broken, crash, hang, blowup) are saved with the mutated directory and a case.json to
 * --save DIR, so they can be replayed as regression tests (test/fuzz-repro/).
 *
 *   npm run fuzz -- --iterations 2000 --seed 1 [--workers 2] [--save fuzz-failures] [--json]
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from '../src/data/rng.js';
import { mutateBytes, mutateJsonFile, mutateSafetensors, type Mutation } from './mutate.js';
import { buildSeeds, type Seed } from './seeds.js';
import { isCleanError, type FuzzCase } from './load-case.js';
import type { WorkerReply } from './worker.js';

export const OUTCOMES = [
  'rejected',
  'unclear',
  'loaded_same',
  'loaded_changed',
  'refused_at_generation',
  'broken',
  'crash',
  'hang',
  'blowup',
] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const FAILURES: readonly Outcome[] = ['unclear', 'broken', 'crash', 'hang', 'blowup'];

export interface FuzzOptions {
  iterations: number;
  seed: number;
  workers: number;
  timeoutMs: number;
  maxRssMb: number;
  /** Where failing cases are copied (null: not saved). */
  save: string | null;
  /** Progress lines to stderr. */
  verbose: boolean;
}

export interface FuzzFailure {
  iteration: number;
  seed: string;
  file: string;
  mutation: string;
  outcome: Outcome;
  message: string;
}

export interface FuzzReport {
  iterations: number;
  seed: number;
  seconds: number;
  counts: Record<Outcome, number>;
  /** Counts per seed directory and mutated file. */
  byTarget: Record<string, Partial<Record<Outcome, number>>>;
  failures: FuzzFailure[];
  /** The first few clean errors of each target, to read what users would see. */
  samples: Record<string, string[]>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

function judge(reply: WorkerReply, dir: string, reference: string): Outcome {
  if (reply.outcome === 'broken' || reply.outcome === 'refused_at_generation') return reply.outcome;
  if (reply.outcome === 'loaded') return reply.digest === reference ? 'loaded_same' : 'loaded_changed';
  return isCleanError(reply, dir) ? 'rejected' : 'unclear';
}

function mutate(file: string, bytes: Uint8Array, rng: Rng): Mutation {
  if (file.endsWith('.safetensors')) return mutateSafetensors(bytes, rng);
  if (file.endsWith('.json')) return mutateJsonFile(bytes, rng);
  return mutateBytes(bytes, rng);
}

function pickTarget(seed: Seed, rng: Rng): string {
  const total = seed.targets.reduce((a, t) => a + t.weight, 0);
  let r = rng.int(total);
  for (const t of seed.targets) {
    if (r < t.weight) return t.file;
    r -= t.weight;
  }
  return seed.targets[0]!.file;
}

/** Resident memory of a process in bytes (Linux /proc; 0 elsewhere). */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A worker process with a watchdog: each case resolves to a reply, or to the way the worker failed. */
class Worker {
  private child: ChildProcess | null = null;

  constructor(private readonly opts: FuzzOptions) {}

  private async start(): Promise<ChildProcess> {
    const child = fork(path.join(here, 'worker.ts'), [], {
      execArgv: ['--import', 'tsx', '--max-old-space-size=2048'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, RECYCLEGPT_THREADS: '1' },
    });
    child.stderr!.resume(); // drained; a crash's message is not needed to count it
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code, sig) => reject(new Error(`fuzz worker exited at start-up (${code ?? sig})`)));
    });
    this.child = child;
    return child;
  }

  async run(c: FuzzCase): Promise<WorkerReply | 'crash' | 'hang' | 'blowup'> {
    const child = this.child ?? (await this.start());
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: WorkerReply | 'crash' | 'hang' | 'blowup'): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(watch);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (typeof r === 'string') {
          child.kill('SIGKILL');
          this.child = null;
        }
        resolve(r);
      };
      const onMessage = (m: WorkerReply): void => {
        if (m.id !== c.id) return;
        finish(m.maxRssBytes > this.opts.maxRssMb * 2 ** 20 ? 'blowup' : m);
      };
      const onExit = (): void => finish('crash');
      const timer = setTimeout(() => finish('hang'), this.opts.timeoutMs);
      const watch = setInterval(() => {
        if (child.pid !== undefined && rssOf(child.pid) > this.opts.maxRssMb * 2 ** 20) finish('blowup');
      }, 20);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(c);
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

/** Runs the fuzz; the seeds are built in a temporary folder that is removed afterwards. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'recyclegpt-fuzz-'));
  const workers = Array.from({ length: o.workers }, () => new Worker(o));
  try {
    const seeds = buildSeeds(path.join(work, 'seeds'));
    const counts = Object.fromEntries(OUTCOMES.map((k) => [k, 0])) as Record<Outcome, number>;
    const byTarget: FuzzReport['byTarget'] = {};
    const failures: FuzzFailure[] = [];
    const samples: FuzzReport['samples'] = {};
    const bytesOf = new Map<string, Uint8Array>();
    const read = (p: string): Uint8Array => {
      // A plain Uint8Array copy: a Buffer's slice() is a view, and a mutator would corrupt the original.
      if (!bytesOf.has(p)) bytesOf.set(p, new Uint8Array(fs.readFileSync(p)));
      return bytesOf.get(p)!;
    };

    // The reference answer of every unmutated seed (and a check that the seeds themselves load).
    const reference = new Map<string, string>();
    for (const s of seeds) {
      const r = await workers[0]!.run({ id: -1, dir: s.dir, kind: s.kind });
      if (typeof r === 'string' || r.outcome !== 'loaded') {
        throw new Error(`fuzz: the unmutated seed ${s.name} does not load: ${typeof r === 'string' ? r : r.message}`);
      }
      reference.set(s.name, r.digest);
    }

    let next = 0;
    const runOne = async (w: Worker, slot: number): Promise<void> => {
      for (;;) {
        const i = next++;
        if (i >= o.iterations) return;
        const rng = new Rng(o.seed * 1_000_003 + i);
        const seed = seeds[rng.int(seeds.length)]!;
        const file = pickTarget(seed, rng);
        const m = mutate(file, read(path.join(seed.dir, file)), rng);
        // Each worker keeps its own copy of every seed; only the mutated file is written, then put back.
        const dir = path.join(work, `w${slot}`, seed.name);
        if (!fs.existsSync(dir)) fs.cpSync(seed.dir, dir, { recursive: true });
        fs.writeFileSync(path.join(dir, file), m.bytes);
        const reply = await w.run({ id: i, dir, kind: seed.kind });
        const outcome = typeof reply === 'string' ? reply : judge(reply, dir, reference.get(seed.name)!);
        counts[outcome]++;
        const key = `${seed.name}/${file}`;
        const t = (byTarget[key] ??= {});
        t[outcome] = (t[outcome] ?? 0) + 1;
        if (outcome === 'rejected' && typeof reply !== 'string') {
          const list = (samples[key] ??= []);
          if (list.length < 3) list.push(`${m.what} -> ${reply.message.split(dir).join('DIR').slice(0, 300)}`);
        }
        if (FAILURES.includes(outcome)) {
          const f: FuzzFailure = {
            iteration: i,
            seed: seed.name,
            file,
            mutation: m.what,
            outcome,
            message: typeof reply === 'string' ? '' : reply.message.slice(0, 500),
          };
          failures.push(f);
          if (o.save) saveRepro(o.save, dir, seed, f, o.seed);
        }
        // loads only read: one file to put back
        fs.writeFileSync(path.join(dir, file), read(path.join(seed.dir, file)));
        if (o.verbose && (i + 1) % 500 === 0)
          process.stderr.write(`fuzz: ${i + 1}/${o.iterations} ${JSON.stringify(counts)}\n`);
      }
    };
    await Promise.all(workers.map((w, k) => runOne(w, k)));
    return {
      iterations: o.iterations,
      seed: o.seed,
      seconds: (performance.now() - t0) / 1000,
      counts,
      byTarget,
      failures,
      samples,
    };
  } finally {
    for (const w of workers) w.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Copies a failing case's directory to `root/<seed>-<fuzz seed>-<iteration>/` with a case.json describing it. */
function saveRepro(root: string, dir: string, seed: Seed, f: FuzzFailure, fuzzSeed: number): void {
  const dst = path.join(root, `${seed.name}-${fuzzSeed}-${f.iteration}`);
  fs.rmSync(dst, { recursive: true, force: true });
  fs.cpSync(dir, dst, { recursive: true });
  fs.writeFileSync(path.join(dst, 'case.json'), `${JSON.stringify({ kind: seed.kind, ...f }, null, 2)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '2000' },
      seed: { type: 'string', default: '1' },
      workers: { type: 'string', default: String(Math.max(1, Math.min(2, os.availableParallelism()))) },
      'timeout-ms': { type: 'string', default: '10000' },
      'max-rss-mb': { type: 'string', default: '2048' },
      save: { type: 'string', default: 'fuzz-failures' },
      json: { type: 'boolean', default: false },
    },
  });
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min)
      throw new Error(`fuzz: --${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const report = await runFuzz({
    iterations: int('iterations', values.iterations, 1),
    seed: int('seed', values.seed, 0),
    workers: int('workers', values.workers, 1),
    timeoutMs: int('timeout-ms', values['timeout-ms'], 100),
    maxRssMb: int('max-rss-mb', values['max-rss-mb'], 64),
    save: values.save || null,
    verbose: !values.json,
  });
  if (values.json) console.log(JSON.stringify(report));
  else {
    console.log(`fuzz: ${report.iterations} inputs, seed ${report.seed}, ${report.seconds.toFixed(1)} s`);
    for (const k of OUTCOMES) console.log(`  ${k.padEnd(22)} ${report.counts[k]}`);
    for (const f of report.failures.slice(0, 20))
      console.log(`  FAIL ${f.outcome} ${f.seed}/${f.file} (${f.mutation}): ${f.message}`);
    if (report.failures.length > 0)
      console.log(`  ${report.failures.length} failing case(s) saved under ${values.save}/`);
  }
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  });
}
