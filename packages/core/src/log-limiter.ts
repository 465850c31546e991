/**
 * A budget for log lines that a peer can trigger (rejected connections, refused registrations): at
 * most `lines` per window; the rest are counted and reported in one summary line when the window
 * ends, so a flood of bad connections cannot flood the log.
 * @internal
 */

/** Options of a {@link LogLimiter}. */
export interface LogLimiterOptions {
  /** Lines allowed per window (default 20). */
  lines?: number;
  /** Window length in ms (default 5000). */
  windowMs?: number;
  /** Called once at the end of a window in which `suppressed` lines were not logged. */
  summary: (suppressed: number, windowMs: number) => void;
}

/** Rate limit for one kind of log line. */
export class LogLimiter {
  private readonly lines: number;
  private readonly windowMs: number;
  private windowStart = 0;
  private used = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LogLimiterOptions) {
    this.lines = opts.lines ?? 20;
    this.windowMs = opts.windowMs ?? 5000;
  }

  /** Run `emit` (which logs one line) if the budget allows; otherwise count the line. */
  log(emit: () => void): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.lines) {
      this.used++;
      emit();
      return;
    }
    this.suppressed++;
    // The summary comes at the window's end even if nothing else is logged after the burst.
    this.timer ??= setTimeout(() => this.flush(), this.windowStart + this.windowMs - now).unref();
  }

  /** Report what was suppressed so far (also called by the window's timer). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.opts.summary(n, this.windowMs);
  }
}
