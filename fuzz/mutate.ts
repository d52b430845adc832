/**
 * Mutators for the loader fuzz (fuzz/run.ts): each takes the bytes of one real file and a seeded Rng and returns
 * a corrupted copy plus a one-line description of what was done, so a failure can be read and replayed.
 * Three families: raw bytes (flips, inserts, cuts), JSON-aware (one value, key or structure of a parsed JSON file
 * changed, then written back), and safetensors-aware (the 8-byte header length, the header JSON, the data body).
 */
import type { Rng } from '../src/data/rng.js';

export interface Mutation {
  bytes: Uint8Array;
  what: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Values that break size arithmetic, types and ranges. */
const INTERESTING: Json[] = [
  0,
  -1,
  1,
  2,
  3,
  7,
  255,
  256,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 40,
  2 ** 53,
  2 ** 53 + 2,
  1e9,
  123456789,
  1e308,
  -1e308,
  1e-38,
  1e-300,
  5e-324,
  0.5,
  -0.5,
  1.5,
  -(2 ** 31),
  '',
  'x',
  'NaN',
  'Infinity',
  '1',
  '\u0000',
  '..',
  '../../etc/passwd',
  '(a+)+$',
  'F16',
  'BF16',
  'F32',
  'I8',
  'gpt2',
  'llama',
  null,
  true,
  false,
  [],
  {},
  [0],
  [2 ** 32, 2 ** 32],
  { a: 1 },
];

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

// ---- raw bytes ---------------------------------------------------------------------------------------------------

/** One random byte-level corruption of `b` (never the identity for a non-empty input, in practice). */
export function mutateBytes(b: Uint8Array, rng: Rng): Mutation {
  const n = b.length;
  const at = (): number => (n === 0 ? 0 : rng.int(n));
  const out = (parts: Uint8Array[]): Uint8Array => {
    const r = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      r.set(p, o);
      o += p.length;
    }
    return r;
  };
  switch (rng.int(7)) {
    case 0: {
      const r = b.slice();
      const k = 1 + rng.int(8);
      for (let i = 0; i < k && n > 0; i++) r[at()]! ^= 1 << rng.int(8);
      return { bytes: r, what: `flipped ${k} bit(s)` };
    }
    case 1: {
      const r = b.slice();
      const i = at();
      const v = pick(rng, [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39, 0x2d]);
      if (n > 0) r[i] = v;
      return { bytes: r, what: `byte ${i} set to 0x${v.toString(16)}` };
    }
    case 2: {
      const i = at();
      const ins = new Uint8Array(1 + rng.int(16));
      for (let k = 0; k < ins.length; k++) ins[k] = rng.int(256);
      return {
        bytes: out([b.subarray(0, i), ins, b.subarray(i)]),
        what: `${ins.length} random bytes inserted at ${i}`,
      };
    }
    case 3: {
      const i = at();
      const len = 1 + rng.int(Math.max(1, Math.min(64, n - i)));
      return { bytes: out([b.subarray(0, i), b.subarray(i + len)]), what: `${len} bytes deleted at ${i}` };
    }
    case 4: {
      const i = at();
      return { bytes: b.slice(0, i), what: `truncated to ${i} bytes` };
    }
    case 5: {
      const i = at();
      const len = 1 + rng.int(Math.max(1, Math.min(256, n - i)));
      return {
        bytes: out([b.subarray(0, i + len), b.subarray(i, i + len), b.subarray(i + len)]),
        what: `${len} bytes at ${i} duplicated`,
      };
    }
    default: {
      const junk = new Uint8Array(1 + rng.int(64));
      for (let k = 0; k < junk.length; k++) junk[k] = rng.int(256);
      return { bytes: out([b, junk]), what: `${junk.length} bytes appended` };
    }
  }
}

// ---- JSON --------------------------------------------------------------------------------------------------------

/** Every path to a value inside `v` (the root is []). */
function paths(
  v: Json,
  prefix: Array<string | number> = [],
  acc: Array<Array<string | number>> = [],
): Array<Array<string | number>> {
  acc.push(prefix);
  if (acc.length > 20000) return acc; // big vocabularies: a sample of paths is enough
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], acc));
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) paths(v[k]!, [...prefix, k], acc);
  return acc;
}

function getAt(v: Json, p: ReadonlyArray<string | number>): Json {
  let cur = v;
  for (const k of p) cur = (cur as Record<string | number, Json>)[k]!;
  return cur;
}

/** The text of a value nested `depth` levels deep (built as text: JSON.stringify would overflow the stack). */
function deepNestText(depth: number): string {
  let open = '',
    close = '';
  for (let i = 0; i < depth; i++) {
    open += i % 2 === 0 ? '[' : '{"a":';
    close = (i % 2 === 0 ? ']' : '}') + close;
  }
  return `${open}1${close}`;
}

