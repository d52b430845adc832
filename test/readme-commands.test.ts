/**
 * Every `recyclegpt` command of README.md runs as written, so the README cannot drift from the CLI (issue 13).
 *
 * The commands are parsed from the README's ```sh blocks (a `\` at the end of a line continues it; `# …` comments
 * are dropped; `echo …` / `printf …` piped into a command become its stdin) and run in README order in one
 * temporary folder, so `runs/tiny` trained by one command is there for the next. The ```ts blocks that import
 * 'recyclegpt' run too. Lines without `recyclegpt` (npm, curl) are not commands of ours; a synopsis with
 * `[--optional]` flags is not a command.
 *
 * To keep this fast, the test environment changes sizes, never commands (REWRITES below): step counts ÷ 50,
 * `--data brown` → a 60-document slice of Brown, `--preset gpt2-small` → `tiny` with short bench runs, eval over 1
 * batch / 2 prompts, `DIR` → the shipped model, `path/to/hf-gpt2` → `runs/tiny` (a GPT-2 directory the README
 * has trained by then).
 *
 * A command that cannot run here is marked in the README, on the line before its block:
 *   <!-- readme-test: skip-block (reason) -->        the whole block
 *   <!-- readme-test: skip "TEXT" (reason) -->       the block's commands containing TEXT
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadCorpus } from '../src/data/corpus.js';
import { getBackend } from '../src/kernels/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface ReadmeCommand {
  /** 1-based line of the README where the command starts. */
  line: number;
  kind: 'sh' | 'ts';
  /** sh: the words after `recyclegpt`; ts: the source. */
  argv: string[];
  source: string;
  stdin: string | null;
}

interface Marker {
  skipBlock: boolean;
  skipContaining: string[];
}

/** Shell words: double and single quotes, backslash escapes outside single quotes. */
export function shellWords(text: string, where: string): string[] {
  const words: string[] = [];
  let cur = '',
    inWord = false,
    quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`${where}: unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  return words;
}

/** Splits `text` at `sep` characters outside quotes; `# comment` (after a space, outside quotes) is dropped. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '',
    quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) break;
    else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

/** The stdin an `echo …` or `printf …` stage gives. */
function stdinOf(stage: string, where: string): string {
  const [cmd, ...args] = shellWords(stage, where);
  if (cmd === 'echo') return `${args.join(' ')}\n`;
  if (cmd === 'printf' && args.length === 1) return args[0]!.replace(/\\n/g, '\n');
  throw new Error(`${where}: the README test runs only echo / printf piped into recyclegpt, not "${stage}"`);
}

function parseMarker(line: string, where: string): Marker | null {
  const m = /^<!--\s*readme-test:\s*(.*?)\s*-->$/.exec(line.trim());
  if (!m) return null;
  const body = m[1]!;
  const block = /^skip-block \(.+\)$/.exec(body);
  if (block) return { skipBlock: true, skipContaining: [] };
  const some = /^skip "([^"]+)" \(.+\)$/.exec(body);
  if (some) return { skipBlock: false, skipContaining: [some[1]!] };
  throw new Error(`${where}: a readme-test marker is skip-block (reason) or skip "TEXT" (reason), got "${body}"`);
}

/** The commands of a README, in order (see the header). */
export function readmeCommands(text: string, file = 'README.md'): ReadmeCommand[] {
  const lines = text.split('\n');
  const out: ReadmeCommand[] = [];
  let marker: Marker | null = null;
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!fence) {
      const m = parseMarker(lines[i]!, `${file}:${i + 1}`);
      if (m) marker = m;
      else if (lines[i]!.trim() !== '') marker = null;
      continue;
    }
    const lang = fence[1]!;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    const body = lines.slice(start, end);
    const blockMarker = marker;
    marker = null;
    i = end;
    if (blockMarker?.skipBlock) continue;
    if (lang === 'ts' && body.some((l) => /from 'recyclegpt'/.test(l))) {
      out.push({ line: start + 1, kind: 'ts', argv: [], source: body.join('\n'), stdin: null });
      continue;
    }
    if (lang !== 'sh' && lang !== 'bash') continue;
    for (let j = 0; j < body.length; j++) {
      const first = j;
      let logical = body[j]!;
      while (logical.endsWith('\\') && j + 1 < body.length) logical = `${logical.slice(0, -1)} ${body[++j]!.trim()}`;
      const where = `${file}:${start + first + 1}`;
      const stages = splitOutsideQuotes(logical, '|').filter((s) => s !== '');
      const last = stages[stages.length - 1] ?? '';
      if (!/^npx recyclegpt\b/.test(last)) continue;
      if (/\s\[--/.test(last)) continue; // a synopsis
      if (blockMarker?.skipContaining.some((t) => last.includes(t))) continue;
      if (stages.length > 2) throw new Error(`${where}: at most one stage may be piped into recyclegpt`);
      out.push({
        line: start + first + 1,
        kind: 'sh',
        argv: shellWords(last, where).slice(2),
        source: logical,
        stdin: stages.length === 2 ? stdinOf(stages[0]!, where) : null,
      });
    }
  }
  return out;
}

