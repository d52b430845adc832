/**
 * `recyclegpt eval [--model DIR] --data SPEC [--dtype D] [--json]`: held-out perplexity of both heads and the top-1
 * agreement of the module with the base (src/train/eval.ts), and with --depth K (default 3) the module chained on its
 * own states at each depth 1..K (the k-step recycle loss, model/module-chain.ts). --json prints
 * {ppl_next, ppl_recycle, agreement_top1, tokens, dtype, depths: [{depth, loss, ppl, agreement_top1, …}], …} on the
 * last line of stdout. --dtype f32|f16|bf16|int8
 * evaluates the weights converted to that dtype (int8: q8_0) at load; default: as the directory stores them. The
 * evaluation graph computes in float32 over the converted weights' values (d·q for q8_0, exact in float32).
 *
 * `recyclegpt eval --mode-quality [--model DIR] --data SPEC [--prompts N] [--new-tokens K] [--prompt-tokens P]
 *  [--temperature T] [--top-k K] [--top-p P] [--seed S] [--draft-tokens K] [--json]`: continuations of held-out
 * prompts by each decoding mode at the same seeds (recycle and verified with K module tokens per full call, default
 * 1), scored by the base model (src/bench/mode-quality.ts). --json prints
 * {prompts, new_tokens, temperature, ppl_under_base: {standard, recycle, verified}, ratio_recycle_vs_standard, …}.
 */
import type { Command } from 'commander';
import { formatModeQuality, modeQuality } from '../bench/mode-quality.js';
import { loadCorpus } from '../data/corpus.js';
import { tokenizeDocuments } from '../data/dataset.js';
import { InferenceModel } from '../model/infer.js';
import { draftVocabOf } from '../io/draft-vocab-file.js';
import type { DraftHeadDtype } from '../model/draft-head.js';
import { Q8_BLOCK } from '../kernels/quant.js';
import type { ModuleDtype } from '../model/module-dtype.js';
import { draftHeadDtypeOption, moduleDtypeOption } from './generation-flags.js';
import { loadCliModel } from './load-model.js';
import { USER_DTYPES } from '../model/convert.js';
import { MAX_RECYCLE_DEPTH } from '../model/module-chain.js';
import { MAX_DRAFT_TOKENS } from '../generate/types.js';
import { dtypeFlag } from './cmd-generate.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { evaluateModel } from '../train/eval.js';
import { resolveModelDir } from './default-model.js';
import { floatOption, intOption, printJson, cliBackend } from './options.js';
import { progressBar, QUIET_FLAG } from './progress.js';

interface EvalFlags {
  model?: string;
  data: string;
  seqLen?: number;
  batchSize: number;
  maxBatches?: number;
  threads?: number;
  dtype?: string;
  depth: number;
  json?: boolean;
  modeQuality?: boolean;
  prompts: number;
  newTokens?: number;
  promptTokens?: number;
  quiet?: boolean;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  draftTokens?: number;
  draftVocab?: number;
  draftHeadDtype?: DraftHeadDtype;
  moduleDtype?: ModuleDtype;
}

/**
 * Prompt and continuation lengths of --mode-quality: as given (they must fit the context together), else 32 and 48,
 * or for a context shorter than 80 a third of it for the prompt and the rest for the continuation.
 */
export function modeQualityLengths(
  promptTokens: number | undefined,
  newTokens: number | undefined,
  context: number,
): { promptTokens: number; newTokens: number } {
  const p = promptTokens ?? Math.min(32, Math.max(1, Math.floor(context / 3)));
  const k = newTokens ?? Math.min(48, Math.max(1, context - p));
  return { promptTokens: p, newTokens: k };
}

