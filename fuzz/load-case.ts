/**
 * One fuzz case: load a (possibly corrupt) directory the way a user would and say what happened. Run inside a
 * worker process (fuzz/worker.ts) or by fuzz/replay.ts for a saved reproducer.
 *
 *   case {id, dir, kind: 'model'}        RecycleGPT.load(dir), then a 4-token greedy generation
 *   case {id, dir, kind: 'checkpoint'}   everything `train --resume` reads: train_state, the model, the moments
 */
import * as path from 'node:path';
import { RecycleGPT } from '../src/index.js';
import { loadModelDir, readConfig } from '../src/io/model-dir.js';
import { readOptimizerState, readTrainState } from '../src/train/checkpoint.js';
import { TrainParams } from '../src/train/params.js';

export interface FuzzCase {
  id: number;
  dir: string;
  kind: 'model' | 'checkpoint';
}

export interface CaseResult {
  /** 'loaded': everything worked; 'error': a thrown error (clean or not, the parent judges); 'refused_at_generation':
   *  loaded, then generation stopped with a clear error; 'broken': loaded, then generation failed otherwise or
   *  returned something impossible. */
  outcome: 'loaded' | 'error' | 'refused_at_generation' | 'broken';
  message: string;
  errorType: string;
  /** What the load produced, to compare with the unmutated input (same = the mutation changed nothing that counts). */
  digest: string;
}

/** Engine errors and messages that mean bad data reached code that did not expect it. */
const UNCLEAR = new RegExp(
  [
    'Cannot read propert',
    'is not a function',
    'is not iterable',
    'Maximum call stack',
    'Invalid typed array length',
    'Invalid array length',
    'Array buffer allocation failed',
    '(undefined|null) is not (an object|a function|iterable)',
  ].join('|'),
);
const ENGINE_ERRORS = new Set(['TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError']);

/** A clean rejection: one of our errors (not the engine's), whose message names the file or directory. */
export function isCleanError(r: CaseResult, dir: string): boolean {
  return (
    r.outcome === 'error' &&
    r.errorType !== '' &&
    !ENGINE_ERRORS.has(r.errorType) &&
    !UNCLEAR.test(r.message) &&
    r.message.includes(dir)
  );
}

export async function runCase(c: FuzzCase): Promise<CaseResult> {
  let digest: string;
  try {
    if (c.kind === 'checkpoint') {
      digest = loadCheckpoint(c.dir);
    } else {
      const m = await RecycleGPT.load(c.dir, { threads: 1 });
      const mode = m.hasModule ? 'verified' : 'standard';
      // A prompt and a length that fit any context the config may set (a tiny one is valid, if useless).
      const ctx = m.config.maxPositions;
      const prompt = (m.tokenizer ? m.encode('the cat') : [1, 2]).slice(0, Math.max(1, ctx - 1));
      const maxNew = Math.min(4, ctx - prompt.length);
      if (maxNew < 1)
        return { outcome: 'loaded', message: '', errorType: '', digest: `context ${ctx}: no room to generate` };
      try {
        const r = await m.generate(prompt, { mode, max_new_tokens: maxNew });
        const V = m.config.vocabSize;
        if (r.ids.some((id) => !Number.isInteger(id) || id < 0 || id >= V)) {
          return {
            outcome: 'broken',
            message: `generated ids outside [0, ${V}): ${r.ids.join(',')}`,
            errorType: '',
            digest: '',
          };
        }
        digest = JSON.stringify({ ids: r.ids, text: r.text, mode });
      } catch (e) {
        // Weights can be finite and still overflow float32 logits (a changed byte): the sampler refuses that with
        // a clear error, which is right. Anything else failing after a good load is a defect.
        const clean = !ENGINE_ERRORS.has(errName(e)) && !UNCLEAR.test((e as Error).message);
        const outcome = clean ? 'refused_at_generation' : 'broken';
        return {
          outcome,
          message: `loaded, then generation failed: ${(e as Error).message}`,
          errorType: errName(e),
          digest: '',
        };
      }
    }
  } catch (e) {
    return { outcome: 'error', message: e instanceof Error ? e.message : String(e), errorType: errName(e), digest: '' };
  }
  return { outcome: 'loaded', message: '', errorType: '', digest };
}

/** What `train --resume` reads before it touches the data: state, config, weights, optimizer moments. */
function loadCheckpoint(dir: string): string {
  const state = readTrainState(dir);
  const config = readConfig(path.join(dir, 'config.json'));
  const { weights } = loadModelDir(dir, { config });
  const params = new TrainParams(config, state.trainable === 'module');
  params.copyFrom((n) => weights.get(n));
  const opt = readOptimizerState(dir, state, params.store.size);
  let sum = 0;
  for (let i = 0; i < opt.m.length; i++) sum += opt.m[i]! + opt.v[i]!;
  return JSON.stringify({ step: state.step, optStep: opt.step, params: params.store.size, sum });
}

function errName(e: unknown): string {
  return e instanceof Error ? e.constructor.name : typeof e;
}
