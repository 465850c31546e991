/**
 * The puller's side of the bulk data plane (data-plane-server.ts has the holder's side and the why):
 * per holder node, a session opened over the CURVE control link, then a plain DEALER to the holder's
 * data socket on which pull requests go out and chunks come back, every message sealed
 * (sealed-frames.ts). Until the holder answered a sealed check on that socket, and for good once the
 * session failed (no answer in time, a message that does not open, the socket ended), requests to it
 * go over the control link as before: the data plane only ever makes a pull faster, never stops it.
 * @internal
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { config } from '../config.js';
import { curveApplies } from '../curve.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import { DATA_PLANE_NONCE_BYTES, Opener, Sealer, dataPlaneKeys, type SealedPayload } from './sealed-frames.js';

/** What the data-plane client needs from its node. */
export interface DataPlaneClientHost {
  readonly token: string;
  readonly nodeId: string;
  /** Send to node `nodeId` over the control link; false when it cannot be reached. */
  sendControl(nodeId: string, body: EnvelopeBody): boolean;
  /** tcp://host:port of node `nodeId`'s control socket (its data socket is on the same host). */
  addressOf(nodeId: string): string | undefined;
  /** A chunk from `nodeId` whose envelope opened; its bytes still sealed, to open into their place. */
  onChunk(nodeId: string, c: tsray.v1.IObjectChunk, payload: SealedPayload): void;
  /** `nodeId` has no copy of an object asked of it. */
  onPullFailed(nodeId: string, f: tsray.v1.IPullFailed): void;
  /** The data plane to `nodeId` broke after requests went on it: ask them again (over the control link). */
  lost(nodeId: string): void;
}

/** One holder's session. */
interface Channel {
  state: 'opening' | 'checking' | 'ready' | 'off';
  readonly nonce: Buffer;
  socket?: zmq.Dealer;
  outbox?: Outbox;
  sealer?: Sealer;
  opener?: Opener;
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
    /** Off: every request goes on the control link (CURVE off, so that link is as fast; or `TSRAY_DATA_PLANE=0`). */
    private readonly enabled = config().dataPlane && curveApplies('tcp://'),
    /** Requests wait this long for a new session (then go on the control link). */
    private readonly openTimeoutMs = Math.min(config().peerConnectTimeoutMs, 5000),
  ) {}

  /** Chunks received on the data plane, and holders it is ready with (node transfer stats). */
  stats(): { dataPlaneChunksIn: number; dataPlanePeers: number } {
    return { dataPlaneChunksIn: this.received, dataPlanePeers: [...this.channels.values()].filter((c) => c.state === 'ready').length };
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
    c.outbox!.send(c.sealer!.seal(encodeMessage(body)[0]!));
    return true;
  }

  /** The holder's answer to DataPlaneOpen (over the control link): connect and check the session. */
  onOpened(nodeId: string, m: tsray.v1.IDataPlaneOpened): void {
    const c = this.channels.get(nodeId);
    if (!c || c.state !== 'opening') return;
    const address = this.host.addressOf(nodeId);
    const at = address?.lastIndexOf(':') ?? -1;
    if (m.error || !m.session || !m.port || !m.nonce || at < 0) {
      this.off(nodeId, c, m.error || 'the holder answered without a session');
      return;
    }
    const keys = dataPlaneKeys(this.host.token, c.nonce, m.nonce, this.host.nodeId, nodeId);
    c.sealer = new Sealer(keys.toServer, m.session);
    c.opener = new Opener(keys.toClient, m.session);
    // A chunk plus its envelope and header; anything larger is not a chunk.
    c.socket = new zmq.Dealer({ linger: 0, maxMessageSize: config().transferChunkBytes + 1024 * 1024, receiveHighWaterMark: 0 });
    c.socket.connect(`${address!.slice(0, at)}:${m.port}`);
    c.outbox = new Outbox(c.socket);
    c.state = 'checking';
    c.outbox.send(c.sealer.seal(encodeMessage({ dataPlaneOpen: {} })[0]!));
    void this.loop(nodeId, c, c.socket);
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

  private async loop(nodeId: string, c: Channel, socket: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        if (c.state === 'off') return;
        this.onMessage(nodeId, c, frames);
        // Opening a chunk is milliseconds of CPU on this thread: let timers and other sockets (the GCS's
        // heartbeats) have a turn between chunks, or a long pull would starve them.
        await nextTurn();
      }
    } catch (err) {
      if (c.state !== 'off') this.off(nodeId, c, `its data socket ended (${(err as Error).message})`);
    }
  }

  private onMessage(nodeId: string, c: Channel, frames: Buffer[]): void {
    const m = c.opener!.open(frames);
    let env: tsray.v1.Envelope | undefined;
    try {
      env = m ? decodeMessage([m.envelope]).envelope : undefined;
    } catch {
      env = undefined;
    }
    if (!m || !env || (env.objectChunk && !m.payload)) {
      this.off(nodeId, c, 'a message on its data socket did not open (altered, replayed or not from it)');
      return;
    }
    if (env.objectChunk) {
      this.received++;
      this.host.onChunk(nodeId, env.objectChunk, m.payload!);
    } else if (env.pullFailed) {
      this.host.onPullFailed(nodeId, env.pullFailed);
    } else if (env.dataPlaneOpened && c.state === 'checking') {
      c.state = 'ready';
      clearTimeout(c.timer);
      logger().debug({ peer: nodeId, waiting: c.waiting.length }, 'data plane ready');
      for (const body of c.waiting.splice(0)) this.send(nodeId, body);
    }
  }

  /** Stop using the data plane to `nodeId` (logged once); requests waiting go on the control link, those sent on it are asked again. */
  private off(nodeId: string, c: Channel, why: string): void {
    const wasUsed = c.used;
    c.state = 'off';
    this.closeChannel(c);
    logger().warn({ peer: nodeId, why }, 'data plane to a node is off; pulls from it use the control link (CURVE)');
    for (const body of c.waiting.splice(0)) this.host.sendControl(nodeId, body);
    if (wasUsed) this.host.lost(nodeId);
  }

  private closeChannel(c: Channel): void {
    c.state = 'off';
    clearTimeout(c.timer);
    c.outbox?.close();
    c.socket?.close();
  }
}
