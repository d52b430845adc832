/**
 * The public generation API:
 *
 *     const m = await RecycleGPT.load(dir);
 *     const { text, stats } = await m.generate('Once upon a time', { mode: 'verified', max_new_tokens: 50 });
 *     for await (const tok of m.stream(prompt, opts)) process.stdout.write(tok.text);   // tok.source: how it was made
 *
 * Each generation takes its own KV caches and forward scratch from a small pool (given back when it ends, so
 * sequential generations reuse the buffers): several streams over one loaded model can be iterated interleaved,
 * each giving what it would alone, and a stream abandoned mid-way holds only its own set. Streams yield to the
 * event loop between tokens, so an AbortSignal fired from a timer, a socket or a UI cancels them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Backend } from '../kernels/backend.js';
import { getBackend } from '../kernels/index.js';
import type { ModelConfig } from '../model/config.js';
import { InferenceModel } from '../model/infer.js';
import { loadModelDir } from '../io/model-dir.js';
import { createStreamDecoder, loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { checkMode, checkPrompt, createCaches, decode, eosIds } from './decode.js';
import { resolveOptions, type GenerationOptions, type ResolvedOptions } from './options.js';
import type { SessionCaches } from './session.js';
import { StopStringFilter } from './stop-strings.js';
import { emptyStats, type GenerationStats, type TokenEvent } from './types.js';

/** A generated token with the text it completes (possibly "", never half a character). */
export interface StreamToken extends TokenEvent {
  text: string;
}

export interface GenerateResult {
  text: string;
  ids: number[];
  stats: GenerationStats;
}

export interface LoadOptions {
  /** Kernel backend (default: the process-wide one, native when built). */
  backend?: Backend;
  /** Threads for the backend's parallel kernels. */
  threads?: number;
  /** A tokenizer to use instead of the directory's (null: token-id prompts only). */
  tokenizer?: Tokenizer | null;
}

/** Idle cache sets kept for reuse; more concurrent generations allocate more, the extra ones are then dropped. */
const POOL_MAX = 2;

export class RecycleGPT {
  private readonly free: SessionCaches[] = [];

  constructor(
    readonly model: InferenceModel,
    readonly tokenizer: Tokenizer | null,
    readonly name = 'model',
  ) {}

  /** Load a model directory (config.json, model.safetensors, tokenizer.json; DESIGN.md §3). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<RecycleGPT> {
    const backend = opts.backend ?? getBackend();
    if (opts.threads !== undefined) backend.setThreads(opts.threads);
    const { config, weights } = loadModelDir(dir);
    const tokenizer = opts.tokenizer !== undefined ? opts.tokenizer : tokenizerOf(dir);
    if (tokenizer && tokenizer.vocabSize > config.vocabSize) {
      throw new Error(
        `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${config.vocabSize}`,
      );
    }
    return new RecycleGPT(new InferenceModel(config, weights, backend), tokenizer, dir);
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  get hasModule(): boolean {
    return this.model.hasModule;
  }

  /** Token ids of a prompt (text needs a tokenizer). */
  encode(prompt: string | readonly number[]): number[] {
    if (typeof prompt !== 'string') return [...prompt];
    if (!this.tokenizer)
      throw new Error(`${this.name} has no tokenizer (no tokenizer.json): give the prompt as token ids`);
    return this.tokenizer.encode(prompt);
  }

  /**
   * Stream a generation. Options and prompt are validated now (errors throw here); the model runs as the
   * stream is iterated. The stream's `stats`, `text` and `ids` are live.
   */
  stream(prompt: string | readonly number[], options: GenerationOptions = {}): GenerationStream {
    const opts = resolveOptions(options);
    if (opts.stopStrings.length > 0 && !this.tokenizer)
      throw new Error('generation option stop_strings needs a tokenizer');
    const ids = this.encode(prompt);
    checkMode(this.model, opts.mode);
    checkPrompt(this.model, ids);
    const eos = eosIds(this.model, opts, this.tokenizer?.eosTokenId ?? null);
    return new GenerationStream(this, ids, opts, eos);
  }

  /** Generate to the end (EOS, max_new_tokens, a stop string or the context length). */
  async generate(prompt: string | readonly number[], options: GenerationOptions = {}): Promise<GenerateResult> {
    const s = this.stream(prompt, options);
    for await (const _tok of s) {
      /* the stream accumulates text and ids */
    }
    return { text: s.text, ids: [...s.ids], stats: s.stats };
  }

  /** @internal Caches and scratch for one generation: an idle set, else a new one (generations never wait). */
  acquire(): SessionCaches {
    return this.free.pop() ?? createCaches(this.model);
  }

  /** @internal Give back a finished generation's set (an abandoned stream never does: it keeps only its own). */
  release(caches: SessionCaches): void {
    if (this.free.length < POOL_MAX && !this.free.includes(caches)) this.free.push(caches);
  }
}

/** An async iterable of StreamTokens, iterable once, with live `stats`, `text` and `ids`. */
export class GenerationStream implements AsyncIterable<StreamToken> {
  private statsRef: GenerationStats;
  private started = false;
  private out: readonly number[] = [];
  text = '';

  constructor(
    private readonly owner: RecycleGPT,
    readonly promptIds: readonly number[],
    readonly options: ResolvedOptions,
    private readonly eos: readonly number[],
  ) {
    this.statsRef = emptyStats(options.mode, promptIds.length, options.seed);
  }

  get stats(): GenerationStats {
    return this.statsRef;
  }

  get ids(): readonly number[] {
    return this.out;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamToken, void, undefined> {
    if (this.started) throw new Error('a GenerationStream can be iterated only once');
    this.started = true;
    const caches = this.owner.acquire();
    try {
      const run = decode(this.owner.model, this.promptIds, this.options, caches, this.eos);
      this.statsRef = run.stats;
      this.out = run.ids;
      const tok = this.owner.tokenizer;
      const textOf = tok ? createStreamDecoder(tok) : null;
      const stops = this.options.stopStrings.length > 0 ? new StopStringFilter(this.options.stopStrings) : null;
      const eosSet = new Set(this.eos);
      for (const ev of run) {
        let text = textOf && !eosSet.has(ev.id) ? textOf.push(ev.id) : '';
        if (textOf && run.session.done) text += textOf.flush();
        if (stops) {
          text = stops.push(text);
          if (stops.stopped) run.session.end('stop');
          else if (run.session.done) text += stops.flush();
        }
        this.text += text;
        yield { ...ev, text };
        if (run.session.done) break;
        await nextTurn();
        run.session.checkAbort();
      }
    } finally {
      this.owner.release(caches);
    }
  }
}

/** The directory's tokenizer, or null when it has none and none can be chosen (token-id prompts only). */
function tokenizerOf(dir: string): Tokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch (e) {
    if (existsSync(join(dir, 'tokenizer.json'))) throw e;
    return null;
  }
}
