/**
 * End to end in a real browser (npm run test:e2e; not part of npm test): the demo page (web/, served by Vite's dev
 * server with the demo's config) in headless Debian Chromium (apt-get install chromium) loads the shipped model on
 * the wasm kernels, generates in all three modes under greedy settings, and shows tokens of every provenance class
 * (full, recycled, accepted, replaced); verified's text equals standard's; the page is cross-origin isolated and so
 * runs the kernels on more than one thread (Web Workers on a shared memory), and shows how many. The same prompt then
 * runs again on one thread (the page's Threads setting): the same text, and both runs' tokens/s are printed.
 * Chromium runs with a fresh profile folder (launchPersistentContext's user data dir). A
 * screenshot goes to runs/e2e/demo-page.png and the page's tokens/s are printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { createServer } from 'vite';
import type { PageApi } from '../../web/main.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

test('demo page in headless Chromium: three modes, every provenance class, verified == standard', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = await createServer({
    configFile: join(root, 'web', 'vite.config.ts'),
    server: { port, strictPort: true },
    logLevel: 'warn',
  });
  await server.listen();
  const profile = mkdtempSync(join(tmpdir(), 'rg-chromium-'));
  let browser: BrowserContext | null = null;
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://localhost:${port}/`);
    const state = (): Promise<string> => page.evaluate(() => window.recyclegpt.state);
    await page.waitForFunction(() => ['ready', 'error'].includes(window.recyclegpt?.state), null, { timeout: 300_000 });
    assert.equal(await state(), 'ready', `the page did not load the model: ${await page.textContent('#model-status')}`);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'the demo server sends COOP/COEP');
    const isolatedThreads = await page.evaluate(() => window.recyclegpt.threads);
    assert.ok(isolatedThreads > 1, `an isolated page runs the kernels on more than one thread (${isolatedThreads})`);
    assert.equal(await page.textContent('#threads-shown'), String(isolatedThreads), 'the page shows its threads');
    await page.fill('#prompt', 'Once upon a time');
    await page.fill('#max_new_tokens', '96');
    await page.setChecked('#do_sample', false);
    const generate = async (): Promise<PageApi> => {
      await page.click('#run');
      await page.waitForFunction(() => ['done', 'error'].includes(window.recyclegpt.state), null, {
        timeout: 600_000,
      });
      return (await page.evaluate(() => window.recyclegpt)) as PageApi;
    };
    const api = await generate();
    assert.equal(api.state, 'done', `generation failed: ${api.error}`);
    assert.equal(api.backend, 'wasm');
    assert.equal(api.threads, isolatedThreads);
    const { standard, recycle, verified } = api.results;
    assert.ok(standard && recycle && verified, 'all three modes ran');
    assert.equal(verified.text, standard.text, "verified's greedy text equals standard's");
    assert.deepEqual(verified.ids, standard.ids);
    assert.deepEqual(new Set(standard.sources), new Set(['full']));
    assert.ok(recycle.sources.includes('recycled') && recycle.sources.includes('full'), 'recycle: full and recycled');
    assert.ok(verified.sources.includes('accepted'), 'verified: some drafts accepted');
    assert.ok(verified.sources.includes('replaced'), 'verified: some drafts replaced');
    for (const cls of ['full', 'recycled', 'accepted', 'replaced'])
      assert.ok((await page.locator(`.modes .tok.${cls}`).count()) > 0, `the page shows ${cls} tokens`);
    const shown = await page.locator('[data-mode="verified"] .text').textContent();
    assert.ok(shown?.endsWith(verified.text), 'the verified column shows the generated text');
    mkdirSync(join(root, 'runs', 'e2e'), { recursive: true });
    const shot = join(root, 'runs', 'e2e', 'demo-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    // the same on one thread: the kernels' results do not depend on the thread count
    await page.selectOption('#threads', '1');
    await page.waitForFunction(() => window.recyclegpt.state === 'ready' && window.recyclegpt.threads === 1, null, {
      timeout: 300_000,
    });
    const one = await generate();
    assert.equal(one.state, 'done', `generation on one thread failed: ${one.error}`);
    assert.equal(one.threads, 1);
    for (const mode of ['standard', 'recycle', 'verified'] as const)
      assert.deepEqual(one.results[mode]?.ids, api.results[mode]?.ids, `${mode}: 1 thread vs ${isolatedThreads}`);
    assert.deepEqual(errors, []);
    const speeds = (run: PageApi): string =>
      Object.entries(run.results)
        .map(([m, r]) => `${m} ${r.tokensPerS.toFixed(1)} tokens/s (${(r.speedup ?? 0).toFixed(2)}x)`)
        .join(', ');
    console.log(`page tokens/s on wasm, ${isolatedThreads} threads: ${speeds(api)}`);
    console.log(`page tokens/s on wasm, 1 thread: ${speeds(one)}; screenshot ${shot}`);
  } finally {
    await browser?.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