export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'held-out perplexity of the next-token and recycle heads, and their top-1 agreement; ' +
        "with --mode-quality, the base-model perplexity of each decoding mode's continuations of held-out prompts",
    )
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption(
      '--data <spec>',
      'text file, folder of .txt files, "brown" or "nlp-corpus" (its held-out split is used)',
    )
    .option('--seq-len <n>', "window length (default: the model's context)", intOption('--seq-len', 2))
    .option('--batch-size <n>', 'windows per forward', intOption('--batch-size', 1, 1024), 4)
    .option('--max-batches <n>', 'stop after N batches (default: the whole split)', intOption('--max-batches', 1))
    .option(
      '--mode-quality',
      'generate from held-out prompts with standard, recycle and verified decoding ' +
        'and score the text under the base model',
    )
    .option('--prompts <n>', '--mode-quality: held-out prompts', intOption('--prompts', 1, 100_000), 50)
    .option(
      '--new-tokens <n>',
      '--mode-quality: new tokens per prompt (fewer when EOS is generated; default 48, less for a short context)',
      intOption('--new-tokens', 1, 100_000),
    )
    .option(
      '--prompt-tokens <n>',
      '--mode-quality: tokens per prompt (default 32, less for a short context)',
      intOption('--prompt-tokens', 1, 100_000),
    )
    .option(
      '--temperature <t>',
      '--mode-quality: sampling temperature (0 = greedy)',
      floatOption('--temperature', 0),
      0.8,
    )
    .option('--top-k <k>', '--mode-quality: keep the k most likely tokens (default: off)', intOption('--top-k', 0))
    .option(
      '--top-p <p>',
      '--mode-quality: nucleus sampling mass in (0, 1] (default: off)',
      floatOption('--top-p', 0, 1),
    )
    .option(
      '--seed <s>',
      '--mode-quality: prompt i is decoded with seed S + i in every mode',
      intOption('--seed', 0, 2 ** 32 - 1),
      0,
    )
    .option(
      '--draft-tokens <k>',
      '--mode-quality: recycle and verified make k module tokens per full call (chained drafts; default 1)',
      intOption('--draft-tokens', 1, MAX_DRAFT_TOKENS),
    )
    .option(
      '--draft-vocab <n>',
      "--mode-quality: the module's head over the model's n most frequent ids (draft_vocab.json; default: all)",
      intOption('--draft-vocab', 1, 1 << 24),
    )
    .option(...draftHeadDtypeOption())
    .option(...moduleDtypeOption())
    .option(
      '--depth <k>',
      'evaluate the module chained k times on its own states (chained drafts): loss and agreement per depth',
      intOption('--depth', 1, MAX_RECYCLE_DEPTH),
      3,
    )
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--dtype <dtype>', `weight dtype at load: ${USER_DTYPES.join(' | ')} (default: as stored)`)
    .option('--json', 'print one JSON object on the last line of stdout')
    .option(...QUIET_FLAG)
    .action((o: EvalFlags) => {
      const dir = resolveModelDir(o.model);
      // float32 storage holding the dtype's values: the evaluation graph reads float32 weights
      const { config, weights, dtype, tokenizerDir } = loadCliModel(dir, dtypeFlag(o.dtype));
      if (o.modeQuality && !config.recycle) {
        throw new Error(
          `--mode-quality compares standard, recycle and verified decoding, and ${dir} has no recyclable module ` +
            '(its config.json has no "recycle" section); run eval without --mode-quality for its perplexity',
        );
      }
      if (o.draftVocab !== undefined && !o.modeQuality)
        throw new Error(
          '--draft-vocab applies to --mode-quality (decoding); the perplexity evaluation uses the whole head',
        );
      if (o.draftHeadDtype !== undefined && !o.modeQuality)
        throw new Error(
          '--draft-head-dtype applies to --mode-quality (decoding); the perplexity evaluation uses the head as stored',
        );
      if (o.moduleDtype !== undefined && !o.modeQuality)
        throw new Error(
          '--module-dtype applies to --mode-quality (decoding); the perplexity evaluation uses the module as stored',
        );
      const tok = loadTokenizer(tokenizerDir);
      const backend = cliBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      const val = loadCorpus(o.data).val;
      if (val.length === 0) throw new Error(`data spec "${o.data}": the held-out split is empty`);
      const tokens = tokenizeDocuments(val, tok);
      if (o.modeQuality) {
        const model = new InferenceModel(config, weights, backend);
        // float32 weights holding the dtype's values: the default copy is the one the dtype's own model gets
        // (an int8 model's q8_0 head → q4_0; auto on these float32 weights would give q8_0)
        const int8Head = dtype === 'int8' && config.hidden % Q8_BLOCK === 0;
        model.setDraftHeadDtype(o.draftHeadDtype ?? (int8Head ? 'q4_0' : 'auto'));
        // an int8 model's module is q8_0 already (auto makes no copy of it): these float32 weights hold its values
        model.setModuleDtype(o.moduleDtype ?? (dtype === 'int8' ? 'model' : 'auto'));
        if (o.draftVocab !== undefined) model.setDraftVocab(draftVocabOf(dir, o.draftVocab, config.vocabSize));
        const lengths = modeQualityLengths(o.promptTokens, o.newTokens, config.maxPositions);
        const bar = progressBar('mode quality', 'prompts', o.quiet);
        const r = modeQuality(model, tokens, {
          prompts: o.prompts,
          ...lengths,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          seed: o.seed,
          draftTokens: o.draftTokens,
          eosFallback: tok.eosTokenId,
          onPrompt: (i, n) => bar.update(i, n),
        });
        bar.stop();
        const { continuations: _ids, ...summary } = r;
        if (o.json)
          printJson({
            ...summary,
            model: dir,
            data: o.data,
            dtype,
            draft_vocab: o.draftVocab ?? null,
            draft_head_dtype: model.draftHead?.dtype ?? dtype,
            module_dtype: {
              recycle: model.moduleWeightDtype(false)?.replace('_panels', '') ?? dtype,
              verified: model.moduleWeightDtype(true)?.replace('_panels', '') ?? dtype,
            },
            backend: backend.name,
            threads: backend.threads(),
          });
        else
          process.stdout.write(
            formatModeQuality(r, `${dir} (${dtype} weights) on ${o.data} (held-out split, ${tokens.length} tokens):`),
          );
        return;
      }
      const seqLen = o.seqLen ?? config.maxPositions;
      if (seqLen > config.maxPositions)
        throw new Error(`--seq-len ${seqLen} exceeds the model's context length ${config.maxPositions}`);
      const t0 = performance.now();
      const evalBar = progressBar('eval', 'batches', o.quiet);
      const r = evaluateModel(config, weights, tokens, {
        backend,
        seqLen,
        batchSize: o.batchSize,
        maxBatches: o.maxBatches,
        onBatch: (done, total) => evalBar.update(done, total),
        depth: o.depth,
      });
      evalBar.stop();
      const result = { ...r, model: dir, dtype, seq_len: seqLen, seconds: (performance.now() - t0) / 1000 };
      if (o.json) printJson(result);
      else {
        const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
        process.stdout.write(
          `${dir} (${dtype} weights) on ${o.data} (held-out, ${r.tokens} tokens, windows of ${seqLen}):\n` +
            `  ppl next    ${f(r.ppl_next, 3)}\n` +
            `  ppl recycle ${f(r.ppl_recycle, 3)}\n` +
            `  agreement   ${f(r.agreement_top1, 4)}\n` +
            r.depths
              .map(
                (d) =>
                  `  depth ${d.depth}: ppl ${f(d.ppl, 3)}, agreement ${f(d.agreement_top1, 4)} ` +
                  `(predicts x_{t+${d.depth + 1}}; ${d.tokens_agreement} positions compared with the base)\n`,
              )
              .join(''),
        );
      }
    });
}
