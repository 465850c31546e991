/**
 * The GCS (global control service) on the head: node table with health checks, the cluster's
 * resource view (every node's totals and what is free), the actor directory with names per namespace,
 * an internal KV, and pub/sub of node changes (NodeTable: the whole table when a node registers or
 * asks, then versioned deltas, see {@link NodeTableLog}). Objects are not here (nodes
 * own them). Nodes connect a DEALER to this ROUTER; the first message of a connection must be a
 * RegisterNode that proves the cluster token; control calls are typed GcsRequest messages answered by
 * the {@link GcsService}. Every send goes through one Outbox (zeromq.js allows one send in flight per
 * socket), and no message, however malformed, ends the receive loop.
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { encodeMessage, tsray, type DecodedMessage, type EnvelopeBody, type GcsCall } from '@tsray/protocol';
import {
  type ActorDirectoryEntry,
  GCS_REREGISTER,
  GCS_AUDIENCE,
  RouterServer,
  TokenVerifier,
  amountsToRecord,
  answerGcsRequest,
  nodeStateFromWire,
} from '@tsray/core/internal';
import type { NodeInfo } from './contracts.js';
import { GcsService } from './gcs-service.js';
import { NodeTableLog, type VersionedNode } from './gcs-node-table.js';
import type { GcsStorage } from './gcs-storage.js';
import { logger } from './logger.js';
import { PortInUseError } from './errors.js';
import { isLoopback } from './node-address.js';

/** Options of {@link GcsServer.start}. */
export interface GcsOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  /**
   * The bound on how long a silent node goes unnoticed (default 3000 ms): a node is declared dead at
   * the first health check after its last heartbeat is older than this minus one check interval, so
   * its death is known at most this long after its last heartbeat.
   */
  nodeDeathTimeoutMs?: number;
  /** Largest accepted frame in bytes (default the protocol's 256 MiB); a bigger one is rejected with ERROR_CODE_TOO_LARGE. */
  maxFrameBytes?: number;
  /**
   * Where the tables are kept; the GCS reloads what it holds at start (a restarted head). Without one
   * the tables live in memory only.
   */
  storage?: GcsStorage;
  /**
   * How long a node of the reloaded table has to register again before it is declared dead (default
   * 30 s: nodes reconnect with a backoff of up to 5 s, and the head takes a few seconds to start).
   */
  reconnectGraceMs?: number;
}

interface NodeEntry extends VersionedNode {
  identity: Buffer;
  lastSeen: number;
  /** False for a node reloaded from the store that has not registered with this process yet. */
  connected: boolean;
}

/** What the GCS counted since it started (bench/scale and the tests read it). */
export interface GcsStats {
  /** Bytes and messages through the GCS's socket, per message kind. */
  traffic: ReturnType<RouterServer['traffic']['snapshot']>;
  /** The node table's version, and the whole tables, deltas and keep-alives made. */
  tableVersion: number;
  tables: NodeTableLog['sent'];
  /** Heartbeats received, and those that carried new free resources. */
  heartbeats: number;
  resourceReports: number;
  /** Alive nodes now. */
  aliveNodes: number;
}

/**
 * Changes of free resources reach the nodes once per this interval (coalesced into one delta), and an
 * idle GCS sends an empty delta this often (nodes stop after a long silence of their head).
 */
const TABLE_INTERVAL_MS = 1000;

/** One actor in the directory (what the owner node reported). */
export type ActorEntry = ActorDirectoryEntry;