/** One structural change to a parsed JSON document; returns the new text (or null when `text` is not JSON). */
export function mutateJsonText(text: string, rng: Rng): Mutation | null {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch {
    return null;
  }
  const all = paths(doc);
  const p = pick(rng, all);
  const where = p.length === 0 ? '(root)' : p.join('.');
  const parentPath = p.slice(0, -1);
  const key = p[p.length - 1];
  const parent = p.length === 0 ? null : (getAt(doc, parentPath) as Record<string | number, Json>);
  const set = (v: Json): void => {
    if (parent === null) doc = v;
    else parent[key!] = v;
  };
  const cur = getAt(doc, p);
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  switch (rng.int(9)) {
    case 0:
    case 1:
    case 2: {
      const v = pick(rng, INTERESTING);
      set(v);
      return { bytes: enc(JSON.stringify(doc)), what: `${where} := ${JSON.stringify(v)}` };
    }
    case 3: {
      if (typeof cur === 'number') {
        const v = pick(rng, [cur * 2, cur + 1, cur - 1, -cur, cur * 1000, Math.floor(cur / 2), cur + 0.5]);
        set(v);
        return { bytes: enc(JSON.stringify(doc)), what: `${where}: ${cur} -> ${v}` };
      }
      if (typeof cur === 'string') {
        const v = pick(rng, [cur + cur, cur.slice(1), '', cur.toUpperCase(), `${cur}\u0000`, cur.repeat(100)]);
        set(v);
        return { bytes: enc(JSON.stringify(doc)), what: `${where}: string changed` };
      }
      set([cur]);
      return { bytes: enc(JSON.stringify(doc)), what: `${where} wrapped in an array` };
    }
    case 4: {
      if (parent === null) break;
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key!];
      return { bytes: enc(JSON.stringify(doc)), what: `${where} deleted` };
    }
    case 5: {
      // A duplicated key, which JSON.stringify cannot write: spliced into the text of the object.
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || Object.keys(cur).length === 0) break;
      const k = pick(rng, Object.keys(cur));
      const marker = `__dup_${rng.int(1e9)}__`;
      (cur as Record<string, Json>)[marker] = pick(rng, INTERESTING);
      const s = JSON.stringify(doc).replace(JSON.stringify(marker), JSON.stringify(k));
      return { bytes: enc(s), what: `${where}: key ${JSON.stringify(k)} duplicated` };
    }
    case 6: {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) break;
      (cur as Record<string, Json>)[pick(rng, ['extra', '__proto__', 'constructor', 'model_type', 'dtype', ''])] = pick(
        rng,
        INTERESTING,
      );
      return { bytes: enc(JSON.stringify(doc)), what: `${where}: key added` };
    }
    case 7: {
      const depth = pick(rng, [50, 200, 5000, 20000]);
      const marker = `__deep_${rng.int(1e9)}__`;
      set(marker);
      const s = JSON.stringify(doc).replace(JSON.stringify(marker), deepNestText(depth));
      return { bytes: enc(s), what: `${where} := a value nested ${depth} deep` };
    }
    default: {
      if (!Array.isArray(cur) || cur.length < 2) break;
      const i = rng.int(cur.length),
        j = rng.int(cur.length);
      [cur[i], cur[j]] = [cur[j]!, cur[i]!];
      return { bytes: enc(JSON.stringify(doc)), what: `${where}: elements ${i} and ${j} swapped` };
    }
  }
  const v = pick(rng, INTERESTING);
  set(v);
  return { bytes: enc(JSON.stringify(doc)), what: `${where} := ${JSON.stringify(v)}` };
}

/** A JSON file: mostly structure-aware changes, sometimes raw bytes. */
export function mutateJsonFile(b: Uint8Array, rng: Rng): Mutation {
  if (rng.int(4) !== 0) {
    const m = mutateJsonText(new TextDecoder().decode(b), rng);
    if (m) return m;
  }
  return mutateBytes(b, rng);
}

// ---- safetensors -------------------------------------------------------------------------------------------------

function splitSafetensors(b: Uint8Array): { headerLen: number; header: string; body: Uint8Array } | null {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > b.length) return null;
  return { headerLen: n, header: new TextDecoder().decode(b.subarray(8, 8 + n)), body: b.subarray(8 + n) };
}

function joinSafetensors(header: Uint8Array, body: Uint8Array, len: bigint = BigInt(header.length)): Uint8Array {
  const r = new Uint8Array(8 + header.length + body.length);
  new DataView(r.buffer).setBigUint64(0, len, true);
  r.set(header, 8);
  r.set(body, 8 + header.length);
  return r;
}

/** A safetensors file: its header length, its header JSON (re-framed or not) or its data bytes. */
export function mutateSafetensors(b: Uint8Array, rng: Rng): Mutation {
  const parts = splitSafetensors(b);
  if (!parts) return mutateBytes(b, rng);
  const hb = b.subarray(8, 8 + parts.headerLen);
  switch (rng.int(6)) {
    case 0: {
      const lens = [
        0n,
        1n,
        2n,
        2n ** 63n,
        2n ** 64n - 1n,
        BigInt(parts.headerLen + 1),
        BigInt(parts.headerLen - 1),
        BigInt(parts.headerLen + 8),
        BigInt(b.length),
        100_000_001n,
      ];
      const len = pick(rng, lens);
      return { bytes: joinSafetensors(hb, parts.body, len), what: `header length := ${len}` };
    }
    case 1:
    case 2: {
      const m = mutateJsonText(parts.header, rng);
      if (!m) break;
      return { bytes: joinSafetensors(m.bytes, parts.body), what: `header: ${m.what}` };
    }
    case 3: {
      const m = mutateBytes(hb, rng);
      return {
        bytes: joinSafetensors(m.bytes, parts.body, BigInt(parts.headerLen)),
        what: `header bytes (length kept): ${m.what}`,
      };
    }
    case 4: {
      const m = mutateBytes(parts.body, rng);
      return { bytes: joinSafetensors(hb, m.bytes), what: `data: ${m.what}` };
    }
    default:
      break;
  }
  const m = mutateBytes(b, rng);
  return { bytes: m.bytes, what: `file: ${m.what}` };
}
