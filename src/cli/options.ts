/** Parsers for numeric CLI options that name the option and the value on error; the CLI's backend. */
import { InvalidArgumentError } from 'commander';
import type { Backend } from '../kernels/backend.js';
import { getBackend } from '../kernels/index.js';

export function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got "${v}"`);
    return n;
  };
}

export function floatOption(name: string, min: number, max = Number.POSITIVE_INFINITY): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got "${v}"`);
    return n;
  };
}

/** A parser for an option that takes one of `choices`, naming the option and the choices on error. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]): (v: string) => T {
  return (v: string) => {
    if (!(choices as readonly string[]).includes(v))
      throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** Print the final JSON line of a --json command. */
export function printJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** How the CLI shows a warning: one line on stderr. */
export function warnOnStderr(message: string): void {
  process.stderr.write(`recyclegpt: ${message}\n`);
}

/** The CLI's backend: the process default (RECYCLEGPT_BACKEND / _THREADS / _SIMD), its warnings printed on stderr. */
export function cliBackend(): Backend {
  return getBackend({ onWarning: warnOnStderr });
}
