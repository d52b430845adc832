/**
 * `recyclegpt/core`: the part of recyclegpt that runs anywhere (browsers, workers, Deno, Bun, Node): a model from
 * the bytes of its files, generation in all three modes, streams, the ref backend (plain TypeScript kernels).
 * Nothing here imports `node:` or touches Node globals at load (test/core.test.ts bundles it with esbuild for
 * `--platform=browser`). The Node entry (`recyclegpt`) adds model directories, the native addon and the CLI.
 *
 *     import { RecycleGPT } from 'recyclegpt/core';
 *     const get = async (f: string) => (await fetch(`/models/recycle-small/${f}`)).arrayBuffer();
 *     const m = await RecycleGPT.fromBytes({
 *       config: await get('config.json'),
 *       weights: await get('model.safetensors'),
 *       tokenizer: await get('tokenizer.json'),
 *     });
 *     for await (const tok of m.stream('Once upon a time', { max_new_tokens: 40 })) output.append(tok.text);
 */
export {
  RecycleGPT,
  GenerationStream,
  type FromBytesOptions,
  type GenerateResult,
  type JsonInput,
  type ModelBytes,
  type StreamToken,
} from './generate/recyclegpt-core.js';
export {
  ineffectiveSamplingWarning,
  SAMPLING_ONLY_OPTIONS,
  DEFAULT_MAX_NEW_TOKENS,
  type GenerationOptions,
} from './generate/options.js';
export {
  DECODE_MODES,
  type DecodeMode,
  type FinishReason,
  type GenerationStats,
  type TokenEvent,
  type TokenSource,
} from './generate/types.js';
export { createRefBackend } from './kernels/ref.js';
export {
  createWasmBackend,
  createWasmBackendFromModule,
  isThreadedWasmKernels,
  wasmKernelsUrl,
  wasmThreadsAvailable,
  type WasmBackend,
  type WasmBackendOptions,
  type WasmKernelsSource,
  type WasmStartWorker,
  type WasmWorkerInit,
} from './kernels/wasm.js';
export type { Backend } from './kernels/backend.js';
export { parseConfig, type ModelConfig } from './model/config.js';
export { SafetensorsBytes, type Bytes, type LoadedTensor, type TensorInfo } from './io/safetensors-bytes.js';
export { openTensorsFromBytes, type ShardedBytes, type TensorSource, type WeightBytes } from './io/tensor-source.js';
export { tokenizerFromJson, type TokenizerJsonOptions } from './tokenizer/from-json.js';
export {
  createStreamDecoder,
  type StreamDecoder,
  type Tokenizer,
  type EncodeOptions,
  type DecodeOptions,
} from './tokenizer/tokenizer.js';
export type { InferenceModel } from './model/infer.js';
export type { WeightDtype } from './kernels/backend.js';
