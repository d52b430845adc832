/**
 * `recyclegpt plot --log RUN_DIR|FILE [--out FILE.svg]`: the loss curves of a train_log.jsonl as SVG
 * (src/train/plot.ts), written by default next to the log as loss.svg (the run's folder, not the current one).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { LOG_FILE, readLog } from '../train/log.js';
import { lossCurvesSvg } from '../train/plot.js';

export function register(program: Command): void {
  program
    .command('plot')
    .description('draw the loss curves (train and held-out, both heads) of a training log to SVG')
    .requiredOption(
      '--log <run|file>',
      `a run's folder (its ${LOG_FILE}) or the log file written by \`recyclegpt train\``,
    )
    .option('--out <file>', 'SVG file to write (default: loss.svg next to the log)')
    .option('--title <text>', 'chart title', 'RecycleGPT training')
    .action((o: { log: string; out?: string; title: string }) => {
      const log = fs.existsSync(o.log) && fs.statSync(o.log).isDirectory() ? path.join(o.log, LOG_FILE) : o.log;
      if (!fs.existsSync(log)) throw new Error(`--log ${o.log}: no such file${log !== o.log ? ` (${log})` : ''}`);
      const rows = readLog(log);
      if (rows.length === 0) throw new Error(`${log}: the log has no rows`);
      const out = o.out ?? path.join(path.dirname(log), 'loss.svg');
      writeFileAtomic(out, lossCurvesSvg(rows, o.title));
      process.stdout.write(
        `wrote ${out} (${rows.filter((r) => r.type === 'train').length} train rows, ` +
          `${rows.filter((r) => r.type === 'eval').length} eval rows)\n`,
      );
    });
}
