/**
 * `recyclegpt serve [--model DIR | --preset NAME] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--mode M]
 *  [--parallel N] [--queue N] [--ctx-size N] [--max-tokens N] [--timeout S] [--max-body BYTES] [--threads N]
 *  [--dtype D]`
 * An OpenAI-compatible HTTP server (src/server) with continuous batching over the model. Binds loopback unless
 * --host says otherwise. SIGTERM / SIGINT drain: the running and queued requests finish (up to 30 s), then it exits.
 * --preset serves random weights of a GPT-2-vocabulary preset shape with the GPT-2 tokenizer: a benchmarking aid
 * (`npm run loadtest -- --preset gpt2-small`), its text is noise.
 */
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { randomPresetModel } from '../bench/random-model.js';
import { draftVocabOf } from '../io/draft-vocab-file.js';
import type { DraftHeadDtype } from '../model/draft-head.js';
import type { ModuleDtype } from '../model/module-dtype.js';
import { draftHeadDtypeOption, moduleDtypeOption } from './generation-flags.js';
import { RecycleGPT } from '../generate/recyclegpt.js';
import { DECODE_MODES, type DecodeMode } from '../generate/types.js';
import { presetConfig, presetNames } from '../model/presets.js';
import { startServer } from '../server/serve.js';
import { gpt2Tokenizer, GPT2_VOCAB_SIZE } from '../tokenizer/index.js';
import { dtypeFlag } from './cmd-generate.js';
import { resolveModelDir } from '../node/model-resolve.js';
import { cliBackend, intOption } from './options.js';

interface ServeCliOptions {
  draftVocab?: number;
  draftHeadDtype?: DraftHeadDtype;
  moduleDtype?: ModuleDtype;
  model?: string;
  preset?: string;
  host: string;
  port: number;
  apiKey?: string;
  mode: string;
  parallel: number;
  queue?: number;
  ctxSize?: number;
  maxTokens?: number;
  timeout: number;
  maxBody: number;
  threads?: number;
  dtype?: string;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the model over an OpenAI-compatible HTTP API, batching concurrent requests')
    .option('--model <dir>', 'model directory or shipped model name (default: the shipped model)')
    .option('--preset <name>', `random weights of a preset shape with GPT-2's vocabulary (benchmarking aid)`)
    .option('--host <host>', 'address to bind (default loopback only)', '127.0.0.1')
    .option('--port <n>', 'port (0: a free one)', intOption('--port', 0, 65535), 8080)
    .option(
      '--api-key <key>',
      'require Authorization: Bearer <key> on all routes but /health (default: $RECYCLEGPT_API_KEY, hidden from ps)',
    )
    .option('--mode <mode>', `default decoding mode: ${DECODE_MODES.join(' | ')}`, 'standard')
    .option('--parallel <n>', 'requests decoded together (slots)', intOption('--parallel', 1, 256), 4)
    .option(
      '--queue <n>',
      'requests waiting for a slot at most; more get 503 (default 4 x parallel)',
      intOption('--queue', 0),
    )
    .option('--ctx-size <n>', "context length per slot (default: the model's)", intOption('--ctx-size', 2))
    .option(
      '--max-tokens <n>',
      'largest max_tokens accepted (default: the context length)',
      intOption('--max-tokens', 1),
    )
    .option('--timeout <s>', 'per-request generation timeout, seconds', intOption('--timeout', 1), 600)
    .option('--max-body <bytes>', 'largest request body', intOption('--max-body', 1024), 1 << 20)
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--dtype <dtype>', 'weight dtype at load: f32 | f16 | bf16 | int8 (default: as stored)')
    .option(
      '--draft-vocab <n>',
      "recycle / verified: the module's head over the model's n most frequent ids (draft_vocab.json; default: all)",
      intOption('--draft-vocab', 1, 1 << 24),
    )
    .option(...draftHeadDtypeOption())
    .option(...moduleDtypeOption())
    .action(async (o: ServeCliOptions) => {
      if (!(DECODE_MODES as readonly string[]).includes(o.mode))
        throw new Error(`--mode must be one of ${DECODE_MODES.join(', ')}, got "${o.mode}"`);
      if (o.model && o.preset) throw new Error('give --model or --preset, not both');
      const apiKey = o.apiKey ?? (process.env.RECYCLEGPT_API_KEY || undefined);
      const dtype = dtypeFlag(o.dtype);
      const backend = cliBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      const onWarning = (w: string): void => void process.stderr.write(`recyclegpt: ${w}\n`);
      let m: RecycleGPT;
      let modelId = `preset-${o.preset}`;
      if (o.preset) {
        if (o.draftVocab !== undefined)
          throw new Error('--draft-vocab needs a model directory with a draft_vocab.json (a preset has no corpus)');
        if (!presetNames().includes(o.preset))
          throw new Error(`--preset ${o.preset}: unknown (presets: ${presetNames().join(', ')})`);
        if (presetConfig(o.preset).vocabSize !== GPT2_VOCAB_SIZE)
          throw new Error(`--preset ${o.preset}: only presets with GPT-2's vocabulary have a tokenizer to serve with`);
        m = new RecycleGPT(
          randomPresetModel(o.preset, backend, 1, dtype ?? 'f32'),
          gpt2Tokenizer(),
          `preset:${o.preset}`,
        );
      } else {
        const dir = resolveModelDir(o.model);
        m = await RecycleGPT.load(dir, { backend, dtype, onWarning });
        if (o.draftVocab !== undefined)
          m.model.setDraftVocab(draftVocabOf(dir, o.draftVocab, m.model.config.vocabSize));
        modelId = basename(resolve(dir));
      }
      if (o.draftHeadDtype !== undefined) m.model.setDraftHeadDtype(o.draftHeadDtype);
      if (o.moduleDtype !== undefined) m.model.setModuleDtype(o.moduleDtype);
      const server = await startServer(m, {
        host: o.host,
        port: o.port,
        modelId,
        apiKey: apiKey ?? null,
        defaultMode: o.mode as DecodeMode,
        parallel: o.parallel,
        maxQueue: o.queue,
        contextLength: o.ctxSize,
        maxTokensCap: o.maxTokens,
        requestTimeoutMs: o.timeout * 1000,
        maxBodyBytes: o.maxBody,
      });
      process.stderr.write(
        `recyclegpt serve: ${server.app.modelId} on ${server.url} (parallel ${o.parallel}, ` +
          `${backend.name} backend, ${backend.threads()} threads${apiKey ? ', API key required' : ''})\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          process.stderr.write(`recyclegpt serve: ${sig}: draining\n`);
          server.close().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      process.stderr.write('recyclegpt serve: stopped\n');
    });
}
