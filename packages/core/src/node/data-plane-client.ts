/**
 * The puller's side of the bulk data plane (data-plane-server.ts has the holder's side and the why):
 * per holder node, a session opened over the CURVE control link, then one TCP connection to the holder's
 * data port on which pull requests go out and chunks come back (data-plane-frames.ts), each chunk read
 * by the kernel straight into its place in the arena (data-plane-stream.ts) and, on a sealed session,
 * opened there. Until the holder proved the session's key on that connection, and for good once the
 * session failed (no answer in time, a frame that does not open, the connection ended), requests to it
 * go over the control link as before: the data plane only ever makes a pull faster, never stops it.
 * @internal
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { decodeMessage, encodeMessage, type tsray, type EnvelopeBody } from '@tsray/protocol';
import { config } from '../config.js';
import { logger } from '../logger.js';
import {
  DATA_PLANE_NONCE_BYTES,
  FrameOpener,
  FrameStreamError,
  FrameWriter,
  SERVER_HELLO_BYTES,
  dataPlaneKeys,
  helloProof,
  proofMatches,
  sessionSealed,
  type FrameHead,
} from './data-plane-frames.js';
import { FrameStreamReader } from './data-plane-stream.js';

/** What the data-plane client needs from its node. */
export interface DataPlaneClientHost {
  readonly token: string;
  readonly nodeId: string;
  /** Send to node `nodeId` over the control link; false when it cannot be reached. */
  sendControl(nodeId: string, body: EnvelopeBody): boolean;
  /** tcp://host:port of node `nodeId`'s control socket (its data port is on the same host). */
  addressOf(nodeId: string): string | undefined;
  /**
   * Where chunk `c` from `nodeId`, of `length` bytes, goes (a view of the arena or a heap buffer of
   * exactly that length), or undefined when it is not wanted (it is read and dropped).
   */
  chunkTarget(nodeId: string, c: tsray.v1.IObjectChunk, length: number): Buffer | undefined;
  /** Chunk `c` is in the buffer `chunkTarget` gave; `ok`: it opened (sealed) or its check matched (plain). */
  chunkLanded(nodeId: string, c: tsray.v1.IObjectChunk, ok: boolean): void;
  /** `nodeId` has no copy of an object asked of it. */
  onPullFailed(nodeId: string, f: tsray.v1.IPullFailed): void;
  /** The data plane to `nodeId` broke after requests went on it: ask them again (over the control link). */
  lost(nodeId: string): void;
  /** Whether a plain chunk's bytes match its check (crc windows; sealed chunks are proven by their tag). */
  checks(c: tsray.v1.IObjectChunk, bytes: Buffer): boolean;
}

/** One holder's session. */
interface Channel {
  state: 'opening' | 'checking' | 'ready' | 'off';
  readonly nonce: Buffer;
  socket?: Socket;
  /** Whether its frames are sealed (known once connected). */
  sealed?: boolean;
  writer?: FrameWriter;
  opener?: FrameOpener;
  /** The chunk whose payload is being read into its target now, if any. */
  landing?: { objectId: string; chunk: tsray.v1.IObjectChunk };
  /** Requests sent on the data plane since it became ready (a break must re-ask them). */
  used: boolean;
  /** Requests made while the session opens: sent on it once ready, on the control link if it fails. */
  readonly waiting: EnvelopeBody[];
  readonly timer: NodeJS.Timeout;
}

/** Data-plane sessions to the holders this node pulls from. */
export class DataPlaneClient {
  private readonly channels = new Map<string, Channel>();
  private received = 0;

  constructor(
    private readonly host: DataPlaneClientHost,
    /** Off (`TSRAY_DATA_PLANE=0`): every request goes on the control link. */
    private readonly enabled = config().dataPlane,
    /** Requests wait this long for a new session (then go on the control link). */
    private readonly openTimeoutMs = Math.min(config().peerConnectTimeoutMs, 5000),
  ) {}

  /** Chunks received on the data plane, holders it is ready with, and how many of those sessions are sealed (node transfer stats). */
  stats(): { dataPlaneChunksIn: number; dataPlanePeers: number; dataPlaneSealedPeers: number } {
    const ready = [...this.channels.values()].filter((c) => c.state === 'ready');
    return { dataPlaneChunksIn: this.received, dataPlanePeers: ready.length, dataPlaneSealedPeers: ready.filter((c) => c.sealed).length };
  }

  /**
   * Send a pull request to `nodeId` on the data plane: true when it went there (or waits for the
   * session being opened, which takes a round trip: then it goes on the control link if the session
   * fails), false when the caller must use the control link (data plane off). The first call for a
   * holder opens its session.
   */
  send(nodeId: string, body: EnvelopeBody): boolean {
    if (!this.enabled) return false;
    const c = this.channels.get(nodeId) ?? this.start(nodeId);
    if (c.state === 'off') return false;
    if (c.state !== 'ready') {
      c.waiting.push(body);
      return true;
    }
    c.used = true;
    c.socket!.write(c.writer!.frame(encodeMessage(body)[0]!).head);
    return true;
  }

