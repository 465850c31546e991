/**
 * One ROUTER socket that takes connections from the network — the GCS's (nodes, remote drivers) and
 * each node's (workers, client drivers, peer nodes): binding, a receive loop that no peer's message
 * can end, the frame limit, sends serialized through one Outbox, and the door for connections that
 * have not registered (one ErrorReply each, then everything they send is ignored; logs rate-limited).
 * What a message means is the owner's business (`onMessage`); registration too (`registered`).
 * @internal
 */
import * as zmq from 'zeromq';
import { DEFAULT_MAX_FRAME_BYTES, decodeMessage, encodeMessage, tsray, type DecodedMessage, type EnvelopeBody } from '@tsray/protocol';
import { logger } from './logger.js';
import { Outbox } from './outbox.js';
import { curveApplies, logCurveRefusals, makeCurveServer, makePlainServer } from './curve.js';
import { LogLimiter } from './log-limiter.js';
import { PeerMemory, errorCodeOf, peerKey } from './peer-memory.js';
import { routerSocketOptions } from './router-options.js';
import { UnregisteredPeers } from './unregistered-peers.js';
import { TrafficCounters, framesBytes } from './traffic-counters.js';
import { StreamServer } from './stream-server.js';
import type { StreamLimits } from './stream-frames.js';

/** Most frames in one message on the stream socket (a ZeroMQ message has no such cap; batches stay far below). */
const STREAM_MAX_FRAMES = 1 << 20;

/**
 * Largest message (all frames together) a connection may send before it has registered: a
 * registration or one of the GCS's unregistered queries is a few hundred bytes, so a peer that has not
 * proved the token cannot make the receiver decode (or keep) anything big.
 */
export const UNREGISTERED_MAX_MESSAGE_BYTES = 64 * 1024;

/** How the owner of a RouterServer sees its connections and messages. */
export interface RouterServerOptions {
  /** Names the receiver in log lines ('GCS', 'node'). */
  where: string;
  /** Largest accepted frame in bytes (default the protocol's 256 MiB); a bigger one is answered with ERROR_CODE_TOO_LARGE. */
  maxFrameBytes?: number | undefined;
  /**
   * Log fields of a registered connection (e.g. `{ nodeId }`, `{ kind: 'worker' }`), or undefined for
   * one that has not registered. A registered connection keeps its connection after a bad message.
   */
  registered(identity: Buffer): Record<string, unknown> | undefined;
  /**
   * Handle one decoded message. Throwing rejects it: an ErrorReply and a log line. `viaStream`: it came
   * on the stream socket (see {@link RouterServer.listenStream}), not the ROUTER.
   */
  onMessage(identity: Buffer, message: DecodedMessage, viaStream: boolean): void;
  /**
   * True when a new stream connection may not take `identity`: a connection of that id is registered
   * (only a worker the node started and that has not registered yet may say hello with its id).
   */
  claimed?(identity: string): boolean;
  /** Print every message received (TSRAY_TRACE). */
  trace?: boolean;
  /**
   * The cluster token: tcp endpoints are then CURVE servers with the keys derived from it, admitting
   * only its members (see curve.ts); ipc endpoints stay plain. Without it tcp is plain too.
   */
  token?: string | undefined;
  /** Payload bytes to and from peer nodes (connections named `peer:<nodeId>`), for the node's traffic counters. */
  onPeerBytes?: (nodeId: string, dir: 'in' | 'out', frames: readonly Uint8Array[]) => void;
}

/** A ROUTER socket with its receive loop, send queue and door for unregistered connections. */
export class RouterServer {
  readonly socket: zmq.Router;
  private readonly outbox: Outbox;
  private readonly unregistered: UnregisteredPeers;
  private readonly decodeOptions: { maxFrameBytes: number } | undefined;
  private receiving: Promise<void> | undefined;
  private closed = false;
  /** Registered connections whose rejected message was logged (their later ones are only counted). */
  private readonly complained = new PeerMemory();
  private readonly repeats: LogLimiter;
  /** Gives back this socket's hold on the process's ZAP handler (set once a CURVE endpoint is bound). */
  private releaseZap: (() => void) | undefined;
  /** Bytes and messages received and sent, per message kind (the GCS reports them in its stats). */
  readonly traffic = new TrafficCounters();
  /** The unix stream socket beside the ROUTER (the node's, for its workers), once listening. */
  private stream: StreamServer | undefined;
  /**
   * Routing ids that said hello on the stream socket: they are the stream's until forgotten (the
   * ROUTER neither reads from nor sends to them, so no DEALER can take over a stream worker's id).
   */
  private readonly streamIds = new Set<string>();

