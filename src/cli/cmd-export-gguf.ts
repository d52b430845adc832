/**
 * `recyclegpt export-gguf --model DIR --out FILE [--dtype f32|f16|q8_0] [--json]`: the base model as GGUF v3
 * (llama.cpp's gpt2 / llama architectures, tokenizer metadata from tokenizer.json; io/gguf.ts), the recyclable
 * module beside it as FILE-without-.gguf + ".recycle.safetensors" with the model's config in its metadata.
 * --json prints {file, bytes, tensors, dtype, module_file, kept} on the last line.
 */
import type { Command } from 'commander';
import { exportModelDirGguf, GGUF_EXPORT_DTYPES, type GgufExportDtype } from '../io/gguf.js';
import { resolveModelDir } from './default-model.js';
import { printJson } from './options.js';
import { progressBar, QUIET_FLAG } from './progress.js';

interface ExportCliOptions {
  model?: string;
  out: string;
  dtype: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('export-gguf')
    .description('write the base model as GGUF (llama.cpp) and the module beside it as safetensors')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption('--out <file>', 'the GGUF file to write (the module goes to FILE.recycle.safetensors)')
    .option('--dtype <dtype>', `weights of the GGUF: ${GGUF_EXPORT_DTYPES.join(', ')}`, 'f32')
    .option('--json', 'print one JSON object on the last line')
    .option(...QUIET_FLAG)
    .action((o: ExportCliOptions) => {
      if (!(GGUF_EXPORT_DTYPES as readonly string[]).includes(o.dtype))
        throw new Error(`--dtype: "${o.dtype}" is not one of ${GGUF_EXPORT_DTYPES.join(', ')}`);
      const dir = resolveModelDir(o.model);
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const bar = progressBar('export-gguf', 'tensors', o.quiet);
      const progress = (done: number, total: number): void => bar.update(done, total);
      let r;
      try {
        // with a bar on the terminal, the percentage lines would only repeat it
        const lines = o.quiet || process.stderr.isTTY !== true ? log : undefined;
        r = exportModelDirGguf(dir, o.out, { dtype: o.dtype as GgufExportDtype, log: lines, progress });
      } finally {
        bar.stop();
      }
      for (const k of r.kept) log(`export-gguf: ${k.name} kept as ${k.dtype} (q8_0 needs rows of a multiple of 32)`);
      const mb = (r.bytes / 1e6).toFixed(1);
      const mod = r.moduleFile ? `; module → ${r.moduleFile}` : '; no module';
      if (o.json) {
        log(`wrote ${r.file} (${mb} MB, ${r.tensors} tensors, ${o.dtype})${mod}`);
        printJson({
          file: r.file,
          bytes: r.bytes,
          tensors: r.tensors,
          dtype: o.dtype,
          module_file: r.moduleFile,
          kept: r.kept,
        });
      } else process.stdout.write(`wrote ${r.file} (${mb} MB, ${r.tensors} tensors, ${o.dtype})${mod}\n`);
    });
}
