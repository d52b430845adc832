/**
 * `recyclegpt chat [--model DIR|NAME] [the generate flags]`: an interactive loop for base models: type a prompt, the
 * model continues it, and again. No chat template and no memory: each line is a prompt of its own. On a terminal
 * the prompt is `> `; an empty line, `/exit` or Ctrl-D ends; Ctrl-C stops a continuation, or ends at the prompt.
 * With stdin from a pipe or a file, each line is a prompt and each continuation is printed on its own line.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import {
  addGenerationFlags,
  loadModelFromFlags,
  optionsFromFlags,
  summaryLine,
  type GenerationFlags,
} from './generation-flags.js';
import { warnOnStderr } from './options.js';

interface ChatFlags extends GenerationFlags {
  stats?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('chat')
    .description('continue prompts typed one per line (base models: no chat template, no memory between lines)');
  addGenerationFlags(cmd)
    .option('--stats', 'print the one-line generation summary on stderr after each continuation')
    .action(async (o: ChatFlags) => {
      const m = await loadModelFromFlags(o);
      const { options, warning } = optionsFromFlags(o, m.generationConfig?.defaults);
      if (warning !== null) warnOnStderr(warning);
      if (!m.tokenizer)
        throw new Error(`${m.name} has no tokenizer: chat needs text prompts (use generate --prompt-ids)`);
      const tty = process.stdin.isTTY === true;
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
      if (tty) process.stderr.write(`${m.name}: type a prompt; an empty line, /exit or Ctrl-D ends\n`);
      let current: AbortController | null = null;
      rl.on('SIGINT', () => {
        if (current) current.abort(new Error('interrupted'));
        else rl.close();
      });
      rl.setPrompt('> ');
      if (tty) rl.prompt();
      for await (const line of rl) {
        if (tty && (line.trim() === '' || line.trim() === '/exit')) break;
        if (line.trim() === '') continue;
        current = new AbortController();
        try {
          const stream = m.stream(line, { ...options, signal: current.signal });
          process.stdout.write(tty ? line : '');
          for await (const tok of stream) process.stdout.write(tok.text);
          process.stdout.write('\n');
          if (o.stats) process.stderr.write(`${summaryLine(stream.stats)}\n`);
        } catch (e) {
          if (!current.signal.aborted) throw e;
          process.stdout.write(' [stopped]\n');
        } finally {
          current = null;
        }
        if (tty) rl.prompt();
      }
      rl.close();
    });
}
