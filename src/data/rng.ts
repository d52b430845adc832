/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) whose whole state is four uint32s, so training and
 * sampling can save it in a checkpoint and resume bit-exactly. Same seed -> same stream on every machine.
 */

export interface RngState {
  algo: 'xoshiro128**';
  s: [number, number, number, number];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** 32-bit FNV-1a over UTF-16 code units: a stable, platform-independent string hash. */
export function hashString(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private readonly s = new Uint32Array(4);

  /** `seed`: a non-negative safe integer or any string. */
  constructor(seed: number | string = 0) {
    let x: number;
    if (typeof seed === 'string') x = hashString(seed);
    else {
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw new Error(`Rng: seed must be a non-negative safe integer, got ${seed}`);
      // fold the high bits in so seeds above 2^32 still differ
      x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x9e3779b1);
    }
    // splitmix32: spreads any seed (0 included) over the full state
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1; // the one forbidden state
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  state(): RngState {
    return { algo: 'xoshiro128**', s: [this.s[0], this.s[1], this.s[2], this.s[3]] };
  }

  setState(state: RngState): void {
    const ok =
      typeof state === 'object' &&
      state !== null &&
      state.algo === 'xoshiro128**' &&
      Array.isArray(state.s) &&
      state.s.length === 4 &&
      state.s.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff) &&
      state.s.some((v) => v !== 0);
    if (!ok)
      throw new Error(
        `Rng: invalid state ${JSON.stringify(state)} (want {algo: "xoshiro128**", s: four uint32, not all 0})`,
      );
    this.s.set(state.s);
  }

  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** An independent generator seeded from this one (advances this one by two draws). */
  split(): Rng {
    const a = this.nextU32();
    const b = this.nextU32();
    return new Rng(a * 2 ** 21 + (b >>> 11));
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling) for n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 53)
      throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    if (n > 2 ** 32) return Math.floor(this.random() * n);
    const limit = 2 ** 32 - (2 ** 32 % n); // largest multiple of n that fits
    while (true) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Box-Muller; no cached spare, so the state is just the four words). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.random(); // (0, 1]: log is finite
    const v = this.random();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr;
  }
}
