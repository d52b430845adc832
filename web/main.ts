/**
 * The demo page (npm run demo): one prompt decoded in standard, recycle and verified mode with the wasm kernels,
 * each token coloured by its provenance (TokenSource), live tokens/s per mode and the speedup over standard.
 * The modes run one after another so each speed is measured alone. `window.recyclegpt` exposes the state and the
 * results (test/e2e reads them).
 *
 * Threads: where the page is cross-origin isolated (npm run demo sends COOP / COEP), the wasm kernels run on a shared
 * memory with `threads − 1` Web Workers (auto: navigator.hardwareConcurrency, at most 4: decoding is bound by memory
 * bandwidth, which a few cores saturate, and the page's own thread is one of them); otherwise on one thread. The model
 * runs on the page's thread, which also computes a share of every kernel call: a main thread may not block
 * (Atomics.wait), so while the workers finish their last shares it spins (microseconds per call; the pool hands the
 * caller every share no worker has claimed, so it never waits for a sleeping worker). Moving the whole model into a
 * worker would also work, but the page yields between tokens anyway, and this keeps one thread fewer.
 */
import {
  DECODE_MODES,
  RecycleGPT,
  createRefBackend,
  createWasmBackend,
  wasmThreadsAvailable,
  type Backend,
  type DecodeMode,
  type GenerationOptions,
  type GenerationStats,
  type TokenSource,
} from '../src/core.js';
import { fetchShippedModel, readModelFolder } from './model-files.js';

export interface ModeResult {
  text: string;
  ids: number[];
  sources: TokenSource[];
  /** Decode tokens per second: tokens after the first over the time since the first (prefill excluded). */
  tokensPerS: number;
  speedup: number | null;
  stats: GenerationStats;
}

export type PageState = 'idle' | 'loading' | 'ready' | 'running' | 'done' | 'error';

export interface PageApi {
  state: PageState;
  backend: string;
  /** Kernel threads of the loaded backend (the page's thread and its workers). */
  threads: number;
  results: Partial<Record<DecodeMode, ModeResult>>;
  error: string | null;
}

declare global {
  interface Window {
    recyclegpt: PageApi;
  }
}

const api: PageApi = { state: 'idle', backend: '', threads: 1, results: {}, error: null };
window.recyclegpt = api;

const el = <T extends HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
};
const sourceSelect = el<HTMLSelectElement>('model-source');
const backendSelect = el<HTMLSelectElement>('backend');
const threadsSelect = el<HTMLSelectElement>('threads');
const folderInput = el<HTMLInputElement>('folder');
const statusEl = el<HTMLSpanElement>('model-status');
const runButton = el<HTMLButtonElement>('run');
const stopButton = el<HTMLButtonElement>('stop');
const modesEl = el<HTMLElement>('modes');

const threadsOk = wasmThreadsAvailable();
/** Threads for "auto": every logical core up to 4 (see the top of this file). */
const AUTO_THREADS = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
threadsSelect.disabled = !threadsOk;
if (!threadsOk) threadsSelect.value = '1';
const wantThreads = (): number =>
  !threadsOk ? 1 : threadsSelect.value === 'auto' ? AUTO_THREADS : Number(threadsSelect.value);
el('isolation').textContent = threadsOk
  ? `This page is cross-origin isolated: the wasm kernels can share their memory with Web Workers ` +
    `(auto: ${AUTO_THREADS} threads of ${navigator.hardwareConcurrency || '?'} logical cores).`
  : 'This page is not cross-origin isolated (serve it with npm run demo): the wasm kernels run on one thread.';

function setState(state: PageState, message?: string): void {
  api.state = state;
  document.body.dataset.state = state;
  if (message !== undefined) statusEl.textContent = message;
}

