/**
 * The demo page's server (npm run demo: `vite web`): the page, the library's sources and the compiled kernels from
 * this repository, the shipped models at /models/ (read from the repository's models/ folder; no network), and the
 * headers that make the page cross-origin isolated (COOP / COEP), on localhost.
 */
import { createReadStream, statSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin } from 'vite';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('..', import.meta.url));
const models = join(repo, 'models');

const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Record<string, string> = { json: 'application/json', safetensors: 'application/octet-stream' };

/** GET /models/<name>/<file>: a file of the repository's models/ folder (no listing, nothing outside it). */
const serveModels: Connect.NextHandleFunction = (req, res, next) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (!url.pathname.startsWith('/models/')) return next();
  let rel: string;
  try {
    rel = decodeURIComponent(url.pathname.slice('/models/'.length));
  } catch {
    res.statusCode = 400; // a malformed % escape
    return res.end();
  }
  const file = normalize(join(models, rel));
  if (!file.startsWith(models + sep)) return next();
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return next();
    size = st.size;
  } catch {
    res.statusCode = 404;
    return res.end();
  }
  res.setHeader('Content-Type', TYPES[file.split('.').pop() ?? ''] ?? 'application/octet-stream');
  res.setHeader('Content-Length', size);
  createReadStream(file).pipe(res);
};

const modelsPlugin: Plugin = {
  name: 'recyclegpt-models',
  configureServer: (server) => void server.middlewares.use(serveModels),
  configurePreviewServer: (server) => void server.middlewares.use(serveModels),
};

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [modelsPlugin],
  server: { host: 'localhost', port: 5173, headers: ISOLATION_HEADERS, fs: { allow: [repo] } },
  preview: { host: 'localhost', port: 4173, headers: ISOLATION_HEADERS },
  build: { outDir: join(repo, 'dist', 'web'), emptyOutDir: true, target: 'es2022' },
});
