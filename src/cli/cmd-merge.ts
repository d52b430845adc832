/**
 * `recyclegpt merge --module DIR --out DIR`: a full model directory from a module-only one (what `train --base DIR
 * --freeze-base` writes) and its base: the base's weights files and tokenizer files byte for byte, the module in
 * the base's dtype as one more shard, the base's config.json with the "recycle" section. See src/io/module-dir.ts.
 */
import type { Command } from 'commander';
import { mergeModuleDir } from '../io/module-dir.js';
import { printJson } from './options.js';

export function register(program: Command): void {
  program
    .command('merge')
    .description('write a full model directory from a module-only one and its base (the base files copied unchanged)')
    .requiredOption('--module <dir>', 'module-only directory (trained with --freeze-base)')
    .requiredOption('--out <dir>', 'directory to write (must not hold a model)')
    .option('--json', 'print one JSON summary object on the last line of stdout')
    .action((flags: { module: string; out: string; json?: boolean }) => {
      const r = mergeModuleDir(flags.module, flags.out);
      if (flags.json) printJson({ out: flags.out, base: r.baseDir, files: r.files });
      else process.stdout.write(`merged ${flags.module} + base ${r.baseDir} → ${flags.out} (${r.files.join(', ')})\n`);
    });
}