  constructor(private readonly opts: RouterServerOptions) {
    this.socket = new zmq.Router(routerSocketOptions(opts.maxFrameBytes));
    this.outbox = new Outbox(this.socket);
    this.unregistered = new UnregisteredPeers(opts.where);
    this.repeats = new LogLimiter({
      lines: 0,
      windowMs: 60_000,
      summary: (n) => logger().warn({ suppressed: n }, `${opts.where}: ${n} more rejected messages from connections already logged, in the last minute`),
    });
    this.decodeOptions = opts.maxFrameBytes ? { maxFrameBytes: opts.maxFrameBytes } : undefined;
  }

  /** Bind one more endpoint; returns the endpoint bound (with the port picked for port 0). */
  async bind(endpoint: string): Promise<string> {
    // ZeroMQ copies the security options when an endpoint is bound: set them per endpoint.
    if (this.opts.token && curveApplies(endpoint)) {
      const zap = makeCurveServer(this.socket, this.opts.token);
      if (!this.releaseZap) logCurveRefusals(this.socket, this.opts.where);
      this.releaseZap?.();
      this.releaseZap = zap.release;
      await zap.ready;
    } else if (this.releaseZap) makePlainServer(this.socket);
    await this.socket.bind(endpoint);
    return this.socket.lastEndpoint ?? endpoint;
  }

  /**
   * Listen on a unix stream socket too (stream-server.ts): connections name their routing id in a
   * hello and are then addressed like the ROUTER's; their messages take the same receive path.
   */
  async listenStream(path: string): Promise<void> {
    const unregistered: StreamLimits = { maxFrames: 16, maxFrameBytes: UNREGISTERED_MAX_MESSAGE_BYTES, maxMessageBytes: UNREGISTERED_MAX_MESSAGE_BYTES };
    const max = this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // Twice the decoder's limit, as the ROUTER's maxMessageSize: frames up to it get the clear TOO_LARGE reply.
    const registered: StreamLimits = { maxFrames: STREAM_MAX_FRAMES, maxFrameBytes: 2 * max, maxMessageBytes: Number.MAX_SAFE_INTEGER };
    const server = new StreamServer({
      where: this.opts.where,
      limits: (identity) => (this.opts.registered(identity) ? registered : unregistered),
      claimed: (id) => this.streamIds.has(id) || (this.opts.claimed?.(id) ?? true),
      onHello: (id) => this.streamIds.add(id),
      onClosed: (id) => {
        if (!this.opts.registered(Buffer.from(id))) this.streamIds.delete(id);
      },
      onFrames: (frames) => this.receive(frames, true),
    });
    await server.listen(path);
    this.stream = server;
  }

  /** `identity` is gone for good (its worker exited): its id is no longer the stream's. */
  forget(identity: string): void {
    this.streamIds.delete(identity);
  }

  /** Connections refused on the stream socket (tests). */
  get streamRefused(): number {
    return this.stream?.refused ?? 0;
  }

  /** Start receiving (once). */
  start(): void {
    this.receiving ??= this.loop();
  }

  /** Count the payload bytes of a message to or from a peer node (`peer:<node id>` connections). */
  private countPeer(identity: Buffer, dir: 'in' | 'out', frames: readonly Uint8Array[]): void {
    const id = identity.toString();
    if (id.startsWith('peer:')) this.opts.onPeerBytes!(id.slice(5), dir, frames);
  }

  /** Send a message to a connection (queued; sends on one socket go one at a time, in order). */
  send(identity: Buffer, body: EnvelopeBody, payloads?: readonly Uint8Array[]): void {
    if (this.closed) return;
    const frames = encodeMessage(body, payloads);
    this.traffic.count('out', Object.keys(body)[0] ?? 'unknown', framesBytes(frames));
    if (payloads && this.opts.onPeerBytes) this.countPeer(identity, 'out', payloads);
    this.route(identity, frames);
  }

  /** To the identity's stream connection when it is the stream's, else through the ROUTER. */
  private route(identity: Buffer, frames: Buffer[]): void {
    if (this.stream && this.streamIds.size > 0) {
      const id = identity.toString();
      if (this.streamIds.has(id)) {
        this.stream.send(id, frames);
        return;
      }
    }
    this.outbox.send([identity, ...frames]);
  }

  /** Send already encoded frames to a connection (`kind` names them in the traffic counters). */
  sendFrames(identity: Buffer, frames: Buffer[], kind = 'frames'): void {
    if (this.closed) return;
    this.traffic.count('out', kind, framesBytes(frames));
    this.route(identity, frames);
  }

