/**
 * Token datasets: documents -> one Int32Array token stream (EOS after every document), random training batches
 * with a resumable state, and sequential non-overlapping batches for evaluation.
 *
 * Batch layout (row-major, B rows of T): inputs[b][t] = x_{s+t}, targets[b][t] = x_{s+t+1} (next-token loss),
 * targets2[b][t] = x_{s+t+2} (recycle loss: the module at t predicts x_{t+2}). Each row reads a window of T+2 tokens,
 * so targets2 is defined at every t, including t = T-1; a trainer following the paper's average over t <= T-2
 * simply ignores the last column.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Rng, hashString, type RngState } from './rng.js';

export interface Batch {
  /** rows in this batch (the last eval batch may be short) */
  B: number;
  T: number;
  inputs: Int32Array;
  targets: Int32Array;
  targets2: Int32Array;
}

/** Tokenizes each document and appends EOS after it. */
export function tokenizeDocuments(docs: readonly string[], tok: Tokenizer, opts: { eosId?: number } = {}): Int32Array {
  const eos = opts.eosId ?? tok.eosTokenId;
  if (eos === null || !Number.isInteger(eos) || eos < 0 || eos >= tok.vocabSize) {
    throw new Error(`tokenizeDocuments: the tokenizer has no usable EOS id (got ${eos}); pass opts.eosId`);
  }
  let buf = new Int32Array(1 << 16);
  let n = 0;
  const push = (id: number) => {
    if (n === buf.length) {
      const bigger = new Int32Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    buf[n++] = id;
  };
  for (const d of docs) {
    for (const id of tok.encode(d)) push(id);
    push(eos);
  }
  return buf.slice(0, n);
}

const CACHE_MAGIC = 'RGTOKv1\n';

/**
 * tokenizeDocuments with a cache file: reused only when `tokenizerKey` (e.g. a hash of tokenizer.json) and the
 * documents' hash match; otherwise recomputed and written atomically.
 */
export function tokenizeDocumentsCached(
  docs: readonly string[],
  tok: Tokenizer,
  cacheFile: string,
  tokenizerKey: string,
): Int32Array {
  let h = 0x811c9dc5;
  for (const d of docs) h = hashString(d, hashString('\u0000', h));
  const key = `${tokenizerKey}|${docs.length}|${h.toString(16)}|${tok.vocabSize}|${tok.eosTokenId}`;
  if (fs.existsSync(cacheFile)) {
    const raw = fs.readFileSync(cacheFile);
    const headerEnd = raw.indexOf(0x0a, CACHE_MAGIC.length);
    if (raw.subarray(0, CACHE_MAGIC.length).toString() === CACHE_MAGIC && headerEnd > 0) {
      const header = raw.subarray(CACHE_MAGIC.length, headerEnd).toString();
      const start = headerEnd + 1;
      const pad = (4 - (start % 4)) % 4;
      const bytes = raw.length - start - pad;
      if (header === key && bytes >= 0 && bytes % 4 === 0) {
        const out = new Int32Array(bytes / 4);
        new Uint8Array(out.buffer).set(raw.subarray(start + pad));
        return out;
      }
    }
  }
  const tokens = tokenizeDocuments(docs, tok);
  const head = Buffer.from(`${CACHE_MAGIC}${key}\n`);
  const pad = new Uint8Array((4 - (head.length % 4)) % 4);
  writeFileAtomic(cacheFile, [head, pad, new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)]);
  return tokens;
}

function fillRow(tokens: Int32Array, start: number, row: number, T: number, b: Batch): void {
  const o = row * T;
  for (let t = 0; t < T; t++) {
    b.inputs[o + t] = tokens[start + t];
    b.targets[o + t] = tokens[start + t + 1];
    b.targets2[o + t] = tokens[start + t + 2];
  }
}

function emptyBatch(B: number, T: number): Batch {
  return { B, T, inputs: new Int32Array(B * T), targets: new Int32Array(B * T), targets2: new Int32Array(B * T) };
}

