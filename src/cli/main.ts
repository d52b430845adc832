#!/usr/bin/env node
/**
 * `recyclegpt` command line (ARCHITECTURE.md §6). Each command lives in its own file and registers itself here.
 * `--json` commands print one JSON object on the last line of stdout; errors go to stderr with exit code 1.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands.js';
import { packageRoot } from '../node/package-root.js';

const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command();
program
  .name('recyclegpt')
  .description('RecycleGPT: a language model with a recyclable module — train, generate, evaluate, benchmark')
  .version(version)
  .showHelpAfterError()
  .exitOverride();
registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  process.stderr.write(`recyclegpt: ${(e as Error).message}\n`);
  if (process.env.RECYCLEGPT_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
