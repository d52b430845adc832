/**
 * `recyclegpt generate [--model DIR|NAME] (PROMPT | --prompt TEXT | --prompt-file FILE|- | --prompt-ids LIST)
 *  [--mode standard|recycle|verified] [--max-new-tokens N] [--do-sample --temperature T --top-k K --top-p P
 *  --min-p P] [--repetition-penalty R] [--seed S] [--stop STR]… [--dtype D] [--draft-tokens K|auto] [--json]`
 * --dtype f32|f16|bf16|int8 converts the weight matrices at load (int8: q8_0); default: as the directory stores them.
 * Streams the text to stdout as it is made (with --json, stdout holds only the final JSON line:
 * {text, tokens, tokens_per_s, full_calls, module_calls, accepted, rejected, mode, …}); a one-line summary goes to
 * stderr. Greedy unless --do-sample (the sampling flags apply only with it, as in the API). Ctrl-C aborts.
 */
import type { Command } from 'commander';
import { allParamSpecs, isProductWeight } from '../model/names.js';
import {
  addGenerationFlags,
  loadModelFromFlags,
  optionsFromFlags,
  promptFromFlags,
  summaryLine,
  type GenerationFlags,
  type PromptFlags,
} from './generation-flags.js';
import { printJson, warnOnStderr } from './options.js';

export { dtypeFlag, optionsFromFlags, summaryLine } from './generation-flags.js';

interface GenerateCliOptions extends GenerationFlags, PromptFlags {
  json?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate text from a prompt in standard, recycle or verified mode')
    .argument('[prompt]', 'prompt text (the same as --prompt)')
    .option('--prompt <text>', 'prompt text')
    .option('--prompt-file <file>', 'read the prompt from a file (- for standard input)')
    .option('--prompt-ids <list>', 'prompt as comma-separated token ids (models without a tokenizer)');
  addGenerationFlags(cmd)
    .option(
      '--json',
      'print one JSON object {text, tokens, tokens_per_s, full_calls, module_calls, accepted, rejected, mode, …}',
    )
    .action(async (text: string | undefined, o: GenerateCliOptions) => {
      if (text !== undefined && o.prompt !== undefined)
        throw new Error('the prompt is given twice: as an argument and as --prompt; give one');
      const prompt = promptFromFlags(text !== undefined ? { ...o, prompt: text } : o);
      const m = await loadModelFromFlags(o);
      const { options: opts, warning } = optionsFromFlags(o, m.generationConfig?.defaults);
      if (warning !== null) warnOnStderr(warning);
      const backend = m.model.backend;
      const c = m.config;
      const storage = [
        ...new Set(
          allParamSpecs(c)
            .filter((sp) => isProductWeight(sp, c))
            .map((sp) => m.model.weights.weight(sp.name).dtype),
        ),
      ];
      const ac = new AbortController();
      const onInt = (): void => ac.abort(new Error('interrupted'));
      process.once('SIGINT', onInt);
      try {
        const stream = m.stream(prompt, { ...opts, signal: ac.signal });
        for await (const tok of stream) {
          if (!o.json && tok.text) process.stdout.write(tok.text);
        }
        if (!o.json) process.stdout.write(m.tokenizer ? '\n' : `${stream.ids.join(',')}\n`);
        const s = stream.stats;
        process.stderr.write(`${summaryLine(s)}\n`);
        if (o.json) {
          printJson({
            text: stream.text,
            tokens: s.tokens,
            tokens_per_s: s.tokens_per_s,
            full_calls: s.full_calls,
            module_calls: s.module_calls,
            accepted: s.accepted,
            rejected: s.rejected,
            mode: s.mode,
            ids: stream.ids,
            prompt_tokens: s.prompt_tokens,
            recycled: s.recycled,
            seconds: s.seconds,
            draft_tokens: s.draft_tokens,
            draft_tokens_chosen: s.draft_tokens_chosen,
            rounds_by_draft_tokens: s.rounds_by_draft_tokens,
            drafted_by_depth: s.drafted_by_depth,
            checked_by_depth: s.checked_by_depth,
            accepted_by_depth: s.accepted_by_depth,
            finish_reason: s.finish_reason,
            seed: s.seed,
            backend: backend.name,
            threads: backend.threads(),
            dtype: o.dtype ?? 'as stored',
            weight_storage: storage,
          });
        }
      } finally {
        process.off('SIGINT', onInt);
      }
    });
}