function checkShape(who: string, tokens: Int32Array, B: number, T: number): void {
  if (!Number.isInteger(B) || B < 1) throw new Error(`${who}: batchSize must be a positive integer, got ${B}`);
  if (!Number.isInteger(T) || T < 1) throw new Error(`${who}: seqLen must be a positive integer, got ${T}`);
  if (tokens.length < T + 2) {
    throw new Error(`${who}: the token stream has ${tokens.length} tokens, fewer than seqLen + 2 = ${T + 2}`);
  }
}

export interface SamplerState {
  kind: 'random-windows';
  batchSize: number;
  seqLen: number;
  /** length of the token stream, checked on resume so a state is not applied to other data */
  tokens: number;
  step: number;
  rng: RngState;
}

export interface SamplerOptions {
  batchSize: number;
  seqLen: number;
  seed: number | string;
}

/** Random windows (uniform start offsets, with replacement, nanoGPT style) from a seeded RNG; resumable. */
export class BatchSampler {
  readonly batchSize: number;
  readonly seqLen: number;
  private rng: Rng;
  private stepCount = 0;

  constructor(
    private readonly tokens: Int32Array,
    opts: SamplerOptions,
  ) {
    checkShape('BatchSampler', tokens, opts.batchSize, opts.seqLen);
    this.batchSize = opts.batchSize;
    this.seqLen = opts.seqLen;
    this.rng = new Rng(opts.seed);
  }

  /** Batches drawn so far. */
  get step(): number {
    return this.stepCount;
  }

  next(): Batch {
    const B = this.batchSize;
    const T = this.seqLen;
    const b = emptyBatch(B, T);
    const starts = this.tokens.length - (T + 2) + 1;
    for (let r = 0; r < B; r++) fillRow(this.tokens, this.rng.int(starts), r, T, b);
    this.stepCount++;
    return b;
  }

  state(): SamplerState {
    return {
      kind: 'random-windows',
      batchSize: this.batchSize,
      seqLen: this.seqLen,
      tokens: this.tokens.length,
      step: this.stepCount,
      rng: this.rng.state(),
    };
  }

  /** Continues exactly where `state` was taken; the data and shapes must be the same. */
  static resume(tokens: Int32Array, state: SamplerState): BatchSampler {
    if (typeof state !== 'object' || state === null || state.kind !== 'random-windows') {
      throw new Error(`BatchSampler.resume: state.kind must be "random-windows", got ${JSON.stringify(state?.kind)}`);
    }
    if (state.tokens !== tokens.length) {
      throw new Error(
        `BatchSampler.resume: state.tokens is ${state.tokens} ` +
          `but the token stream has ${tokens.length} tokens (different data?)`,
      );
    }
    if (!Number.isInteger(state.step) || state.step < 0)
      throw new Error(`BatchSampler.resume: state.step must be a non-negative integer, got ${state.step}`);
    const s = new BatchSampler(tokens, { batchSize: state.batchSize, seqLen: state.seqLen, seed: 0 });
    s.rng = Rng.fromState(state.rng);
    s.stepCount = state.step;
    return s;
  }
}

/** Number of non-overlapping eval windows: row k starts at k*T and needs T+2 tokens. */
export function countEvalWindows(tokens: Int32Array, T: number): number {
  return tokens.length < T + 2 ? 0 : Math.floor((tokens.length - 2) / T);
}

/**
 * Sequential, non-overlapping batches over the whole stream for evaluation (every position is scored once, except
 * a tail shorter than one window). The last batch may have fewer than B rows.
 */
export function* evalBatches(tokens: Int32Array, batchSize: number, seqLen: number): Generator<Batch> {
  checkShape('evalBatches', tokens, batchSize, seqLen);
  const rows = countEvalWindows(tokens, seqLen);
  for (let r0 = 0; r0 < rows; r0 += batchSize) {
    const B = Math.min(batchSize, rows - r0);
    const b = emptyBatch(B, seqLen);
    for (let r = 0; r < B; r++) fillRow(tokens, (r0 + r) * seqLen, r, seqLen, b);
    yield b;
  }
}
