/**
 * The GCS (global control service) on the head: node table with health checks, the cluster's
 * resource view (every node's totals and what is free), the actor directory with names per namespace,
 * an internal KV, and pub/sub of node changes (NodeTable to every node). Objects are not here (nodes
 * own them). Nodes connect a DEALER to this ROUTER; the first message of a connection must be a
 * RegisterNode that proves the cluster token. Every send goes through one Outbox (zeromq.js allows one
 * send in flight per socket), and no message, however malformed, ends the receive loop.
 * @module
 */
import { hostname } from 'node:os';
import * as zmq from 'zeromq';
import { tsray, type DecodedMessage, type EnvelopeBody } from '@tsray/protocol';
import { RouterServer, TokenVerifier } from '@tsray/core/internal';
import type { ActorState, NodeInfo } from './contracts.js';
import { logger } from './logger.js';
import { PortInUseError } from './errors.js';
import { isLoopback } from './node-address.js';

/** Options of {@link GcsServer.start}. */
export interface GcsOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  /** A node silent for this long is declared dead (default 3000 ms). */
  nodeDeathTimeoutMs?: number;
  /** Largest accepted frame in bytes (default the protocol's 256 MiB); a bigger one is rejected with ERROR_CODE_TOO_LARGE. */
  maxFrameBytes?: number;
}

interface NodeEntry {
  info: tsray.v1.INodeInfo;
  identity: Buffer;
  lastSeen: number;
  gpuFree: number[];
}

/** One actor in the directory (what the owner node reported). */
export interface ActorEntry {
  actorId: string;
  name: string;
  namespace: string;
  className: string;
  methods: string[];
  /** The node that created it (calls from other nodes go there). */
  ownerNodeId: string;
  /** The node whose worker runs it now. */
  hostNodeId: string;
  state: ActorState['state'];
  pid: number;
  numRestarts: number;
  detached: boolean;
  deathCause?: string;
}

/** The GCS server. */
export class GcsServer {
  readonly address: string;
  /** Nodes and remote drivers connect here; bounded per connection. */
  private readonly server: RouterServer;
  private readonly verifier: TokenVerifier;
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly byIdentity = new Map<string, string>();
  private readonly actors = new Map<string, ActorEntry>();
  private readonly names = new Map<string, string>();
  private readonly kv = new Map<string, string>();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private requestSeq = 0;
  private readonly timer: NodeJS.Timeout;
  private lastBroadcast = 0;
  private closed = false;
  private readonly deathTimeoutMs: number;
  private readonly tickMs: number;
  /** Called when a node joins or dies. */
  onNodeChange: ((n: NodeInfo) => void) | undefined;
  /** The jobs HTTP API's URL, told to clients that ask by GCS address (`tsray status --address HOST:PORT`). */
  dashboardUrl: string | undefined;
  /**
   * Refuse a node advertising a loopback address: set when the GCS is bound to a non-loopback address,
   * so every node reached it over the network and no other node could reach a loopback address.
   */
  refuseLoopbackNodes = false;
  /** More control methods (the head adds `jobs.list`). */
  readonly methods = new Map<string, (arg: Record<string, unknown>) => unknown>();

