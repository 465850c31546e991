/**
 * The node's unix stream socket for the workers it starts (the fast lane beside its ZeroMQ
 * ROUTER; framing in stream-frames.ts). A connection names itself in its hello (its routing id, as a
 * DEALER does) and its messages then go to the same receive path as the ROUTER's, so registration,
 * the token proof and the door for unregistered connections are the RouterServer's, unchanged.
 *
 * One routing id, one connection: a hello naming an id that already has a live connection here, or
 * that the ROUTER has seen (see `claimed`), is refused, as a ROUTER refuses a second DEALER with the
 * id of a connected one; otherwise a same-user process could speak as a worker that proved the token.
 * What a connection can push is bounded: a hello of ≤ 261 bytes within 10 s (at most 64 connections
 * waiting for theirs), then messages under the limits of `limits(identity)` (small until it registered).
 * @internal
 */
import { type Server, type Socket, createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { logger } from './logger.js';
import { LogLimiter } from './log-limiter.js';
import { type StreamLimits, StreamMessageReader, writeStreamMessage } from './stream-frames.js';

/** How long a new connection has for its hello. */
const HELLO_TIMEOUT_MS = 10_000;
/** Connections that may wait for their hello at once (a node starts its workers a few at a time). */
const MAX_PENDING = 64;

/** How the owner sees the connections of a {@link StreamServer}. */
export interface StreamServerHost {
  /** Names the receiver in log lines. */
  where: string;
  /** The limits of the next message from `identity`. */
  limits(identity: Buffer): StreamLimits;
  /** True when `identity` may not be taken by a new connection (the ROUTER has it). */
  claimed(identity: string): boolean;
  /** A connection took `identity` (its hello was accepted). */
  onHello(identity: string): void;
  /** The connection of `identity` closed. */
  onClosed(identity: string): void;
  /** One message: frame 0 is the identity, as a ROUTER receives it. */
  onFrames(frames: Buffer[]): void;
}

/** One accepted connection after its hello. */
interface StreamConnection {
  readonly socket: Socket;
  readonly identity: Buffer;
}

/** A unix stream listener whose connections are addressed by routing id. */
export class StreamServer {
  private server: Server | undefined;
  private path = '';
  private readonly connections = new Map<string, StreamConnection>();
  /** Every open socket, with or without its hello (closed at close()). */
  private readonly sockets = new Set<Socket>();
  /** Sockets still waiting for their hello (at most MAX_PENDING). */
  private pending = 0;
  private readonly refusals: LogLimiter;
  /** Connections refused (bad hello, a limit broken, an id in use), for tests and stats. */
  refused = 0;

  constructor(private readonly host: StreamServerHost) {
    this.refusals = new LogLimiter({
      summary: (n, windowMs) => logger().warn({ suppressed: n }, `${host.where}: ${n} more refused stream connections in the last ${windowMs / 1000} s`),
    });
  }

  /** Listen on `path` (a unix socket file, removed first if stale); resolves once listening. */
  async listen(path: string): Promise<void> {
    rmSync(path, { force: true });
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => logger().error({ err }, `${this.host.where} stream socket error`));
    this.server = server;
    this.path = path;
  }

  /** True when `identity` has a live connection here. */
  has(identity: string): boolean {
    return this.connections.has(identity);
  }

  /** Send `frames` to `identity`'s connection; false when it has none here (the ROUTER's then). */
  send(identity: string, frames: readonly Uint8Array[]): boolean {
    const c = this.connections.get(identity);
    if (!c) return false;
    writeStreamMessage(c.socket, frames);
    return true;
  }

  /** Close `identity`'s connection (refused: nothing it sends later is read). */
  drop(identity: string): void {
    const c = this.connections.get(identity);
    if (!c) return;
    this.connections.delete(identity);
    c.socket.destroySoon(); // after what is queued to it (its ErrorReply)
  }

  /** Stop listening, close every connection once what is queued to it is written, remove the socket file. */
  async close(): Promise<void> {
    const sockets = [...this.sockets];
    this.connections.clear();
    for (const socket of sockets) socket.destroySoon();
    // A worker that stopped reading would keep its connection (and this close) open: cut it after 1 s.
    const cut = setTimeout(() => {
      for (const socket of sockets) socket.destroy();
    }, 1000);
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    clearTimeout(cut);
    if (this.path) rmSync(this.path, { force: true });
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.pending >= MAX_PENDING) {
      this.refuse(socket, `${MAX_PENDING} connections are already waiting for their hello`);
      return;
    }
    this.pending++;
    let conn: StreamConnection | undefined;
    let waiting = true;
    const helloDone = () => {
      if (!waiting) return;
      waiting = false;
      this.pending--;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => this.refuse(socket, 'no hello within 10 s'), HELLO_TIMEOUT_MS);
    timer.unref();
    const reader = new StreamMessageReader(
      {
        onHello: (identity) => {
          helloDone();
          if (this.connections.has(identity) || this.host.claimed(identity))
            throw new Error(`routing id ${JSON.stringify(identity)} is not free (in use, or not a worker this node started)`);
          conn = { socket, identity: Buffer.from(identity) };
          this.connections.set(identity, conn);
          this.host.onHello(identity);
        },
        onMessage: (frames) => {
          frames.unshift(conn!.identity);
          this.host.onFrames(frames);
        },
      },
      () => this.host.limits(conn!.identity),
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        this.refuse(socket, (err as Error).message, conn);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      helloDone();
      if (!conn) return;
      const id = conn.identity.toString();
      if (this.connections.get(id) === conn) this.connections.delete(id);
      this.host.onClosed(id);
    });
  }

  private refuse(socket: Socket, why: string, conn?: StreamConnection): void {
    this.refused++;
    if (conn) this.connections.delete(conn.identity.toString());
    this.refusals.log(() => logger().warn({ peer: conn?.identity.toString() }, `${this.host.where} closed a stream connection: ${why}`));
    socket.destroy();
  }
}
