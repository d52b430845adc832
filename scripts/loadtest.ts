/**
 * `npm run loadtest -- [--clients 32] [--duration 60] [--model DIR | --preset NAME] [--parallel N] [--ctx-size N]
 *  [--max-tokens 32] [--modes standard,recycle,verified] [--threads N] [--dtype D] [--warmup S]
 *  [--scaling N [--rounds R]] [--json]`
 *
 * Starts `recyclegpt serve` as a child process on a free loopback port and runs N concurrent clients against it for
 * a bounded time: each client loops over requests, alternating streaming and non-streaming, cycling through the
 * modes, greedy and sampled, with prompts and max_tokens varying. Reports p50 / p99 latency and time to first token
 * for streams (percentiles by linear interpolation between closest ranks, src/bench/stats.ts), aggregate generated
 * tokens/s, errors by status, and the server's RSS after start, before the run
 * (after a request per slot and --warmup seconds, default 10, of the same load), every 5 s, and after.
 *
 * `--scaling N [--rounds R]` measures batching instead: standard greedy streams of --max-tokens tokens (EOS ignored),
 * in R rounds (default 3) of one client alone for --duration, then N concurrent clients for --duration, in the same
 * server; it reports tokens/s streamed within each window, the ratio per round and the medians (issue 14: 8 streams
 * ≥ 5x one). Speed is measured here, never in unit tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median, percentile } from '../src/bench/stats.js';
import { packageRoot } from '../src/node/package-root.js';

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '32' },
    duration: { type: 'string', default: '60' },
    model: { type: 'string' },
    preset: { type: 'string' },
    parallel: { type: 'string' },
    'ctx-size': { type: 'string' },
    'max-tokens': { type: 'string', default: '32' },
    modes: { type: 'string', default: 'standard,recycle,verified' },
    threads: { type: 'string' },
    dtype: { type: 'string' },
    scaling: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});

function int(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

const clients = int('clients', a.clients, 1);
const durationS = int('duration', a.duration, 1);
const maxTokens = int('max-tokens', a['max-tokens'], 1);
const modes = a.modes!.split(',').filter(Boolean);
const scaling = a.scaling === undefined ? null : int('scaling', a.scaling, 2);
const roundsN = int('rounds', a.rounds, 1);
const warmupS = int('warmup', a.warmup, 0);
const parallel = a.parallel ?? String(scaling ?? Math.min(clients, 8));

const PROMPTS = [
  'Once upon a time',
  'The king said to his son that',
  'In the morning the village was quiet, and',
  'She opened the door and saw',
  'It was the best of times,',
  'A long way from home, the travellers',
];

/** Request k of client c in a mixed run: streaming or not, every mode, greedy or seeded sampling, varied lengths. */
function mixedRequest(c: number, k: number): Record<string, unknown> {
  const sample = (c + k) % 3 === 0;
  return {
    prompt: PROMPTS[(c * 7 + k) % PROMPTS.length],
    max_tokens: 4 + ((c * 13 + k * 5) % maxTokens),
    mode: modes[(c + k) % modes.length],
    stream: (c + k) % 2 === 0,
    ...(sample ? { temperature: 0.8, top_p: 0.95, seed: c * 1000 + k } : { temperature: 0 }),
  };
}

/** The server process and where it listens. */
async function startServe(): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const args = [join(packageRoot(), 'src/cli/main.ts'), 'serve', '--port', '0', '--parallel', parallel];
  args.push('--queue', String(Math.max(clients, scaling ?? 0) * 2));
  if (a.model) args.push('--model', a.model);
  if (a.preset) args.push('--preset', a.preset);
  if (a['ctx-size']) args.push('--ctx-size', a['ctx-size']);
  if (a.threads) args.push('--threads', a.threads);
  if (a.dtype) args.push('--dtype', a.dtype);
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = / on (http:\/\/\S+) /.exec(err);
      if (m) resolve(m[1]!);
      if (err.length > 1 << 16) err = err.slice(-4096);
    });
    void exited.then((c) => reject(new Error(`serve exited (${c}) before listening:\n${err}`)));
  });
  return { child, url, exited };
}

