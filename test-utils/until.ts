// Waiting in tests: poll an observable condition until it holds (docs/testing.md: no sleeps as waits).
// The one copy every vitest project and bench/ imports by relative path: this folder is no package, so
// no published package depends on it (it is not in any package's `files`, nor in their dependencies).

/** Options of {@link until}. */
export interface UntilOptions {
  /** Give up after this many ms (a deadline for a hung feature, never a measure of speed). Default 30 s. */
  timeoutMs?: number;
  /** Collect garbage between polls: refs dropped by the test are released at the next GC. */
  gc?: boolean;
}

/** What a condition returns while it does not hold yet. */
export type NotYet = undefined | null | false | 0 | '';

const POLL_MS = 20;

/**
 * Poll `cond` every 20 ms until it returns a truthy value, and return that value; throw naming `what`
 * when the deadline passes (`what` may be a function, to describe the state at that moment). The loop
 * ends on the condition, so a slow machine only makes it poll longer.
 *
 * Two call forms: `until(cond, what, { timeoutMs, gc })` (deadline 30 s unless given), and
 * `until(cond, timeoutMs, what)`, the form the cluster, autoscaler and bench harnesses grew up with.
 */
export function until<T>(cond: () => T | NotYet | Promise<T | NotYet>, what: string | (() => string), opts?: UntilOptions): Promise<T>;
export function until<T>(cond: () => T | NotYet | Promise<T | NotYet>, timeoutMs: number, what: string): Promise<T>;
export async function until<T>(
  cond: () => T | NotYet | Promise<T | NotYet>,
  whatOrTimeout: string | (() => string) | number,
  optsOrWhat?: UntilOptions | string,
): Promise<T> {
  const [what, opts] =
    typeof whatOrTimeout === 'number' ? [optsOrWhat as string, { timeoutMs: whatOrTimeout }] : [whatOrTimeout, (optsOrWhat ?? {}) as UntilOptions];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const collect = opts.gc ? (globalThis as { gc?: () => void }).gc : undefined;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    collect?.();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
