/**
 * `recyclegpt train --data SPEC --out DIR [--preset NAME | --config FILE] [--steps N] [--base DIR --freeze-base]
 * [--resume] …`: train a model with its recyclable module (or only the module on a frozen base), with a progress
 * bar on stderr, train_log.jsonl and atomic checkpoints in DIR. See src/train/trainer.ts.
 */
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import type { EvalRow, TrainRow } from '../train/log.js';
import { MAX_RECYCLE_DEPTH } from '../model/module-chain.js';
import { LIMITS, type TrainOptions } from '../train/options.js';
import { train, type GivenOptions, type StartInfo } from '../train/trainer.js';
import { cliBackend, floatOption, intOption, printJson } from './options.js';

interface TrainFlags extends Partial<Omit<TrainOptions, 'out'>> {
  out: string;
  resume?: boolean;
  extendSchedule?: boolean;
  json?: boolean;
  progress: boolean;
}

/** `--recycle-depth-weights 1,0.5,0.25`: finite numbers ≥ 0. */
function depthWeightsOption(value: string): number[] {
  const ws = value.split(',').map((v) => Number(v.trim()));
  if (ws.length === 0 || ws.some((w, i) => !Number.isFinite(w) || w < 0 || value.split(',')[i]!.trim() === ''))
    throw new InvalidArgumentError(`--recycle-depth-weights: "${value}" is not a comma-separated list of numbers ≥ 0`);
  return ws;
}

const fmt = (v: number | null | undefined, digits = 3): string =>
  v === null || v === undefined ? '-' : v.toFixed(digits);

