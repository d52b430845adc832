/** recyclegpt's public API on Node. `recyclegpt/core` (core.ts) is the part that runs anywhere, browsers included. */
export {
  RecycleGPT,
  GenerationStream,
  type FromBytesOptions,
  type GenerateResult,
  type JsonInput,
  type LoadOptions,
  type ModelBytes,
  type StreamToken,
} from './generate/recyclegpt.js';
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
export { decode, decodeAll, createCaches, type DecodeRun } from './generate/decode.js';
export { Sampler, argmax, type SamplerSettings, type UniformSource, type Verdict } from './generate/sampler.js';
export { MinP, RepetitionPenalty, Temperature, TopK, TopP, type LogitsProcessor } from './generate/processors.js';
export { TokenHistory } from './generate/history.js';
export {
  runDecodeBench,
  formatDecodeBench,
  type DecodeBenchOptions,
  type DecodeBenchResult,
  type DecodeBenchRun,
} from './bench/decode.js';
export {
  createBackend,
  getBackend,
  type Backend,
  type BackendKind,
  type BackendOptions,
  type SimdPath,
} from './kernels/index.js';
// the types that appear in the signatures above (a model's config, tokenizer, inference model, dtypes)
export { parseConfig, type ModelConfig } from './model/config.js';
export type { InferenceModel } from './model/infer.js';
export { USER_DTYPES, type UserDtype } from './model/convert.js';
export type { WeightDtype } from './kernels/backend.js';
export {
  loadTokenizer,
  loadGenerationConfig,
  createStreamDecoder,
  type Tokenizer,
  type StreamDecoder,
  type EncodeOptions,
  type DecodeOptions,
  type GenerationConfig,
  type GenerationDefaults,
} from './tokenizer/index.js';
// the model resolver the CLI's --model and RecycleGPT.load share
export { resolveModelDir, shippedModelNames, DEFAULT_MODEL_NAME } from './node/model-resolve.js';
