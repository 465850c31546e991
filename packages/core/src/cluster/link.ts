/**
 * A node's connections to the rest of its cluster: one DEALER to the head's GCS (register, heartbeat,
 * node table, control calls) and one DEALER per other node it talks to (a "peer": this node acts as a
 * client of that node's ROUTER, speaking the driver messages). Both prove the cluster token.
 * @internal
 */
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody, type GcsCall, type GcsResult } from '@tsray/protocol';
import { GCS_AUDIENCE, makeTokenProof } from '../auth.js';
import { curveClientOptions, onCurveRefused, refusedMessage } from '../curve.js';
import { GCS_REREGISTER, answerGcsRequest } from './control-plane.js';
import { GcsUnavailableError } from '../errors.js';
import { GcsClient } from './gcs-client.js';
import { NodeTableReplica } from './node-table-replica.js';
import { config } from '../config.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import type { FrameBuilder } from '../wire.js';
import { PeerBatch } from './peer-batch.js';

/** What the link reports to its node runtime. */
export interface LinkHandler {
  /** The whole node table held (the link applies the GCS's deltas), after each table message. */
  onNodeTable(t: tsray.v1.INodeTable): void;
  /** A control call from the GCS (state_snapshot, job_end): its result; a throw is the error reply. */
  onGcsRequest(req: tsray.v1.IGcsRequest): GcsResult | Promise<GcsResult>;
  /** A message from a peer node (an answer to what this node sent it). */
  onPeerMessage(peerNodeId: string, kind: string, envelope: tsray.v1.Envelope, payloads: Buffer[]): void;
  /** The GCS refused this node or declared it dead, or the head was lost for good: the node must stop. */
  onFatal(message: string): void;
  /** A peer node did not answer this node's connection in time (`why` names it and its address). */
  onPeerUnreachable(peerNodeId: string, why: string): void;
}

/** How long a peer node has to answer a new connection (`TSRAY_PEER_CONNECT_TIMEOUT_MS`, default 10 s). */
export function peerConnectTimeoutMs(): number {
  return config().peerConnectTimeoutMs;
}

/** Default of {@link LinkOptions.headLostTimeoutMs}: 60 s (`tsray start --head-lost-timeout`, `TSRAY_HEAD_LOST_TIMEOUT_S`). */
export const DEFAULT_HEAD_LOST_TIMEOUT_MS = 60_000;

/** Options of a {@link ClusterLink}. */
export interface LinkOptions {
  gcsAddress: string;
  token: string;
  node: tsray.v1.INodeInfo;
  /** Resources free now (units), sent with a heartbeat when they changed since the last one sent. */
  available: () => { amounts: tsray.v1.IResourceAmount[]; gpuFree: number[] };
  heartbeatMs?: number;
  /**
   * Stop the node (onFatal) once the head has said nothing for this long (it sends a node table delta,
   * empty when nothing changed, at least every second). Until then the link keeps reconnecting, with backoff, and logs the loss.
   */
  headLostTimeoutMs?: number;
  /** Payload bytes sent to and received from peer nodes (the node's traffic counters). */
  onPeerBytes?: (nodeId: string, dir: 'in' | 'out', frames: readonly Uint8Array[]) => void;
}

/** The GCS is silent after this long: the loss is logged (then again at doubling intervals). */
const HEAD_SILENT_MS = 3000;

/** Longest a control call made while the GCS is down waits for it to come back (then GcsUnavailableError). */
const GCS_OUTAGE_WAIT_MS = 60_000;

/** A control call sent to the GCS (or held while it is down), until its answer. */
interface PendingCall {
  call: GcsCall;
  /** False while it waits for the GCS (held, or sent to a GCS that went away): sent on re-registering. */
  sent: boolean;
  resolve: (v: tsray.v1.IGcsResponse) => void;
  reject: (e: Error) => void;
}

