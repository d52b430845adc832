/**
 * The generation API without the file system: a model from bytes in memory (`RecycleGPT.fromBytes`), text or token
 * ids in, text + stats out, streams. The Node entry (recyclegpt.ts) adds `RecycleGPT.load(dir)` on top of this class.
 * No `node:` import anywhere in this module's graph (test/core.test.ts bundles it for the browser).
 *
 * Each generation takes its own KV caches and forward scratch from a small pool (given back when it ends, so
 * sequential generations reuse the buffers): several streams over one loaded model can be iterated interleaved,
 * each giving what it would alone, and a stream abandoned mid-way holds only its own set. Streams yield to the
 * event loop between tokens, so an AbortSignal fired from a timer, a socket or a UI cancels them.
 */
import type { Backend } from '../kernels/backend.js';
import { createRefBackend } from '../kernels/ref.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import { InferenceModel } from '../model/infer.js';
import { loadWeights } from '../io/load-weights.js';
import type { Bytes } from '../io/safetensors-bytes.js';
import { bytesLabel, jsonOf, openTensorsFromBytes, type WeightBytes } from '../io/tensor-source.js';
import { tokenizerFromJson, type TokenizerJsonOptions } from '../tokenizer/from-json.js';
import { parseGenerationConfig, type GenerationConfig } from '../tokenizer/generation-config.js';
import { createStreamDecoder, type Tokenizer } from '../tokenizer/tokenizer.js';
import { checkMode, checkPrompt, createCaches, decode, eosIds } from './decode.js';
import { nextTurn } from './next-turn.js';
import { ineffectiveSamplingWarning, resolveOptions, type GenerationOptions, type ResolvedOptions } from './options.js';
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

/** JSON as text, as bytes (strict UTF-8), or already parsed. */
export type JsonInput = string | Bytes | object;

/** The files of a model directory, held in memory (fetched, read from IndexedDB, embedded, ...). */
export interface ModelBytes {
  /** config.json */
  readonly config: JsonInput;
  /** model.safetensors, or the shards and their model.safetensors.index.json */
  readonly weights: WeightBytes;
  /** tokenizer.json (absent: token-id prompts only, unless `FromBytesOptions.tokenizer` gives one) */
  readonly tokenizer?: JsonInput | null;
  /** tokenizer_config.json (eos/bos token names) */
  readonly tokenizerConfig?: JsonInput | null;
  /** generation_config.json: its sampling defaults apply under each generation's own options */
  readonly generationConfig?: JsonInput | null;
}

export interface FromBytesOptions {
  /** Kernel backend (default: a new ref backend, plain TypeScript). */
  backend?: Backend;
  /** Threads for the backend's parallel kernels. */
  threads?: number;
  /** A tokenizer to use instead of `tokenizer` (null: token-id prompts only). */
  tokenizer?: Tokenizer | null;
  /** Names the model in errors ("name/config.json: ..."); default: each file is called "<file> (bytes)". */
  name?: string;
  /** Which tokenizer implementation reads tokenizer.json (see TokenizerJsonOptions). */
  engine?: TokenizerJsonOptions['engine'];
  /** Receives warnings, such as generation options that have no effect (default: console.warn). */
  onWarning?: (message: string) => void;
}

/** Idle cache sets kept for reuse; more concurrent generations allocate more, the extra ones are then dropped. */
const POOL_MAX = 2;

/** Throws unless every id of the tokenizer is an id of the model; `where` names the model. */
export function checkTokenizerFits(where: string, tokenizer: Tokenizer | null, config: ModelConfig): void {
  if (tokenizer && tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `${where}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${config.vocabSize}`,
    );
  }
}

/** Where a model's warnings go when its owner gave no `onWarning`: the console, as transformers' logger. */
function warnOnConsole(message: string): void {
  globalThis.console?.warn(`recyclegpt: ${message}`);
}

/**
 * A generation's options over the model's generation_config.json defaults (transformers' rule: what the caller
 * gives wins, key by key; an option given as undefined counts as not given). max_length (prompt + new tokens) limits
 * a generation only when neither gives max_new_tokens.
 */
export function withGenerationDefaults(
  options: GenerationOptions,
  gen: GenerationConfig | null,
  promptLength: number,
): GenerationOptions {
  if (!gen) return options;
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as GenerationOptions;
  const merged: GenerationOptions = { ...gen.defaults, ...given };
  if (merged.max_new_tokens === undefined && gen.maxLength !== null)
    merged.max_new_tokens = Math.max(1, gen.maxLength - promptLength);
  return merged;
}

export class RecycleGPT {
  private readonly free: SessionCaches[] = [];
  /** Receives this model's warnings (a generation option that has no effect); set by load / fromBytes. */
  onWarning: (message: string) => void = warnOnConsole;
  /**
   * The model's generation_config.json (load / fromBytes read it): defaults under every generation's options.
   * null: none (the library's defaults: greedy, 128 new tokens). Assign to change or drop them.
   */
  generationConfig: GenerationConfig | null = null;

