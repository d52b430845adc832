/**
 * The demo server's /models/ route (web/vite.config.ts), without a browser: Vite's dev server with the demo's
 * config answers a shipped model file, and a path with a malformed % escape with 400 (not a 500 from a throwing
 * decodeURIComponent).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));

test('demo server /models/: a shipped file is served, a malformed % escape is a 400', async () => {
  const server = await createServer({
    configFile: join(root, 'web', 'vite.config.ts'),
    server: { port: 0, host: '127.0.0.1' },
    logLevel: 'silent',
  });
  await server.listen();
  try {
    const addr = server.httpServer?.address();
    assert.ok(addr && typeof addr === 'object');
    const base = `http://127.0.0.1:${addr.port}`;
    const model = readdirSync(join(root, 'models')).find((d) => existsSync(join(root, 'models', d, 'config.json')));
    const ok = await fetch(`${base}/models/${model}/config.json`);
    assert.equal(ok.status, 200);
    assert.equal(typeof (await ok.json()), 'object');
    const bad = await fetch(`${base}/models/%E0%A4%A/config.json`);
    await bad.arrayBuffer();
    assert.equal(bad.status, 400);
    const bad2 = await fetch(`${base}/models/%zz`);
    await bad2.arrayBuffer();
    assert.equal(bad2.status, 400);
  } finally {
    await server.close();
  }
});