/** One connection to another node's ROUTER. */
export class PeerConnection {
  readonly socket: zmq.Dealer;
  private readonly outbox: Outbox;
  /** Objects this node already sent to (or got from) the peer. */
  readonly has = new Set<string>();
  closed = false;
  /** True once the peer answered (its first message, WorkerAccepted, proves the connection works). */
  answered = false;
  /** True once ZeroMQ's own handshake with the peer completed (its I/O thread, not the peer's event loop). */
  private transportUp = false;
  private readonly handshake: NodeJS.Timeout;
  /** This turn's forwarded tasks and releases, sent at its end. */
  private readonly batch = new PeerBatch();
  private batchQueued = false;
  constructor(
    readonly nodeId: string,
    readonly address: string,
    myId: string,
    token: string,
    private readonly handler: LinkHandler,
    private readonly onBytes?: LinkOptions['onPeerBytes'],
  ) {
    const routingId = `peer:${myId}`;
    this.socket = new zmq.Dealer({ routingId, sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0, ...curveClientOptions(address, token) });
    // Watched before connecting: ZeroMQ reports the handshake only to a monitor that exists by then.
    this.socket.events.on('handshake', () => (this.transportUp = true));
    this.socket.connect(address);
    this.outbox = new Outbox(this.socket);
    const proof = makeTokenProof(token, { kind: 'RegisterWorker', audience: nodeId, id: routingId });
    this.send({
      registerWorker: { workerId: routingId, pid: process.pid, language: 'typescript', kind: 'peer', namespace: '', jobId: '', ...proof, remote: true },
    });
    // ZeroMQ's connect never fails by itself (it retries forever): without an answer in time, the peer
    // is unreachable from here, and the node runtime fails or reschedules what it sent there.
    // A peer whose transport is up but which is slow to answer (a busy event loop) is only waited for.
    const timeoutMs = peerConnectTimeoutMs();
    this.handshake = setTimeout(() => {
      if (this.answered || this.closed) return;
      if (this.transportUp) {
        logger().warn({ peer: nodeId, address }, `a peer node is connected but has not answered in ${timeoutMs / 1000} s; still waiting`);
        return;
      }
      this.handler.onPeerUnreachable(
        nodeId,
        `node ${nodeId} is unreachable at ${address}: no answer to a connection within ${timeoutMs / 1000} s (is its port open to this machine, and is the address it advertises right? see --host / --node-ip-address)`,
      );
    }, timeoutMs);
    this.handshake.unref();
    void this.loop();
  }

  /** Send now, after this turn's batch (which goes first, so that the peer sees everything in order). */
  send(body: EnvelopeBody, frames?: Uint8Array[]): void {
    if (this.closed) return;
    this.flushBatch();
    this.sendNow(body, frames);
  }

  /** Forward a task in this turn's batch (see {@link PeerBatch}). */
  forward(returnIds: readonly string[], encode: (frames: FrameBuilder) => tsray.v1.ITaskSpec): void {
    if (this.closed) return;
    this.batch.forward(returnIds, encode);
    this.scheduleBatch();
  }

  /** Give back holds on the peer's objects in this turn's batch. */
  release(ids: readonly string[]): void {
    if (this.closed) return;
    this.batch.release(ids);
    this.scheduleBatch();
  }

  private scheduleBatch(): void {
    if (this.batchQueued) return;
    this.batchQueued = true;
    queueMicrotask(() => {
      this.batchQueued = false;
      this.flushBatch();
    });
  }

  private flushBatch(): void {
    if (this.batch.empty || this.closed) return;
    for (const [body, frames] of this.batch.take()) this.sendNow(body, frames);
  }

  private sendNow(body: EnvelopeBody, frames?: Uint8Array[]): void {
    if (frames && this.onBytes) this.onBytes(this.nodeId, 'out', frames);
    this.outbox.send(encodeMessage(body, frames && frames.length > 0 ? frames : undefined));
  }

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        if (!this.answered) {
          this.answered = true;
          clearTimeout(this.handshake);
        }
        try {
          const { envelope, kind, payloads } = decodeMessage(frames);
          if (payloads.length > 0) this.onBytes?.(this.nodeId, 'in', payloads);
          this.handler.onPeerMessage(this.nodeId, kind, envelope, payloads);
        } catch (err) {
          logger().warn({ err, peer: this.nodeId }, 'malformed message from a peer node; dropped');
        }
      }
    } catch (err) {
      if (!this.closed) logger().warn({ err, peer: this.nodeId }, 'peer connection ended');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.handshake);
    this.outbox.close();
    this.socket.close();
  }
}