/** Progress: a cli-progress bar on a terminal; otherwise one plain line per step (a log file, a pipe) and per eval. */
class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private val = '-';
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly enabled: boolean) {}

  start(info: StartInfo): void {
    if (!this.enabled) return;
    const o = info.options;
    for (const m of info.messages) process.stderr.write(`${m}\n`);
    process.stderr.write(
      `${info.config.arch}, ${info.config.nLayers} layers + ${info.config.recycle?.numLayers ?? 0}-block module, ` +
        `${(info.totalParams / 1e6).toFixed(2)}M parameters (${(info.trainableParams / 1e6).toFixed(2)}M trained); ` +
        `${info.trainTokens} training / ${info.valTokens} held-out tokens; ` +
        `batch ${o.batchSize}×${o.seqLen}×${o.gradAccum}; ` +
        `${info.backend} backend, ${info.threads} thread(s)\n`,
    );
    if (!this.tty) return;
    this.bar = new cliProgress.SingleBar(
      {
        format:
          'train |{bar}| {value}/{total} | loss {loss} (lm {lm}, recycle {rec}) | ' +
          'val {val} | {tps} tok/s | ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(o.steps, info.startStep, { loss: '-', lm: '-', rec: '-', val: '-', tps: '-' });
  }

  step(row: TrainRow, total: number): void {
    if (this.enabled && !this.tty) {
      process.stderr.write(
        `step ${row.step}/${total}: loss ${fmt(row.loss)} ` +
          `(lm ${fmt(row.lm_loss)}, recycle ${fmt(row.recycle_loss)}` +
          `${row.recycle_loss_depths ? ` [by depth ${row.recycle_loss_depths.map((l) => fmt(l)).join(' ')}]` : ''}), ` +
          `lr ${row.lr.toExponential(2)}, grad norm ${fmt(row.grad_norm)}, ${Math.round(row.tokens_per_s)} tok/s, ` +
          `${row.elapsed_s.toFixed(1)} s\n`,
      );
    }
    this.bar?.update(row.step, {
      loss: fmt(row.loss),
      lm: fmt(row.lm_loss),
      rec: fmt(row.recycle_loss),
      val: this.val,
      tps: Math.round(row.tokens_per_s),
    });
  }

  eval(row: EvalRow): void {
    this.val = `${fmt(row.val_loss_next)}/${fmt(row.val_loss_recycle)}`;
    this.bar?.update({ val: this.val });
    if (this.enabled && !this.bar) {
      process.stderr.write(
        `step ${row.step}: val loss next ${fmt(row.val_loss_next)}, recycle ${fmt(row.val_loss_recycle)}, ` +
          `agreement ${fmt(row.agreement_top1)}` +
          `${row.depths ? ` [by depth ${row.depths.map((d) => fmt(d.agreement_top1)).join(' ')}]` : ''}\n`,
      );
    }
  }

  checkpoint(step: number, dir: string): void {
    if (this.enabled && !this.tty) process.stderr.write(`step ${step}: checkpoint written to ${dir}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

export function register(program: Command): void {
  program
    .command('train')
    .description('train a model and its recyclable module (or only the module, on a frozen base)')
    .option('--data <spec>', 'text file, folder of .txt files, "brown" or "nlp-corpus" (optional with --resume)')
    .requiredOption('--out <dir>', 'model directory to write (checkpoints, train_log.jsonl)')
    .option('--preset <name>', 'model shape: tiny, tiny-llama, small, gpt2-small (default tiny)')
    .option('--config <file>', 'HF-style config.json giving the model shape')
    .option('--base <dir>', 'start from this HF GPT-2/Llama model directory (a module is added if it has none)')
    .option(
      '--freeze-base',
      'train only the module (recycle.*), the base in inference mode; --out gets the module alone (refers to the base)',
    )
    .option(
      '--cache-hidden <file>',
      "--freeze-base: compute the base's hidden states once into FILE (f16, fingerprinted) and train from it",
    )
    .option('--resume', 'continue from the checkpoint in --out, on the same learning-rate schedule')
    .option(
      '--extend-schedule',
      'with --resume and a larger --steps: restretch the cosine schedule over the new --steps ' +
        '(without it, steps past the schedule run at the floor --min-lr)',
    )
    .option('--steps <n>', 'optimizer steps (default 1000)', intOption('--steps', 1, LIMITS.steps))
    .option('--batch-size <n>', 'sequences per micro-batch (default 8)', intOption('--batch-size', 1, LIMITS.batchSize))
    .option(
      '--seq-len <n>',
      'tokens per sequence (default min(context, 256))',
      intOption('--seq-len', 2, LIMITS.seqLen),
    )
    .option('--grad-accum <n>', 'micro-batches per step (default 1)', intOption('--grad-accum', 1, LIMITS.gradAccum))
    .option('--lr <x>', 'peak learning rate (default 1e-3)', floatOption('--lr', 0))
    .option('--min-lr <x>', 'cosine floor (default lr/10)', floatOption('--min-lr', 0))
    .option('--warmup <n>', 'linear warm-up steps (default min(100, steps/10))', intOption('--warmup', 0))
    .option('--weight-decay <x>', 'AdamW weight decay (default 0.1)', floatOption('--weight-decay', 0))
    .option('--grad-clip <x>', 'clip the global gradient norm (default 1)', floatOption('--grad-clip', 0))
    .option('--lambda <x>', "weight λ of the recycle loss (default: the config's, 1)", floatOption('--lambda', 0))
    .option(
      '--recycle-depth <k>',
      'k-step recycle loss: unroll the module on its own states over k depths, for chained drafts (default 1)',
      intOption('--recycle-depth', 1, MAX_RECYCLE_DEPTH),
    )
    .option(
      '--recycle-depth-weights <list>',
      'weights of depths 1..k, comma-separated (default 1,0.5,0.25,…)',
      depthWeightsOption,
    )
    .option(
      '--recycle-distill <alpha>',
      "distil the module toward the base: each depth's target is (1 − α)·the next token + α·the base's " +
        'distribution for it (default 0: the next token alone, the paper; the logged recycle loss is then the ' +
        "mixed target's, evaluation still reports the next token's)",
      floatOption('--recycle-distill', 0, 1),
    )
    .option(
      '--recycle-reverse-kl <beta>',
      "add β·KL(module ‖ base) to each depth's recycle loss: mode-seeking, so the module's samples fall where the " +
        "base's probability is (the lossy recycle mode's text); default 0",
      floatOption('--recycle-reverse-kl', 0, 100),
    )
    .option(
      '--recycle-layers <n>',
      'module blocks when adding a module (default ceil(L/4))',
      intOption('--recycle-layers', 1, LIMITS.recycleLayers),
    )
    .option(
      '--eval-every <n>',
      'evaluate both heads every N steps, 0: only at the end (default 100)',
      intOption('--eval-every', 0, LIMITS.evalEvery),
    )
    .option(
      '--eval-batches <n>',
      'held-out batches per evaluation (default 20)',
      intOption('--eval-batches', 1, LIMITS.evalBatches),
    )
    .option(
      '--ckpt-every <n>',
      'checkpoint every N steps (default 200)',
      intOption('--ckpt-every', 1, LIMITS.ckptEvery),
    )
    .option(
      '--ckpt-minutes <x>',
      'also checkpoint when X minutes passed since the last one',
      floatOption('--ckpt-minutes', 0),
    )
    .option('--eval-first', 'evaluate both heads before step 1 too')
    .option('--seed <n>', 'seed for init and batch sampling (default 1337)', intOption('--seed', 0))
    .option(
      '--threads <n>',
      'kernel threads (default: RECYCLEGPT_THREADS or all cores)',
      intOption('--threads', 1, LIMITS.threads),
    )
    .option(
      '--vocab-size <n>',
      "vocabulary of the trained BPE (default: the preset's)",
      intOption('--vocab-size', 257, LIMITS.vocabSize),
    )
    .option('--tokenizer <dir|gpt2>', 'use this tokenizer instead of training a BPE')
    .option('--no-progress', 'no progress output on stderr')
    .option('--json', 'print one JSON summary object on the last line of stdout')
    .action((flags: TrainFlags) => {
      const { resume, extendSchedule, json, progress: showProgress, ...rest } = flags;
      const given: GivenOptions = rest;
      const progress = new Progress(showProgress);
      try {
        const summary = train(
          given,
          { resume: resume === true, extendSchedule: extendSchedule === true },
          {
            backend: cliBackend(),
            onStart: (i) => progress.start(i),
            onStep: (r, total) => progress.step(r, total),
            onCheckpoint: (step, dir) => progress.checkpoint(step, dir),
            onEval: (r) => progress.eval(r),
          },
        );
        progress.stop();
        const e = summary.lastEval;
        const result = {
          out: summary.out,
          steps: summary.step,
          loss: summary.lastTrain?.loss ?? null,
          val_loss_next: e?.val_loss_next ?? null,
          val_loss_recycle: e?.val_loss_recycle ?? null,
          ppl_next: e?.ppl_next ?? null,
          ppl_recycle: e?.ppl_recycle ?? null,
          agreement_top1: e?.agreement_top1 ?? null,
        };
        if (json) printJson(result);
        else
          process.stdout.write(
            `trained ${result.steps} steps → ${result.out}: val ppl next ${fmt(result.ppl_next, 2)}, ` +
              `recycle ${fmt(result.ppl_recycle, 2)}, agreement ${fmt(result.agreement_top1)}\n`,
          );
      } finally {
        progress.stop();
      }
    });
}