/** The GCS server. */
export class GcsServer {
  readonly address: string;
  /** Nodes and remote drivers connect here; bounded per connection. */
  private readonly server: RouterServer;
  private readonly verifier: TokenVerifier;
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly byIdentity = new Map<string, string>();
  private readonly pending = new Map<number, { resolve: (v: tsray.v1.IGcsResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private requestSeq = 0;
  private readonly timer: NodeJS.Timeout;
  /** The node table's version and broadcast bookkeeping. */
  private readonly table = new NodeTableLog();
  private heartbeats = 0;
  private resourceReports = 0;
  /** Test hook: nodes whose next delta is not sent (they must notice and ask for the whole table). */
  private readonly dropNextDelta = new Set<string>();
  private closed = false;
  private readonly deathTimeoutMs: number;
  private readonly tickMs: number;
  private readonly storage: GcsStorage | undefined;
  /** The cluster's id: made by the first head, kept in the store so a restarted head has the same. */
  clusterId = randomBytes(8).toString('hex');
  /** When this GCS started serving (a restarted head: after reloading). */
  readonly startedAt = Date.now();
  /** Called when a node joins or dies. */
  onNodeChange: ((n: NodeInfo) => void) | undefined;
  /** The answers to control calls: actor directory, KV, listings; the head sets its dashboard URL and jobs here. */
  readonly service = new GcsService({ nodes: () => [...this.nodes.values()].map((n) => n.info), askNodes: (call, t) => this.askNodes(call, t) });
  /**
   * Refuse a node advertising a loopback address: set when the GCS is bound to a non-loopback address,
   * so every node reached it over the network and no other node could reach a loopback address.
   */
  refuseLoopbackNodes = false;

  private constructor(opts: GcsOptions, port: number) {
    this.address = `${opts.host}:${port}`;
    this.verifier = new TokenVerifier(opts.token, GCS_AUDIENCE);
    this.deathTimeoutMs = opts.nodeDeathTimeoutMs ?? 3000;
    this.storage = opts.storage;
    this.server = new RouterServer({
      where: 'GCS',
      token: opts.token,
      maxFrameBytes: opts.maxFrameBytes,
      registered: (identity) => {
        const nodeId = this.byIdentity.get(identity.toString());
        return nodeId ? { nodeId } : undefined;
      },
      onMessage: (identity, message) => this.handle(identity, message),
    });
    this.tickMs = Math.min(250, Math.max(20, this.deathTimeoutMs / 6));
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** Bind and serve. @throws PortInUseError naming the port. */
  static async start(opts: GcsOptions): Promise<GcsServer> {
    const probe = new zmq.Router();
    let port = opts.port;
    try {
      await probe.bind(`tcp://${opts.host}:${opts.port}`);
      port = Number(new URL(probe.lastEndpoint!.replace('tcp://', 'http://')).port);
    } catch (e) {
      probe.close();
      if (/in use/i.test(String((e as Error).message))) throw new PortInUseError('GCS', opts.port, opts.host);
      throw e;
    }
    probe.close();
    const g = new GcsServer(opts, port);
    if (opts.storage) await g.reload(opts.storage, opts.reconnectGraceMs ?? 30_000);
    await bindRetry(g.server, `tcp://${opts.host}:${port}`);
    g.server.start();
    logger().info({ address: g.address }, 'GCS listening');
    return g;
  }

  /**
   * Load the tables a previous GCS left in `storage`: the cluster id, the actor directory, names, KV
   * and jobs, and the node table. Nodes that were alive get `graceMs` to register again (they
   * reconnect by themselves); a head node cannot come back (it ran in the previous head process), so
   * it is dead now.
   */
  private async reload(storage: GcsStorage, graceMs: number): Promise<void> {
    const tables = await storage.load();
    const id = tables.meta.get('clusterId');
    if (id) this.clusterId = id;
    else await storage.put('meta', 'clusterId', this.clusterId);
    this.service.restore(storage, tables);
    const now = Date.now();
    for (const [nodeId, b64] of tables.nodes) {
      let info: tsray.v1.INodeInfo;
      try {
        info = tsray.v1.NodeInfo.toObject(tsray.v1.NodeInfo.decode(Buffer.from(b64, 'base64')), { defaults: true, longs: Number });
      } catch (err) {
        logger().warn({ nodeId, err }, 'a stored node row does not read; skipped');
        continue;
      }
      if (info.alive && info.isHead) {
        info.alive = false;
        info.deathReason = 'the head restarted (its node ran in the previous head process)';
        void this.persistNode(info);
      }
      const entry: NodeEntry = {
        info,
        identity: Buffer.from(`node:${nodeId}`),
        lastSeen: now + graceMs - this.deathTimeoutMs,
        gpuFree: [],
        connected: false,
        infoVersion: 0,
        resVersion: 0,
      };
      this.table.infoChanged(entry);
      this.nodes.set(nodeId, entry);
    }
    const alive = [...this.nodes.values()].filter((n) => n.info.alive).length;
    logger().info(
      { storage: storage.description, clusterId: this.clusterId, nodes: this.nodes.size, waitingFor: alive, actors: tables.actors.size, kv: tables.kv.size },
      tables.nodes.size > 0 ? 'GCS reloaded its tables; waiting for the nodes to register again' : 'GCS store opened (empty: a new cluster)',
    );
  }

  /** Store a node's row (fire and forget: a failed write is logged). */
  private async persistNode(info: tsray.v1.INodeInfo): Promise<void> {
    if (!this.storage) return;
    const row = Buffer.from(tsray.v1.NodeInfo.encode({ ...info, available: [] }).finish()).toString('base64');
    await this.storage.put('nodes', info.nodeId ?? '', row).catch((err: Error) => logger().warn({ nodeId: info.nodeId, err }, 'a node row was not stored'));
  }

  /**
   * Why a registering node must be refused for its loopback address, or undefined. Loopback is refused
   * when the GCS is bound to a non-loopback address, or when a live node of another host is in the
   * table (it could never reach this one).
   */
  private loopbackRefusal(info: tsray.v1.INodeInfo): string | undefined {
    const host = (info.address ?? '').replace(/^tcp:\/\//, '').replace(/:\d+$/, '');
    if (!isLoopback(host)) return undefined;
    const remote = [...this.nodes.values()].find(
      (e) => e.info.alive && e.info.hostname !== info.hostname && !isLoopback((e.info.address ?? '').replace(/^tcp:\/\//, '').replace(/:\d+$/, '')),
    );
    if (!this.refuseLoopbackNodes && !remote) return undefined;
    return (
      `it advertises ${info.address} (loopback), which ${remote ? `node ${remote.info.nodeId} on ${remote.info.hostname}` : 'the other nodes'} cannot reach; ` +
      `start it without --host (it then uses the address it reaches the head on) or with --host <its machine's address>`
    );
  }

  /** Where the tables are kept (`redis://…`, `file:…`), or undefined (memory only). */
  get storageDescription(): string | undefined {
    return this.storage?.description;
  }

  /** Counters of the control plane (monotonic; readers take differences). */
  stats(): GcsStats {
    return {
      traffic: this.server.traffic.snapshot(),
      tableVersion: this.table.version,
      tables: { ...this.table.sent },
      heartbeats: this.heartbeats,
      resourceReports: this.resourceReports,
      aliveNodes: [...this.nodes.values()].filter((n) => n.info.alive).length,
    };
  }

  /**
   * Test hook: do not send node `nodeId` the next delta that changes something (as if the message were lost). The node finds
   * the gap in the versions of the delta after it and asks for the whole table. Not for production use.
   */
  dropNextDeltaTo(nodeId: string): void {
    this.dropNextDelta.add(nodeId);
  }

  /** Nodes as the state API shows them. */
  nodeInfos(): NodeInfo[] {
    return [...this.nodes.values()].map((n) => nodeInfoFromWire(n.info));
  }

  /** The actor directory. */
  actorEntries(): ActorEntry[] {
    return this.service.actorEntries();
  }

  /** Send `call` to every alive node; dead, silent or failing nodes are skipped (logged). */
  async askNodes(call: GcsCall, timeoutMs = 3000): Promise<{ nodeId: string; response: tsray.v1.IGcsResponse }[]> {
    const alive = [...this.nodes.entries()].filter(([, n]) => n.info.alive && n.connected);
    const name = Object.keys(call)[0];
    const out = await Promise.all(
      alive.map(async ([nodeId, n]) => {
        try {
          const response = await this.call(n.identity, call, timeoutMs);
          if (response.error) throw new Error(response.error.message ?? 'failed');
          return { nodeId, response };
        } catch (e) {
          logger().warn({ nodeId, call: name, err: e }, 'node did not answer a control call');
          return undefined;
        }
      }),
    );
    return out.filter((x): x is { nodeId: string; response: tsray.v1.IGcsResponse } => x !== undefined);
  }

  private call(identity: Buffer, call: GcsCall, timeoutMs: number): Promise<tsray.v1.IGcsResponse> {
    const requestId = ++this.requestSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`no answer to ${Object.keys(call)[0]} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.send(identity, { gcsRequest: { requestId, ...call } });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('GCS closed'));
    }
    await this.server.close();
    await this.storage?.close().catch(() => undefined);
  }

  private send(identity: Buffer, body: EnvelopeBody): void {
    if (!this.closed) this.server.send(identity, body);
  }

  private handle(identity: Buffer, { envelope, kind }: DecodedMessage): void {
    const idStr = identity.toString();
    if (kind === 'registerNode') {
      const r = envelope.registerNode!;
      const why = this.verifier.check('RegisterNode', idStr, r.authProof, Number(r.authTime ?? 0), r.authNonce);
      if (why) {
        this.server.refuse(identity, {}, `refused a node connection: ${why}`, {
          error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `the head refused the connection: ${why}` },
        });
        return;
      }
      const info = r.node!;
      const nodeId = info.nodeId ?? '';
      const loopback = this.loopbackRefusal(info);
      if (loopback) {
        this.server.refuse(identity, { address: info.address }, `refused a node: ${loopback}`, {
          error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: `the head refused the node: ${loopback}` },
        });
        return;
      }
      const known = this.nodes.get(nodeId);
      if (known && !known.info.alive) {
        this.send(identity, {
          error: {
            code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED,
            message: `node ${nodeId} was declared dead (${known.info.deathReason}); start it again to rejoin`,
          },
        });
        return;
      }
      // A node of the reloaded table registering again keeps its start time.
      const rejoined = known !== undefined && !known.connected;
      const startTimeMs = rejoined ? Number(known.info.startTimeMs ?? 0) || Date.now() : Date.now();
      const entry: NodeEntry = {
        info: { ...info, alive: true, startTimeMs },
        identity,
        lastSeen: Date.now(),
        gpuFree: [],
        connected: true,
        infoVersion: 0,
        resVersion: 0,
      };
      this.table.infoChanged(entry);
      this.nodes.set(nodeId, entry);
      this.byIdentity.set(idStr, nodeId);
      logger().info({ nodeId, address: info.address, hostname: info.hostname }, rejoined ? 'node registered again (after a head restart)' : 'node joined');
      void this.persistNode(entry.info);
      this.onNodeChange?.(nodeInfoFromWire(entry.info));
      // The new node gets the whole table now (its registration is accepted by it), the others a delta
      // with its entry at once: a node that is ready is known to every node (drivers place work on it
      // right away). A burst of N joins costs N deltas of one entry to each node.
      this.sendFullTable(entry);
      this.broadcast(Date.now());
      return;
    }
    const nodeId = this.byIdentity.get(idStr);
    const n = nodeId ? this.nodes.get(nodeId) : undefined;
    if (!n && kind === 'gcsRequest' && this.serveUnregistered(identity, envelope.gcsRequest!)) return;
    if (!n && this.askToRegisterAgain(identity)) return;
    if (!n) {
      const msg = 'message from an unregistered connection; refused, the connection is closed (a node must send RegisterNode with a token proof first)';
      this.server.refuse(identity, { kind }, msg, {
        error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: 'register first (RegisterNode with a token proof)' },
      });
      return;
    }
    switch (kind) {
      case 'nodeHeartbeat': {
        const h = envelope.nodeHeartbeat!;
        if (!n.info.alive) {
          this.send(identity, {
            error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: `node ${nodeId} was declared dead (${n.info.deathReason})` },
          });
          return;
        }
        n.lastSeen = Date.now();
        this.heartbeats++;
        // Only a heartbeat that says so carries free resources (the others carry no change).
        if (h.resourcesChanged) {
          this.resourceReports++;
          n.info.available = h.available ?? [];
          n.gpuFree = (h.gpuFree ?? []).map(Number);
          this.table.resourcesChanged(n);
        }
        if (h.wantFullTable) this.sendFullTable(n);
        return;
      }
      case 'gcsRequest': {
        const req = envelope.gcsRequest!;
        void answerGcsRequest(req, (q) => this.service.serve(nodeId!, q)).then((r) => this.send(identity, { gcsResponse: r }));
        return;
      }
      case 'gcsResponse': {
        const r = envelope.gcsResponse!;
        const p = this.pending.get(Number(r.requestId));
        if (!p) return;
        this.pending.delete(Number(r.requestId));
        clearTimeout(p.timer);
        p.resolve(r);
        return;
      }
      case 'error':
        logger().warn({ nodeId, error: envelope.error }, 'node reported a protocol error');
        return;
      default:
        logger().warn({ nodeId, kind }, 'unexpected message kind at the GCS; ignored');
    }
  }

  /**
   * A driver on a machine without a node asks where to connect (cluster_entry), the CLI where the jobs
   * HTTP API is (cluster_dashboard), proving the token in the call. False for any other call (the
   * connection is then refused as unregistered).
   */
  private serveUnregistered(identity: Buffer, req: tsray.v1.IGcsRequest): boolean {
    // Only these two calls are served, and only the one asked (whatever else the message sets).
    const call: GcsCall | undefined = req.clusterEntry
      ? { clusterEntry: req.clusterEntry }
      : req.clusterDashboard
        ? { clusterDashboard: req.clusterDashboard }
        : undefined;
    const proof = req.clusterEntry ?? req.clusterDashboard;
    if (!call || !proof) return false;
    const why = this.verifier.check(
      req.clusterEntry ? 'ClusterEntry' : 'ClusterDashboard',
      identity.toString(),
      proof.authProof ?? undefined,
      Number(proof.authTime ?? 0),
      proof.authNonce ?? undefined,
    );
    if (why) {
      const error = { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `the head refused the connection: ${why}` };
      this.server.refuse(identity, {}, `refused a driver: ${why}`, { gcsResponse: { requestId: req.requestId, error } });
      return true;
    }
    void answerGcsRequest({ requestId: req.requestId, ...call }, (q) => this.service.serve(identity.toString(), q)).then((r) =>
      this.send(identity, { gcsResponse: r }),
    );
    return true;
  }

  /** When each reloaded node was last asked to register again (the ask is paced). */
  private readonly asked = new Map<string, number>();

  /**
   * A node of the reloaded table speaks before registering with this process (its messages were
   * queued while the head was down): ask it to register again, at most every 500 ms, without closing
   * the connection (its RegisterNode, with a fresh token proof, follows). False for any other
   * connection.
   */
  private askToRegisterAgain(identity: Buffer): boolean {
    const idStr = identity.toString();
    if (!idStr.startsWith('node:')) return false;
    const known = this.nodes.get(idStr.slice(5));
    if (!known || known.connected || !known.info.alive) return false;
    const now = Date.now();
    if (now - (this.asked.get(idStr) ?? 0) >= 500) {
      this.asked.set(idStr, now);
      this.send(identity, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: GCS_REREGISTER } });
    }
    return true;
  }

  private lastTick = Date.now();

  private tick(): void {
    const now = Date.now();
    const gap = now - this.lastTick;
    this.lastTick = now;
    if (gap > 2 * this.tickMs + 500) {
      // This process was paused (GC, a busy loop, the machine overloaded): heartbeats may be waiting
      // in the socket. Do not blame the nodes for our own pause; judge them from now on.
      for (const n of this.nodes.values()) n.lastSeen = Math.max(n.lastSeen, now - this.tickMs);
      logger().warn({ pausedMs: gap }, 'the GCS was paused; node health checks restart from now');
      return;
    }
    // Checks run every tickMs: a node silent past (limit - tickMs) is caught by the first check after
    // that, so no death waits longer than the limit after the last heartbeat (the limit is a bound on
    // detection time, as `nodeDeathTimeoutS` is documented; checking against the limit itself let
    // detection reach limit + tickMs: 3.02 s at N = 100 in bench/scale).
    const silentLimit = this.deathTimeoutMs - this.tickMs;
    for (const [nodeId, n] of this.nodes) {
      if (!n.info.alive) continue;
      const silent = now - n.lastSeen;
      if (silent > silentLimit) {
        n.info.alive = false;
        n.info.deathReason = n.connected
          ? `no heartbeat for ${(silent / 1000).toFixed(1)} s (limit ${(this.deathTimeoutMs / 1000).toFixed(1)} s)`
          : 'it did not register again after the head restarted';
        logger().warn({ nodeId, reason: n.info.deathReason }, 'node declared dead');
        this.service.nodeDied(nodeId);
        void this.persistNode(n.info);
        this.table.infoChanged(n);
        this.onNodeChange?.(nodeInfoFromWire(n.info));
      }
    }
    this.broadcast(now);
  }

  /** The whole table to one node (it registered, or a delta did not follow from what it holds). */
  private sendFullTable(n: NodeEntry): void {
    this.send(n.identity, { nodeTable: this.table.full([...this.nodes.values()]) });
  }

  /**
   * The changes since the last broadcast (or the keep-alive) to every connected node: encoded once,
   * the same frames to each.
   */
  private broadcast(now: number): void {
    const delta = this.table.nextDelta(this.nodes.values(), now, TABLE_INTERVAL_MS);
    if (!delta || this.closed) return;
    const frames = encodeMessage({ nodeTable: delta });
    for (const [nodeId, n] of this.nodes) {
      if (!n.info.alive || !n.connected) continue;
      // The test hook drops a delta that changes something (a lost keep-alive leaves no gap).
      if (delta.version !== delta.baseVersion && this.dropNextDelta.delete(nodeId)) continue;
      this.server.sendFrames(n.identity, frames, 'nodeTable');
    }
  }
}

async function bindRetry(sock: RouterServer, endpoint: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await sock.bind(endpoint);
      return;
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Resource amounts (fixed point) to floats. */
export { amountsToRecord };

/** NodeInfo (state API shape) from its wire form. */
export const nodeInfoFromWire: (n: tsray.v1.INodeInfo) => NodeInfo = nodeStateFromWire;
