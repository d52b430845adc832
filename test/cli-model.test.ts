/** `--model` resolution (src/cli/default-model.ts): a directory, a shipped model's name, or the default. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DEFAULT_MODEL_NAME, packageRoot, resolveModelDir, shippedModelNames } from '../src/cli/default-model.js';

test('--model takes a directory, a shipped model name or nothing (the default); anything else is a clear error', () => {
  const models = join(packageRoot(), 'models');
  assert.ok(shippedModelNames().includes(DEFAULT_MODEL_NAME));
  assert.ok(shippedModelNames().includes('recycle-deep'));
  assert.ok(shippedModelNames().includes('recycle-medium'));
  assert.ok(shippedModelNames().includes('recycle-small'), 'the former default stays a named model');
  assert.equal(DEFAULT_MODEL_NAME, 'recycle-large');
  assert.equal(resolveModelDir(undefined), join(models, DEFAULT_MODEL_NAME));
  assert.equal(resolveModelDir('recycle-deep'), join(models, 'recycle-deep'));
  assert.equal(resolveModelDir(join(models, 'recycle-deep')), join(models, 'recycle-deep'));
  assert.throws(
    () => resolveModelDir('no-such-model'),
    /--model no-such-model: no such directory, and no shipped model of that name \(shipped: .*recycle-deep.*\)/,
  );
  assert.throws(() => resolveModelDir('runs/missing'), /^Error: --model runs\/missing: no such directory$/);
});