/** Resident set of a process in MB (Linux /proc). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Outcome {
  ok: boolean;
  status: number;
  ms: number;
  firstTokenMs: number | null;
  tokens: number;
  stream: boolean;
}

/** One request; a stream is read to its end and its tokens come from the usage chunk. */
async function request(url: string, body: Record<string, unknown>): Promise<Outcome> {
  const t0 = performance.now();
  const stream = body.stream === true;
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(stream ? { ...body, stream_options: { include_usage: true } } : body),
    });
    if (!stream || !res.ok) {
      const json = (await res.json()) as { usage?: { completion_tokens: number } };
      const ms = performance.now() - t0;
      return {
        ok: res.ok,
        status: res.status,
        ms,
        firstTokenMs: null,
        tokens: json.usage?.completion_tokens ?? 0,
        stream,
      };
    }
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '',
      first: number | null = null,
      tokens = 0,
      done = false,
      failed = false;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      buf += dec.decode(r.value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev === 'data: [DONE]') {
          done = true;
          continue;
        }
        const j = JSON.parse(ev.slice(6)) as {
          error?: unknown;
          usage?: { completion_tokens: number };
          choices: { text: string }[];
        };
        if (j.error) failed = true;
        if (j.usage) tokens = j.usage.completion_tokens;
        if (first === null && j.choices[0]?.text) first = performance.now() - t0;
      }
    }
    const ok = done && !failed;
    return { ok, status: ok ? 200 : 599, ms: performance.now() - t0, firstTokenMs: first, tokens, stream };
  } catch {
    return { ok: false, status: 0, ms: performance.now() - t0, firstTokenMs: null, tokens: 0, stream };
  }
}

