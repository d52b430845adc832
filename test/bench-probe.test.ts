/**
 * The read-bandwidth probe in place (issue 11, llama-1b int8 peak RSS): the native addon's readBandwidthOf reads an
 * array the caller holds, so the decode bench probes over the model's own weights instead of holding a 256 MB buffer
 * beside them. Its arguments are checked like the other controls', and it allocates nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureReadBandwidth } from '../src/bench/bandwidth.js';
import { allParamSpecs, isProductWeight } from '../src/model/names.js';
import { presetConfig } from '../src/model/presets.js';
import { storageDtype } from '../src/model/convert.js';
import { Weights } from '../src/model/weights.js';
import type { WeightDtype } from '../src/kernels/backend.js';
import { native, nativeSkip } from './helpers/native.js';

test(
  'readBandwidthOf: one time per repeat for arrays of any type, offset and length (a tail < 64 B unread)',
  {
    skip: nativeSkip,
  },
  () => {
    const a = native().addon;
    const buf = new ArrayBuffer((1 << 20) + 7);
    const views: ArrayBufferView[] = [
      new Int8Array(buf),
      new Uint8Array(buf, 3, 1000), // unaligned start, 15 whole blocks + a tail
      new Uint16Array(buf, 2, 333),
      new Float32Array(buf, 4, 1 << 18),
      new Int8Array(buf, 5, 10), // no whole block: nothing read
      new Int8Array(0),
    ];
    for (const v of views) {
      for (const th of [1, 2, 3]) {
        const secs = a.readBandwidthOf(v, th, 4);
        assert.equal(secs.length, 4);
        for (const s of secs) assert.ok(Number.isFinite(s) && s >= 0, `${v.constructor.name}: ${s}`);
      }
    }
    assert.deepEqual(a.readBandwidthOf(new Int8Array(64), 1, 0), []);
  },
);

test(
  'readBandwidthOf: refuses what is not a typed array, bad threads and repeats, naming them',
  {
    skip: nativeSkip,
  },
  () => {
    const a = native().addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    const call = (...args: unknown[]): unknown => a.readBandwidthOf!(...args);
    assert.throws(() => call([1, 2, 3], 1, 1), /^TypeError: readBandwidthOf: argument array must be a typed array/);
    assert.throws(() => call(new ArrayBuffer(64), 1, 1), /argument array must be a typed array/);
    assert.throws(() => call(new Int8Array(64), 0, 1), /^RangeError: readBandwidthOf: threads must be 1\.\.256/);
    assert.throws(() => call(new Int8Array(64), 1, 2 ** 40), /^RangeError: readBandwidthOf: repeats/);
    assert.throws(() => call(new Int8Array(64), 1), /expected 3 arguments/);
  },
);

test(
  'measureReadBandwidth over an array: in place (no buffer of its own), else the probe buffer',
  {
    skip: nativeSkip,
  },
  () => {
    const be = native();
    const bytes = 64 * 2 ** 20;
    const held = new Int8Array(bytes + 100).fill(1); // resident before the probe
    const rss0 = process.memoryUsage().rss;
    const bw = measureReadBandwidth(be, bytes, 2, 'best', held);
    const grew = process.memoryUsage().rss - rss0;
    assert.ok(bw.gbs > 0 && Number.isFinite(bw.gbs));
    assert.match(bw.method, /in place/);
    assert.ok(grew < 32 * 2 ** 20, `the in-place probe grew the resident set by ${grew >> 20} MB`);
    // an array smaller than the probe: the probe's own buffer, as before
    const own = measureReadBandwidth(be, 4 * 2 ** 20, 2, 'best', new Int8Array(1024));
    assert.match(own.method, /^native readBandwidth, 4 MB/);
    be.addon.readBandwidth(0, 1, 0);
  },
);

test('Weights.storage: every handle is a view of one of its allocations, which add up to bytes', () => {
  const config = presetConfig('tiny-llama');
  const specs = allParamSpecs(config);
  for (const dtype of ['f32', 'f16', 'int8'] as const) {
    const dtypeOf = (s: (typeof specs)[number]): WeightDtype =>
      isProductWeight(s, config) ? storageDtype(dtype, s) : 'f32';
    const w = new Weights(specs, undefined, dtypeOf);
    assert.equal(
      w.storage.reduce((n, a) => n + a.byteLength, 0),
      w.bytes,
    );
    for (const s of specs) {
      const h = w.weight(s.name);
      const arrays = h.dtype === 'q8_0' ? [h.data, h.scales] : [h.data];
      for (const arr of arrays)
        assert.ok(
          w.storage.some((st) => st.buffer === arr.buffer),
          `${dtype} ${s.name}`,
        );
    }
  }
});
