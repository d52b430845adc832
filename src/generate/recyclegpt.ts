/**
 * The public generation API on Node:
 *
 *     const m = await RecycleGPT.load(dir);
 *     const { text, stats } = await m.generate('Once upon a time', { mode: 'verified', max_new_tokens: 50 });
 *     for await (const tok of m.stream(prompt, opts)) process.stdout.write(tok.text);   // tok.source: how it was made
 *
 * The class is the core one (recyclegpt-core.ts: generation, streams, `fromBytes`) with `load(dir)` added, which
 * reads a model directory through the file system. Each loaded model has its own backend (native when built, with
 * its own thread count), so models in one process do not change each other's settings.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { createBackend } from '../kernels/index.js';
import { InferenceModel } from '../model/infer.js';
import { loadModelDirAs } from '../io/model-dir.js';
import { loadAnyModelDir } from '../io/module-dir.js';
import { resolveModelDir } from '../node/model-resolve.js';
import type { UserDtype } from '../model/convert.js';
import { loadGenerationConfig, loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { checkTokenizerFits, RecycleGPT as CoreRecycleGPT } from './recyclegpt-core.js';

export {
  GenerationStream,
  type FromBytesOptions,
  type GenerateResult,
  type JsonInput,
  type ModelBytes,
  type StreamToken,
} from './recyclegpt-core.js';

export interface LoadOptions {
  /** Kernel backend (default: a new one for this model: native when the addon is built, else ref). */
  backend?: Backend;
  /** Threads for this model's kernels (default: the backend's; with `backend` given, set on that backend). */
  threads?: number;
  /**
   * Called with a warning the load raises (e.g. the native addon is missing and ref is used; nothing is printed)
   * and, later, with the model's own warnings (generation options that have no effect; default: console.warn).
   */
  onWarning?: (message: string) => void;
  /** A tokenizer to use instead of the directory's (null: token-id prompts only). */
  tokenizer?: Tokenizer | null;
  /**
   * A module-only directory (trained on a frozen base, io/module-dir.ts) to load over `dir` as its base, the PEFT
   * adapter way; its recorded fingerprint must match `dir`. A module-only `dir` finds its own base without this.
   */
  module?: string;
  /**
   * The dtype of the product weights (matrices, embedding, head): converted at load from an f32 model
   * (model/convert.ts; int8 is ggml's q8_0); a quantized directory loads as stored. Default: as stored. Where the
   * backend cannot read that storage, the weights are widened to f32 (same values) and `onWarning` says so.
   */
  dtype?: UserDtype;
}

export class RecycleGPT extends CoreRecycleGPT {
  /**
   * Load a model directory (config.json, model.safetensors, tokenizer.json; ARCHITECTURE.md §5), the name of a
   * shipped model (`'recycle-deep'`), or with no name the shipped default, as the CLI's `--model` does.
   */
  static async load(model?: string, opts: LoadOptions = {}): Promise<RecycleGPT> {
    const dir = resolveModelDir(model, 'RecycleGPT.load');
    const backend = opts.backend ?? createBackend({ kind: 'auto', threads: opts.threads, onWarning: opts.onWarning });
    if (opts.backend && opts.threads !== undefined) backend.setThreads(opts.threads);
    const modOpts = { alloc: backend.alloc, dtypes: backend.weightDtypes };
    const { config, weights, tokenizerDir } = loadAnyModelDir(dir, opts.module, modOpts, (d) =>
      loadModelDirAs(d, {
        dtype: opts.dtype,
        alloc: backend.alloc,
        dtypes: backend.weightDtypes,
        backendName: backend.name,
        onWarning: opts.onWarning,
      }),
    );
    const tokenizer = opts.tokenizer !== undefined ? opts.tokenizer : tokenizerOf(tokenizerDir);
    checkTokenizerFits(dir, tokenizer, config);
    const m = new RecycleGPT(new InferenceModel(config, weights, backend), tokenizer, dir);
    if (opts.onWarning) m.onWarning = opts.onWarning;
    // generation_config.json: the directory's, else (a module-only directory) its base's
    m.generationConfig =
      loadGenerationConfig(dir) ?? (tokenizerDir !== dir ? loadGenerationConfig(tokenizerDir) : null);
    return m;
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
