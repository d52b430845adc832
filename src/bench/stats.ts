/** Order statistics of measurements (bench reports, the serve load test). */

/**
 * The p-th percentile (0 ≤ p ≤ 100) of `xs` by linear interpolation between closest ranks (Hyndman and Fan's
 * type 7: numpy's and R's default, Excel's PERCENTILE.INC): rank h = (n − 1)·p/100 into the sorted values, and
 * s[⌊h⌋] + (h − ⌊h⌋)·(s[⌊h⌋+1] − s[⌊h⌋]). p = 50 is the median; NaN for no values.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be in [0, 100], got ${p}`);
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = ((s.length - 1) * p) / 100,
    lo = Math.floor(h);
  return lo + 1 < s.length ? s[lo]! + (h - lo) * (s[lo + 1]! - s[lo]!) : s[lo]!;
}

/** The median: the middle value, or the mean of the two middle values for an even count; NaN for no values. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A mode's speedup over standard from paired repeats: rates[i] ÷ standard[i] (the same repeat, so drift on a shared
 * machine hits both), as the median and the [min, max] range of those ratios; null where a standard rate is missing.
 */
export function pairedSpeedup(
  rates: readonly number[],
  standard: readonly (number | null | undefined)[],
): { median: number; range: [number, number] } | null {
  if (rates.length === 0 || standard.length !== rates.length || !standard.every((x) => typeof x === 'number' && x > 0))
    return null;
  const ratios = rates.map((x, i) => x / standard[i]!);
  return { median: median(ratios), range: [Math.min(...ratios), Math.max(...ratios)] };
}