/** The node's link to the GCS and its peers. */
export class ClusterLink {
  private readonly gcsSocket: zmq.Dealer;
  private readonly outbox: Outbox;
  private readonly peers = new Map<string, PeerConnection>();
  private readonly pending = new Map<number, PendingCall>();
  private requestSeq = 0;
  /**
   * True while this node is registered with a GCS that is up. False from the loss of the connection
   * (the head died or restarts) until the GCS took this node's RegisterNode again: control calls are
   * held meanwhile and sent then.
   */
  private gcsUp = false;
  /** When RegisterNode was last sent again (paced). */
  private lastReregister = 0;
  private readonly beat: NodeJS.Timeout;
  private seq = 0;
  /** The node table this node holds, kept by the GCS's deltas. */
  private readonly table = new NodeTableReplica();
  /** True from a delta that did not follow from the version held until a whole table came. */
  private wantFullTable = false;
  /** The free resources last reported (undefined: report them with the next heartbeat). */
  private reported: string | undefined;
  private closed = false;
  private registered: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Set by the first NodeTable (registration accepted). */
  private answered = false;
  /** When the GCS last sent anything, and when the loss was last logged. */
  private lastHeard = Date.now();
  private lastCheck = Date.now();
  private nextLossLog = HEAD_SILENT_MS;
  readonly ready: Promise<void>;
  readonly nodeId: string;
  /** The GCS's control calls, typed. */
  readonly gcs = new GcsClient((call, timeoutMs) => this.request(call, timeoutMs));

  constructor(
    private readonly opts: LinkOptions,
    private readonly handler: LinkHandler,
  ) {
    this.nodeId = opts.node.nodeId ?? '';
    // Reconnects back off from 100 ms to 1 s while the head is away (a restarted head is found within a second).
    this.gcsSocket = new zmq.Dealer({
      routingId: `node:${this.nodeId}`,
      sendHighWaterMark: 0,
      receiveHighWaterMark: 0,
      linger: 0,
      reconnectInterval: 100,
      reconnectMaxInterval: 1000,
      ...curveClientOptions(`tcp://${opts.gcsAddress}`, opts.token),
    });
    // Watched before connecting: the head going away, and a (new) head answering the reconnect.
    this.gcsSocket.events.on('disconnect', () => this.gcsLost());
    this.gcsSocket.events.on('handshake', () => {
      if (this.answered) this.registerAgain('reconnected to the head');
    });
    // A head of another cluster (another token) fails the CURVE handshake and never answers: stop
    // with the reason, as for a refused proof. After registration a failing handshake is only retried.
    onCurveRefused(this.gcsSocket, (detail) => {
      if (this.answered || this.closed) return;
      const msg = refusedMessage('the head', detail);
      this.registered?.reject(new Error(msg));
      logger().error({ gcs: opts.gcsAddress }, 'the GCS refused this node (CURVE handshake failed)');
      this.handler.onFatal(msg);
    });
    this.gcsSocket.connect(`tcp://${opts.gcsAddress}`);
    this.outbox = new Outbox(this.gcsSocket);
    this.ready = new Promise((resolve, reject) => (this.registered = { resolve, reject }));
    this.ready.catch(() => undefined);
    const proof = makeTokenProof(opts.token, { kind: 'RegisterNode', audience: GCS_AUDIENCE, id: `node:${this.nodeId}` });
    this.send({ registerNode: { node: opts.node, ...proof } });
    this.beat = setInterval(() => this.heartbeat(), opts.heartbeatMs ?? 300);
    this.beat.unref();
    void this.loop();
  }

  private send(body: EnvelopeBody): void {
    if (!this.closed) this.outbox.send(encodeMessage(body));
  }

  /** The connection to the GCS is gone: hold control calls (and resend the unanswered ones) until it is back. */
  private gcsLost(): void {
    if (this.closed || !this.gcsUp) return;
    this.gcsUp = false;
    for (const p of this.pending.values()) p.sent = false;
    logger().warn({ gcs: this.opts.gcsAddress }, 'lost the connection to the head; control calls wait until it is back (running work goes on)');
  }

  /**
   * Register with the GCS again (a fresh token proof): a restarted head asked for it, or the
   * connection came back. Paced to once per 500 ms.
   */
  private registerAgain(why: string): void {
    const now = Date.now();
    if (this.closed || now - this.lastReregister < 500) return;
    this.lastReregister = now;
    this.gcsUp = false;
    this.reported = undefined;
    for (const p of this.pending.values()) p.sent = false;
    logger().info({ gcs: this.opts.gcsAddress, why }, 'registering with the head again');
    const proof = makeTokenProof(this.opts.token, { kind: 'RegisterNode', audience: GCS_AUDIENCE, id: `node:${this.nodeId}` });
    this.send({ registerNode: { node: this.opts.node, ...proof } });
  }

