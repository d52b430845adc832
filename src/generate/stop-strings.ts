/**
 * Stop strings over streamed text: text that might be the start of a stop string is held back until the next
 * chunk decides; when a stop string appears, the text before it is released and generation stops.
 */
export class StopStringFilter {
  private held = '';
  private stoppedFlag = false;

  constructor(readonly stops: readonly string[]) {}

  get stopped(): boolean {
    return this.stoppedFlag;
  }

  /** Feed a chunk; returns the text that can be shown now. */
  push(chunk: string): string {
    if (this.stoppedFlag) return '';
    const buf = this.held + chunk;
    let cut = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stoppedFlag = true;
      this.held = '';
      return buf.slice(0, cut);
    }
    const keep = this.partialSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** The text still held back (generation ended without a stop string). */
  flush(): string {
    const rest = this.stoppedFlag ? '' : this.held;
    this.held = '';
    return rest;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