  private constructor(opts: GcsOptions, port: number) {
    this.address = `${opts.host}:${port}`;
    this.verifier = new TokenVerifier(opts.token);
    this.deathTimeoutMs = opts.nodeDeathTimeoutMs ?? 3000;
    this.server = new RouterServer({
      where: 'GCS',
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
    await bindRetry(g.server, `tcp://${opts.host}:${port}`);
    g.server.start();
    logger().info({ address: g.address }, 'GCS listening');
    return g;
  }

  /**
   * Why a registering node must be refused for its loopback address, or undefined. Loopback is refused
   * when the GCS is bound to a non-loopback address, or when a live node of another host is in the
   * table (it could never reach this one).
   */
  private loopbackRefusal(info: tsray.v1.INodeInfo): string | undefined {
    const host = (info.address ?? '').replace(/^tcp:\/\//, '').replace(/:\d+$/, '');
    if (!isLoopback(host)) return undefined;
    const remote = [...this.nodes.values()].find((e) => e.info.alive && e.info.hostname !== info.hostname && !isLoopback((e.info.address ?? '').replace(/^tcp:\/\//, '').replace(/:\d+$/, '')));
    if (!this.refuseLoopbackNodes && !remote) return undefined;
    return (
      `it advertises ${info.address} (loopback), which ${remote ? `node ${remote.info.nodeId} on ${remote.info.hostname}` : 'the other nodes'} cannot reach; ` +
      `start it without --host (it then uses the address it reaches the head on) or with --host <its machine's address>`
    );
  }

  /** Nodes as the state API shows them. */
  nodeInfos(): NodeInfo[] {
    return [...this.nodes.values()].map((n) => nodeInfoFromWire(n.info));
  }

  /** The actor directory. */
  actorEntries(): ActorEntry[] {
    return [...this.actors.values()];
  }

  /** Ask every alive node for a JSON document (`state.snapshot` etc.); dead or silent nodes are skipped. */
  async askNodes(method: string, json: unknown, timeoutMs = 3000): Promise<{ nodeId: string; result: unknown }[]> {
    const alive = [...this.nodes.entries()].filter(([, n]) => n.info.alive);
    const out = await Promise.all(
      alive.map(async ([nodeId, n]) => {
        try {
          return { nodeId, result: await this.call(n.identity, method, json, timeoutMs) };
        } catch (e) {
          logger().warn({ nodeId, method, err: e }, 'node did not answer a state request');
          return undefined;
        }
      }),
    );
    return out.filter((x): x is { nodeId: string; result: unknown } => x !== undefined);
  }

  private call(identity: Buffer, method: string, json: unknown, timeoutMs: number): Promise<unknown> {
    const requestId = ++this.requestSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.send(identity, { gcsCall: { requestId, method, json: JSON.stringify(json ?? null) } });
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
  }

  private send(identity: Buffer, body: EnvelopeBody): void {
    if (!this.closed) this.server.send(identity, body);
  }

  private handle(identity: Buffer, { envelope, kind }: DecodedMessage): void {
    const idStr = identity.toString();
    if (kind === 'registerNode') {
      const r = envelope.registerNode!;
      const why = this.verifier.check(idStr, r.authProof, Number(r.authTime ?? 0), r.authNonce);
      if (why) {
        this.server.refuse(identity, {}, `refused a node connection: ${why}`, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `the head refused the connection: ${why}` } });
        return;
      }
      const info = r.node!;
      const nodeId = info.nodeId ?? '';
      const loopback = this.loopbackRefusal(info);
      if (loopback) {
        this.server.refuse(identity, { address: info.address }, `refused a node: ${loopback}`, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: `the head refused the node: ${loopback}` } });
        return;
      }
      const known = this.nodes.get(nodeId);
      if (known && !known.info.alive) {
        this.send(identity, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: `node ${nodeId} was declared dead (${known.info.deathReason}); start it again to rejoin` } });
        return;
      }
      const entry: NodeEntry = { info: { ...info, alive: true, startTimeMs: Date.now() }, identity, lastSeen: Date.now(), gpuFree: [] };
      this.nodes.set(nodeId, entry);
      this.byIdentity.set(idStr, nodeId);
      logger().info({ nodeId, address: info.address, hostname: info.hostname }, 'node joined');
      this.onNodeChange?.(nodeInfoFromWire(entry.info));
      this.broadcast();
      return;
    }
    const nodeId = this.byIdentity.get(idStr);
    const n = nodeId ? this.nodes.get(nodeId) : undefined;
    if (!n && kind === 'gcsCall' && (envelope.gcsCall!.method === 'cluster.entry' || envelope.gcsCall!.method === 'cluster.dashboard')) {
      // A driver on a machine without a node asks where to connect, the CLI where the jobs HTTP API is
      // (proving the token in the call).
      const c = envelope.gcsCall!;
      let a: { authProof?: string; authTime?: number; authNonce?: string } = {};
      try {
        a = JSON.parse(c.json || '{}') as typeof a;
      } catch {
        /* bad JSON: no proof */
      }
      const why = this.verifier.check(idStr, a.authProof ? Buffer.from(a.authProof, 'base64') : undefined, Number(a.authTime ?? 0), a.authNonce);
      if (why) {
        this.server.refuse(identity, {}, `refused a driver: ${why}`, { gcsReply: { requestId: c.requestId, json: '', error: `AUTH_FAILED: the head refused the connection: ${why}` } });
        return;
      }
      const result = c.method === 'cluster.dashboard' ? { dashboardUrl: this.dashboardUrl ?? null } : this.nodeInfos();
      this.send(identity, { gcsReply: { requestId: c.requestId, json: JSON.stringify(result), error: '' } });
      return;
    }
    if (!n) {
      const msg = 'message from an unregistered connection; refused, the connection is closed (a node must send RegisterNode with a token proof first)';
      this.server.refuse(identity, { kind }, msg, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: 'register first (RegisterNode with a token proof)' } });
      return;
    }
    switch (kind) {
      case 'nodeHeartbeat': {
        const h = envelope.nodeHeartbeat!;
        if (!n.info.alive) {
          this.send(identity, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: `node ${nodeId} was declared dead (${n.info.deathReason})` } });
          return;
        }
        n.lastSeen = Date.now();
        n.info.available = h.available ?? [];
        n.gpuFree = (h.gpuFree ?? []).map(Number);
        return;
      }
      case 'gcsCall': {
        const c = envelope.gcsCall!;
        new Promise<unknown>((resolve) => resolve(this.serve(nodeId!, c.method ?? '', c.json ? JSON.parse(c.json) : null))).then(
          (v) => this.send(identity, { gcsReply: { requestId: c.requestId, json: JSON.stringify(v ?? null), error: '' } }),
          (e: Error) => this.send(identity, { gcsReply: { requestId: c.requestId, json: '', error: e.message } }),
        );
        return;
      }
      case 'gcsReply': {
        const r = envelope.gcsReply!;
        const p = this.pending.get(Number(r.requestId));
        if (!p) return;
        this.pending.delete(Number(r.requestId));
        clearTimeout(p.timer);
        if (r.error) p.reject(new Error(r.error));
        else p.resolve(r.json ? JSON.parse(r.json) : null);
        return;
      }
      case 'error':
        logger().warn({ nodeId, error: envelope.error }, 'node reported a protocol error');
        return;
      default:
        logger().warn({ nodeId, kind }, 'unexpected message kind at the GCS; ignored');
    }
  }

  /** Control calls from nodes. */
  private serve(from: string, method: string, a: Record<string, unknown> | null): unknown | Promise<unknown> {
    const arg = a ?? {};
    switch (method) {
      case 'actor.register': {
        const e = arg as unknown as ActorEntry;
        if (e.name) {
          const key = `${e.namespace}\0${e.name}`;
          const other = this.names.get(key);
          if (other && other !== e.actorId && this.actors.get(other)?.state !== 'DEAD') {
            throw new Error(`the actor name "${e.name}" is already taken in namespace "${e.namespace}" (actor ${other})`);
          }
          this.names.set(key, e.actorId);
        }
        this.actors.set(e.actorId, { ...e, ownerNodeId: e.ownerNodeId || from, hostNodeId: e.hostNodeId || from });
        return { ok: true };
      }
      case 'actor.update': {
        const e = this.actors.get(String(arg['actorId']));
        if (e) Object.assign(e, arg);
        if (e && e.state === 'DEAD' && e.name && this.names.get(`${e.namespace}\0${e.name}`) === e.actorId) this.names.delete(`${e.namespace}\0${e.name}`);
        return { ok: !!e };
      }
      case 'actor.lookup': {
        let id = arg['actorId'] as string | undefined;
        if (!id) id = this.names.get(`${String(arg['namespace'])}\0${String(arg['name'])}`);
        const e = id ? this.actors.get(id) : undefined;
        if (!e || e.state === 'DEAD') return null;
        return e;
      }
      case 'actor.list':
        return this.actorEntries();
      case 'nodes.list':
        return this.nodeInfos();
      case 'kv.put':
        if (arg['overwrite'] === false && this.kv.has(String(arg['key']))) return { added: false };
        this.kv.set(String(arg['key']), String(arg['value']));
        return { added: true };
      case 'kv.get':
        return { value: this.kv.get(String(arg['key'])) ?? null };
      case 'kv.del':
        return { deleted: this.kv.delete(String(arg['key'])) };
      case 'kv.keys': {
        const prefix = String(arg['prefix'] ?? '');
        return [...this.kv.keys()].filter((k) => k.startsWith(prefix));
      }
      case 'job.end':
        // A driver left on `from`: its job ends on every other node too (workers, actors, groups).
        void this.askNodes('job.end', { jobId: String(arg['jobId'] ?? '') });
        return { ok: true };
      case 'state.gather':
        return this.askNodes('state.snapshot', { what: String(arg['what'] ?? 'all') }).then((r) => r.map((x) => x.result));
      default: {
        const m = this.methods.get(method);
        if (m) return m(arg);
        throw new Error(`unknown GCS method "${method}"`);
      }
    }
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
    let changed = false;
    for (const [nodeId, n] of this.nodes) {
      if (!n.info.alive) continue;
      const silent = now - n.lastSeen;
      if (silent > this.deathTimeoutMs) {
        n.info.alive = false;
        n.info.deathReason = `no heartbeat for ${(silent / 1000).toFixed(1)} s (limit ${(this.deathTimeoutMs / 1000).toFixed(1)} s)`;
        logger().warn({ nodeId, reason: n.info.deathReason }, 'node declared dead');
        for (const a of this.actors.values()) {
          if (a.hostNodeId === nodeId && a.state !== 'DEAD') a.state = 'RESTARTING';
        }
        this.onNodeChange?.(nodeInfoFromWire(n.info));
        changed = true;
      }
    }
    if (changed || now - this.lastBroadcast >= 1000) this.broadcast();
  }

  private broadcast(): void {
    this.lastBroadcast = Date.now();
    const entries = [...this.nodes.values()];
    const body: EnvelopeBody = {
      nodeTable: {
        nodes: entries.map((n) => n.info),
        gpuFree: entries.map((n) => ({ units: n.gpuFree })),
      },
    };
    for (const n of entries) if (n.info.alive) this.send(n.identity, body);
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
export function amountsToRecord(a: tsray.v1.IResourceAmount[] | null | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of a ?? []) out[r.name ?? ''] = Number(r.units ?? 0) / 10_000;
  return out;
}

/** NodeInfo (state API shape) from its wire form. */
export function nodeInfoFromWire(n: tsray.v1.INodeInfo): NodeInfo {
  return {
    nodeId: n.nodeId ?? '',
    alive: n.alive === true,
    isHead: n.isHead === true,
    address: n.address ?? '',
    hostname: n.hostname || hostname(),
    pid: n.pid ?? 0,
    resourcesTotal: amountsToRecord(n.total),
    resourcesAvailable: n.alive ? amountsToRecord(n.available) : {},
    labels: { ...(n.labels ?? {}) },
    startTime: Number(n.startTimeMs ?? 0),
    ...(n.deathReason ? { deathReason: n.deathReason } : {}),
  };
}