  /** The GCS took this node (its NodeTable came): send the held control calls. */
  private gcsBack(): void {
    if (this.gcsUp) return;
    this.gcsUp = true;
    this.reported = undefined;
    const held = [...this.pending.entries()].filter(([, p]) => !p.sent);
    if (this.answered) logger().info({ gcs: this.opts.gcsAddress, held: held.length }, 'registered with the head again; sending the held control calls');
    for (const [requestId, p] of held) {
      p.sent = true;
      this.send({ gcsRequest: { requestId, ...p.call } });
    }
  }

  /**
   * Liveness, and what changed: the free resources only when they differ from the last report (so at
   * most one report per heartbeat interval), the table version held, and the ask for a whole table.
   */
  private heartbeat(): void {
    if (this.headLost() || !this.gcsUp) return;
    this.sendHeartbeat();
  }

  private sendHeartbeat(): void {
    const a = this.opts.available();
    const key = JSON.stringify([a.amounts.map((r) => [r.name, Number(r.units ?? 0)]), a.gpuFree]);
    const changed = key !== this.reported;
    this.reported = key;
    this.send({
      nodeHeartbeat: {
        nodeId: this.nodeId,
        seq: ++this.seq,
        tableVersion: this.table.version,
        ...(changed ? { resourcesChanged: true, available: a.amounts, gpuFree: a.gpuFree } : {}),
        ...(this.wantFullTable ? { wantFullTable: true } : {}),
      },
    });
  }

  /** The node table's version held and its entries (the state snapshot `node_table`, tests). */
  nodeTable(): { version: number; nodes: tsray.v1.INodeInfo[] } {
    return { version: this.table.version, nodes: this.table.entries() };
  }

  /** Apply a NodeTable; a delta that does not follow from the version held asks for the whole table at once. */
  private onTable(t: tsray.v1.INodeTable): void {
    const r = this.table.apply(t);
    if (r.kind === 'missed') {
      if (!this.wantFullTable) logger().info({ held: r.held, base: r.base }, 'missed a node table delta; asking the GCS for the whole table');
      const first = !this.wantFullTable;
      this.wantFullTable = true;
      if (first && this.gcsUp) this.sendHeartbeat();
      return;
    }
    if (t.full) this.wantFullTable = false;
    // The runtime gets the whole table held, not only what changed: its view of a node counts what it
    // sent there since that node's last report, and the whole table (about once a second: the delta or
    // keep-alive) resets those counts to what the GCS knows, as the old whole-table broadcast did. A
    // node whose resources did not change is never in a delta, so the changes alone would leave its
    // counts wrong forever (no spilling to it). This costs CPU here, not bytes on the wire.
    this.handler.onNodeTable(this.table.table());
  }

  /**
   * Check the head's silence (after registration): log it at 3 s, 6 s, 12 s…, and past
   * `headLostTimeoutMs` stop the node. Returns true once given up.
   */
  private headLost(): boolean {
    if (this.closed || !this.answered) return this.closed;
    const now = Date.now();
    // This process was stalled (GC, a blocked loop): the head's messages wait unread; do not count that.
    if (now - this.lastCheck > 2000) this.lastHeard = Math.max(this.lastHeard, now - (this.opts.heartbeatMs ?? 300));
    this.lastCheck = now;
    const silentMs = now - this.lastHeard;
    const limitMs = this.opts.headLostTimeoutMs ?? DEFAULT_HEAD_LOST_TIMEOUT_MS;
    if (silentMs >= limitMs) {
      const msg = `lost the head (GCS at ${this.opts.gcsAddress}): no word from it for ${limitMs / 1000} s (--head-lost-timeout / TSRAY_HEAD_LOST_TIMEOUT_S); this node stops`;
      logger().error({ gcs: this.opts.gcsAddress, silentS: Math.round(silentMs / 1000) }, msg);
      this.close();
      this.handler.onFatal(msg);
      return true;
    }
    if (silentMs >= this.nextLossLog) {
      this.nextLossLog *= 2;
      logger().warn(
        { gcs: this.opts.gcsAddress, silentS: Math.round(silentMs / 1000), giveUpInS: Math.round((limitMs - silentMs) / 1000) },
        'no word from the head; reconnecting (this node stops if it stays silent)',
      );
    }
    return false;
  }

