/**
 * The native build's stamp (scripts/build-native.mjs --print-digest, build-stamp.mjs): the digest that decides
 * whether `npm install` may skip the addon build covers the compiler and its flags, so a different compiler, one
 * upgraded in place, or different CXXFLAGS rebuild; the same environment gives the same digest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function nativeDigest(env: Record<string, string | undefined>): string {
  const clean = { ...process.env };
  for (const k of ['CC', 'CXX', 'LINK', 'CPPFLAGS', 'CFLAGS', 'CXXFLAGS', 'LDFLAGS']) delete clean[k];
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--print-digest'], {
    encoding: 'utf8',
    env: { ...clean, ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  const digest = r.stdout.trim();
  assert.match(digest, /^[0-9a-f]{64}$/, `build-native.mjs --print-digest printed ${JSON.stringify(r.stdout)}`);
  return digest;
}

test(
  'native build stamp: the digest covers CXX, CXXFLAGS and the compiler version',
  { skip: process.platform === 'win32' },
  () => {
    const base = nativeDigest({});
    assert.equal(nativeDigest({}), base, 'same environment, same digest');
    assert.notEqual(nativeDigest({ CXXFLAGS: '-O2' }), base, 'CXXFLAGS changes the digest');
    assert.notEqual(nativeDigest({ CXX: 'clang++' }), base, 'CXX changes the digest');
    // the same compiler name, upgraded in place: two fake g++ / clang++ on the PATH that print different versions
    const tmp = mkdtempSync(join(tmpdir(), 'rg-stamp-'));
    try {
      const digests = ['12.2.0', '13.1.0'].map((v) => {
        const dir = join(tmp, v);
        mkdirSync(dir);
        for (const name of ['g++', 'clang++']) {
          writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} (fake) ${v}"\n`);
          chmodSync(join(dir, name), 0o755);
        }
        return nativeDigest({ PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` });
      });
      assert.notEqual(digests[0], digests[1], 'the compiler --version changes the digest');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
