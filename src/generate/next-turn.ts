/**
 * Yielding to the event loop between generated tokens, so timers, sockets and UI events (an AbortSignal fired from
 * them) run mid-generation, on any runtime. No `node:` import: the browser core uses it.
 * - Node, Bun, Deno: setImmediate (runs after pending I/O callbacks, no clamping).
 * - browsers, workers: a MessageChannel message (a macrotask, so input and rendering get their turn; setTimeout(0)
 *   would be clamped to 4 ms after a few nested calls, which would cap generation at ~250 tokens/s).
 * - anything else: setTimeout(0).
 */

type Yield = () => Promise<void>;

/** One channel whose messages resolve the waiting turns in order. */
export function messageChannelTurn(): Yield {
  const ch = new MessageChannel();
  // Node only (browsers have neither, nor need them): the port holds the process open while a turn is awaited and
  // not when idle, or an abandoned generation would keep it alive
  const port = ch.port1 as MessagePort & { ref?: () => void; unref?: () => void };
  const waiting: Array<() => void> = [];
  port.onmessage = () => {
    waiting.shift()?.();
    if (waiting.length === 0) port.unref?.();
  };
  port.unref?.();
  return () =>
    new Promise<void>((resolve) => {
      if (waiting.length === 0) port.ref?.();
      waiting.push(resolve);
      ch.port2.postMessage(null);
    });
}

function pickTurn(): Yield {
  const g = globalThis as {
    setImmediate?: (cb: () => void) => unknown;
    MessageChannel?: unknown;
    setTimeout: (cb: () => void, ms: number) => unknown;
  };
  const immediate = g.setImmediate;
  if (typeof immediate === 'function') return () => new Promise<void>((resolve) => void immediate(resolve));
  if (typeof g.MessageChannel === 'function') return messageChannelTurn();
  return () => new Promise<void>((resolve) => void g.setTimeout(resolve, 0));
}

let turn: Yield | null = null;

/** Resolves on a later turn of the event loop (chosen on first use, so loading the module starts nothing). */
export function nextTurn(): Promise<void> {
  turn ??= pickTurn();
  return turn();
}
