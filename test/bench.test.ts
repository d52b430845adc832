/**
 * The decode benchmark's report (src/bench/decode.ts): every mode runs, the counters agree with the schedule of
 * each mode, speedups are paired per repeat, and the roofline comes from the probes taken at every repeat.
 * Speeds themselves are not asserted (the machine is shared); `recyclegpt bench` measures them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/kernels/index.js';
import { randomPresetModel } from '../src/bench/random-model.js';
import { formatDecodeBench, runDecodeBench } from '../src/bench/decode.js';
import { BENCH_TEXT_PROMPTS, textPromptsFor } from '../src/bench/prompts.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { packageRoot } from '../src/cli/default-model.js';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

test('decode bench reports every mode with consistent counters, paired speedups, per-repeat bandwidth probes', () => {
  const backend = getBackend();
  const model = randomPresetModel('tiny', backend);
  const probe = backend.name === 'native'; // the ref probe would time a JS loop over 256 MB
  const r = runDecodeBench(model, {
    name: 'preset:tiny',
    tokens: 9,
    repeats: 3,
    promptCount: 2,
    promptLength: 5,
    bandwidth: probe,
  });
  assert.deepEqual(
    r.runs.map((x) => x.mode),
    ['standard', 'recycle', 'verified'],
  );
  const [std, rec, ver] = r.runs as [(typeof r.runs)[0], (typeof r.runs)[0], (typeof r.runs)[0]];
  assert.equal(std.speedup_vs_standard, 1);
  assert.equal(std.full_calls_per_token, 1);
  // Recycle: the prefill makes token 1 and the module token 2, then each full call makes one full + one recycled.
  assert.ok(Math.abs(rec.full_calls_per_token - 5 / 9) < 1e-12, `recycle full calls/token ${rec.full_calls_per_token}`);
  for (const x of r.runs) {
    assert.equal(x.samples.length, 3);
    const ratios = x.samples.map((s, i) => s / std.samples[i]!).sort((a, b) => a - b);
    assert.equal(x.speedup_vs_standard, ratios[1]);
    assert.deepEqual(x.speedup_range, [ratios[0], ratios[2]]);
  }
  assert.deepEqual(std.speedup_range, [1, 1]);
  assert.match(formatDecodeBench(r), /verified\s+\d+\.\d+\s+\d+\.\d\dx \(\d\.\d\d–\d\.\d\d\)/);
  assert.ok(ver.acceptance !== null && ver.acceptance >= 0 && ver.acceptance <= 1);
  assert.equal(rec.acceptance, null);
  if (probe) {
    assert.equal(r.bandwidth_samples_gbs.length, 9); // one probe before every run
    assert.equal(r.bandwidth_gbs, [...r.bandwidth_samples_gbs].sort((a, b) => a - b)[4]);
    for (const x of r.runs)
      assert.ok(x.roofline_fraction !== null && x.roofline_fraction > 0, `${x.mode} roofline fraction`);
  } else {
    assert.equal(r.bandwidth_gbs, null);
    assert.equal(std.roofline_fraction, null);
  }
  assert.ok(r.call_timings && r.call_timings.full_m1_ms > 0 && r.call_timings.module_m2_ms! > 0);
  const text = formatDecodeBench(r);
  assert.match(text, /^f32 +verified /m);
  assert.match(text, /of roofline/);
});

test("bench text prompts: tokenized with the model directory's tokenizer; none without one; at most four", () => {
  const dir = join(packageRoot(), 'models', 'recycle-small');
  const got = textPromptsFor(dir, 2);
  assert.deepEqual(
    got,
    BENCH_TEXT_PROMPTS.slice(0, 2).map((t) => loadTokenizer(dir).encode(t)),
  );
  assert.equal(textPromptsFor(tmpdir(), 1), null);
  assert.throws(() => textPromptsFor(dir, BENCH_TEXT_PROMPTS.length + 1), /text prompts asked for/);
});
