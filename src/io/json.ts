/**
 * A strict JSON parser for files we do not trust (safetensors headers, config.json, tokenizer.json, shard indexes,
 * train_state). JSON.parse is not enough for them:
 * - duplicate keys: JSON.parse keeps the last one silently, so `{"dtype": "F16", "dtype": "BF16"}` would reinterpret
 *   a tensor's bytes; the reference safetensors reader (serde) rejects it, and so do we, at every level;
 * - nesting: JSON.parse overflows the stack on ~10,000 nested arrays with a message that names no file; we bound the
 *   depth and say where;
 * - a UTF-8 byte-order mark is not JSON (RFC 8259 §8.1), and Python's json and serde reject it too.
 * Everything else is RFC 8259 JSON. No `node:` import: the browser core uses it too.
 */

export interface JsonOptions {
  /** Deepest nesting of arrays and objects accepted (default 128; real configs and tokenizers use < 10). */
  maxDepth?: number;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

/** Parses `text` as JSON; errors start with `where` and give the character position. */
export function parseJson(text: string, where: string, opts: JsonOptions = {}): JsonValue {
  const maxDepth = opts.maxDepth ?? 128;
  let pos = 0;

  const fail = (msg: string): never => {
    throw new Error(`${where}: not valid JSON: ${msg} at position ${pos}`);
  };
  const skipWs = (): void => {
    WS.lastIndex = pos;
    WS.test(text);
    pos = WS.lastIndex;
  };
  const expect = (ch: string): void => {
    if (text[pos] !== ch) fail(`expected ${JSON.stringify(ch)}, found ${describeChar(text, pos)}`);
    pos++;
  };

  const parseString = (): string => {
    const start = pos; // at the opening quote
    pos++;
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) fail('unterminated string');
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        pos += 2;
        continue;
      }
      if (c < 0x20) fail('control character in a string');
      pos++;
    }
    pos++;
    if (!escaped) return text.slice(start + 1, pos - 1);
    try {
      return JSON.parse(text.slice(start, pos)) as string; // the engine's unescaping, on one string only
    } catch {
      pos = start;
      return fail('invalid escape in a string');
    }
  };

  const parseValue = (depth: number): JsonValue => {
    skipWs();
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth} levels`);
      pos++;
      skipWs();
      if (c === '[') {
        const arr: JsonValue[] = [];
        if (text[pos] === ']') {
          pos++;
          return arr;
        }
        for (;;) {
          arr.push(parseValue(depth + 1));
          skipWs();
          if (text[pos] === ',') pos++;
          else if (text[pos] === ']') {
            pos++;
            return arr;
          } else fail(`expected "," or "]", found ${describeChar(text, pos)}`);
        }
      }
      const obj: { [key: string]: JsonValue } = {};
      if (text[pos] === '}') {
        pos++;
        return obj;
      }
      for (;;) {
        skipWs();
        if (text[pos] !== '"') fail(`expected a string key, found ${describeChar(text, pos)}`);
        const keyPos = pos;
        const key = parseString();
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          pos = keyPos;
          fail(`duplicate key ${JSON.stringify(key).slice(0, 80)}`);
        }
        skipWs();
        expect(':');
        const value = parseValue(depth + 1);
        // "__proto__" is data here, as with JSON.parse: defined as an own key, never the prototype.
        if (key === '__proto__')
          Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
        else obj[key] = value;
        skipWs();
        if (text[pos] === ',') pos++;
        else if (text[pos] === '}') {
          pos++;
          return obj;
        } else fail(`expected "," or "}", found ${describeChar(text, pos)}`);
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith('false', pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith('null', pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null || m[0] === '') return fail(`unexpected ${describeChar(text, pos)}`);
    pos += m[0].length;
    return Number(m[0]);
  };

  if (text.charCodeAt(0) === 0xfeff) fail('starts with a byte-order mark (U+FEFF), which JSON does not allow');
  const value = parseValue(0);
  skipWs();
  if (pos < text.length) fail(`unexpected ${describeChar(text, pos)} after the value`);
  return value;
}

function describeChar(text: string, pos: number): string {
  return pos >= text.length ? 'the end of the text' : JSON.stringify(text[pos]);
}