  constructor(
    readonly model: InferenceModel,
    readonly tokenizer: Tokenizer | null,
    readonly name = 'model',
  ) {}

  /**
   * A model from the bytes of its files: the same checks as loading a directory, with errors naming the file
   * ("safetensors model.safetensors (bytes): header length ..."). Called on a subclass, it returns one.
   */
  static async fromBytes<T extends RecycleGPT>(
    this: new (model: InferenceModel, tokenizer: Tokenizer | null, name?: string) => T,
    files: ModelBytes,
    opts: FromBytesOptions = {},
  ): Promise<T> {
    if (typeof files !== 'object' || files === null)
      throw new Error('RecycleGPT.fromBytes: expected {config, weights}');
    const label = opts.name === undefined ? bytesLabel : (file: string) => `${opts.name}/${file}`;
    const name = opts.name ?? 'model (bytes)';
    if (files.config === undefined || files.config === null) throw new Error(`${label('config.json')}: not given`);
    if (files.weights === undefined || files.weights === null) {
      throw new Error(`${label('model.safetensors')}: not given`);
    }
    const config = parseConfig(jsonOf(files.config, label('config.json')), label('config.json'));
    const backend = opts.backend ?? createRefBackend();
    if (opts.threads !== undefined) backend.setThreads(opts.threads);
    const tokenizer = opts.tokenizer !== undefined ? opts.tokenizer : tokenizerOf(files, label, opts);
    checkTokenizerFits(name, tokenizer, config);
    const src = openTensorsFromBytes(files.weights, label);
    let weights;
    try {
      // weights live where the backend's kernels read them best (a WASM backend: inside its own memory)
      weights = loadWeights(config, src, label('model.safetensors'), {
        alloc: backend.alloc,
        dtypes: backend.weightDtypes,
      }).weights;
    } finally {
      src.close();
    }
    const m = new this(new InferenceModel(config, weights, backend), tokenizer, name);
    if (opts.onWarning) m.onWarning = opts.onWarning;
    if (files.generationConfig !== undefined && files.generationConfig !== null) {
      const file = label('generation_config.json');
      m.generationConfig = parseGenerationConfig(jsonOf(files.generationConfig, file), file);
    }
    return m;
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  get hasModule(): boolean {
    return this.model.hasModule;
  }

  /**
   * Token ids of a prompt (text needs a tokenizer). Text gets the special tokens the model expects (BOS for Llama,
   * as tokenizer_config.json / the tokenizer.json post-processor say); ids are taken as they are.
   */
  encode(prompt: string | readonly number[]): number[] {
    if (typeof prompt !== 'string') return [...prompt];
    if (!this.tokenizer)
      throw new Error(`${this.name} has no tokenizer (no tokenizer.json): give the prompt as token ids`);
    return this.tokenizer.encode(prompt, { addSpecialTokens: true });
  }

  /**
   * Stream a generation. Options and prompt are validated now (errors throw here); the model runs as the
   * stream is iterated. The stream's `stats`, `text` and `ids` are live.
   */
  stream(prompt: string | readonly number[], options: GenerationOptions = {}): GenerationStream {
    const ids = this.encode(prompt);
    const merged = withGenerationDefaults(options, this.generationConfig, ids.length);
    const opts = resolveOptions(merged);
    // only the caller's own sampling options can be "ineffective": the file's are defaults, used when sampling
    const ineffective = ineffectiveSamplingWarning({ ...options, do_sample: merged.do_sample });
    if (ineffective !== null) this.onWarning(ineffective);
    if (opts.stopStrings.length > 0 && !this.tokenizer)
      throw new Error('generation option stop_strings needs a tokenizer');
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

/** The tokenizer of `files`, or null when it has none (token-id prompts only). */
function tokenizerOf(files: ModelBytes, label: (file: string) => string, opts: FromBytesOptions): Tokenizer | null {
  if (files.tokenizer === undefined || files.tokenizer === null) return null;
  const file = label('tokenizer.json');
  const raw = jsonOf(files.tokenizer, file);
  let config: Record<string, unknown> = {};
  if (files.tokenizerConfig !== undefined && files.tokenizerConfig !== null) {
    const cfgFile = label('tokenizer_config.json');
    const c = jsonOf(files.tokenizerConfig, cfgFile);
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error(`${cfgFile}: must be a JSON object`);
    config = c as Record<string, unknown>;
  }
  return tokenizerFromJson(raw, file, { config, engine: opts.engine });
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
    this.statsRef = emptyStats(options.mode, promptIds.length, options.seed, options.draftTokens);
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