  /**
   * Refuse a connection that has not registered (bad token proof, a message before registering):
   * the first time it is logged (rate-limited) and answered with `reply`; after that it is ignored.
   */
  refuse(identity: Buffer, fields: Record<string, unknown>, msg: string, reply: EnvelopeBody): void {
    if (!this.unregistered.refuse(identity, fields, msg)) return;
    this.send(identity, reply);
    // A stream connection can really be closed (a ROUTER's peer only ignored): after its reply.
    if (this.stream?.has(identity.toString())) this.stream.drop(identity.toString());
  }

  /** Hand everything queued to ZeroMQ synchronously (process exit). */
  flushSync(): void {
    this.outbox.flushSync();
  }

  /** Resolves when everything queued so far was handed to ZeroMQ. */
  drain(): Promise<void> {
    return this.outbox.drain();
  }

  /** Stop receiving and sending; close the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.outbox.close();
    this.socket.close();
    await this.stream?.close();
    this.releaseZap?.();
    await this.receiving?.catch(() => undefined);
  }

  /** Receive until closed: a message's error is answered or logged, never the end of the loop. */
  private async loop(): Promise<void> {
    while (!this.closed) {
      try {
        for await (const frames of this.socket) this.receive(frames, false);
        return;
      } catch (err) {
        if (this.closed) return;
        // A receive error (not a peer's message): log it and receive again, paced.
        logger().error({ err }, `${this.opts.where} socket receive failed; receiving again`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private receive(frames: Buffer[], viaStream: boolean): void {
    const identity = frames[0]!;
    if (this.unregistered.isClosed(identity)) return;
    // A DEALER with the routing id of a stream connection is not that connection.
    if (!viaStream && this.streamIds.size > 0 && this.streamIds.has(identity.toString())) return;
    if (!this.opts.registered(identity)) {
      let bytes = 0;
      for (let i = 1; i < frames.length; i++) bytes += frames[i]!.length;
      if (bytes > UNREGISTERED_MAX_MESSAGE_BYTES) {
        const message = `a message of ${bytes} bytes before registering (at most ${UNREGISTERED_MAX_MESSAGE_BYTES} bytes until the connection proved the token)`;
        this.refuse(identity, { bytes }, `${this.opts.where} rejected ${message}; the connection is closed (later messages from it are ignored)`, {
          error: { code: tsray.v1.ErrorCode.ERROR_CODE_TOO_LARGE, message },
        });
        return;
      }
    }
    const bytes = framesBytes(frames, 1);
    let counted = false;
    try {
      const message = decodeMessage(frames.slice(1), this.decodeOptions);
      this.traffic.count('in', message.kind, bytes);
      counted = true;
      if (this.opts.onPeerBytes && message.payloads.length > 0) this.countPeer(identity, 'in', message.payloads);
      if (this.opts.trace)
        process.stderr.write(`${this.opts.where} <- ${identity.toString()} ${message.kind} ${JSON.stringify(message.envelope.toJSON()).slice(0, 300)}\n`);
      this.opts.onMessage(identity, message, viaStream);
    } catch (err) {
      if (!counted) this.traffic.count('in', 'undecoded', bytes);
      try {
        this.reject(identity, err as Error);
      } catch (e) {
        logger().error({ err: e }, `${this.opts.where} could not reject a message`);
      }
    }
  }

  /**
   * A message that does not decode (garbage, another protocol version, an unknown message type, a
   * frame over the limit) or that failed to be handled: a log line and an ErrorReply. A ROUTER cannot
   * drop one TCP peer, so an unregistered connection is closed by ignoring everything it sends later
   * (its one log line is rate-limited with all others of its kind); a registered one keeps its
   * connection.
   */
  private reject(identity: Buffer, err: Error): void {
    const code = errorCodeOf(err);
    const reply: EnvelopeBody = { error: { code, message: err.message } };
    const who = this.opts.registered(identity);
    if (who) {
      // One line per connection; its later rejections only count in a summary line a minute.
      const log = () =>
        logger().warn(
          { err, peer: identity.toString(), ...who, code: tsray.v1.ErrorCode[code] },
          `${this.opts.where} rejected a message: ${err.message}; replied with an error, the connection stays`,
        );
      if (this.complained.once(peerKey(identity))) log();
      else this.repeats.log(log);
      this.send(identity, reply);
      return;
    }
    const msg = `${this.opts.where} rejected a message: ${err.message}; the connection is closed (later messages from it are ignored)`;
    this.refuse(identity, { code: tsray.v1.ErrorCode[code] }, msg, reply);
  }
}
