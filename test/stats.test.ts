/** src/bench/stats.ts: percentiles by linear interpolation (type 7), the median. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, percentile } from '../src/bench/stats.js';

test('percentile: linear interpolation between closest ranks (numpy default)', () => {
  assert.equal(percentile([4, 1, 3, 2], 50), 2.5, 'p50 of an even count is the mean of the middle two');
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 0), 1);
  assert.equal(percentile([1, 2, 3, 4], 100), 4);
  assert.equal(percentile([1, 2, 3, 4], 25), 1.75);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.ok(Math.abs(percentile(hundred, 99) - 99.01) < 1e-9, 'p99 of 1..100 is 99.01');
  assert.equal(percentile([10, 20], 99), 19.9, 'p99 of two values is not simply the larger one');
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile([1], 101), RangeError);
});

test('median: middle value, mean of the middle two for an even count', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  for (const xs of [[1, 9, 4], [2, 8, 6, 3], [1]]) assert.equal(median(xs), percentile(xs, 50));
});