// ---- the columns ---------------------------------------------------------------------------------------------------
interface Column {
  text: HTMLElement;
  speed: HTMLElement;
  detail: HTMLElement;
}
const columns = {} as Record<DecodeMode, Column>;
for (const mode of DECODE_MODES) {
  const box = document.createElement('div');
  box.className = 'mode';
  box.dataset.mode = mode;
  box.innerHTML =
    `<h2>${mode}</h2><div class="stats"><span class="speed">–</span> <span class="detail"></span></div>` +
    '<div class="text"></div>';
  modesEl.append(box);
  columns[mode] = {
    text: box.querySelector('.text')!,
    speed: box.querySelector('.speed')!,
    detail: box.querySelector('.detail')!,
  };
}

// ---- the model -----------------------------------------------------------------------------------------------------
let model: RecycleGPT | null = null;
let loadedKey = '';

/** WebAssembly memory for a model of `bytes` stored weights: the weights as stored, caches and scratch. */
const memoryFor = (bytes: number): number =>
  Math.min(65535 * 65536, Math.ceil((bytes * 1.25 + 256 * 2 ** 20) / 65536) * 65536);

async function makeBackend(kind: string, weightBytes: number): Promise<Backend> {
  if (kind === 'ref') return createRefBackend();
  // the threaded kernels where shared memory is available; with more than one thread this waits for the workers
  return createWasmBackend({ memoryBytes: memoryFor(weightBytes), threads: wantThreads() });
}

let closeBackend: (() => void) | null = null;

async function ensureModel(): Promise<RecycleGPT> {
  const key = `${sourceSelect.value}:${backendSelect.value}:${wantThreads()}:${folderInput.files?.length ?? 0}`;
  if (model && key === loadedKey) return model;
  model = null;
  closeBackend?.(); // the previous backend's workers
  closeBackend = null;
  runButton.disabled = true;
  setState('loading', 'loading the model…');
  const picked = sourceSelect.value === 'folder' && folderInput.files?.length ? folderInput.files : null;
  const { name, files, bytes } = picked ? await readModelFolder(picked) : await fetchShippedModel();
  const backend = await makeBackend(backendSelect.value, bytes);
  if ('close' in backend) closeBackend = () => (backend as { close(): void }).close();
  const m = await RecycleGPT.fromBytes(files, { backend, name });
  // The engine compiles WebAssembly in tiers (a quick baseline first, optimized code once a function is hot): a
  // short warm-up in every mode, so that the measured runs all get the optimized kernels.
  setState('loading', 'warming up the kernels…');
  for (const mode of DECODE_MODES)
    if (mode === 'standard' || m.hasModule) await m.generate([0], { mode, max_new_tokens: 24, do_sample: false });
  model = m;
  loadedKey = key;
  api.backend = backend.name;
  // the threads actually running: the page's own and the workers that started (createWasmBackend waited for them)
  api.threads = 'workers' in backend ? (backend as { workers(): number }).workers() + 1 : backend.threads();
  const c = m.config;
  setState(
    'ready',
    `${name}: ${c.arch}, ${c.nLayers} layers, width ${c.hidden}, ${(bytes / 2 ** 20).toFixed(1)} MB of weights, ` +
      `${m.hasModule ? 'with' : 'without'} a recyclable module; ${backend.name} kernels, ` +
      `${api.threads} thread${api.threads === 1 ? '' : 's'}`,
  );
  el('threads-shown').textContent = `${api.threads}`;
  runButton.disabled = false;
  return m;
}

// ---- settings ------------------------------------------------------------------------------------------------------
function num(id: string): number {
  const v = el<HTMLInputElement>(id).valueAsNumber;
  if (!Number.isFinite(v)) throw new Error(`${id}: enter a number`);
  return v;
}

function settings(): GenerationOptions {
  const doSample = el<HTMLInputElement>('do_sample').checked;
  const o: GenerationOptions = {
    max_new_tokens: num('max_new_tokens'),
    do_sample: doSample,
    repetition_penalty: num('repetition_penalty'),
    seed: num('seed'),
  };
  if (doSample) Object.assign(o, { temperature: num('temperature'), top_k: num('top_k'), top_p: num('top_p') });
  return o;
}

// ---- a run ---------------------------------------------------------------------------------------------------------
let abort: AbortController | null = null;

