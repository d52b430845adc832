/**
 * A static check against catastrophic backtracking in the regexes of a tokenizer.json (the `pattern.Regex` of Split
 * and Replace pre-tokenizers, Replace normalizers and Replace decoders). @huggingface/tokenizers compiles them into
 * JS RegExps, which backtrack: `(a+)+$` takes > 30 s on 29 characters, so a loaded tokenizer could hang `encode`.
 * The Rust/Python library runs the same patterns with Oniguruma, also a backtracking engine: the risk is the
 * format's, and the same files are risky there.
 *
 * What is refused: nested repetition (star height > 1) where it can blow up — a repeated group (max > 1) holding a
 * repetition, with at least one of the two unbounded: `(a+)+`, `(a*)*`, `(?:a|b+)*`, `(\s*x)+`, `(a{1,3})+`, `(a+){2}`.
 * Also an alternation with two identical alternatives anywhere under an unbounded repetition: `(a|a)*`, `(x(b|b))+`.
 * What is not caught (a static check cannot see them without set analysis): overlapping alternatives under a
 * repetition (`(a|ab)*`, `(\w|\d)+`), overlapping adjacent repetitions (`\d+\d+$`, polynomial), and backreferences.
 * It can refuse a harmless nested pattern whose iterations cannot overlap (`(?:[a-z]+,)+`); real tokenizer
 * patterns (GPT-2, cl100k, o200k, Llama-3, Qwen2, DeepSeek) have no nested repetition and load.
 *
 * The scanner reads Oniguruma syntax loosely (groups and their prefixes, classes, escapes, quantifiers and their
 * lazy/possessive suffixes); anything it cannot follow is left to the library, which reports syntax errors itself.
 * Why not a package: safe-regex2 parses JS syntax only (it refuses Llama-3's `(?i:...)`), counts `?` as repetition
 * and caps the number of quantifiers; recheck runs a JVM or native binary; scslre/refa also flag the polynomial
 * `\s+(?!\S)` that GPT-2's own pattern has.
 */

/** Repetition inside a subpattern: none, bounded (max > 1, finite) or unbounded. */
const enum Rep {
  None = 0,
  Bounded = 1,
  Unbounded = 2,
}

interface Quant {
  min: number;
  max: number;
  end: number;
}

/** What a subpattern holds: its strongest repetition, and whether some alternation in it repeats an alternative. */
interface Inside {
  rep: Rep;
  dup: boolean;
}

class Unparsable extends Error {}

/** Returns a description of the first dangerous construct in `pattern`, or null when none is found. */
export function findCatastrophicNesting(pattern: string): string | null {
  const scanner = new Scanner(pattern);
  try {
    scanner.alternation(0); // stops at a stray ")": the library rejects that pattern itself
  } catch (e) {
    if (e instanceof Unparsable) return null;
    throw e;
  }
  return scanner.found;
}

class Scanner {
  found: string | null = null;
  private i = 0;

  constructor(private readonly s: string) {}

  /** Alternatives up to `)` or the end. */
  alternation(depth: number): Inside {
    if (depth > 500) throw new Unparsable('too deep');
    const out: Inside = { rep: Rep.None, dup: false };
    const alts = new Set<string>();
    for (;;) {
      const from = this.i;
      const seq = this.sequence(depth);
      out.rep = Math.max(out.rep, seq.rep);
      const alt = this.s.slice(from, this.i);
      out.dup ||= seq.dup || alts.has(alt);
      alts.add(alt);
      if (this.s[this.i] !== '|') return out;
      this.i++;
    }
  }

  private sequence(depth: number): Inside {
    const s = this.s;
    const out: Inside = { rep: Rep.None, dup: false };
    while (this.i < s.length && s[this.i] !== '|' && s[this.i] !== ')') {
      const start = this.i;
      const inner = this.atom(depth);
      out.dup ||= inner.dup;
      const q = this.quantifier();
      if (!q) {
        out.rep = Math.max(out.rep, inner.rep);
        continue;
      }
      this.i = q.end;
      const outer = q.max === Infinity ? Rep.Unbounded : q.max > 1 ? Rep.Bounded : Rep.None;
      const text = s.slice(start, q.end);
      if (this.found === null && outer !== Rep.None && inner.rep !== Rep.None) {
        const either = outer === Rep.Unbounded || inner.rep === Rep.Unbounded;
        if (either) this.found = `nested repetition ${JSON.stringify(text)}`;
      }
      if (this.found === null && outer === Rep.Unbounded && inner.dup) {
        this.found = `repeated identical alternatives ${JSON.stringify(text)}`;
      }
      // A fixed count ({3}) is a sequence, not a choice: it makes nothing ambiguous for an enclosing repetition.
      out.rep = Math.max(out.rep, inner.rep, q.min === q.max ? Rep.None : outer);
    }
    return out;
  }

