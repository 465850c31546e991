/**
 * How a worker's or client driver's {@link NodeChannel} moves messages to and from its node: a ZeroMQ
 * DEALER (client drivers, Python-compatible, tcp or ipc), or the node's unix stream socket (the
 * TypeScript workers a node starts, `TSRAY_NODE_STREAM`; stream-frames.ts says why).
 * @internal
 */
import { createConnection, type Socket } from 'node:net';
import * as zmq from 'zeromq';
import { curveClientOptions, onCurveRefused } from '../curve.js';
import { Outbox } from '../outbox.js';
import { StreamMessageReader, type StreamLimits, streamHello, writeStreamMessage } from '../stream-frames.js';

/** One connection to the node. */
export interface ChannelTransport {
  /** Queue one message (its frames, envelope first); sends keep their order. */
  send(frames: Buffer[]): void;
  /** Hand each message from the node to `onFrames` until the connection closes (resolves) or fails (rejects). */
  serve(onFrames: (frames: Buffer[]) => void): Promise<void>;
  /** Resolves once everything queued left this process's queues. */
  drain(): Promise<void>;
  /** Hand everything queued over synchronously (process exit). */
  flushSync(): void;
  /** Stop sending and close. */
  close(): void;
}

/** A ZeroMQ DEALER to the node's ROUTER. */
export class ZmqTransport implements ChannelTransport {
  private readonly socket: zmq.Dealer;
  private readonly outbox: Outbox;

  /** `token` makes a tcp connection a CURVE client of its cluster (curve.ts); `onRefused` hears a refused handshake. */
  constructor(routingId: string, address: string, token: string | undefined, onRefused: (detail: string) => void) {
    this.socket = new zmq.Dealer({ routingId, sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 1000, ...curveClientOptions(address, token) });
    if (address.startsWith('tcp://')) onCurveRefused(this.socket, onRefused);
    this.socket.connect(address);
    this.outbox = new Outbox(this.socket);
  }

  send(frames: Buffer[]): void {
    this.outbox.send(frames);
  }

  async serve(onFrames: (frames: Buffer[]) => void): Promise<void> {
    for await (const frames of this.socket) onFrames(frames);
  }

  drain(): Promise<void> {
    return this.outbox.drain();
  }

  flushSync(): void {
    this.outbox.flushSync();
  }

  close(): void {
    this.outbox.close();
    this.socket.close();
  }
}

/** The node is trusted by the process it started: its messages are bounded only by the frame format. */
const FROM_NODE: StreamLimits = { maxFrames: 0xffff_ffff, maxFrameBytes: 0xffff_ffff, maxMessageBytes: Number.MAX_SAFE_INTEGER };

/** A connection to the node's unix stream socket; the hello names this process's routing id. */
export class StreamTransport implements ChannelTransport {
  private readonly socket: Socket;
  private closed = false;

  constructor(routingId: string, path: string) {
    this.socket = createConnection(path);
    this.socket.write(streamHello(routingId));
  }

  send(frames: Buffer[]): void {
    if (!this.closed) writeStreamMessage(this.socket, frames);
  }

  serve(onFrames: (frames: Buffer[]) => void): Promise<void> {
    const reader = new StreamMessageReader({ onMessage: onFrames }, () => FROM_NODE, false);
    return new Promise((resolve, reject) => {
      this.socket.on('data', (chunk: Buffer) => reader.push(chunk));
      this.socket.once('error', (err) => (this.closed ? resolve() : reject(err)));
      this.socket.once('close', () => resolve());
    });
  }

  drain(): Promise<void> {
    if (this.closed || this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(Buffer.alloc(0), () => resolve()));
  }

  flushSync(): void {
    // Writes to a unix socket are tried at once (libuv); what the kernel did not take is lost at exit,
    // as with a ZeroMQ socket whose linger ran out.
  }

  close(): void {
    this.closed = true;
    this.socket.end();
  }
}