  /** The holder's answer to DataPlaneOpen (over the control link): connect and prove the session's key. */
  onOpened(nodeId: string, m: tsray.v1.IDataPlaneOpened): void {
    const c = this.channels.get(nodeId);
    if (c?.state !== 'opening') return;
    const address = this.host.addressOf(nodeId);
    const at = address?.lastIndexOf(':') ?? -1;
    if (m.error || !m.session || !m.port || !m.nonce || at < 0) {
      this.off(nodeId, c, m.error || 'the holder answered without a session');
      return;
    }
    const keys = dataPlaneKeys(this.host.token, c.nonce, m.nonce, this.host.nodeId, nodeId);
    const session = m.session;
    const host = address!.slice(address!.indexOf('://') + 3, at).replace(/^\[|\]$/g, '');
    const reader = new FrameStreamReader(
      () => c.opener!,
      {
        hello: (bytes) => {
          if (!proofMatches(bytes, helloProof(keys, 'server', session, c.sealed!))) throw new FrameStreamError('the holder did not prove the session’s key');
          this.ready(nodeId, c);
        },
        envelope: (h, envelope) => this.onFrame(nodeId, c, h, envelope),
        payload: (h, dst) => this.onPayload(nodeId, c, h, dst),
        broken: (err) => this.off(nodeId, c, err.message),
      },
      SERVER_HELLO_BYTES,
      () => c.socket?.destroy(),
    );
    c.state = 'checking';
    const socket = connect({ host, port: m.port, noDelay: true, onread: reader.onread });
    c.socket = socket;
    socket.once('connect', () => {
      const sealed = sessionSealed(socket.localAddress, socket.remoteAddress);
      c.sealed = sealed;
      const key = sealed ? keys : undefined;
      c.writer = new FrameWriter(key?.toServer);
      c.opener = new FrameOpener(key?.toClient, config().transferChunkBytes);
      const hello = Buffer.alloc(4);
      hello.writeUInt32BE(session, 0);
      socket.write(Buffer.concat([hello, helloProof(keys, 'client', session, sealed)]));
    });
    socket.on('error', (err) => this.off(nodeId, c, `its data connection failed (${err.message})`));
    socket.on('close', () => this.off(nodeId, c, 'its data connection closed'));
  }

  /**
   * The holder gave up on pull `objectId` from `nodeId`: a chunk of it being read now would land in
   * memory the pull may free, so that connection closes (its other requests go on the control link).
   */
  abandon(nodeId: string, objectId: string): void {
    const c = this.channels.get(nodeId);
    if (c?.landing?.objectId === objectId) this.off(nodeId, c, 'a pull from it was given up while its chunk was arriving');
  }

  /** Node `nodeId` died: its session goes. */
  nodeDied(nodeId: string): void {
    const c = this.channels.get(nodeId);
    if (!c) return;
    this.channels.delete(nodeId);
    this.closeChannel(c);
  }

  close(): void {
    for (const c of this.channels.values()) this.closeChannel(c);
    this.channels.clear();
  }

  private start(nodeId: string): Channel {
    const nonce = randomBytes(DATA_PLANE_NONCE_BYTES);
    const timer = setTimeout(() => {
      const c = this.channels.get(nodeId);
      if (c && (c.state === 'opening' || c.state === 'checking'))
        this.off(nodeId, c, `no answer within ${this.openTimeoutMs / 1000} s (is its data port open to this node? TSRAY_DATA_PLANE_PORT)`);
    }, this.openTimeoutMs);
    timer.unref();
    const c: Channel = { state: 'opening', nonce, used: false, waiting: [], timer };
    this.channels.set(nodeId, c);
    if (!this.host.sendControl(nodeId, { dataPlaneOpen: { nonce } })) this.off(nodeId, c, 'its control link is down');
    return c;
  }

  private ready(nodeId: string, c: Channel): void {
    if (c.state !== 'checking') return;
    c.state = 'ready';
    clearTimeout(c.timer);
    logger().debug({ peer: nodeId, sealed: c.sealed, waiting: c.waiting.length }, 'data plane ready');
    for (const body of c.waiting.splice(0)) this.send(nodeId, body);
  }

  /** A frame's envelope from the holder: where a chunk's payload goes, or undefined (not wanted, or no payload). */
  private onFrame(nodeId: string, c: Channel, h: FrameHead, bytes: Buffer): Buffer | undefined {
    let env: tsray.v1.Envelope;
    try {
      env = decodeMessage([bytes]).envelope;
    } catch (err) {
      throw new FrameStreamError(`a frame from the holder does not decode (${(err as Error).message})`);
    }
    if (env.objectChunk) {
      const dst = h.payloadBytes > 0 ? this.host.chunkTarget(nodeId, env.objectChunk, h.payloadBytes) : undefined;
      if (dst) c.landing = { objectId: env.objectChunk.objectId ?? '', chunk: env.objectChunk };
      return dst;
    }
    if (env.pullFailed) this.host.onPullFailed(nodeId, env.pullFailed);
    else throw new FrameStreamError(`unexpected ${env.body ?? 'message'} from the holder`);
    return undefined;
  }

  /** A chunk's payload is in its place: open it there (sealed) or check it (plain), and hand it over. */
  private onPayload(nodeId: string, c: Channel, h: FrameHead, dst: Buffer): void {
    const landing = c.landing!;
    c.landing = undefined;
    this.received++;
    const ok = h.sealed ? c.opener!.payloadInPlace(h, dst) : this.host.checks(landing.chunk, dst);
    this.host.chunkLanded(nodeId, landing.chunk, ok);
  }

  /** Stop using the data plane to `nodeId` (logged once); requests waiting go on the control link, those sent on it are asked again. */
  private off(nodeId: string, c: Channel, why: string): void {
    if (c.state === 'off') return;
    const wasUsed = c.used;
    this.closeChannel(c);
    logger().warn({ peer: nodeId, why }, 'data plane to a node is off; pulls from it use the control link (CURVE)');
    for (const body of c.waiting.splice(0)) this.host.sendControl(nodeId, body);
    if (wasUsed) this.host.lost(nodeId);
  }

  private closeChannel(c: Channel): void {
    c.state = 'off';
    c.landing = undefined;
    clearTimeout(c.timer);
    c.socket?.destroy();
  }
}
