/**
 * Serializes sends on a ZeroMQ socket (zeromq.js allows one send in flight per socket) without making
 * callers wait: messages queue up and go out in order.
 * @internal
 */
import type { Writable } from 'zeromq';
import { Deque } from './deque.js';
import { logger } from './logger.js';

export class Outbox {
  /** A Deque, not an array: a backed-up socket can hold tens of thousands of messages (see Deque). */
  private readonly queue = new Deque<Buffer[]>();
  private sending = false;
  private closed = false;

  constructor(private readonly socket: Writable) {}

  /** Queue a multipart message. */
  send(frames: Buffer[]): void {
    if (this.closed) return;
    this.queue.push(frames);
    if (!this.sending) void this.pump();
  }

  private async pump(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const msg = this.queue.shift()!;
        try {
          await this.socket.send(msg);
        } catch (err) {
          if (!this.closed) logger().warn({ err }, 'zeromq send failed; message dropped');
        }
      }
    } finally {
      this.sending = false;
    }
  }

  /**
   * Hand everything queued to ZeroMQ synchronously, for `process.on('exit')`: libzmq flushes it while
   * the process exits (sockets linger). Messages that cannot be handed over at once are dropped.
   */
  flushSync(): void {
    while (this.queue.length > 0) {
      const msg = this.queue.shift()!;
      try {
        void this.socket.send(msg).catch(() => undefined);
      } catch {
        return;
      }
    }
  }

  /** Resolves when everything queued so far was handed to ZeroMQ. */
  async drain(): Promise<void> {
    while (this.sending || this.queue.length > 0) await new Promise((r) => setImmediate(r));
  }

  close(): void {
    this.closed = true;
    this.queue.drain();
  }
}
