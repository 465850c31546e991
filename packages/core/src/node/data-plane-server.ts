/**
 * The holder's side of the bulk data plane (docs/security.md, "Bulk data plane"): a second, plain tcp
 * ROUTER per node that serves pulls' chunks sealed with AES-256-GCM (sealed-frames.ts) instead of going
 * through CURVE, whose per-message encryption on one libzmq I/O thread bounds a transfer to a fraction
 * of what the wire carries. A peer node opens a session over its CURVE control link (DataPlaneOpen with
 * a nonce; the answer has this node's nonce, a session id and the port), then sends sealed PullObject
 * requests on the data socket and gets sealed ObjectChunks back on the same connection.
 *
 * The socket is bound on first use, on the interface of the node's control socket. What reaches it
 * unsealed, under an unknown session, with a replayed counter or over 64 KiB is dropped without being
 * decoded (counted; logged at most 20 lines per 5 s). Sessions are capped: a peer node keeps its two
 * newest, the node at most {@link MAX_SESSIONS} in all.
 * @internal
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { config } from '../config.js';
import { LogLimiter } from '../log-limiter.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import { DATA_PLANE_NONCE_BYTES, Opener, Sealer, dataPlaneKeys, sealedSession } from './sealed-frames.js';

/** Largest message a data-plane client may send (requests only: chunks go the other way). */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Sessions kept in all (the oldest goes first), and per peer node. */
const MAX_SESSIONS = 1024;
const SESSIONS_PER_PEER = 2;

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
  readonly opener: Opener;
  readonly sealer: Sealer;
}

/** Serves pulls over the sealed data plane. */
export class DataPlaneServer {
  private socket: zmq.Router | undefined;
  private outbox: Outbox | undefined;
  private port: Promise<number> | undefined;
  /** Sessions by id, oldest first (Map order). */
  private readonly sessions = new Map<number, Session>();
  private dropped = 0;
  private chunks = 0;
  private closed = false;
  private readonly refusals = new LogLimiter({
    summary: (n, ms) => logger().warn({ count: n, windowS: ms / 1000 }, 'data plane: more messages dropped (unsealed, unknown session or replayed)'),
  });

  constructor(private readonly host: DataPlaneServerHost) {}

  /** Chunks served and messages dropped on the data plane (node transfer stats). */
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
        this.admit(session, { peer, opener: new Opener(keys.toServer, session), sealer: new Sealer(keys.toClient, session) });
        reply({ dataPlaneOpened: { nonce: serverNonce, session, port } });
      },
      (err: unknown) => {
        logger().warn({ err, host: this.host.bindHost }, 'data plane: cannot bind its socket; peers pull over the control link');
        reply({ dataPlaneOpened: { error: `node ${this.host.nodeId} has no data plane: ${(err as Error).message}` } });
      },
    );
  }

  /** Node `peer` died: its sessions go. */
  nodeDied(peer: string): void {
    for (const [id, s] of this.sessions) if (s.peer === peer) this.sessions.delete(id);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sessions.clear();
    this.outbox?.close();
    this.socket?.close();
  }

  /** Keep a new session, dropping the oldest of its peer's (past {@link SESSIONS_PER_PEER}) and of all. */
  private admit(id: number, s: Session): void {
    const ofPeer = [...this.sessions].filter(([, x]) => x.peer === s.peer);
    for (const [old] of ofPeer.slice(0, Math.max(0, ofPeer.length - SESSIONS_PER_PEER + 1))) this.sessions.delete(old);
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(id, s);
  }

  /** The data socket's port, binding it on first use. */
  private bound(): Promise<number> {
    this.port ??= (async () => {
      const socket = new zmq.Router({ linger: 0, maxMessageSize: MAX_REQUEST_BYTES, receiveHighWaterMark: 1000 });
      const host = this.host.bindHost.includes(':') ? `[${this.host.bindHost}]` : this.host.bindHost;
      await socket.bind(`tcp://${host}:${config().dataPlanePort}`);
      this.socket = socket;
      this.outbox = new Outbox(socket);
      void this.loop(socket);
      const endpoint = socket.lastEndpoint ?? '';
      const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
      logger().info({ endpoint }, 'data plane listening');
      return port;
    })();
    return this.port;
  }

  private async loop(socket: zmq.Router): Promise<void> {
    try {
      for await (const [rid, ...frames] of socket) {
        try {
          this.onMessage(rid!, frames);
        } catch (err) {
          logger().error({ err }, 'data plane: serving a request failed');
        }
        // Sealing a chunk is milliseconds of CPU on this thread: timers and the other sockets get a turn
        // between requests (see data-plane-client.ts).
        await nextTurn();
      }
    } catch (err) {
      if (!this.closed) logger().warn({ err }, 'data plane socket ended');
    }
  }

  private onMessage(rid: Buffer, frames: Buffer[]): void {
    const id = sealedSession(frames);
    const s = id === undefined ? undefined : this.sessions.get(id);
    const m = s?.opener.open(frames);
    if (!s || !m || m.payload) {
      this.dropped++;
      this.refusals.log(() => logger().warn({ session: id ?? null }, 'data plane: message dropped (unsealed, unknown session, replayed or altered)'));
      return;
    }
    let env: tsray.v1.Envelope;
    try {
      env = decodeMessage([m.envelope]).envelope;
    } catch (err) {
      this.refusals.log(() => logger().warn({ err, peer: s.peer }, 'data plane: a sealed message does not decode; dropped'));
      return;
    }
    const reply = (body: EnvelopeBody, payloads: Buffer[]): void => {
      if (payloads.length > 0) {
        this.chunks++;
        this.host.onBytes?.(s.peer, payloads);
      }
      const [envelope, payload] = encodeMessage(body, payloads);
      this.outbox?.send([rid, ...s.sealer.seal(envelope!, payload)]);
    };
    if (env.pullObject) this.host.serve(env.pullObject, reply);
    else if (env.dataPlaneOpen) reply({ dataPlaneOpened: { session: id! } }, []);
    else this.refusals.log(() => logger().warn({ peer: s.peer, kind: env.body }, 'data plane: unexpected message; dropped'));
  }
}
