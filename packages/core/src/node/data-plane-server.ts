/**
 * The holder's side of the bulk data plane (docs/security.md, "Bulk data plane"): a plain TCP listener
 * per node that serves pulls' chunks outside the CURVE control link, whose per-message encryption on one
 * libzmq I/O thread bounds a transfer to a fraction of what the wire carries. A peer node opens a session
 * over its CURVE control link (DataPlaneOpen with a nonce; the answer has this node's nonce, a session
 * id and the port), connects, proves the session's key (its hello), gets this node's proof back, then
 * sends PullObject requests and gets ObjectChunks on the same connection (data-plane-frames.ts).
 *
 * Why TCP and not a ZeroMQ socket: a chunk goes out straight from its view of the arena (plain) or from
 * one of a few reused sealing buffers, each reused when the write's callback says the kernel has the
 * bytes — ZeroMQ sends large buffers zero-copy and never tells JS when it let go, so each sealed chunk
 * needed a new 8 MiB buffer (and the GC time that follows); and the puller reads into the arena directly.
 *
 * The listener is bound on first use, on the interface of the node's control socket. A connection that
 * does not prove a live session's key within 10 s is closed, as are connections past 8 waiting for their
 * hello (counted; one log line a minute). Sessions are capped: a peer node keeps its two newest, the node
 * at most {@link MAX_SESSIONS} in all; each is used by one connection.
 * @internal
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { decodeMessage, encodeMessage, type tsray, type EnvelopeBody } from '@tsray/protocol';
import { config } from '../config.js';
import { LogLimiter } from '../log-limiter.js';
import { logger } from '../logger.js';
import {
  CLIENT_HELLO_BYTES,
  DATA_PLANE_NONCE_BYTES,
  FrameOpener,
  FrameStreamError,
  FrameWriter,
  dataPlaneKeys,
  helloProof,
  proofMatches,
  sessionSealed,
  type SessionKeys,
} from './data-plane-frames.js';
import { FrameStreamReader } from './data-plane-stream.js';

/** Sessions kept in all (the oldest goes first), and per peer node. */
const MAX_SESSIONS = 1024;
const SESSIONS_PER_PEER = 2;
/** Connections that have not said a valid hello yet, at most (more are closed at once). */
const MAX_PENDING_CONNECTIONS = 8;
const HELLO_TIMEOUT_MS = 10_000;
/** Sealing buffers per connection: one being sealed while others are in the kernel's hands. */
const SEAL_BUFFERS = 3;
/** Replies waiting for a sealing buffer on one connection before it stops reading requests. */
const MAX_WAITING_REPLIES = 64;

/** What the data-plane server needs from its node. */
export interface DataPlaneServerHost {
  readonly token: string;
  readonly nodeId: string;
  /** The interface the node's control socket is bound on (the data socket binds there too). */
  readonly bindHost: string;
  /** Answer a pull request through `reply` (pull-server.ts). */
  serve(req: tsray.v1.IPullObject, reply: (body: EnvelopeBody, frames: Buffer[]) => void): void;
  /** Payload bytes sent to a peer node (the node's traffic counters). */
  onBytes?(nodeId: string, frames: readonly Uint8Array[]): void;
}

/** One peer node's session. */
interface Session {
  readonly peer: string;
  readonly keys: SessionKeys;
  /** The connection using it (one per session). */
  used: boolean;
}

/** A connection that proved its session: requests in, chunks out. */
class ServedConnection {
  readonly writer: FrameWriter;
  readonly opener: FrameOpener;
  private readonly free: Buffer[] = [];
  private readonly waiting: { envelope: Uint8Array; payload: Buffer }[] = [];
  private paused = false;

  constructor(
    readonly socket: Socket,
    readonly peer: string,
    keys: SessionKeys,
    sealed: boolean,
  ) {
    this.writer = new FrameWriter(sealed ? keys.toClient : undefined);
    this.opener = new FrameOpener(sealed ? keys.toServer : undefined, 0);
    if (sealed) for (let i = 0; i < SEAL_BUFFERS; i++) this.free.push(Buffer.allocUnsafeSlow(config().transferChunkBytes));
  }

