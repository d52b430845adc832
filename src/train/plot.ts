/**
 * Loss curves of a training log as a small standalone SVG: train loss of both heads (light, with a moving
 * average on top) and held-out loss of both heads (markers: filled circles for next, open diamonds for recycle, so
 * equal values show both), against the step. An evaluation at step 0 (--eval-first) is a marker only: a line from
 * it to the first trained evaluation would cut across the other curves. A resume (a new process: elapsed_s starts
 * again) is a dashed vertical line.
 */
import type { LogRow } from './log.js';

interface Series {
  label: string;
  color: string;
  points: [number, number][];
  kind: 'raw' | 'line' | 'markers';
  /** Marker shape (kind 'markers'). */
  shape?: 'dot' | 'diamond';
}

const W = 760,
  H = 440,
  M = { left: 64, right: 200, top: 36, bottom: 48 };

/** Moving average over a trailing window (the raw per-step loss is noisy). */
function smooth(points: [number, number][], window: number): [number, number][] {
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i]![1];
    if (i >= window) sum -= points[i - window]![1];
    out.push([points[i]![0], sum / Math.min(i + 1, window)]);
  }
  return out;
}

/** About `n` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / n,
    mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A held-out point: a filled dot, or an open diamond drawn over it (both stay visible when they coincide). */
function marker(s: Series, x: number, y: number): string {
  const f = (v: number): string => v.toFixed(1);
  if (s.shape === 'diamond') {
    const r = 5;
    return (
      `<path d="M${f(x)},${f(y - r)} L${f(x + r)},${f(y)} L${f(x)},${f(y + r)} L${f(x - r)},${f(y)} Z" ` +
      `fill="none" stroke="${s.color}" stroke-width="1.5"/>`
    );
  }
  return `<circle cx="${f(x)}" cy="${f(y)}" r="3" fill="${s.color}"/>`;
}

/** Steps a run was resumed from: where a train row's elapsed_s (seconds since its process started) goes down. */
export function resumeSteps(trainRows: readonly LogRow[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < trainRows.length; i++) {
    const a = trainRows[i - 1]!,
      b = trainRows[i]!;
    if (a.type === 'train' && b.type === 'train' && b.elapsed_s < a.elapsed_s) out.push(b.step - 1);
  }
  return out;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lossCurvesSvg(rows: readonly LogRow[], title = 'RecycleGPT training'): string {
  const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);
  const trainRows = rows.filter((r) => r.type === 'train');
  const evalRows = rows.filter((r) => r.type === 'eval');
  const lm = trainRows.filter((r) => finite(r.lm_loss)).map((r): [number, number] => [r.step, r.lm_loss!]);
  const rec = trainRows.filter((r) => finite(r.recycle_loss)).map((r): [number, number] => [r.step, r.recycle_loss!]);
  const window = Math.max(1, Math.round(trainRows.length / 50));
  const series: Series[] = [
    { label: 'train next (raw)', color: '#9ecae1', points: lm, kind: 'raw' },
    { label: 'train recycle (raw)', color: '#fdd0a2', points: rec, kind: 'raw' },
    { label: `train next (avg ${window})`, color: '#3182bd', points: smooth(lm, window), kind: 'line' },
    { label: `train recycle (avg ${window})`, color: '#e6550d', points: smooth(rec, window), kind: 'line' },
    {
      label: 'val next',
      color: '#08306b',
      points: evalRows.filter((r) => finite(r.val_loss_next)).map((r) => [r.step, r.val_loss_next]),
      kind: 'markers',
      shape: 'dot',
    },
    {
      label: 'val recycle',
      color: '#7f2704',
      points: evalRows.filter((r) => finite(r.val_loss_recycle)).map((r) => [r.step, r.val_loss_recycle!]),
      kind: 'markers',
      shape: 'diamond',
    },
  ].filter((s): s is Series => s.points.length > 0 && (s.kind !== 'raw' || window > 1)) as Series[];
  const all = series.flatMap((s) => s.points);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no loss values in the log</text></svg>`);
    return parts.join('\n');
  }
  const xs = all.map((p) => p[0]),
    ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) === Math.min(...xs) ? Math.min(...xs) + 1 : Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-6) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pw = W - M.left - M.right,
    ph = H - M.top - M.bottom;
  const sx = (x: number): number => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => M.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const f = (v: number): string => v.toFixed(1);
  for (const t of ticks(y0, y1, 6)) {
    parts.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  for (const t of ticks(x0, x1, 8)) {
    parts.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="#333"/>`,
      `<text x="${f(sx(t))}" y="${M.top + ph + 18}" text-anchor="middle">${t}</text>`,
    );
  }
  parts.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">step</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`,
  );
  for (const step of resumeSteps(trainRows)) {
    const x = f(sx(step));
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#888" stroke-dasharray="2 3"/>`,
      `<text x="${f(sx(step) + 3)}" y="${M.top + 12}" fill="#666" font-size="10">resumed at ${step}</text>`,
    );
  }
  for (const s of series) {
    if (s.kind === 'markers') {
      const trained = s.points.filter((p) => p[0] > 0);
      if (trained.length > 1) {
        const path = trained.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(sx(p[0]))},${f(sy(p[1]))}`).join(' ');
        parts.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1" stroke-dasharray="4 3"/>`);
      }
      for (const p of s.points) parts.push(marker(s, sx(p[0]), sy(p[1])));
    } else {
      const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(sx(p[0]))},${f(sy(p[1]))}`).join(' ');
      parts.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="${s.kind === 'raw' ? 1 : 2}"/>`);
    }
  }
  series.forEach((s, i) => {
    const y = M.top + 10 + i * 20,
      x = M.left + pw + 16;
    parts.push(
      s.kind === 'markers'
        ? marker(s, x + 10, y)
        : `<line x1="${x}" x2="${x + 20}" y1="${y}" y2="${y}" ` +
            `stroke="${s.color}" stroke-width="${s.kind === 'raw' ? 1 : 2}"/>`,
      `<text x="${x + 28}" y="${y + 4}">${esc(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