function showSpeed(mode: DecodeMode, r: ModeResult, live: boolean): void {
  const col = columns[mode];
  col.speed.textContent = `${r.tokensPerS.toFixed(1)} tokens/s`;
  const parts = [r.speedup === null ? '' : `${r.speedup.toFixed(2)}x standard`, `${r.stats.tokens} tokens`];
  parts.push(`${(r.stats.full_calls / Math.max(1, r.stats.tokens)).toFixed(2)} full calls/token`);
  if (mode === 'verified' && r.stats.accepted + r.stats.rejected > 0)
    parts.push(`${((100 * r.stats.accepted) / (r.stats.accepted + r.stats.rejected)).toFixed(0)}% accepted`);
  if (live) parts.push('…');
  col.detail.textContent = parts.filter(Boolean).join(' · ');
}

async function runMode(m: RecycleGPT, mode: DecodeMode, prompt: string, opts: GenerationOptions): Promise<void> {
  const col = columns[mode];
  const stream = m.stream(prompt, { ...opts, mode, signal: abort!.signal });
  const r: ModeResult = { text: '', ids: [], sources: [], tokensPerS: 0, speedup: null, stats: stream.stats };
  api.results[mode] = r;
  let first = 0;
  let frame = 0;
  for await (const tok of stream) {
    const now = performance.now();
    if (r.ids.length === 0) first = now;
    r.ids.push(tok.id);
    r.sources.push(tok.source);
    r.text += tok.text;
    const span = document.createElement('span');
    span.className = `tok ${tok.source}`;
    span.dataset.source = tok.source;
    span.textContent = tok.text;
    col.text.append(span);
    r.stats = stream.stats;
    if (r.ids.length > 1) {
      r.tokensPerS = ((r.ids.length - 1) * 1000) / (now - first);
      const std = api.results.standard;
      r.speedup = mode === 'standard' ? 1 : std && std !== r ? r.tokensPerS / std.tokensPerS : null;
    }
    if (++frame % 4 === 0) showSpeed(mode, r, true);
  }
  r.stats = stream.stats;
  r.text = stream.text;
  showSpeed(mode, r, false);
}

async function runAll(): Promise<void> {
  runButton.disabled = true;
  stopButton.disabled = false;
  api.results = {};
  api.error = null;
  for (const mode of DECODE_MODES) {
    columns[mode].text.replaceChildren();
    columns[mode].speed.textContent = '–';
    columns[mode].detail.textContent = '';
  }
  try {
    const m = await ensureModel();
    const opts = settings();
    const prompt = el<HTMLTextAreaElement>('prompt').value;
    abort = new AbortController();
    setState('running');
    for (const mode of DECODE_MODES) {
      const p = document.createElement('span');
      p.className = 'prompt-text';
      p.textContent = prompt;
      columns[mode].text.append(p);
      if (mode !== 'standard' && !m.hasModule) {
        columns[mode].detail.textContent = 'this model has no recyclable module';
        continue;
      }
      await runMode(m, mode, prompt, opts);
    }
    setState('done');
  } catch (err) {
    api.error = err instanceof Error ? err.message : String(err);
    setState('error', api.error);
    statusEl.classList.add('error');
  } finally {
    runButton.disabled = model === null;
    stopButton.disabled = true;
  }
}

runButton.addEventListener('click', () => void runAll());
stopButton.addEventListener('click', () => abort?.abort(new Error('stopped')));
sourceSelect.addEventListener('change', () => {
  if (sourceSelect.value === 'folder') folderInput.click();
  else void ensureModel().catch((e: unknown) => setState('error', String(e)));
});
folderInput.addEventListener('change', () => void ensureModel().catch((e: unknown) => setState('error', String(e))));
backendSelect.addEventListener('change', () => void ensureModel().catch((e: unknown) => setState('error', String(e))));
threadsSelect.addEventListener('change', () => void ensureModel().catch((e: unknown) => setState('error', String(e))));

void ensureModel().catch((e: unknown) => {
  api.error = e instanceof Error ? e.message : String(e);
  setState('error', api.error);
});
