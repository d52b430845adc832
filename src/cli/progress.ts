/**
 * A progress bar on stderr for the commands that take more than a couple of seconds (eval, eval --mode-quality,
 * bench, export-gguf, quantize). Shown only on a terminal and without --quiet: a pipe or a log file gets nothing,
 * and stdout (text or the --json line) is never touched. The kernels are synchronous, so the bar redraws from
 * `update` itself (cli-progress's synchronousUpdate), not from a timer.
 */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  /** `done` of `total` units, with an optional short note (the current item). */
  update(done: number, total: number, note?: string): void;
  /** Clears the bar's line; call before printing to stderr and at the end. */
  stop(): void;
}

const silent: ProgressBar = { update: () => {}, stop: () => {} };

/** A bar labelled `label` counting `unit`s, or one that draws nothing (not a terminal, or `quiet`). */
export function progressBar(label: string, unit: string, quiet = false): ProgressBar {
  if (quiet || process.stderr.isTTY !== true) return silent;
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(done, total, note) {
      const shown = { note: note ? ` | ${note}` : '' };
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            format: `${label} |{bar}| {value}/{total} ${unit} | {duration_formatted}, ETA {eta_formatted}{note}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 20,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, done, shown);
      } else {
        bar.setTotal(total);
        bar.update(done, shown);
      }
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

/** The `--quiet` flag's description, the same on every command that has a bar. */
export const QUIET_FLAG: [string, string] = ['--quiet', 'no progress bar on stderr (it is shown only on a terminal)'];
