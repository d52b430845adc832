/**
 * `npm run bench`: every benchmark of the project, one after the other, each in its own process so that one
 * benchmark's memory and threads do not disturb the next: kernels (GEMM, matvec, bandwidth), training throughput
 * (small preset, 1 and 2 threads, GEMM share) and decoding (all modes on the gpt2-small shape, then on the trained
 * models/recycle-deep with English prompts: speed and acceptance).
 * Arguments after `--` are passed to each benchmark (e.g. `-- --json`).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const extra = process.argv.slice(2);
let failed = 0;
const runs: Array<[string, string[]]> = [
  ['kernels', []],
  ['train', []],
  ['decode', []],
  ['decode', ['--model', join(here, '..', 'models', 'recycle-deep')]],
];
for (const [name, args] of runs) {
  process.stdout.write(`\n=== bench: ${[name, ...args].join(' ')} ===\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${name}.ts`), ...args, ...extra], {
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`bench ${name} failed (exit ${r.status ?? r.signal})\n`);
  }
}
process.exit(failed > 0 ? 1 : 0);