  /** Send a reply: plain, the payload as given; sealed, once a sealing buffer is free (reading pauses while many wait). */
  send(envelope: Uint8Array, payload: Buffer | undefined): void {
    if (!payload || !this.writer.sealed) {
      const f = this.writer.frame(envelope, payload);
      this.socket.cork();
      this.socket.write(f.head);
      if (f.payload) this.socket.write(f.payload);
      this.socket.uncork();
      return;
    }
    this.waiting.push({ envelope, payload });
    if (this.waiting.length >= MAX_WAITING_REPLIES && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.drain();
  }

  private drain(): void {
    while (this.waiting.length > 0 && this.free.length > 0 && !this.socket.destroyed) {
      const { envelope, payload } = this.waiting.shift()!;
      const into = this.free.pop()!;
      const f = this.writer.frame(envelope, payload, into);
      this.socket.cork();
      this.socket.write(f.head);
      this.socket.write(f.payload!, () => {
        this.free.push(into);
        this.drain();
      });
      this.socket.uncork();
    }
    if (this.paused && this.waiting.length < MAX_WAITING_REPLIES / 2) {
      this.paused = false;
      this.socket.resume();
    }
  }
}

/** Serves pulls over the data plane. */
export class DataPlaneServer {
  private server: Server | undefined;
  private port: Promise<number> | undefined;
  /** Sessions by id, oldest first (Map order). */
  private readonly sessions = new Map<number, Session>();
  /** Open connections, with the peer node once its hello proved a session. */
  private readonly sockets = new Map<Socket, string | undefined>();
  private pending = 0;
  private dropped = 0;
  private chunks = 0;
  private closed = false;
  private readonly refusals = new LogLimiter({
    lines: 1,
    windowMs: 60_000,
    summary: (n, ms) => logger().warn({ count: n, windowS: ms / 1000 }, 'data plane: more connections closed (no valid hello, or a frame that does not open)'),
  });

  constructor(private readonly host: DataPlaneServerHost) {}

  /** Chunks served and connections refused on the data plane (node transfer stats). */
  stats(): { dataPlaneChunks: number; dataPlaneDropped: number; dataPlaneSessions: number } {
    return { dataPlaneChunks: this.chunks, dataPlaneDropped: this.dropped, dataPlaneSessions: this.sessions.size };
  }

  /** Peer node `peer` asks for a session (over its control link); `reply` answers on that link. */
  open(peer: string, req: tsray.v1.IDataPlaneOpen, reply: (body: EnvelopeBody) => void): void {
    const clientNonce = req.nonce ?? new Uint8Array();
    if (!peer || clientNonce.byteLength !== DATA_PLANE_NONCE_BYTES) {
      reply({ dataPlaneOpened: { error: 'DataPlaneOpen needs a 32-byte nonce from a peer node' } });
      return;
    }
    this.bound().then(
      (port) => {
        if (this.closed) return;
        const serverNonce = randomBytes(DATA_PLANE_NONCE_BYTES);
        const keys = dataPlaneKeys(this.host.token, clientNonce, serverNonce, peer, this.host.nodeId);
        let session = randomBytes(4).readUInt32BE(0);
        while (session === 0 || this.sessions.has(session)) session = randomBytes(4).readUInt32BE(0);
        this.admit(session, { peer, keys, used: false });
        reply({ dataPlaneOpened: { nonce: serverNonce, session, port } });
      },
      (err: unknown) => {
        logger().warn({ err, host: this.host.bindHost }, 'data plane: cannot bind its socket; peers pull over the control link');
        reply({ dataPlaneOpened: { error: `node ${this.host.nodeId} has no data plane: ${(err as Error).message}` } });
      },
    );
  }

  /** Node `peer` died: its sessions and connections go. */
  nodeDied(peer: string): void {
    for (const [id, s] of this.sessions) if (s.peer === peer) this.sessions.delete(id);
    for (const [socket, of] of this.sockets) if (of === peer) socket.destroy();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sessions.clear();
    for (const socket of this.sockets.keys()) socket.destroy();
    this.server?.close();
  }

  /** Keep a new session, dropping the oldest of its peer's (past {@link SESSIONS_PER_PEER}) and of all. */
  private admit(id: number, s: Session): void {
    const ofPeer = [...this.sessions].filter(([, x]) => x.peer === s.peer);
    for (const [old] of ofPeer.slice(0, Math.max(0, ofPeer.length - SESSIONS_PER_PEER + 1))) this.sessions.delete(old);
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(id, s);
  }

