/**
 * Opt-in (`TSRAY_REPLY_POLL_US`, µs, default 0 = off, at most 10,000; config.ts): polling for a reply
 * instead of sleeping, for a short window after each message a process writes on a node↔process
 * stream (driver or worker). A process asleep in epoll is woken by its peer's `write()` — an
 * inter-processor wake-up that the writer pays inside the syscall (≈ 38 µs of the driver's ≈ 125 µs
 * per sync call on the 2-core VM) — and is then scheduled back in. One that keeps its event loop
 * turning (epoll with a zero timeout, through `setImmediate`) is not asleep: the write wakes nobody
 * and the reply is read as it lands.
 *
 * The cost is CPU: at most one window of polling per write (none while the loop has other work, which
 * runs as usual between polls), and only while the machine has a CPU for it: while the number of
 * runnable threads (4th field of `/proc/loadavg`, sampled at most every {@link LOAD_SAMPLE_MS}) is at
 * most the number of CPUs. Why it is off by default (BENCHMARKS.md, 2026-12-07 11:00–12:10 UTC): on
 * the 2-core VM, 100 µs doubled sync actor calls in some runs and not in others (that reading of the
 * load flips with short-lived threads) and cost async task throughput 20–30 % (a driver and two task
 * workers on two cores); a policy that holds both is its own work.
 * @module
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { config } from './config.js';
import { logger } from './logger.js';

/** The polling window in ms for a setting in µs (capped at 10 ms); 0 when polling is off. */
export function pollWindowMs(us: number): number {
  return Number.isFinite(us) && us > 0 ? Math.min(us, 10_000) / 1000 : 0;
}

/** How long one reading of the runnable-thread count is used. */
export const LOAD_SAMPLE_MS = 1;

/** Runnable threads on the machine (`running/total`, the 4th field of /proc/loadavg); undefined if unreadable. */
export function runnableThreads(loadavg: string): number | undefined {
  const field = loadavg.split(' ')[3];
  const n = field === undefined ? Number.NaN : Number.parseInt(field, 10);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** True when every CPU has a runnable thread or more (or the count cannot be read: not Linux). */
function machineBusy(): boolean {
  let running: number | undefined;
  try {
    running = runnableThreads(readFileSync('/proc/loadavg', 'latin1'));
  } catch {
    running = undefined;
  }
  return running === undefined || running > availableParallelism();
}

/** Keeps an event loop turning for a window after each write (one chain of immediates at a time). */
export class ReplyPoller {
  private until = 0;
  private active = false;
  private sampledAt = Number.NEGATIVE_INFINITY;
  private crowded = false;
  private readonly tick = (): void => {
    const now = this.now();
    if (now < this.until && !this.busy(now)) this.schedule(this.tick);
    else this.active = false;
  };

  constructor(
    /** Polling window in ms; 0 or less: never poll. */
    private readonly windowMs: number,
    private readonly schedule: (fn: () => void) => unknown = setImmediate,
    private readonly now: () => number = () => performance.now(),
    /** Whether every CPU is taken now (read at most every {@link LOAD_SAMPLE_MS}). */
    private readonly machineIsBusy: () => boolean = machineBusy,
  ) {}

  /** A message was written: poll for its reply until the window after this write ends, if a CPU is free. */
  expectReply(): void {
    if (this.windowMs <= 0) return;
    const now = this.now();
    this.until = now + this.windowMs;
    if (this.active || this.busy(now)) return;
    this.active = true;
    this.schedule(this.tick);
  }

  private busy(now: number): boolean {
    if (now - this.sampledAt >= LOAD_SAMPLE_MS) {
      this.sampledAt = now;
      this.crowded = this.machineIsBusy();
    }
    return this.crowded;
  }

  /** True while the loop is being kept turning. */
  get polling(): boolean {
    return this.active;
  }
}

let processPoller: ReplyPoller | undefined;

/** This process's poller (window from `TSRAY_REPLY_POLL_US`; a bad value is logged once and turns polling off). */
export function replyPoller(): ReplyPoller {
  if (processPoller) return processPoller;
  let us = 0;
  try {
    us = config().replyPollUs;
  } catch (err) {
    logger().warn({ err }, 'reply polling is off');
  }
  return (processPoller = new ReplyPoller(pollWindowMs(us)));
}
