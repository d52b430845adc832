/**
 * `recyclegpt serve` as a process: it listens where it says (loopback, --port 0 picks a free port), logs one line
 * per request, and on SIGTERM lets the running stream finish before it exits with status 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageRoot } from '../src/node/package-root.js';

test('serve: SIGTERM drains the running stream, then the process exits 0', { timeout: 120_000 }, async () => {
  const root = packageRoot();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'serve', '--port', '0', '--ctx-size', '64', '--parallel', '2'],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = / on (http:\/\/127\.0\.0\.1:\d+) /.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`serve exited before listening:\n${stderr}`)));
  });
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      prompt: 'Once upon a time',
      max_tokens: 30,
      ignore_eos: true,
      temperature: 0,
      stream: true,
    }),
  });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value, { stream: true });
  child.kill('SIGTERM');
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  const events = text.split('\n\n').filter((e) => e.length > 0);
  assert.equal(events.at(-1), 'data: [DONE]', 'the stream was cut instead of drained');
  const last = JSON.parse(events.at(-2)!.slice('data: '.length)) as { choices: { finish_reason: string }[] };
  assert.equal(last.choices[0]!.finish_reason, 'length');
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /SIGTERM: draining/);
  assert.match(stderr, /POST \/v1\/completions 200 \d+ms mode=standard prompt=\d+ completion=30 finish=length/);
});
