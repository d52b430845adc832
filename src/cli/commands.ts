/** The list of commands; each file exports `register(program)`. */
import type { Command } from 'commander';
import { register as forward } from './cmd-forward.js';
import { register as generate } from './cmd-generate.js';
import { register as chat } from './cmd-chat.js';
import { register as bench } from './cmd-bench.js';
import { register as train } from './cmd-train.js';
import { register as evaluate } from './cmd-eval.js';
import { register as plot } from './cmd-plot.js';
import { register as exportGguf } from './cmd-export-gguf.js';
import { register as merge } from './cmd-merge.js';
import { register as quantize } from './cmd-quantize.js';
import { register as serve } from './cmd-serve.js';
import { register as draftVocab } from './cmd-draft-vocab.js';
import { register as grow } from './cmd-grow.js';

type Register = (program: Command) => void;

const registry: Register[] = [
  forward,
  generate,
  chat,
  bench,
  train,
  evaluate,
  plot,
  merge,
  exportGguf,
  quantize,
  serve,
  draftVocab,
  grow,
];

export function registerCommands(program: Command): void {
  for (const r of registry) r(program);
}