  /** The listener's port, binding it on first use. */
  private bound(): Promise<number> {
    this.port ??= new Promise<number>((resolve, reject) => {
      const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(config().dataPlanePort, this.host.bindHost, () => {
        server.off('error', reject);
        server.on('error', (err) => logger().warn({ err }, 'data plane listener error'));
        this.server = server;
        const port = (server.address() as { port: number }).port;
        logger().info({ host: this.host.bindHost, port }, 'data plane listening');
        resolve(port);
      });
    });
    return this.port;
  }

  private refuse(socket: Socket, why: string): void {
    this.dropped++;
    this.refusals.log(() => logger().warn({ from: socket.remoteAddress, why }, 'data plane: connection closed'));
    socket.destroy();
  }

  /** A new connection: it must say a valid hello first. */
  private accept(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    if (this.pending >= MAX_PENDING_CONNECTIONS) return this.refuse(socket, 'too many connections waiting for their hello');
    this.pending++;
    this.sockets.set(socket, undefined);
    let waiting = true;
    const stopWaiting = (): void => {
      if (!waiting) return;
      waiting = false;
      this.pending--;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      stopWaiting();
      this.refuse(socket, `no hello within ${HELLO_TIMEOUT_MS / 1000} s`);
    }, HELLO_TIMEOUT_MS);
    let conn: ServedConnection | undefined;
    const reader = new FrameStreamReader(
      () => conn!.opener,
      {
        hello: (bytes) => {
          stopWaiting();
          conn = this.hello(socket, bytes);
        },
        envelope: (_h, envelope) => {
          this.request(conn!, envelope);
          return undefined;
        },
        payload: () => undefined,
        broken: (err) => {
          stopWaiting();
          this.dropped++;
          this.refusals.log(() => logger().warn({ from: socket.remoteAddress, peer: conn?.peer, why: err.message }, 'data plane: connection closed'));
        },
      },
      CLIENT_HELLO_BYTES,
      () => socket.destroy(),
    );
    socket.on('data', (d: Buffer) => reader.feed(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      stopWaiting();
      this.sockets.delete(socket);
    });
  }

  /** Check a hello: a live, unused session whose key made the proof (for the sealing this connection gets). */
  private hello(socket: Socket, bytes: Buffer): ServedConnection {
    const id = bytes.readUInt32BE(0);
    const s = this.sessions.get(id);
    const sealed = sessionSealed(socket.localAddress, socket.remoteAddress);
    if (!s || s.used || !proofMatches(bytes.subarray(4), helloProof(s.keys, 'client', id, sealed)))
      throw new FrameStreamError('data plane: a hello without a live session’s key');
    s.used = true;
    this.sockets.set(socket, s.peer);
    socket.setNoDelay(true);
    socket.write(helloProof(s.keys, 'server', id, sealed));
    logger().debug({ peer: s.peer, sealed }, 'data plane session connected');
    return new ServedConnection(socket, s.peer, s.keys, sealed);
  }

  private request(conn: ServedConnection, bytes: Buffer): void {
    let env: tsray.v1.Envelope;
    try {
      env = decodeMessage([bytes]).envelope;
    } catch (err) {
      throw new FrameStreamError(`data plane: a request that does not decode (${(err as Error).message})`);
    }
    if (!env.pullObject) throw new FrameStreamError(`data plane: unexpected ${env.body ?? 'message'}`);
    try {
      this.host.serve(env.pullObject, (body, payloads) => {
        const payload = payloads[0];
        if (payload) {
          this.chunks++;
          this.host.onBytes?.(conn.peer, payloads);
        }
        if (!conn.socket.destroyed) conn.send(encodeMessage(body)[0]!, payload);
      });
    } catch (err) {
      // The node's fault, not the peer's: the connection stays, and the puller asks another holder.
      logger().error({ err, peer: conn.peer }, 'data plane: serving a request failed');
      const objectId = env.pullObject.objectId ?? '';
      if (!conn.socket.destroyed) conn.send(encodeMessage({ pullFailed: { objectId, reason: `serving it failed: ${(err as Error).message}` } })[0]!, undefined);
    }
  }
}
