/**
 * Request bodies of the OpenAI-compatible routes, validated with zod. Unknown fields are ignored (clients send
 * `user`, `logprobs: false` and the like), but a field we cannot honour with a non-default value (n > 1, echo,
 * logprobs, suffix, best_of > 1) is refused rather than silently ignored. Extensions: `mode` (standard | recycle |
 * verified), `draft_tokens` (1..7 | auto, chained drafts), `top_k`, `min_p`, `repetition_penalty`, `ignore_eos`
 * (llama.cpp's names).
 */
import { z } from 'zod';
import { DECODE_MODES } from '../generate/types.js';

const SEED_MAX = 2 ** 32 - 1;

/** The sampling and control fields both generation routes share. */
const sampling = {
  model: z.string().optional(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(100).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().min(1e-100).max(1e100).nullish(),
  seed: z.number().int().min(0).max(SEED_MAX).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullish(),
  logprobs: z.union([z.literal(false), z.null()], { message: 'logprobs are not supported' }).optional(),
  mode: z.enum(DECODE_MODES as [string, ...string[]]).optional(),
  ignore_eos: z.boolean().optional(),
  draft_tokens: z.union([z.number().int().min(1).max(7), z.literal('auto')]).optional(),
};

export const CompletionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.number().int().min(0)).min(1)], {
    message: 'prompt must be a string or a non-empty array of token ids (one prompt per request)',
  }),
  echo: z.literal(false, { message: 'echo is not supported' }).nullish(),
  suffix: z.null({ message: 'suffix is not supported' }).optional(),
  best_of: z.literal(1, { message: 'only best_of = 1 is supported' }).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const textPart = z.object({ type: z.literal('text'), text: z.string() });

export const ChatRequest = z.object({
  ...sampling,
  messages: z
    .array(
      z.object({
        role: z.string().min(1),
        content: z.union([z.string(), z.array(textPart)]).nullish(),
      }),
    )
    .min(1),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const TokenizeRequest = z.object({
  content: z.string(),
  add_special: z.boolean().optional(),
});

export const DetokenizeRequest = z.object({
  tokens: z.array(z.number().int().min(0)),
});

/** The first problem of a failed parse as one sentence naming the field ("max_tokens: Too small: ..."). */
export function describeIssues(err: z.ZodError): { message: string; param: string | null } {
  const issue = err.issues[0];
  if (!issue) return { message: 'invalid request', param: null };
  const param = issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  return { message: `${param ?? 'request body'}: ${issue.message}`, param };
}
