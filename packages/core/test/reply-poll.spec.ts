/**
 * ReplyPoller with a manual clock and scheduler: after a write it keeps one chain of immediates going
 * until the window after the latest write ends, then stops; a window of 0 never polls; the
 * environment's value is read as µs with a default, a cap and "off".
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { LOAD_SAMPLE_MS, pollWindowMs, ReplyPoller, runnableThreads } from '../src/reply-poll.js';

function manual(windowMs: number) {
  let now = 0;
  const queue: (() => void)[] = [];
  const load = { busy: false, reads: 0 };
  const poller = new ReplyPoller(
    windowMs,
    (fn) => queue.push(fn),
    () => now,
    () => {
      load.reads++;
      return load.busy;
    },
  );
  /** Run the queued immediates once (one event-loop turn), `ms` later. */
  const turn = (ms: number) => {
    now += ms;
    const due = queue.splice(0);
    for (const fn of due) fn();
    return due.length;
  };
  return { poller, queue, turn, load };
}

describe('ReplyPoller', () => {
  it('keeps the loop turning until the window after the latest write ends, with one chain of immediates', () => {
    const { poller, queue, turn } = manual(0.1);
    poller.expectReply();
    expect(poller.polling).toBe(true);
    expect(queue).toHaveLength(1);
    expect(turn(0.05)).toBe(1);
    poller.expectReply(); // a second write while polling extends the window, no second chain
    expect(queue).toHaveLength(1);
    expect(turn(0.08)).toBe(1); // 0.13: inside the window of the second write (until 0.15)
    expect(poller.polling).toBe(true);
    expect(turn(0.03)).toBe(1); // 0.16: past it, the chain ends
    expect(queue).toHaveLength(0);
    expect(poller.polling).toBe(false);
    poller.expectReply(); // and starts again with the next write
    expect(queue).toHaveLength(1);
  });

  it('does not poll while every CPU is taken, stops when they become so, and reads the load at most once a sample period', () => {
    const { poller, queue, turn, load } = manual(10);
    load.busy = true;
    poller.expectReply();
    expect(poller.polling).toBe(false);
    expect(queue).toHaveLength(0);
    turn(LOAD_SAMPLE_MS); // a new sample period: the CPUs are free again
    load.busy = false;
    poller.expectReply();
    expect(poller.polling).toBe(true);
    const reads = load.reads;
    turn(LOAD_SAMPLE_MS / 4);
    turn(LOAD_SAMPLE_MS / 4);
    expect(load.reads).toBe(reads); // within one period: the last reading is used
    load.busy = true;
    turn(LOAD_SAMPLE_MS); // next period: busy, the chain ends inside the window
    expect(poller.polling).toBe(false);
    expect(queue).toHaveLength(0);
  });

  it('never polls with a window of 0', () => {
    const { poller, queue } = manual(0);
    poller.expectReply();
    expect(poller.polling).toBe(false);
    expect(queue).toHaveLength(0);
  });

  it('takes the window in µs, capped at 10 ms; 0 is off; TSRAY_REPLY_POLL_US defaults to off', () => {
    expect(pollWindowMs(250)).toBe(0.25);
    expect(pollWindowMs(1e9)).toBe(10);
    expect(pollWindowMs(0)).toBe(0);
    expect(parseConfig({}).replyPollUs).toBe(0);
    expect(parseConfig({ TSRAY_REPLY_POLL_US: '40' }).replyPollUs).toBe(40);
    expect(() => parseConfig({ TSRAY_REPLY_POLL_US: 'fast' }).replyPollUs).toThrow(ConfigError);
  });

  it('reads the runnable threads from /proc/loadavg, and nothing from a line it does not know', () => {
    expect(runnableThreads('1.72 2.15 1.92 2/109 23304\n')).toBe(2);
    expect(runnableThreads('0.00 0.01 0.05 17/1203 99')).toBe(17);
    expect(runnableThreads('1.72 2.15 1.92')).toBeUndefined();
    expect(runnableThreads('')).toBeUndefined();
  });
});
