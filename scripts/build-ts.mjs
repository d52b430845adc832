// `prepare`: compiles src/ to dist/ (tsc -p tsconfig.build.json), skipped when dist/ was compiled from the same
// sources, tsconfigs and TypeScript version (build-stamp.mjs). `npm run build` always compiles.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesUnder, inputsDigest, upToDate, writeStamp } from './build-stamp.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  // an install without devDependencies (a published package ships dist/ already)
  console.warn('recyclegpt: typescript is not installed; dist/ was not compiled.');
  process.exit(0);
}
const { version } = require('typescript/package.json');
const inputs = [
  join(root, 'tsconfig.json'),
  join(root, 'tsconfig.build.json'),
  ...filesUnder(join(root, 'src'), (n) => n.endsWith('.ts')),
];
const digest = inputsDigest(root, inputs, { typescript: version });
const stamp = join(root, 'dist', '.build-stamp.json');
if (upToDate(stamp, digest, [join(root, 'dist', 'cli', 'main.js'), join(root, 'dist', 'index.js')])) process.exit(0);
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);
writeStamp(stamp, digest);
