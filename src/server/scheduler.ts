/**
 * Continuous batching over one loaded model (ARCHITECTURE.md §8, issue 14). Up to `parallel` generations are active,
 * each with its own KV caches and scratch from a pool; beyond them a bounded queue. Each step:
 *   1. queued jobs take free slots (decodeSteps: the mode's raw steps, session.ts ModelCall);
 *   2. every active generation is advanced until it yields a model call (its tokens go to its job meanwhile) or ends;
 *   3. the pending calls run: all base calls of at most ROW_CHUNK rows in ONE batched forward, all module calls of at
 *      most ROW_CHUNK rows in one batched module forward (model/infer-batch.ts), and at most one larger call (a
 *      prompt's prefill) alone, on its own session, so a long prompt delays the others by one prefill per step;
 *   4. the loop yields to the event loop (sockets, new requests, disconnects), then the next step.
 * A new request joins at the next step; a finished, failed or cancelled one leaves and frees its slot.
 *
 * A request's output does not depend on what else runs: batched rows are bit-identical to solo ones (infer-batch.ts),
 * and larger calls run exactly as `decode` runs them. Everything runs on the event loop's thread (the native kernels
 * use their own threads inside each product).
 */
import { createCaches, decodeSteps } from '../generate/decode.js';
import type { ResolvedOptions } from '../generate/options.js';
import {
  isModelCall,
  type BaseCall,
  type DecodeSession,
  type DecodeStep,
  type ModuleCall,
} from '../generate/session.js';
import type { SessionCaches } from '../generate/session.js';
import type { TokenEvent } from '../generate/types.js';
import { BatchedForward, ROW_CHUNK } from '../model/infer-batch.js';
import type { ForwardScratch, InferenceModel } from '../model/infer.js';

export interface SchedulerOptions {
  /** Generations decoded together (slots). */
  parallel: number;
  /** Requests waiting for a slot at most; one more is refused (QueueFullError). */
  maxQueue: number;
  /** Context length of each slot's caches (≤ the model's). */
  contextLength: number;
}

export interface JobSpec {
  prompt: readonly number[];
  options: ResolvedOptions;
  eos: readonly number[];
  /** Cancels the job (client gone, timeout): it leaves its slot or the queue at the next step. */
  signal: AbortSignal;
  /** Each generated token, as it is made; may end the generation (`session.end('stop')` for a stop string). */
  onToken(ev: TokenEvent, session: DecodeSession): void;
  /** Called once when the job leaves the queue and its generation starts. */
  onStart?(): void;
}

export interface JobResult {
  session: DecodeSession;
  /** Milliseconds spent waiting for a slot. */
  queuedMs: number;
}

/** The queue is full: the caller should answer 503 (and retry later). */
export class QueueFullError extends Error {}
/** The scheduler is draining (SIGTERM): no new work. */
export class ShuttingDownError extends Error {}

interface Job {
  spec: JobSpec;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
  queuedAt: number;
  startedAt: number;
  session: DecodeSession | null;
  steps: Generator<DecodeStep, void, void> | null;
  caches: SessionCaches | null;
  pending: BaseCall | ModuleCall | null;
  dropFromQueue: (() => void) | null;
}

function rowsOf(call: BaseCall | ModuleCall): number {
  return call.call === 'base' ? call.ids.length : call.nextIds.length;
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(`generation aborted${r !== undefined ? `: ${String(r)}` : ''}`);
}

export class Scheduler {
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  private readonly free: SessionCaches[] = [];
  private readonly batch: BatchedForward;
  private running = false;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  /**
   * Steps run, calls batched or run alone, the largest batch, and where the time went (ms): in the model's forwards,
   * and in whole steps (forwards + advancing the modes: sampling, text, stream writes), for /health and the load test.
   */
  readonly counters = {
    steps: 0,
    batchedBaseCalls: 0,
    batchedModuleCalls: 0,
    soloCalls: 0,
    maxBatchRows: 0,
    forwardMs: 0,
    stepMs: 0,
  };