  /** One atom at this.i (group, class, escape or character). */
  private atom(depth: number): Inside {
    const s = this.s;
    const c = s[this.i]!;
    const none: Inside = { rep: Rep.None, dup: false };
    if (c === '(') {
      this.i++;
      if (s[this.i] === '?') {
        if (s[this.i + 1] === '#') {
          // (?#comment)
          const close = s.indexOf(')', this.i);
          if (close < 0) throw new Unparsable('comment');
          this.i = close + 1;
          return none;
        }
        this.groupPrefix();
        if (s[this.i] === ')') {
          this.i++; // (?i): flags only, no body
          return none;
        }
      }
      const inside = this.alternation(depth + 1);
      if (s[this.i] !== ')') throw new Unparsable('unclosed group');
      this.i++;
      return inside;
    }
    if (c === '[') this.skipClass();
    else if (c === '\\') this.skipEscape();
    else this.i += c.length; // a stray quantifier too: the library rejects what is not a pattern
    return none;
  }

  /** After "(?": lookarounds, named groups, atomic groups, flag groups. */
  private groupPrefix(): void {
    const s = this.s;
    this.i++; // '?'
    const rest = s.slice(this.i, this.i + 3);
    if (rest.startsWith('<=') || rest.startsWith('<!')) {
      this.i += 2;
      return;
    }
    if ('=!:>|~'.includes(s[this.i] ?? '')) {
      this.i++;
      return;
    }
    if (s[this.i] === '<' || s[this.i] === "'" || (s[this.i] === 'P' && s[this.i + 1] === '<')) {
      const close = s[this.i] === "'" ? "'" : '>';
      const end = s.indexOf(close, this.i + 1);
      if (end < 0) throw new Unparsable('group name');
      this.i = end + 1;
      return;
    }
    // Flags: (?imx-imx:...) or (?imx)
    while (this.i < s.length && /[A-Za-z-]/.test(s[this.i]!)) this.i++;
    if (s[this.i] === ':') this.i++;
    else if (s[this.i] !== ')') throw new Unparsable('group prefix');
  }

  private skipEscape(): void {
    const s = this.s;
    const next = s[this.i + 1];
    if (next === undefined) throw new Unparsable('trailing backslash');
    if ('pPxuNkg'.includes(next) && (s[this.i + 2] === '{' || s[this.i + 2] === '<' || s[this.i + 2] === "'")) {
      const close = s[this.i + 2] === '{' ? '}' : s[this.i + 2] === '<' ? '>' : "'";
      const end = s.indexOf(close, this.i + 3);
      if (end < 0) throw new Unparsable('escape');
      this.i = end + 1;
      return;
    }
    this.i += 1 + String.fromCodePoint(s.codePointAt(this.i + 1)!).length;
  }

  /** [...] with Oniguruma's nested classes; a `]` first in the class is a literal. */
  private skipClass(): void {
    const s = this.s;
    let depth = 0;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === '\\') {
        this.skipEscape();
        continue;
      }
      if (c === '[') {
        depth++;
        this.i++;
        if (s[this.i] === '^') this.i++;
        if (s[this.i] === ']') this.i++;
        continue;
      }
      this.i++;
      if (c === ']' && --depth === 0) return;
    }
    throw new Unparsable('unclosed class');
  }

  /** A quantifier at this.i (with its lazy/possessive suffix), or null. */
  private quantifier(): Quant | null {
    const s = this.s,
      i = this.i,
      c = s[i];
    let min: number, max: number, end: number;
    if (c === '*' || c === '+') {
      min = c === '*' ? 0 : 1;
      max = Infinity;
      end = i + 1;
    } else if (c === '?') {
      min = 0;
      max = 1;
      end = i + 1;
    } else if (c === '{') {
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(s.slice(i, i + 40));
      if (!m || (m[1] === '' && m[3] === '')) return null; // a literal brace
      min = m[1] === '' ? 0 : Number(m[1]);
      max = m[3] !== '' ? Number(m[3]) : m[2] === ',' ? Infinity : min;
      end = i + m[0].length;
    } else {
      return null;
    }
    if (s[end] === '?' || s[end] === '+') end++; // lazy, possessive
    return { min, max, end };
  }
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Throws, naming the file, the field and the pattern, when a regex in the normalizer, pre-tokenizer or decoder of a
 * tokenizer.json could backtrack catastrophically (see the top of this file for what is and isn't caught).
 */
export function checkTokenizerRegexes(file: string, json: Json): void {
  // Iterative walk over the components (Sequences nest), so a deep file cannot overflow the stack here.
  const todo: Array<[unknown, string]> = [
    [json.normalizer, 'normalizer'],
    [json.pre_tokenizer, 'pre_tokenizer'],
    [json.decoder, 'decoder'],
  ];
  while (todo.length > 0) {
    const [node, where] = todo.pop()!;
    if (Array.isArray(node)) {
      node.forEach((v, i) => todo.push([v, `${where}[${i}]`]));
      continue;
    }
    if (!isObj(node)) continue;
    const pattern = node.pattern;
    if (isObj(pattern) && typeof pattern.Regex === 'string') {
      const bad = findCatastrophicNesting(pattern.Regex);
      if (bad !== null) {
        throw new Error(
          `${file}: ${where}.pattern.Regex ${JSON.stringify(pattern.Regex)} has ${bad}, which can take ` +
            'exponential time on some inputs (catastrophic backtracking); such patterns are refused',
        );
      }
    }
    for (const key of ['normalizers', 'pretokenizers', 'decoders']) {
      if (node[key] !== undefined) todo.push([node[key], `${where}.${key}`]);
    }
  }
}