/** `n` clients looping until the deadline; body(client, iteration) makes each request. */
async function runClients(
  url: string,
  n: number,
  seconds: number,
  body: (c: number, k: number) => Record<string, unknown>,
): Promise<{ outcomes: Outcome[]; seconds: number }> {
  const outcomes: Outcome[] = [];
  const t0 = performance.now(),
    deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: n }, async (_, c) => {
      for (let k = 0; performance.now() < deadline; k++) outcomes.push(await request(url, body(c, k)));
    }),
  );
  return { outcomes, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Tokens per second streamed to `n` clients within a window of `seconds`: each client loops over streams; every
 * text chunk (one token) that arrives inside the window counts, and the streams still open at its end are cut (the
 * server frees their slots), so one window's requests do not run into the next.
 */
async function streamWindow(
  url: string,
  n: number,
  seconds: number,
  body: () => Record<string, unknown>,
): Promise<number> {
  const stop = new AbortController();
  const t0 = performance.now(),
    deadline = t0 + seconds * 1000;
  const timer = setTimeout(() => stop.abort(), seconds * 1000);
  let tokens = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (performance.now() < deadline) {
        try {
          const res = await fetch(`${url}/v1/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body()),
            signal: stop.signal,
          });
          const reader = res.body!.getReader();
          const dec = new TextDecoder();
          for (;;) {
            const r = await reader.read();
            if (r.done) break;
            const text = dec.decode(r.value, { stream: true });
            if (performance.now() < deadline) tokens += (text.match(/"finish_reason":null/g) ?? []).length;
          }
        } catch {
          break; // the window closed
        }
      }
    }),
  );
  clearTimeout(timer);
  return tokens / seconds;
}

function summary(outcomes: Outcome[], seconds: number): Record<string, unknown> {
  const ok = outcomes.filter((o) => o.ok);
  const errors: Record<string, number> = {};
  for (const o of outcomes) if (!o.ok) errors[String(o.status)] = (errors[String(o.status)] ?? 0) + 1;
  const tokens = ok.reduce((s, o) => s + o.tokens, 0);
  const latency = ok.map((o) => o.ms);
  const ttft = ok.filter((o) => o.firstTokenMs !== null).map((o) => o.firstTokenMs!);
  return {
    requests: outcomes.length,
    ok: ok.length,
    errors: outcomes.length - ok.length,
    errors_by_status: errors,
    streamed: outcomes.filter((o) => o.stream).length,
    latency_ms: { p50: percentile(latency, 50), p99: percentile(latency, 99) },
    first_token_ms: { p50: percentile(ttft, 50), p99: percentile(ttft, 99) },
    tokens,
    seconds,
    tokens_per_s: tokens / seconds,
  };
}

async function main(): Promise<void> {
  const load0 = loadavg();
  const server = await startServe();
  const pid = server.child.pid!;
  try {
    // Warm-up: one request per slot at once, every mode, so the slots' scratch has grown to its working size and
    // the RSS growth below measures what the run itself leaves behind.
    const warm = await Promise.all(
      Array.from({ length: Number(parallel) }, (_, i) =>
        request(server.url, {
          prompt: PROMPTS[i % PROMPTS.length],
          max_tokens: 8,
          temperature: 0,
          mode: modes[i % modes.length],
        }),
      ),
    );
    const bad = warm.find((o) => !o.ok);
    if (bad) throw new Error(`a warm-up request failed with status ${bad.status}`);
    const rssStart = rssMb(pid);
    // Then --warmup seconds of the run's own load (mixed runs), so that "before" is the heap at its working size
    // (V8 grows its young generation under a high allocation rate once): the growth reported is what the measured
    // run adds, which is what a leak shows. The RSS after start (`start`) is reported too.
    if (scaling === null && warmupS > 0) {
      const w = await runClients(server.url, clients, warmupS, mixedRequest);
      const failed = w.outcomes.filter((o) => !o.ok).length;
      if (failed > 0) throw new Error(`${failed} warm-up requests failed`);
    }
    const rss0 = rssMb(pid);
    // The server's RSS every 5 s of the run: a leak keeps climbing, a heap settling into its working size levels off.
    const series: number[] = [];
    const sampler = setInterval(() => series.push(Math.round(rssMb(pid))), 5000);
    let report: Record<string, unknown>;
    if (scaling !== null) {
      const stream = (): Record<string, unknown> => ({
        prompt: PROMPTS[0],
        max_tokens: maxTokens,
        temperature: 0,
        ignore_eos: true,
        mode: 'standard',
        stream: true,
      });
      // Rounds of (1 stream, N streams), each phase --duration seconds: a ratio is taken within a round, so the
      // machine's load drifting between rounds does not enter it; the median over rounds is reported.
      const rounds: { one: number; many: number; ratio: number }[] = [];
      for (let r = 0; r < roundsN; r++) {
        const one = await streamWindow(server.url, 1, durationS, stream);
        const many = await streamWindow(server.url, scaling, durationS, stream);
        rounds.push({ one, many, ratio: many / one });
      }
      report = {
        kind: 'scaling',
        clients: scaling,
        max_tokens: maxTokens,
        rounds,
        tokens_per_s_one: median(rounds.map((r) => r.one)),
        tokens_per_s_many: median(rounds.map((r) => r.many)),
        ratio_median: median(rounds.map((r) => r.ratio)),
      };
    } else {
      const { outcomes, seconds } = await runClients(server.url, clients, durationS, mixedRequest);
      report = { kind: 'mixed', clients, ...summary(outcomes, seconds) };
    }
    clearInterval(sampler);
    const rss1 = rssMb(pid);
    const health = (await (await fetch(`${server.url}/health`)).json()) as Record<string, unknown>;
    const out = {
      ...report,
      parallel: Number(parallel),
      model: a.preset ? `preset:${a.preset}` : (a.model ?? 'default'),
      server_rss_mb: { start: rssStart, before: rss0, after: rss1, growth: (rss1 - rss0) / rss0, every_5s: series },
      batching: health.batching,
      load_average: { before: load0[0], after: loadavg()[0] },
    };
    if (a.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`loadtest: ${(e as Error).message}\n`);
  process.exit(1);
});
