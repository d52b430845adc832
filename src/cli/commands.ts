/** The list of commands; each file exports `register(program)`. */
import type { Command } from 'commander';
import { register as forward } from './cmd-forward.js';

type Register = (program: Command) => void;

const registry: Register[] = [forward];

export function registerCommands(program: Command): void {
  for (const r of registry) r(program);
}