  constructor(
    readonly model: InferenceModel,
    readonly opts: SchedulerOptions,
  ) {
    if (!Number.isInteger(opts.parallel) || opts.parallel < 1) throw new RangeError('parallel must be an integer ≥ 1');
    if (!Number.isInteger(opts.maxQueue) || opts.maxQueue < 0) throw new RangeError('maxQueue must be an integer ≥ 0');
    this.batch = new BatchedForward(model);
    // Every slot's KV caches up front (as llama.cpp's slots): memory use is known at start, not found under load.
    for (let i = 0; i < opts.parallel; i++) this.free.push(createCaches(model, opts.contextLength));
  }

  get activeCount(): number {
    return this.active.length;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Queue a generation; resolves when it ends (EOS, length, context, a stop string), rejects when it fails or is
   * cancelled. Throws QueueFullError / ShuttingDownError synchronously when it cannot be taken.
   */
  submit(spec: JobSpec): Promise<JobResult> {
    if (this.closing) throw new ShuttingDownError('the server is shutting down');
    // Capacity: every slot busy or about to be (queued jobs are admitted at the next step) and the queue full.
    if (this.active.length + this.queue.length >= this.opts.parallel + this.opts.maxQueue) {
      throw new QueueFullError(
        `server busy: ${this.active.length} generations running and the queue of ${this.opts.maxQueue} is full`,
      );
    }
    return new Promise<JobResult>((resolve, reject) => {
      const job: Job = {
        spec,
        resolve,
        reject,
        queuedAt: performance.now(),
        startedAt: 0,
        session: null,
        steps: null,
        caches: null,
        pending: null,
        dropFromQueue: null,
      };
      if (spec.signal.aborted) {
        reject(abortError(spec.signal));
        return;
      }
      // A job cancelled while it waits leaves the queue at once (not only at the next step).
      const onAbort = (): void => {
        const i = this.queue.indexOf(job);
        if (i >= 0) {
          this.queue.splice(i, 1);
          reject(abortError(spec.signal));
        }
      };
      spec.signal.addEventListener('abort', onAbort, { once: true });
      job.dropFromQueue = () => spec.signal.removeEventListener('abort', onAbort);
      this.queue.push(job);
      this.kick();
    });
  }

  /** Refuse new work and resolve once every active and queued generation has ended. */
  drain(): Promise<void> {
    this.closing = true;
    if (!this.running && this.active.length === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Start on a later turn, never inside submit(): the caller sets up its token sink after submit returns.
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.active.length > 0 || this.queue.length > 0) {
        const t0 = performance.now();
        try {
          this.admit();
          for (const job of [...this.active]) if (!job.pending) this.advance(job);
          const t1 = performance.now();
          this.runCalls();
          this.counters.forwardMs += performance.now() - t1;
        } catch (e) {
          // Each job's own errors are caught where they happen; anything else is a bug here: fail every job
          // rather than leave them hanging (or take the process down with an unhandled rejection).
          for (const job of [...this.active]) this.leave(job, e);
          for (const job of this.queue.splice(0)) job.reject(e);
        }
        this.counters.steps++;
        this.counters.stepMs += performance.now() - t0;
        // Let sockets, new requests and disconnects in before the next step.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Queued jobs take the free slots, oldest first. */
  private admit(): void {
    while (this.active.length < this.opts.parallel && this.queue.length > 0) {
      const job = this.queue.shift()!;
      job.dropFromQueue?.();
      job.startedAt = performance.now();
      const caches = this.free.pop()!; // one set per slot, made in the constructor
      try {
        const { session, steps } = decodeSteps(this.model, job.spec.prompt, job.spec.options, caches, job.spec.eos);
        job.session = session;
        job.steps = steps;
        job.caches = caches;
        this.active.push(job);
        job.spec.onStart?.();
      } catch (e) {
        this.free.push(caches);
        job.reject(e);
      }
    }
  }

  /** Run a generation until it asks for a model call or ends; its tokens go to its job on the way. */
  private advance(job: Job): void {
    const steps = job.steps!;
    for (;;) {
      if (job.spec.signal.aborted) {
        this.leave(job, abortError(job.spec.signal));
        return;
      }
      let r: IteratorResult<DecodeStep, void>;
      try {
        r = steps.next();
      } catch (e) {
        this.leave(job, e);
        return;
      }
      if (r.done) {
        this.leave(job, null);
        return;
      }
      if (isModelCall(r.value)) {
        job.pending = r.value;
        return;
      }
      try {
        job.spec.onToken(r.value, job.session!);
      } catch (e) {
        this.leave(job, e);
        return;
      }
    }
  }

  /** Runs the pending calls: small ones batched by kind, at most one large one alone. */
  private runCalls(): void {
    const waiting = this.active.filter((j) => j.pending !== null);
    const large = waiting.find((j) => rowsOf(j.pending!) > ROW_CHUNK);
    if (large) this.runAlone(large);
    const base = waiting.filter((j) => j.pending?.call === 'base' && rowsOf(j.pending) <= ROW_CHUNK);
    const mod = waiting.filter((j) => j.pending?.call === 'module' && rowsOf(j.pending) <= ROW_CHUNK);
    if (base.length > 0) this.runBatch(base, 'base');
    if (mod.length > 0) this.runBatch(mod, 'module');
  }

  private runAlone(job: Job): void {
    const call = job.pending!;
    job.pending = null;
    this.counters.soloCalls++;
    try {
      job.session!.run(call);
    } catch (e) {
      this.leave(job, e);
    }
  }

  private runBatch(jobs: Job[], kind: 'base' | 'module'): void {
    if (jobs.length === 1) {
      this.runAlone(jobs[0]!);
      return;
    }
    const rows = jobs.reduce((n, j) => n + rowsOf(j.pending!), 0);
    this.counters.maxBatchRows = Math.max(this.counters.maxBatchRows, rows);
    try {
      if (kind === 'base') {
        const calls = jobs.map((j) => j.pending as BaseCall);
        const outs = this.batch.base(
          calls.map((c) => ({ ids: c.ids, cache: c.session.caches.base, rows: c.rows, out: scratchOf(c, 'base') })),
        );
        calls.forEach((c, i) => (c.result = outs[i]!));
        this.counters.batchedBaseCalls += calls.length;
      } else {
        const calls = jobs.map((j) => j.pending as ModuleCall);
        const outs = this.batch.module(
          calls.map((c) => ({
            hidden: c.hidden,
            nextIds: c.nextIds,
            cache: c.session.caches.module!,
            out: scratchOf(c, 'module'),
            checked: c.session.checksDrafts,
          })),
        );
        // result: the last row's logits; resultHidden (chained drafts): u, the module's hidden rows. Both land in
        // the session's own module scratch, as session.run would leave them.
        calls.forEach((c, i) => Object.assign(c, { result: outs[i]!.logits, resultHidden: outs[i]!.hidden }));
        this.counters.batchedModuleCalls += calls.length;
      }
      for (const j of jobs) j.pending = null;
    } catch {
      // The batch checks every segment before computing; run each call alone so only a bad one fails its job.
      for (const j of jobs) this.runAlone(j);
    }
  }

  /** A job leaves its slot: finished (err null), failed or cancelled. Its caches go back to the pool. */
  private leave(job: Job, err: unknown): void {
    const i = this.active.indexOf(job);
    if (i >= 0) this.active.splice(i, 1);
    job.pending = null;
    if (err !== null) {
      try {
        job.steps?.return();
      } catch {
        /* the generator's own cleanup failed; the job fails with the first error anyway */
      }
    }
    if (job.caches) this.free.push(job.caches);
    job.caches = null;
    if (err !== null) job.reject(err);
    else job.resolve({ session: job.session!, queuedMs: job.startedAt - job.queuedAt });
  }
}

function scratchOf(call: BaseCall | ModuleCall, kind: 'base' | 'module'): ForwardScratch {
  const s = call.session.caches.scratch;
  const out = kind === 'base' ? s?.base : s?.module;
  if (!out) throw new Error(`scheduler: session has no ${kind} scratch (caches come from createCaches)`);
  return out;
}
