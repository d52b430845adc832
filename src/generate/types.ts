/**
 * Types shared by the decoding modes, the RecycleGPT API and the CLI: how each token was made, and the
 * statistics of one generation (snake_case, as in the `generate --json` contract, ARCHITECTURE.md §6).
 */

/** The decoding modes of ARCHITECTURE.md §1.3. */
export type DecodeMode = 'standard' | 'recycle' | 'verified';

export const DECODE_MODES: readonly DecodeMode[] = ['standard', 'recycle', 'verified'];

/**
 * How a token was made:
 * - `full`: sampled from the base model's distribution (every token of standard mode, the full-call token of
 *   recycle mode, the token after an accepted draft in verified mode);
 * - `recycled`: sampled from the recyclable module and emitted unverified (recycle mode);
 * - `accepted`: the module's draft, verified by the base and accepted (verified mode);
 * - `replaced`: the module's draft was rejected; this is the base's replacement (verified mode).
 */
export type TokenSource = 'full' | 'recycled' | 'accepted' | 'replaced';

/** One generated token as the decoding modes yield it. */
export interface TokenEvent {
  id: number;
  source: TokenSource;
  /** 0 for the first generated token. */
  index: number;
  /**
   * For `recycled`, `accepted` and `replaced` tokens: the draft position within its full call (1 = the module's first
   * draft after the full model's token, j = the j-th chained draft; for `replaced`, the depth of the rejected draft).
   */
  depth?: number;
}

/** Most drafts per full call: the pending token plus 7 drafts fill the 8-row small-M product (ARCHITECTURE.md §4). */
export const MAX_DRAFT_TOKENS = 7;

/** The draft_tokens option: a fixed k (1 = one draft per full call, the paper's schedule) or 'auto'. */
export type DraftTokens = number | 'auto';

/** Why a generation ended. `stop`: a stop string matched; `context`: the context length was reached. */
export type FinishReason = 'eos' | 'length' | 'context' | 'stop';

export interface GenerationStats {
  mode: DecodeMode;
  prompt_tokens: number;
  /** Generated tokens. */
  tokens: number;
  /** Base-model forwards, the prompt prefill included. */
  full_calls: number;
  /** Recyclable-module forwards, the one over the prompt included. */
  module_calls: number;
  /** Verified mode: drafts accepted / rejected (0 in the other modes). */
  accepted: number;
  rejected: number;
  /** Recycle mode: tokens emitted from the module unverified. */
  recycled: number;
  /** The draft_tokens option (recycle, verified; 1 in standard). */
  draft_tokens: DraftTokens;
  /** The k of the latest full call that carried drafts (with 'auto', its latest choice); null before any. */
  draft_tokens_chosen: number | null;
  /** Full calls that carried k drafts, by k ("1".."7"). */
  rounds_by_draft_tokens: Record<string, number>;
  /**
   * Per draft depth (index 0 = depth 1): drafts made (verified: sent to a full call; recycle: emitted), drafts the
   * full call judged (every shallower draft of that call accepted; verified only) and drafts accepted. The
   * acceptance at depth j given that depth j was reached is accepted_by_depth[j−1] / checked_by_depth[j−1].
   */
  drafted_by_depth: number[];
  checked_by_depth: number[];
  accepted_by_depth: number[];
  /** Wall time of the whole generation (prefill included), seconds. */
  seconds: number;
  prefill_seconds: number;
  tokens_per_s: number;
  finish_reason: FinishReason | null;
  /** The seed the sampler used (drawn at random when none was given), so a run can be repeated. */
  seed: number;
}

export function emptyStats(
  mode: DecodeMode,
  promptTokens: number,
  seed: number,
  draftTokens: DraftTokens = 1,
): GenerationStats {
  return {
    mode,
    prompt_tokens: promptTokens,
    tokens: 0,
    full_calls: 0,
    module_calls: 0,
    accepted: 0,
    rejected: 0,
    recycled: 0,
    draft_tokens: draftTokens,
    draft_tokens_chosen: null,
    rounds_by_draft_tokens: {},
    drafted_by_depth: [],
    checked_by_depth: [],
    accepted_by_depth: [],
    seconds: 0,
    prefill_seconds: 0,
    tokens_per_s: 0,
    finish_reason: null,
    seed,
  };
}
