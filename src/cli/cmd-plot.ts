/** `recyclegpt plot --log FILE --out FILE.svg`: the loss curves of a train_log.jsonl as SVG (src/train/plot.ts). */
import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { readLog } from '../train/log.js';
import { lossCurvesSvg } from '../train/plot.js';

export function register(program: Command): void {
  program
    .command('plot')
    .description('draw the loss curves (train and held-out, both heads) of a training log to SVG')
    .requiredOption('--log <file>', 'train_log.jsonl written by `recyclegpt train`')
    .requiredOption('--out <file>', 'SVG file to write')
    .option('--title <text>', 'chart title', 'RecycleGPT training')
    .action((o: { log: string; out: string; title: string }) => {
      const rows = readLog(o.log);
      if (rows.length === 0) throw new Error(`${o.log}: the log has no rows`);
      writeFileAtomic(o.out, lossCurvesSvg(rows, o.title));
      process.stdout.write(
        `wrote ${o.out} (${rows.filter((r) => r.type === 'train').length} train rows, ` +
          `${rows.filter((r) => r.type === 'eval').length} eval rows)\n`,
      );
    });
}
