/**
 * Tokenizers: the interface, GPT-2 BPE, Hugging Face tokenizer.json, our byte-level BPE and its trainer,
 * and loadTokenizer(dir) which picks one for a model directory.
 */
import * as fs from 'node:fs';
import { readJsonFile } from '../io/files.js';
import * as path from 'node:path';
import { isMarker, tokenizerFromJson, type TokenizerJsonOptions } from './from-json.js';
import { gpt2Tokenizer, GPT2_VOCAB_SIZE } from './gpt2.js';
import { checkTokenizerJson, HfTokenizer, type HfLoadOptions } from './hf.js';
import { parseGenerationConfig, type GenerationConfig } from './generation-config.js';
import type { Tokenizer } from './tokenizer.js';

export {
  createStreamDecoder,
  checkIds,
  type Tokenizer,
  type StreamDecoder,
  type EncodeOptions,
  type DecodeOptions,
} from './tokenizer.js';
export { parseTokenizerConfig, type TokenizerConfig } from './config.js';
export { parseGenerationConfig, type GenerationConfig, type GenerationDefaults } from './generation-config.js';
export { Gpt2Tokenizer, gpt2Tokenizer, GPT2_EOS, GPT2_EOS_ID, GPT2_VOCAB_SIZE } from './gpt2.js';
export { HfTokenizer, checkTokenizerJson, inferModelType, byteLevelBpeFromJson, type HfLoadOptions } from './hf.js';
export { tokenizerFromJson, type TokenizerJsonOptions } from './from-json.js';
export { ByteLevelBpe, type ByteLevelBpeSpec, type SpecialToken } from './bpe.js';
export {
  trainBpe,
  countWords,
  toTokenizerJson,
  writeTokenizerJson,
  bpeFromTrained,
  type BpeTrainOptions,
  type TrainedBpe,
} from './bpe-trainer.js';

export type LoadTokenizerOptions = Pick<TokenizerJsonOptions, 'engine'>;

/** Reads and checks the parts of a tokenizer.json we and the library rely on. */
export function readTokenizerJson(file: string): Record<string, unknown> {
  return checkTokenizerJson(readJsonFile(file, 'tokenizer file'), file);
}

/** Loads tokenizer.json with the Hugging Face library. */
export function loadHfTokenizer(file: string, opts: HfLoadOptions = {}): HfTokenizer {
  return new HfTokenizer(file, readTokenizerJson(file), opts.config ?? {}, opts.configFile);
}

function readJsonObject(file: string): Record<string, unknown> {
  const v = readJsonFile(file);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: must be a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * The tokenizer of a model directory (or a tokenizer.json path):
 * - tokenizer.json that is the marker `{"type": "gpt2"}` -> GPT-2 BPE (offline);
 * - any other tokenizer.json -> Hugging Face format; tokenizer_config.json, if present, supplies the special tokens,
 *   add_bos_token / add_eos_token and chat_template (else chat_template.jinja beside it, as newer repositories
 *   store it);
 * - no tokenizer.json, config.json with model_type "gpt2" and vocab_size 50257 -> GPT-2 BPE;
 * - otherwise an error saying what was looked for.
 */
export function loadTokenizer(dirOrFile: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  if (!fs.existsSync(dirOrFile)) throw new Error(`loadTokenizer: ${dirOrFile} does not exist`);
  const isFile = fs.statSync(dirOrFile).isFile();
  const dir = isFile ? path.dirname(dirOrFile) : dirOrFile;
  const tokFile = isFile ? dirOrFile : path.join(dir, 'tokenizer.json');
  if (fs.existsSync(tokFile)) {
    const raw = readJsonFile(tokFile);
    // tokenizer_config.json is read only for a tokenizer.json that passed the object and marker checks, as before
    const isHf = typeof raw === 'object' && raw !== null && !Array.isArray(raw) && !isMarker(raw);
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    let config = isHf && fs.existsSync(cfgFile) ? readJsonObject(cfgFile) : {};
    const jinja = path.join(dir, 'chat_template.jinja');
    if (isHf && config.chat_template == null && fs.existsSync(jinja))
      config = { ...config, chat_template: fs.readFileSync(jinja, 'utf8') };
    return tokenizerFromJson(raw, tokFile, { config, configFile: cfgFile, engine: opts.engine, gpt2: gpt2Tokenizer });
  }
  const cfgFile = path.join(dir, 'config.json');
  if (fs.existsSync(cfgFile)) {
    const cfg = readJsonObject(cfgFile);
    if (cfg.model_type === 'gpt2' && cfg.vocab_size === GPT2_VOCAB_SIZE) return gpt2Tokenizer();
    throw new Error(
      `${dir}: no tokenizer.json, and ${cfgFile} (model_type ${JSON.stringify(cfg.model_type)}, vocab_size ` +
        `${JSON.stringify(cfg.vocab_size)}) is not GPT-2's 50257-token vocabulary, so no tokenizer can be chosen`,
    );
  }
  throw new Error(`${dir}: no tokenizer.json and no config.json to choose a tokenizer from`);
}

/**
 * generation_config.json of a model directory (or the file itself) as GenerationOptions-shaped defaults; null when
 * the directory has none. Bad values fail with the file and the key.
 */
export function loadGenerationConfig(dirOrFile: string): GenerationConfig | null {
  const file =
    fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isDirectory()
      ? path.join(dirOrFile, 'generation_config.json')
      : dirOrFile;
  if (!fs.existsSync(file)) return null;
  return parseGenerationConfig(readJsonFile(file, 'generation config'), file);
}
