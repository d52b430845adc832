/** The list of commands; each file exports `register(program)`. */
import type { Command } from 'commander';

type Register = (program: Command) => void;

const registry: Register[] = [];

export function registerCommands(program: Command): void {
  for (const r of registry) r(program);
}
