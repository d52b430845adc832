/**
 * A cache of the frozen base's hidden states for module training (`train --freeze-base --cache-hidden FILE`, issue 12;
 * EAGLE precomputes its target model's features the same way): the base runs once over the training tokens, then
 * the module trains for as many steps (epochs) as asked from the file, without the base.
 *
 * Windows: h_t depends on where the base's context starts, so the training split is cut into fixed windows
 * w = tokens [w·T, w·T + T + 2) (stride T; the 2 extra tokens are the module's targets), and the sampler draws
 * window indices (CachedWindowSampler) instead of the live path's random offsets.
 *
 * File: "RGHIDDEN" · u32 LE header length · header JSON (padded with spaces to a multiple of 8) · data: per window
 * w, the T−1 rows h_0..h_{T−2} (the module's rows) of C values as IEEE float16 (f16: half the bytes of f32, and the
 * module trains within f16's rounding of the live values; bf16 would lose 3 more bits). The header fingerprints what
 * the states depend on: the base (io/module-dir.ts baseFingerprint), the training tokens (SHA-256 of the ids), T
 * and C; a cache whose header differs is refused, naming the field. It is written to a temporary file and renamed,
 * so a killed run leaves no partial cache (resume recomputes it).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { GraphBatch } from '../model/graph.js';
import { writeAll, writeFileAtomicWith } from '../io/atomic.js';
import { f16ToF32Array, f32ToF16Array } from '../kernels/half.js';
import { Rng, type RngState } from '../data/rng.js';
import type { SamplerState } from '../data/dataset.js';
import type { FrozenBase } from './module-graph.js';

const MAGIC = 'RGHIDDEN';
const VERSION = 1;

export interface HiddenCacheHeader {
  format: 'recyclegpt-hidden-cache';
  version: number;
  dtype: 'f16';
  /** baseFingerprint of the base directory */
  base: string;
  /** sha256 of the training token ids (Int32 little-endian) */
  data: string;
  tokens: number;
  seq_len: number;
  hidden: number;
  windows: number;
}

/** Windows of a training stream for sequence length T: floor((n − 2) / T). */
export function windowCount(tokens: number, T: number): number {
  return Math.max(0, Math.floor((tokens - 2) / T));
}

/** SHA-256 of token ids, as the header's `data`. */
export function tokensFingerprint(tokens: Int32Array): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
  return `sha256:${h.digest('hex')}`;
}

/** Rows of windows `ws` (w·T …) as a batch (inputs x_0..x_{T−1}, targets x_1..x_T, targets2 x_2..x_{T+1}). */
export function windowBatch(tokens: Int32Array, ws: readonly number[], T: number): GraphBatch {
  const B = ws.length;
  const inputs = new Int32Array(B * T),
    targets = new Int32Array(B * T),
    targets2 = new Int32Array(B * T);
  ws.forEach((w, b) => {
    const s = w * T;
    inputs.set(tokens.subarray(s, s + T), b * T);
    targets.set(tokens.subarray(s + 1, s + T + 1), b * T);
    targets2.set(tokens.subarray(s + 2, s + T + 2), b * T);
  });
  return { B, T, inputs, targets, targets2 };
}

/**
 * B random window indices per batch (with replacement, as the live sampler draws offsets), seeded; its state has the
 * live sampler's shape (kind "random-windows", the RNG), so checkpoints and --resume treat both alike.
 */
export class CachedWindowSampler {
  private rng: Rng;
  private stepCount = 0;
  readonly windows: number;

  constructor(
    private readonly tokens: Int32Array,
    readonly batchSize: number,
    readonly seqLen: number,
    seed: number,
  ) {
    this.windows = windowCount(tokens.length, seqLen);
    if (this.windows < 1)
      throw new Error(`--cache-hidden: ${tokens.length} training tokens make no window of ${seqLen} + 2 tokens`);
    this.rng = new Rng(seed);
  }

  next(): { batch: GraphBatch; windows: number[] } {
    const ws = Array.from({ length: this.batchSize }, () => this.rng.int(this.windows));
    this.stepCount++;
    return { batch: windowBatch(this.tokens, ws, this.seqLen), windows: ws };
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

  static resume(tokens: Int32Array, state: SamplerState): CachedWindowSampler {
    const s = new CachedWindowSampler(tokens, state.batchSize, state.seqLen, 0);
    s.rng = Rng.fromState(state.rng as RngState);
    s.stepCount = state.step;
    return s;
  }
}

function encodeHeader(h: HiddenCacheHeader): Uint8Array {
  let json = JSON.stringify(h);
  while ((MAGIC.length + 4 + json.length) % 8 !== 0) json += ' ';
  const out = new Uint8Array(MAGIC.length + 4 + json.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, json.length, true);
  out.set(new TextEncoder().encode(json), MAGIC.length + 4);
  return out;
}

/** The header and data offset of a cache file; errors name the file. */
function readHeader(file: string): { header: HiddenCacheHeader; dataOffset: number; size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(12);
    if (fs.readSync(fd, head, 0, 12, 0) !== 12 || new TextDecoder().decode(head.subarray(0, 8)) !== MAGIC)
      throw new Error(`${file}: not a recyclegpt hidden-state cache (no "${MAGIC}" magic)`);
    const len = new DataView(head.buffer).getUint32(8, true);
    if (len > 1 << 20 || 12 + len > size) throw new Error(`${file}: header length ${len} is out of bounds`);
    const json = new Uint8Array(len);
    fs.readSync(fd, json, 0, len, 12);
    let header: HiddenCacheHeader;
    try {
      header = JSON.parse(new TextDecoder().decode(json)) as HiddenCacheHeader;
    } catch (e) {
      throw new Error(`${file}: the header is not JSON: ${(e as Error).message}`);
    }
    return { header, dataOffset: 12 + len, size };
  } finally {
    fs.closeSync(fd);
  }
}