  /**
   * Send one control call to the GCS; resolves with its response (an error reply included). While the
   * GCS is down the call is held and sent once this node registered again; it waits up to `timeoutMs`
   * (default 15 s), extended to 60 s while the head is away. @throws GcsUnavailableError past that.
   */
  private request(call: GcsCall, timeoutMs = 15_000): Promise<tsray.v1.IGcsResponse> {
    const requestId = ++this.requestSeq;
    const name = Object.keys(call)[0] ?? 'call';
    const start = Date.now();
    return new Promise<tsray.v1.IGcsResponse>((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const expire = () => {
        const waited = Date.now() - start;
        const limit = this.gcsUp ? timeoutMs : Math.max(timeoutMs, Math.min(GCS_OUTAGE_WAIT_MS, this.opts.headLostTimeoutMs ?? DEFAULT_HEAD_LOST_TIMEOUT_MS));
        if (waited < limit) {
          timer = setTimeout(expire, limit - waited);
          timer.unref();
          return;
        }
        this.pending.delete(requestId);
        reject(new GcsUnavailableError(this.opts.gcsAddress, name, waited));
      };
      timer = setTimeout(expire, timeoutMs);
      timer.unref();
      const p: PendingCall = {
        call,
        sent: this.gcsUp,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.pending.set(requestId, p);
      if (p.sent) this.send({ gcsRequest: { requestId, ...call } });
    });
  }

  /** The connection to `nodeId` at `address` (made on first use). */
  peer(nodeId: string, address: string): PeerConnection {
    let p = this.peers.get(nodeId);
    if (!p || p.closed) this.peers.set(nodeId, (p = new PeerConnection(nodeId, address, this.nodeId, this.opts.token, this.handler, this.opts.onPeerBytes)));
    return p;
  }

  /** The connection to `nodeId` if one is open. */
  existingPeer(nodeId: string): PeerConnection | undefined {
    return this.peers.get(nodeId);
  }

  /** Forget a dead peer. */
  dropPeer(nodeId: string): void {
    this.peers.get(nodeId)?.close();
    this.peers.delete(nodeId);
  }

  /** Receive from the GCS until closed; a bad message is logged and dropped, never the end of the loop. */
  private async loop(): Promise<void> {
    try {
      for await (const frames of this.gcsSocket) {
        if (this.nextLossLog > HEAD_SILENT_MS) logger().info({ gcs: this.opts.gcsAddress }, 'the head answers again');
        this.lastHeard = Date.now();
        this.nextLossLog = HEAD_SILENT_MS;
        try {
          this.onGcsMessage(frames);
        } catch (err) {
          logger().warn({ err }, 'a message from the GCS could not be handled; dropped');
        }
      }
    } catch (err) {
      if (!this.closed) logger().error({ err }, 'GCS connection ended');
    }
  }

  private onGcsMessage(frames: Buffer[]): void {
    const { envelope, kind } = decodeMessage(frames);
    switch (kind) {
      case 'nodeTable':
        this.gcsBack();
        if (!this.answered) {
          this.answered = true;
          this.registered?.resolve();
        }
        this.onTable(envelope.nodeTable!);
        break;
      case 'gcsResponse': {
        const r = envelope.gcsResponse!;
        const p = this.pending.get(Number(r.requestId));
        if (!p) break;
        this.pending.delete(Number(r.requestId));
        p.resolve(r);
        break;
      }
      case 'gcsRequest': {
        const req = envelope.gcsRequest!;
        void answerGcsRequest(req, (q) => this.handler.onGcsRequest(q)).then((gcsResponse) => this.send({ gcsResponse }));
        break;
      }
      case 'error': {
        const msg = envelope.error?.message ?? 'refused';
        if (this.answered && msg === GCS_REREGISTER) {
          this.registerAgain('the head restarted');
          break;
        }
        if (!this.answered) {
          this.registered?.reject(new Error(msg));
          logger().error({ error: envelope.error }, 'the GCS refused this node');
          this.handler.onFatal(msg);
        } else if (envelope.error?.code === tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED || /declared dead/.test(msg)) {
          logger().error({ error: envelope.error }, 'the GCS dropped this node');
          this.handler.onFatal(msg);
        } else {
          logger().warn({ error: envelope.error }, 'the GCS rejected a message from this node');
        }
        break;
      }
      default:
        logger().warn({ kind }, 'unexpected message from the GCS; ignored');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.beat);
    for (const p of this.peers.values()) p.close();
    for (const p of this.pending.values()) p.reject(new Error('the node is shutting down'));
    this.registered?.reject(new Error('the node is shutting down'));
    this.outbox.close();
    this.gcsSocket.close();
  }
}
