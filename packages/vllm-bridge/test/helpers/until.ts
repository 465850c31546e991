// Waiting in tests: poll an observable condition until it holds (docs/testing.md: no sleeps as waits).
// The same helper as packages/core/test/helpers/until.ts (test helpers are not shared across packages).

/** Options of {@link until}. */
export interface UntilOptions {
  /** Give up after this many ms (a deadline for a hung feature, never a measure of speed). Default 30 s. */
  timeoutMs?: number;
  /** Collect garbage between polls: refs dropped by the test are released at the next GC. */
  gc?: boolean;
}

const POLL_MS = 20;

/**
 * Poll `cond` every 20 ms until it returns a truthy value, and return that value; throw naming `what`
 * when the deadline passes (`what` may be a function, to describe the state at that moment). The loop ends on the condition, so a slow machine only makes it poll longer.
 */
export async function until<T>(
  cond: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string | (() => string),
  opts: UntilOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const collect = opts.gc ? (globalThis as { gc?: () => void }).gc : undefined;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    collect?.();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
