/**
 * Replays one saved fuzz case: `node --import tsx fuzz/replay.ts DIR [model|checkpoint]`. Exits 0 when the
 * directory loads and generates, or is refused with a clean error naming it; 1 otherwise (the message is printed).
 */
import { isCleanError, runCase } from './load-case.js';

const [dir, kind = 'model'] = process.argv.slice(2);
if (!dir || (kind !== 'model' && kind !== 'checkpoint')) {
  console.error('usage: fuzz/replay.ts DIR [model|checkpoint]');
  process.exit(2);
}
const r = await runCase({ id: 0, dir, kind });
const ok = r.outcome === 'loaded' || r.outcome === 'refused_at_generation' || isCleanError(r, dir);
console.log(`${ok ? 'ok' : 'FAIL'} ${r.outcome}${r.errorType ? ` (${r.errorType})` : ''}: ${r.message}`);
process.exitCode = ok ? 0 : 1;
