/**
 * llama.cpp as the measured peer (`recyclegpt bench --vs-llama-cpp`, test/gguf-llama-cpp.test.ts), through
 * node-llama-cpp 3.21.1 installed in a package of its own, bench/peers/llama-cpp (`npm run peers:install`: the CPU
 * prebuild only), never a dependency of recyclegpt. It is imported by path at run time; its types stay here behind
 * the few local interfaces we use.
 *
 * Decode is llama.cpp's standard greedy decode (temperature 0, EOS not stopping it) of a GGUF exported from the
 * same weights (io/gguf.ts), on the same prompts, thread count and token counts as our bench; each prompt starts
 * from an empty sequence and its prefill is timed with its decode, as ours is. The context is llama.cpp's default
 * (F16 KV cache, flash attention "auto") unless `kvF32` asks for an F32 KV cache (the greedy-equality test).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../node/package-root.js';
import { median } from './bandwidth.js';

/** The pinned version (bench/peers/llama-cpp/package.json). */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

/** Where `npm run peers:install` puts it. */
export function peerDir(): string {
  return join(packageRoot(), 'bench', 'peers', 'llama-cpp');
}

function entryFile(): string {
  return join(peerDir(), 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
}

export const PEER_MISSING_MESSAGE =
  `llama.cpp is not installed: run \`npm run peers:install\` (node-llama-cpp ${NODE_LLAMA_CPP_VERSION}, CPU ` +
  'build, into bench/peers/llama-cpp)';

export function llamaCppInstalled(): boolean {
  return existsSync(entryFile());
}

// The parts of node-llama-cpp's API used here.
interface NlcSequence {
  clearHistory(): Promise<void>;
  evaluate(
    tokens: number[],
    options?: { temperature?: number; yieldEogToken?: boolean },
  ): AsyncGenerator<number, void, void | number | number[]>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  dispose(): void;
}
interface NlcContext {
  getSequence(): NlcSequence;
  readonly contextSize: number;
  dispose(): Promise<void>;
}
interface NlcModel {
  createContext(options: Record<string, unknown>): Promise<NlcContext>;
  tokenize(text: string): number[];
  readonly tokens: { readonly bos: number | null; readonly eos: number | null };
  dispose(): Promise<void>;
}
interface NlcLlama {
  loadModel(options: { modelPath: string; gpuLayers?: number; useMmap?: boolean }): Promise<NlcModel>;
  readonly buildType: string;
  readonly cpuMathCores: number;
  dispose(): Promise<void>;
}
interface NlcModule {
  getLlama(options: Record<string, unknown>): Promise<NlcLlama>;
}

let cachedModule: Promise<NlcModule> | null = null;

/** Imports node-llama-cpp from bench/peers/llama-cpp; a clear error naming `npm run peers:install` when absent. */
export function importNodeLlamaCpp(): Promise<NlcModule> {
  if (!llamaCppInstalled()) return Promise.reject(new Error(PEER_MISSING_MESSAGE));
  cachedModule ??= import(pathToFileURL(entryFile()).href) as Promise<NlcModule>;
  return cachedModule;
}

export interface LlamaCppOptions {
  threads: number;
  /** Context positions (default 1024, at least prompt + new tokens). */
  contextSize?: number;
  /** Tokens per llama_decode batch (default: the context size, at most 512: a 512-token prefill in one batch). */
  batchSize?: number;
  /** F32 KV cache and no flash attention (exact comparisons); default llama.cpp's (F16 KV, flash "auto"). */
  kvF32?: boolean;
}

/** One GGUF loaded in llama.cpp (CPU), with one context and sequence. */
export class LlamaCppRunner {
  private constructor(
    private readonly llama: NlcLlama,
    private readonly model: NlcModel,
    private readonly context: NlcContext,
    private readonly sequence: NlcSequence,
  ) {}

  static async open(gguf: string, o: LlamaCppOptions): Promise<LlamaCppRunner> {
    const nlc = await importNodeLlamaCpp();
    const llama = await nlc.getLlama({
      gpu: false,
      build: 'never',
      usePrebuiltBinaries: true,
      maxThreads: o.threads,
      logLevel: 'error',
      progressLogs: false,
    });
    try {
      const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
      const contextSize = o.contextSize ?? 1024;
      const context = await model.createContext({
        contextSize,
        batchSize: o.batchSize ?? Math.min(contextSize, 512),
        threads: { ideal: o.threads, min: o.threads },
        sequences: 1,
        ...(o.kvF32
          ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false }
          : {}),
      });
      return new LlamaCppRunner(llama, model, context, context.getSequence());
    } catch (e) {
      await llama.dispose();
      throw e;
    }
  }

  /** llama.cpp's tokenizer (the GGUF's vocabulary), for checks. */
  tokenize(text: string): number[] {
    return this.model.tokenize(text);
  }

  /** Greedy continuation of `prompt` from an empty sequence: `n` new token ids (EOS does not stop it). */
  async greedy(prompt: readonly number[], n: number): Promise<number[]> {
    await this.sequence.clearHistory();
    const out: number[] = [];
    if (n <= 0) return out;
    for await (const t of this.sequence.evaluate([...prompt], { temperature: 0, yieldEogToken: true })) {
      out.push(t);
      if (out.length >= n) break;
    }
    return out;
  }

  /** Greedy decode rate: tokens/s over `prompts`, `n` new tokens each, every prompt's prefill included. */
  async decodeRate(prompts: readonly (readonly number[])[], n: number): Promise<number> {
    const t0 = performance.now();
    let made = 0;
    for (const p of prompts) made += (await this.greedy(p, n)).length;
    return made / ((performance.now() - t0) / 1000);
  }

  /** Seconds to prefill `prompt` into an empty sequence (no token generated). */
  async prefillSeconds(prompt: readonly number[]): Promise<number> {
    await this.sequence.clearHistory();
    const t0 = performance.now();
    await this.sequence.evaluateWithoutGeneratingNewTokens([...prompt]);
    return (performance.now() - t0) / 1000;
  }

  async close(): Promise<void> {
    this.sequence.dispose();
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

export interface LlamaCppBenchOptions {
  threads: number;
  prompts: readonly (readonly number[])[];
  /** New tokens per prompt. */
  tokens: number;
  repeats: number;
  /** The prefill prompt (512 tokens in the CLI); none: not measured. */
  prefillPrompt?: readonly number[] | null;
  log?: (line: string) => void;
}

export interface LlamaCppBenchResult {
  tokens_per_s: number;
  samples: number[];
  prefill_tokens: number | null;
  prefill_tokens_per_s: number | null;
  prefill_samples: number[];
}

/** Greedy decode tokens/s (median over repeats) and prefill tokens/s of one GGUF in llama.cpp. */
export async function benchLlamaCpp(gguf: string, o: LlamaCppBenchOptions): Promise<LlamaCppBenchResult> {
  const longest = Math.max(...o.prompts.map((p) => p.length)) + o.tokens;
  const contextSize = Math.max(longest, o.prefillPrompt?.length ?? 0, 64);
  const r = await LlamaCppRunner.open(gguf, { threads: o.threads, contextSize });
  try {
    await r.greedy(o.prompts[0]!, 8); // warm-up
    const samples: number[] = [],
      prefill: number[] = [];
    for (let i = 0; i < o.repeats; i++) {
      samples.push(await r.decodeRate(o.prompts, o.tokens));
      if (o.prefillPrompt) prefill.push(o.prefillPrompt.length / (await r.prefillSeconds(o.prefillPrompt)));
      o.log?.(
        `repeat ${i + 1}/${o.repeats} llama.cpp: ${samples[i]!.toFixed(1)} tokens/s` +
          (o.prefillPrompt ? `, prefill ${prefill[i]!.toFixed(1)} tokens/s` : ''),
      );
    }
    return {
      tokens_per_s: median(samples),
      samples,
      prefill_tokens: o.prefillPrompt?.length ?? null,
      prefill_tokens_per_s: prefill.length > 0 ? median(prefill) : null,
      prefill_samples: prefill,
    };
  } finally {
    await r.close();
  }
}