/** An open cache whose header matched: reads the h rows of windows. */
export class HiddenCache {
  private readonly fd: number;
  private readonly rowBytes: number;
  private bits = new Uint16Array(0);

  private constructor(
    readonly file: string,
    readonly header: HiddenCacheHeader,
    private readonly dataOffset: number,
  ) {
    this.fd = fs.openSync(file, 'r');
    this.rowBytes = (header.seq_len - 1) * header.hidden * 2;
  }

  /**
   * Opens `file` when its header matches `want`; builds it first (the base over every window, `onProgress` per
   * batch) when it does not exist. A file whose header differs is refused, naming the field and both values.
   */
  static openOrBuild(
    file: string,
    want: Omit<HiddenCacheHeader, 'format' | 'version' | 'dtype' | 'windows'>,
    tokens: Int32Array,
    base: FrozenBase,
    batchSize: number,
    onProgress?: (done: number, total: number) => void,
  ): { cache: HiddenCache; built: boolean } {
    const full: HiddenCacheHeader = {
      format: 'recyclegpt-hidden-cache',
      version: VERSION,
      dtype: 'f16',
      ...want,
      windows: windowCount(tokens.length, want.seq_len),
    };
    let built = false;
    if (!fs.existsSync(file)) {
      build(file, full, tokens, base, batchSize, onProgress);
      built = true;
    }
    const { header, dataOffset, size } = readHeader(file);
    for (const key of Object.keys(full) as (keyof HiddenCacheHeader)[]) {
      if (header[key] !== full[key]) {
        throw new Error(
          `${file}: this hidden-state cache was made for ${key} = ${JSON.stringify(header[key])}, this run has ` +
            `${JSON.stringify(full[key])} (a different base, data or sequence length); delete it or give another ` +
            `--cache-hidden file`,
        );
      }
    }
    const want_size = dataOffset + full.windows * (full.seq_len - 1) * full.hidden * 2;
    if (size !== want_size) throw new Error(`${file}: ${size} bytes, the header describes ${want_size}`);
    return { cache: new HiddenCache(file, header, dataOffset), built };
  }

  /** h rows of windows `ws` into out [B·(T−1), C] (FrozenBase.hidden's layout), widened from f16. */
  read(ws: readonly number[], out: Float32Array): void {
    const n = this.rowBytes / 2;
    if (this.bits.length < n) this.bits = new Uint16Array(n);
    const bytes = new Uint8Array(this.bits.buffer, 0, this.rowBytes);
    ws.forEach((w, b) => {
      if (!(w >= 0 && w < this.header.windows)) throw new Error(`${this.file}: window ${w} out of range`);
      const got = fs.readSync(this.fd, bytes, 0, this.rowBytes, this.dataOffset + w * this.rowBytes);
      if (got !== this.rowBytes) throw new Error(`${this.file}: short read at window ${w}`);
      f16ToF32Array(this.bits.subarray(0, n), out.subarray(b * n, (b + 1) * n));
    });
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function build(
  file: string,
  header: HiddenCacheHeader,
  tokens: Int32Array,
  base: FrozenBase,
  batchSize: number,
  onProgress?: (done: number, total: number) => void,
): void {
  const T = header.seq_len,
    C = header.hidden,
    N = header.windows;
  const h = new Float32Array(batchSize * (T - 1) * C);
  const bits = new Uint16Array(h.length);
  writeFileAtomicWith(file, (fd) => {
    writeAll(fd, encodeHeader(header));
    for (let w0 = 0; w0 < N; w0 += batchSize) {
      const ws = Array.from({ length: Math.min(batchSize, N - w0) }, (_, i) => w0 + i);
      base.hidden(windowBatch(tokens, ws, T), h);
      const n = ws.length * (T - 1) * C;
      f32ToF16Array(h.subarray(0, n), bits.subarray(0, n));
      writeAll(fd, new Uint8Array(bits.buffer, 0, n * 2));
      onProgress?.(w0 + ws.length, N);
    }
  });
}