/** The test environment's sizes (see the header): the same commands, smaller. */
function rewrite(argv: string[], data: string): string[] {
  const cmd = argv[0];
  const a = argv.map((w, i) => {
    const flag = argv[i - 1];
    if (flag === '--steps') return String(Math.ceil(Number(w) / 50));
    if (flag === '--data' && w === 'brown') return data;
    if (flag === '--preset' && w === 'gpt2-small') return 'tiny';
    if (flag === '--model' && w === 'DIR') return path.join(root, 'models', 'recycle-small');
    if (flag === '--base' && w === 'path/to/hf-gpt2') return path.join('runs', 'tiny');
    return w;
  });
  if (cmd === 'train') a.push('--eval-batches', '2', '--no-progress');
  if (cmd === 'eval') a.push(...(a.includes('--mode-quality') ? ['--prompts', '2'] : ['--max-batches', '1']));
  if (cmd === 'bench') a.push('--tokens', '4', '--repeats', '1', '--prompts', '1', '--prefill', '8', '--no-bandwidth');
  return a;
}

test('README commands: the parser finds the commands, pipes, continuations and markers', () => {
  const md = [
    'text',
    '```sh',
    'npm install   # not ours',
    'npx recyclegpt generate --prompt "The jury said" --max-new-tokens 4   # a comment',
    'echo "a b" | npx recyclegpt generate --prompt-file -',
    "printf 'x\\ny\\n' | npx recyclegpt chat",
    'npx recyclegpt eval --data brown \\',
    '  --json',
    'npx recyclegpt eval --mode-quality [--prompts 50]',
    '```',
    '<!-- readme-test: skip "serve" (a server) -->',
    '```sh',
    'npx recyclegpt serve --port 1',
    'npx recyclegpt plot --log runs/tiny',
    '```',
    '<!-- readme-test: skip-block (browser) -->',
    '```ts',
    "import { RecycleGPT } from 'recyclegpt';",
    '```',
  ].join('\n');
  const cmds = readmeCommands(md);
  assert.deepEqual(
    cmds.map((c) => [c.line, c.argv, c.stdin]),
    [
      [4, ['generate', '--prompt', 'The jury said', '--max-new-tokens', '4'], null],
      [5, ['generate', '--prompt-file', '-'], 'a b\n'],
      [6, ['chat'], 'x\ny\n'],
      [7, ['eval', '--data', 'brown', '--json'], null],
      [14, ['plot', '--log', 'runs/tiny'], null],
    ],
  );
  assert.throws(() => readmeCommands('<!-- readme-test: skip -->\n```sh\n```'), /readme-test marker is/);
});

const skip =
  getBackend().name === 'ref'
    ? 'the native addon is not built (npm run build:native); the ref backend is too slow for these runs'
    : false;

test('README commands: every recyclegpt command and TypeScript example of README.md runs', { skip }, () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const cmds = readmeCommands(readme);
  assert.ok(cmds.filter((c) => c.kind === 'sh').length >= 20, `only ${cmds.length} commands found`);
  assert.ok(cmds.some((c) => c.kind === 'ts'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-commands-'));
  try {
    const data = path.join(tmp, 'brown-part.txt');
    fs.writeFileSync(data, loadCorpus('brown').train.slice(0, 60).join('\n\n'));
    const env = { ...process.env, RECYCLEGPT_THREADS: '1' };
    for (const c of cmds) {
      let args: string[];
      if (c.kind === 'ts') {
        const file = path.join(tmp, `readme-${c.line}.mts`);
        const entry = pathToFileURL(path.join(root, 'src', 'index.ts')).href;
        fs.writeFileSync(file, c.source.replace(/from 'recyclegpt'/g, `from '${entry}'`));
        args = ['--import', tsxLoader, file];
      } else args = ['--import', tsxLoader, path.join(root, 'src', 'cli', 'main.ts'), ...rewrite(c.argv, data)];
      const r = spawnSync(process.execPath, args, {
        cwd: tmp,
        env,
        input: c.stdin ?? '',
        encoding: 'utf8',
        timeout: 180_000,
      });
      const shown = `README.md:${c.line}: ${c.source}\n(ran: ${args.slice(2).join(' ')})`;
      assert.equal(r.status, 0, `${shown}\nexit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
      if (c.argv.includes('--json')) {
        const last = r.stdout.trim().split('\n').pop() ?? '';
        assert.doesNotThrow(() => JSON.parse(last), `${shown}: the last line of stdout is not JSON: ${last}`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
