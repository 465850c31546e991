/**
 * The node's part in a cluster ("multi-node"): it registers with the head's GCS, keeps the view of the
 * other nodes current, decides when a task or actor goes to another node, forwards it there (argument
 * objects, then the task; its returns come back as objects), and retries or fails that work when the
 * node dies or cannot be reached.
 * @internal
 */
import { config } from '../config.js';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  type ClusterView,
  type LabelSelector,
  matchesLabels,
  NodeResources,
  type NodeSchedulingStrategy,
  type ResourceRequest,
  schedule,
  type ScheduleOptions,
} from '@tsray/scheduler';
import type { ResolvedScheduling } from '../scheduling-strategy.js';
import { canonicalJson, parseRuntimeEnvJson, type RuntimeEnvAgent } from '@tsray/runtime-env';
import { archivesDirOf, JobCodePublisher } from './job-code-publisher.js';
import { tsray, type GcsResult } from '@tsray/protocol';
import { decodeErrorPayload, type ErrorPayload } from '../error-payload.js';
import { AuthenticationError, ConnectionError, RuntimeStateError, type ActorDeathInfo } from '../errors.js';
import { logger } from '../logger.js';
import { FrameBuilder, storedFromWire } from '../wire.js';
import { ClusterLink, type LinkHandler, type LinkOptions, type PeerConnection } from '../cluster/link.js';
import { type ActorUpdateFields, amountsToRecord, callKindOf, notServedHere } from '../cluster/control-plane.js';
import type { ObjectTable, StoredObject } from './object-table.js';
import type { ObjectTransfer } from './object-transfer.js';
import type { ActorRecord, PgRecord, Pool, TaskRecord, WorkerHandle } from './records.js';
import type { SubmitSpec } from '../runtime.js';
import { LineageKeeper } from './lineage.js';
import { INLINE_THRESHOLD, type NodeStore } from './store.js';
import { namesLocalDirectories } from './runtime-envs.js';
import { ENC_ERROR, errorObject, taskIdOf } from './node-support.js';
import { specToWire } from './task-codec.js';
import type { Deque } from '../deque.js';
import type { Arena } from '@tsray/object-store';
import { ObjectLocations } from './object-locations.js';
import { ObjectDirectory } from './object-directory.js';

/** The parts of the node's link to the cluster that the node uses (a fake in unit tests). */
export type ClusterLinkApi = Pick<ClusterLink, 'ready' | 'gcs' | 'peer' | 'existingPeer' | 'dropPeer' | 'close'>;

/** Options of the node's cluster membership (from the node's options). */
export interface ClusterForwarderOptions {
  /** This node is the head's node. */
  isHead?: boolean;
  /** Node labels. */
  labels?: Record<string, string>;
  sessionDir: string;
  /** Give up (onFatal) after the head has been silent this long (see ClusterLink). */
  headLostTimeoutMs?: number;
  /** Called when the GCS refuses this node or declares it dead, or the head is lost for good. */
  onFatal?: (message: string) => void;
  /** Makes the link to the GCS (default: a ClusterLink; unit tests pass a fake). */
  createLink?: (opts: LinkOptions, handler: LinkHandler) => ClusterLinkApi;
}

/** What the cluster forwarder needs from the rest of its node. */
export interface ClusterForwarderHost {
  readonly nodeId: string;
  /** The node's local (ipc) address. */
  readonly address: string;
  /** tcp://host:port other nodes reach this node on. */
  readonly tcpAddress: string;
  /** The cluster token. */
  readonly token: string;
  readonly resources: NodeResources;
  /** The scheduler's view of every node (this one included), shared with the node's scheduling. */
  readonly cluster: ClusterView;
  readonly objects: Pick<ObjectTable, 'get' | 'seal' | 'locate' | 'unlocate' | 'whenReady' | 'onNeed' | 'onFreed' | 'decRef'>;
  readonly store: Pick<NodeStore, 'bytes' | 'allocate' | 'release'> & { readonly arena: Pick<Arena, 'view' | 'prefault'> };
  /** The pool of the node's own resources (an actor created elsewhere holds nothing here). */
  readonly nodePool: Pool;
  /** Objects in and out: pushes to peers, chunk reassembly. */
  readonly transfer: Pick<ObjectTransfer, 'pushObjects' | 'toArena' | 'onChunk' | 'dropIncomingFrom'>;
  task(taskId: string): TaskRecord | undefined;
  /** Submit a task (a lineage rebuild submits a finished one again). */
  submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void;
  /** True while any local queue holds tasks. */
  hasQueuedWork(): boolean;
  finishTask(t: TaskRecord, data: StoredObject | undefined): void;
  enqueue(t: TaskRecord, front?: boolean): void;
  scheduleDispatch(): void;
  /** Forget which requests were checked for feasibility (the set of nodes changed). */
  resetFeasibility(): void;
  actorRecords(): Iterable<ActorRecord>;
  actorDead(rec: ActorRecord, info: ActorDeathInfo): void;
  /** An actor this node owns lost its node: restart it elsewhere if allowed. */
  remoteActorDied(rec: ActorRecord, inflight: TaskRecord[], detail: string): void;
  /** A proxy's host or owner node died with these direct calls in flight (see ActorManager.proxyNodeDied). */
  proxyNodeDied(rec: ActorRecord, inflight: TaskRecord[], nodeId: string, reason: string): void;
  pumpActor(rec: ActorRecord): void;
  maybeStopActor(rec: ActorRecord): void;
  gcsActorUpdate(rec: ActorRecord, fields: ActorUpdateFields): void;
  placementGroup(id: string): PgRecord | undefined;
  /** The `.ready` answer of a spanning group's part on another node. */
  onRemotePgPart(pg: PgRecord, node: string, d: StoredObject): void;
  /** A node died: placement groups created here with bundles there are rescheduled. */
  placementGroupsNodeDied(nodeId: string): void;
  /** A peer node's connection to this node (as a client) is gone. */
  peerClientGone(nodeId: string, why: string): void;
  endJob(jobId: string, why: string): void;
  localState(what: string): Record<string, unknown[]>;
  runtimeEnvAgent(): Pick<RuntimeEnvAgent, 'resolve' | 'packagePath'>;
}

/** Membership in a cluster: the other nodes, work forwarded to them, their deaths. */
export class ClusterForwarder {
  /** The link to the GCS and the peers (undefined on a node alone). */
  link: ClusterLinkApi | undefined;
  /** Other nodes: wire info by id. */
  readonly remoteNodes = new Map<string, tsray.v1.INodeInfo>();
  /** Objects nested in objects from peers, to be fetched from those peers (see object-locations.ts). */
  readonly locations = new ObjectLocations({
    hasOrMakes: (id) => {
      if (this.host.objects.get(id)?.data !== undefined) return true;
      const t = taskIdOf(id);
      return t !== undefined && this.host.task(t) !== undefined;
    },
    subscribeAt: (nodeId, ids) => {
      // The node may only have been a client of this one so far (it pushed arguments here): connect.
      let peer: PeerConnection | undefined;
      try {
        peer = this.link?.existingPeer(nodeId) ?? this.peerFor(nodeId);
      } catch (e) {
        logger().warn({ node: nodeId, err: (e as Error).message }, 'cannot reach the node to fetch nested objects from');
      }
      peer?.send({ refUpdates: { add: ids } });
      peer?.send({ subscribeObjects: { objectIds: ids } });
    },
    seal: (id, d) => this.host.objects.seal(id, d),
  });
  /** Tasks forwarded to each node. */
  private readonly forwarded = new Map<string, Set<TaskRecord>>();
  /** Peer nodes this node could not connect to (see peerUnreachable): never scheduled to again. */
  private readonly unreachablePeers = new Set<string>();
  /** Runtime envs with their local packages published (by `${jobId}\0${env JSON}`; a job's entries go when it ends). */
  readonly publishedEnvs = new Map<string, Promise<string>>();
  private readonly publishedPackages = new Set<string>();
  /** Sends to a node waiting behind a package being published (per target node, in order). */
  private readonly peerQueue = new Map<string, Promise<void>>();
  /** Job code folders packed and published for other nodes (see job-code-publisher.ts). */
  private readonly jobCode = new JobCodePublisher({
    archivesDir: () => archivesDirOf((h) => this.host.runtimeEnvAgent().packagePath(h)),
    publish: (hash, archivePath) => this.publishPackage(hash, archivePath),
  });

  /** Where objects are in the cluster, and pulls from their holders (see object-directory.ts). */
  readonly directory: ObjectDirectory;
  /** Specs of finished tasks whose returns live only on other nodes, to rebuild them (see lineage.ts). */
  readonly lineage: LineageKeeper;

  constructor(
    private readonly host: ClusterForwarderHost,
    private readonly opts: ClusterForwarderOptions,
  ) {
    this.directory = new ObjectDirectory({
      nodeId: host.nodeId,
      token: host.token,
      objects: host.objects,
      puller: host.store,
      addressOf: (nodeId) => this.remoteNodes.get(nodeId)?.address ?? undefined,
      sendTo: (nodeId, body) => {
        try {
          (this.link?.existingPeer(nodeId) ?? this.peerFor(nodeId)).send(body);
          return true;
        } catch {
          return false;
        }
      },
      isAlive: (nodeId) => this.remoteNodes.get(nodeId)?.alive === true && !this.unreachablePeers.has(nodeId),
      nestedFrom: (nodeId, contained) => this.locations.arrivedFrom(nodeId, contained),
      rebuild: (id) => this.lineage.rebuild(id),
      fromOwner: (owner, id) => this.locations.arrivedFrom(owner, [id]),
    });
    this.lineage = new LineageKeeper({
      referenced: (id) => host.objects.get(id) !== undefined,
      live: (taskId) => host.task(taskId) !== undefined,
      release: (ids) => {
        for (const id of ids) host.objects.decRef(id);
      },
      resubmit: (spec, owner, retriesLeft, attempt) => {
        host.submit(spec, owner);
        const t = host.task(spec.taskId);
        if (t) Object.assign(t, { retriesLeft, attempt });
      },
    });
    host.objects.onNeed = (id) => this.directory.need(id);
    host.objects.onFreed = (id) => {
      this.directory.freed(id);
      this.lineage.freed(id);
    };
  }

  /** True when `t`'s ref arguments all have data here; else those elsewhere are pulled and `then` runs once all are here. */
  argsHere(t: TaskRecord, then: () => void): boolean {
    let missing = 0;
    for (const a of t.spec.args) {
      if (a.kind !== 'ref' || this.host.objects.get(a.id)?.data !== undefined) continue;
      missing++;
      this.host.objects.whenReady(a.id, () => {
        if (--missing === 0) then();
      });
    }
    return missing === 0;
  }

  /** Object movement and lineage counters of this node (`listTransferStats()`). */
  transferStats(): ReturnType<ObjectDirectory['stats']> & { lineage: ReturnType<LineageKeeper['stats']> } {
    return { ...this.directory.stats(), lineage: this.lineage.stats() };
  }

  /** Leave: the link to the GCS and the peers, and the data-plane sessions, close. */
  close(): void {
    this.link?.close();
    this.directory.close();
  }

  /** Tasks now forwarded to `nodeId` (for tests). */
  forwardedTo(nodeId: string): TaskRecord[] {
    return [...(this.forwarded.get(nodeId) ?? [])];
  }

  /** Register with the head's GCS and keep the cluster view current. */
  async joinCluster(gcsAddress: string): Promise<void> {
    const h = this.host;
    const totals = [...h.resources.total].map(([name, units]) => ({ name, units }));
    const info: tsray.v1.INodeInfo = {
      nodeId: h.nodeId,
      address: h.tcpAddress,
      hostname: hostname(),
      pid: process.pid,
      isHead: this.opts.isHead === true,
      total: totals,
      available: totals,
      labels: this.opts.labels ?? {},
      alive: true,
      startTimeMs: Date.now(),
      gpuIds: [...h.resources.gpuIds],
      localAddress: h.address,
      sessionDir: this.opts.sessionDir,
    };
    const linkOpts: LinkOptions = {
      gcsAddress,
      token: h.token,
      node: info,
      onPeerBytes: (id, dir, frames) => this.directory.traffic.addFrames(id, dir, frames),
      ...(this.opts.headLostTimeoutMs !== undefined ? { headLostTimeoutMs: this.opts.headLostTimeoutMs } : {}),
      available: () => ({
        amounts: [...h.resources.available()].map(([name, units]) => ({ name, units })),
        gpuFree: h.resources.gpuFreeUnits(),
      }),
    };
    const handler: LinkHandler = {
      onNodeTable: (t) => this.onNodeTable(t),
      onGcsRequest: (req) => this.onGcsRequest(req),
      onPeerMessage: (id, kind, env, payloads) => this.onPeerMessage(id, kind, env, payloads),
      onFatal: (msg) => this.opts.onFatal?.(msg),
      onPeerUnreachable: (id, why) => this.peerUnreachable(id, why),
    };
    const link = (this.link = this.opts.createLink ? this.opts.createLink(linkOpts, handler) : new ClusterLink(linkOpts, handler));
    const timeoutMs = config().joinTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        link.ready.catch((e: Error) => {
          throw new AuthenticationError(e.message);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new ConnectionError(
                  `the head at ${gcsAddress} is unreachable: no answer within ${timeoutMs / 1000} s (is "tsray start --head" running there, and is the port open?)`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Pids, addresses and liveness of the other nodes from the GCS. */
  onNodeTable(t: tsray.v1.INodeTable): void {
    const cluster = this.host.cluster;
    const nodes = t.nodes ?? [];
    let joined = false;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      const id = n.nodeId ?? '';
      if (id === this.host.nodeId || !id) continue;
      const prev = this.remoteNodes.get(id);
      this.remoteNodes.set(id, n);
      let view = cluster.get(id);
      if (!view) {
        const total = Object.fromEntries((n.total ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0) / 10_000]));
        try {
          view = new NodeResources(total, { labels: n.labels ?? {}, ...(n.gpuIds?.length ? { gpuIds: n.gpuIds } : {}) });
        } catch (e) {
          logger().warn({ node: id, err: e }, 'ignoring a node with a bad resource table');
          continue;
        }
        cluster.addNode(id, view, { alive: n.alive === true });
        this.host.resetFeasibility();
        joined = true;
      }
      if (n.alive) {
        const avail = new Map((n.available ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0)] as [string, number]));
        const gpuFree = (t.gpuFree?.[i]?.units ?? []).map(Number);
        view.setAvailable(avail, gpuFree.length ? gpuFree : undefined);
      }
      const alive = n.alive === true && !this.unreachablePeers.has(id);
      if (cluster.isAlive(id) !== alive) cluster.setAlive(id, alive);
      if (prev && prev.alive && !n.alive) this.nodeDied(id, n.deathReason || 'declared dead by the head');
      else if (!prev && !n.alive) this.nodeDied(id, n.deathReason || 'declared dead by the head');
    }
    if (joined) logger().info({ nodes: cluster.aliveCount }, 'cluster view changed');
    this.host.scheduleDispatch();
  }

  /** Where a task or actor goes in a cluster: undefined = here. Work other nodes forwarded here stays (no chains). */
  placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined {
    const cluster = this.host.cluster;
    if (!this.link || cluster.aliveCount <= 1 || t.owner?.kind === 'peer' || t.spec.streaming) return undefined;
    const sc = t.spec.scheduling;
    const strategy: NodeSchedulingStrategy = sc && sc.type !== 'PLACEMENT_GROUP' ? sc : 'DEFAULT';
    const d = schedule(req, cluster, strategy, this.scheduleOptions(sc?.type === 'SPREAD', false));
    if (d.kind === 'infeasible') return sc?.type === 'NODE_LABEL' ? this.labelledNodeFor(sc.hard ?? []) : undefined;
    if (d.nodeId === this.host.nodeId || !this.remoteNodes.get(d.nodeId)?.alive) return undefined;
    // Busy everywhere: DEFAULT stays in the local queue when this node could ever run it (spilled later);
    // SPREAD, node affinity and node labels queue on the node their policy picked (for SPREAD Ray's
    // second pass, so a burst is shared out).
    if (d.kind === 'wait' && strategy === 'DEFAULT' && this.host.resources.isFeasible(req)) return undefined;
    if (d.kind === 'node') cluster.get(d.nodeId)?.allocate(req); // counted until the node's next report
    return d.nodeId;
  }

  /**
   * NODE_LABEL work no matching node can ever hold (resources): it stays pending here when this node
   * matches (the local queue warns it is infeasible), else on a matching node, never on a node
   * without the labels.
   */
  private labelledNodeFor(hard: LabelSelector): string | undefined {
    const cluster = this.host.cluster;
    if (matchesLabels(hard, cluster.get(this.host.nodeId)?.labels ?? new Map(), this.host.nodeId)) return undefined;
    return cluster
      .entries()
      .find((e) => e.alive && e.nodeId !== this.host.nodeId && this.remoteNodes.get(e.nodeId)?.alive && matchesLabels(hard, e.resources.labels, e.nodeId))
      ?.nodeId;
  }

  /**
   * Why no node can ever take work of strategy `s` (a hard affinity to a node not in the cluster, hard
   * labels no alive node has); undefined when some node can.
   */
  unschedulable(s: ResolvedScheduling): string | undefined {
    const here = this.host.nodeId;
    if (s.type === 'NODE_AFFINITY' && s.nodeId !== here && !s.soft && !this.remoteNodes.get(s.nodeId)?.alive) {
      return `has a hard affinity to node ${s.nodeId}, which is not in the cluster (this node is ${here})`;
    }
    if (s.type === 'NODE_LABEL' && (s.hard ?? []).length > 0) {
      const alive = this.host.cluster.entries().filter((e) => e.alive && (e.nodeId === here || this.remoteNodes.get(e.nodeId)?.alive));
      if (!alive.some((e) => matchesLabels(s.hard!, e.resources.labels, e.nodeId))) {
        return `has hard label constraints ${JSON.stringify(s.hard)} that no alive node matches (${alive.length} node(s); node labels come from "tsray start --labels" or init({ labels }))`;
      }
    }
    return undefined;
  }

  /**
   * Options of a placement decision here. SPREAD counts this node as busy while tasks wait in its queues
   * (its free resources do not show them yet: a burst of submissions is queued before dispatch runs);
   * spilling (`spill`) moves queued SPREAD work only to nodes that can run it now.
   */
  private scheduleOptions(spread: boolean, spill: boolean): ScheduleOptions {
    const localNodeId = this.host.nodeId;
    if (!spread) return { localNodeId };
    const queued = this.host.hasQueuedWork();
    return { localNodeId, availableOnly: spill, ...(queued ? { queuedNodes: new Set([localNodeId]) } : {}) };
  }

  /** Forward queued tasks the local node cannot start now to nodes that can. */
  spillQueue(q: Deque<TaskRecord>): void {
    for (let n = 0; n < 1024 && q.length > 0; n++) {
      const t = q.peek()!;
      const sc = t.spec.scheduling;
      if (t.pool?.pg || t.owner?.kind === 'peer' || t.spec.streaming || sc?.type === 'NODE_AFFINITY') return;
      // NODE_LABEL spills only to nodes with its hard labels (its own policy), SPREAD and DEFAULT by theirs.
      const strategy: NodeSchedulingStrategy = sc?.type === 'SPREAD' || sc?.type === 'NODE_LABEL' ? sc : 'DEFAULT';
      const d = schedule(t.request, this.host.cluster, strategy, this.scheduleOptions(sc?.type === 'SPREAD', true));
      if (d.kind !== 'node' || d.nodeId === this.host.nodeId || !this.remoteNodes.get(d.nodeId)?.alive) return;
      this.host.cluster.get(d.nodeId)?.allocate(t.request);
      q.shift();
      this.forwardTask(t, d.nodeId);
    }
  }

  /** True when `nodeId` is another node of the cluster, alive and reachable from here. */
  isAliveNode(nodeId: string): boolean {
    return this.remoteNodes.get(nodeId)?.alive === true && !this.unreachablePeers.has(nodeId);
  }

  /** The connection to another node of the cluster (made on first use); throws when it is not in the cluster. */
  peerFor(nodeId: string): PeerConnection {
    const n = this.remoteNodes.get(nodeId);
    if (!n || !this.link) throw new RuntimeStateError(`node ${nodeId} is not in the cluster`);
    return this.link.peer(nodeId, n.address ?? '');
  }

  /**
   * A task's runtime env for another node: local `workingDir` / `pyModules` directories are packed
   * here, published in the GCS (once per content hash) and replaced by `pkg://<hash>`; the other node's
   * agent fetches them by hash. Undefined when the env has no local directories.
   */
  private publishEnv(json: string, jobId: string): Promise<string> | undefined {
    if (!namesLocalDirectories(json)) return undefined;
    // Per job: a later job publishes the directories' current content (see NodeRuntimeEnvs.request).
    const key = `${jobId}\0${json}`;
    let p = this.publishedEnvs.get(key);
    if (!p) {
      p = (async () => {
        const env = parseRuntimeEnvJson(json)!;
        const agent = this.host.runtimeEnvAgent();
        const resolved = await agent.resolve(env);
        const publish = (hash: string) => this.publishPackage(hash, agent.packagePath(hash));
        const out: Record<string, unknown> = JSON.parse(json);
        if (resolved.workingDirPackage) {
          await publish(resolved.workingDirPackage);
          out['workingDir'] = `pkg://${resolved.workingDirPackage}`;
        }
        if (resolved.pyModulePackages) {
          await Promise.all(resolved.pyModulePackages.map(publish));
          out['pyModules'] = resolved.pyModulePackages.map((h) => `pkg://${h}`);
        }
        return JSON.stringify(out);
      })();
      this.publishedEnvs.set(key, p);
      p.catch(() => this.publishedEnvs.delete(key));
    }
    return p;
  }

  /** Put a package archive into the GCS KV (`pkg:<hash>`) for other nodes, once per hash. */
  private async publishPackage(hash: string, archivePath: string): Promise<void> {
    if (this.publishedPackages.has(hash)) return;
    await this.link!.gcs.kvPut(`pkg:${hash}`, readFileSync(archivePath), true, 120_000);
    this.publishedPackages.add(hash);
  }

  /**
   * The runtime env `t` travels with to another node: local directories published (publishEnv), and
   * the job's code folder (`jobCode`) when its function lives in one; undefined when it goes as is.
   * Actor method calls need no code (the actor's worker has it), nor does an env that has it already
   * (a task submitted by a worker running shipped code).
   */
  private envForPeer(t: TaskRecord): Promise<string> | undefined {
    const json = t.spec.runtimeEnv;
    const withDirs = json ? this.publishEnv(json, t.jobId) : undefined;
    const root = t.spec.fn.codeRoot;
    if (!root || (t.spec.actorId && !t.spec.actorCreation) || json?.includes('"jobCode"')) return withDirs;
    const key = `${t.jobId}\0jobCode\0${root}`;
    let code = this.publishedEnvs.get(key);
    if (!code) {
      code = this.jobCode.codeFor(root).then((c) => (c ? JSON.stringify(c) : ''));
      this.publishedEnvs.set(key, code);
    }
    return Promise.all([withDirs ?? json ?? '', code]).then(([env, c]) =>
      c ? canonicalJson({ ...(env ? JSON.parse(env) : {}), jobCode: JSON.parse(c) }) : env,
    );
  }

  /** Record `t` as forwarded to `target`; returns that node's set. */
  private track(t: TaskRecord, target: string): Set<TaskRecord> {
    let set = this.forwarded.get(target);
    if (!set) this.forwarded.set(target, (set = new Set()));
    set.add(t);
    return set;
  }

  /** Send a task to another node: its argument objects first, then the task; its returns come back. */
  forwardTask(t: TaskRecord, target: string): void {
    const env = this.envForPeer(t);
    const pending = this.peerQueue.get(target);
    if (!env && !pending) {
      this.forwardNow(t, target);
      return;
    }
    // Keep the order of everything sent to that node while a package is published.
    t.state = 'dispatched';
    t.remote = target;
    const set = this.track(t, target);
    const run = (pending ?? Promise.resolve()).then(async () => {
      if (env) {
        try {
          const sent = await env;
          t.spec = { ...t.spec, ...(sent ? { runtimeEnv: sent } : {}) };
        } catch (e) {
          set.delete(t);
          t.remote = undefined;
          this.host.finishTask(
            t,
            errorObject({
              type: 'RuntimeEnvSetupError',
              name: 'RuntimeEnvSetupError',
              field: 'workingDir',
              message: `could not publish the task's packages to the cluster: ${(e as Error).message}`,
              output: '',
            }),
          );
          return;
        }
      }
      if (t.remote === target && t.state === 'dispatched') this.forwardNow(t, target);
    });
    this.peerQueue.set(target, run);
    void run.then(() => {
      if (this.peerQueue.get(target) === run) this.peerQueue.delete(target);
    });
  }

  private forwardNow(t: TaskRecord, target: string): void {
    let peer: PeerConnection;
    try {
      peer = this.peerFor(target);
    } catch (e) {
      this.host.finishTask(t, errorObject({ type: 'Other', name: 'NodeDiedError', message: `task ${t.spec.name}: ${(e as Error).message}` }));
      return;
    }
    if (t.spec.actorCreation && t.spec.returnIds.length === 0) t.spec = { ...t.spec, returnIds: [`${t.spec.taskId}.0`] };
    const pushed: string[] = [];
    const announced: string[] = []; // large objects: announced (where they are), the peer pulls them from a holder
    const seen = new Set<string>();
    const push = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const e = this.host.objects.get(id);
      if (this.directory.announces(e)) {
        announced.push(id);
        return;
      }
      if (e?.data === undefined) return; // not here (yet): the peer will not find it either
      for (const c of e.data.contained) push(c);
      pushed.push(id);
    };
    for (const a of t.spec.args) {
      if (a.kind === 'ref') push(a.id);
      else for (const c of a.value.containedRefs) push(c);
    }
    // Holds first (the peer must count our refs on the returns before a fast task seals them, or it would
    // free them at once), then the argument objects, the task, and the subscription to the returns' locations
    // (large returns stay there). All values inline (the common case): all of it in this turn's PeerBatch.
    const ns = t.actor?.namespace ?? t.namespace;
    const encode = (fb: FrameBuilder) => specToWire(t.spec, fb, { jobId: t.jobId, namespace: ns });
    if (pushed.length === 0 && announced.length === 0) peer.forward(t.spec.returnIds, encode);
    else {
      // Objects this node holds a ref to there already (it made them) keep that ref: not added and removed.
      const sent = [...pushed, ...announced.filter((id) => !this.directory.holdsRefAt(id, target))];
      peer.send({ refUpdates: { add: [...sent, ...t.spec.returnIds] } });
      if (pushed.length > 0) this.host.transfer.pushObjects(peer, pushed);
      if (announced.length > 0) peer.send(this.directory.announce(announced));
      const fb = new FrameBuilder();
      peer.send({ submitTasks: { tasks: [encode(fb)] } }, fb.empty ? undefined : fb.frames());
      if (sent.length > 0) peer.send({ refUpdates: { remove: sent } });
      peer.send({ subscribeObjects: { objectIds: t.spec.returnIds, locationsOnly: true } });
    }
    t.state = 'dispatched';
    t.worker = undefined;
    t.remote = target;
    t.remoteLeft = t.spec.returnIds.length;
    t.startedAt = performance.now();
    this.track(t, target);
  }

  /** Forward an actor's creation to the node chosen for it. */
  forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void {
    rec.remoteNode = target;
    rec.pool = this.host.nodePool;
    if (rec.state === 'pending') rec.state = 'starting';
    // Hold the actor there while this node owns it (sent before the creation task).
    this.link?.peer(target, this.remoteNodes.get(target)?.address ?? '').send({ refUpdates: { add: [rec.id] } });
    this.forwardTask(t, target);
    if (rec.state !== 'dead') {
      this.host.gcsActorUpdate(rec, { state: 'STARTING', hostNodeId: target });
      this.host.pumpActor(rec);
    }
  }

  /** Messages from nodes this node sent work to. */
  onPeerMessage(peerId: string, kind: string, envelope: tsray.v1.Envelope, payloads: Buffer[]): void {
    switch (kind) {
      case 'workerAccepted':
      case 'getActorReply':
        return;
      case 'objectsReady':
        for (const od of envelope.objectsReady!.objects ?? []) {
          let d = storedFromWire(od, payloads);
          if (d.inline && d.inline.byteLength > INLINE_THRESHOLD) d = this.host.transfer.toArena(d);
          this.remoteArrived(peerId, od.objectId ?? '', d);
        }
        return;
      case 'objectLocations':
        for (const id of this.directory.onLocations(peerId, envelope.objectLocations!, true)) this.remoteLocated(peerId, id);
        return;
      case 'pullFailed':
      case 'dataPlaneOpened':
        this.directory.onPullAnswer(peerId, envelope);
        return;
      case 'objectChunk': {
        if (this.directory.puller.onChunk(peerId, envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0))) return;
        const d = this.host.transfer.onChunk(peerId, envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0));
        if (d) this.remoteArrived(peerId, envelope.objectChunk!.objectId ?? '', d);
        return;
      }
      case 'error':
        logger().error({ peer: peerId, error: envelope.error }, 'a peer node refused or rejected a message');
        return;
      default:
        logger().warn({ peer: peerId, kind }, 'unexpected message from a peer node; ignored');
    }
  }

  /** An object came back from a peer: seal it here, let the peer drop its copy, finish its task. */
  remoteArrived(peerId: string, id: string, d: StoredObject): void {
    const h = this.host;
    const taskId = taskIdOf(id);
    const t = taskId ? h.task(taskId) : undefined;
    const isError = d.encoding === ENC_ERROR;
    let errPayload: ErrorPayload | undefined;
    if (isError && t?.spec.actorCreation) {
      try {
        errPayload = decodeErrorPayload(h.store.bytes(d));
      } catch {
        /* unknown */
      }
    }
    const pg = id.endsWith('.ready') ? h.placementGroup(id.slice(0, -'.ready'.length)) : undefined;
    if (pg?.preparing) {
      this.link?.existingPeer(peerId)?.release([id]);
      h.onRemotePgPart(pg, peerId, d);
      return;
    }
    h.objects.seal(id, d);
    this.locations.sealed(id);
    // Refs inside it whose data the peer did not have yet: fetch them from there (subscribed before the
    // peer may drop the containing object, which holds them).
    if (d.contained.length > 0) this.locations.arrivedFrom(peerId, d.contained);
    this.link?.existingPeer(peerId)?.release([id]);
    this.returnArrived(peerId, t, isError, errPayload);
  }

  /**
   * A large return of a forwarded task stays on the node that made it (the directory located it here):
   * the task is done; this node keeps its reference there until it frees the object.
   */
  private remoteLocated(peerId: string, id: string): void {
    const taskId = taskIdOf(id);
    const t = taskId ? this.host.task(taskId) : undefined;
    if (!this.host.objects.get(id)) this.link?.existingPeer(peerId)?.release([id]);
    this.returnArrived(peerId, t, false, undefined);
  }

  /** A return of forwarded task `t` came back (or was located): the task is done once all did. */
  private returnArrived(peerId: string, t: TaskRecord | undefined, isError: boolean, errPayload: ErrorPayload | undefined): void {
    const h = this.host;
    if (!t || t.remote !== peerId || t.state !== 'dispatched') return;
    if (--t.remoteLeft > 0) return;
    this.forwarded.get(peerId)?.delete(t);
    t.remote = undefined;
    const rec = t.actor;
    if (t.spec.actorCreation && rec) {
      h.finishTask(t, undefined);
      if (isError) {
        const info: ActorDeathInfo =
          errPayload?.type === 'ActorDiedError'
            ? errPayload.info
            : { actorId: rec.id, className: rec.creation.className, reason: 'crashed', detail: `its creation failed on node ${peerId}` };
        h.actorDead(rec, info);
        return;
      }
      if (rec.state === 'dead') return;
      rec.state = 'alive';
      h.gcsActorUpdate(rec, { state: 'ALIVE', hostNodeId: peerId });
      h.pumpActor(rec);
      h.maybeStopActor(rec);
      return;
    }
    // A return left on that node alone: keep the task's lineage (and its arguments) to rebuild it if lost.
    if (!rec && t.spec.returnIds.some((id) => h.objects.get(id)?.located)) this.lineage.keep(t);
    h.finishTask(t, undefined);
    if (rec) h.maybeStopActor(rec);
    h.scheduleDispatch();
  }

  /**
   * A peer node never answered this node's connection (its advertised address is wrong or its port is
   * closed to us): treat it as dead here, so work sent there is retried elsewhere or fails naming the
   * node and its address, and no more is sent there.
   */
  peerUnreachable(id: string, why: string): void {
    if (this.unreachablePeers.has(id)) return;
    this.unreachablePeers.add(id);
    logger().error({ node: id, why }, 'a peer node is unreachable; no more work goes there');
    if (this.host.cluster.get(id)) this.host.cluster.setAlive(id, false);
    this.nodeDied(id, why);
  }

  /** A node died: retry or fail the tasks sent there, restart or fail its actors. */
  nodeDied(id: string, reason: string): void {
    const h = this.host;
    logger().warn({ node: id, reason }, 'node died');
    this.link?.dropPeer(id);
    h.peerClientGone(id, `its node died (${reason})`);
    h.transfer.dropIncomingFrom(id);
    this.locations.nodeDied(id, reason);
    this.directory.nodeDied(id, reason);
    const set = this.forwarded.get(id);
    this.forwarded.delete(id);
    const inflight = [...(set ?? [])].filter((t) => t.state === 'dispatched' && t.remote === id);
    for (const t of inflight) t.remote = undefined;
    for (const t of inflight) {
      if (t.actor) continue;
      if (t.cancelled) {
        h.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: t.cancelled.forced }));
      } else if (t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        logger().warn({ task: t.spec.name, node: id, attempt: t.attempt }, 'the node running a task died; retrying it');
        t.state = 'deps';
        h.enqueue(t, true);
      } else {
        h.finishTask(
          t,
          errorObject({
            type: 'Other',
            name: 'NodeDiedError',
            message: `task ${t.spec.name} was running on node ${id}, which died (${reason}); no retries left (maxRetries)`,
          }),
        );
      }
    }
    // Groups with bundles there go RESCHEDULING first: the actors restarted below wait for their new bundles.
    h.placementGroupsNodeDied(id);
    // Proxies (actors called here, owned elsewhere) whose host or owner died; also one replaced by the
    // actor's own record when it restarted here (its calls in flight move to that record).
    const proxies = new Set(inflight.filter((t) => t.actor?.proxy).map((t) => t.actor!));
    for (const rec of h.actorRecords()) if (rec.proxy && (rec.remoteNode === id || rec.ownerNode === id)) proxies.add(rec);
    for (const rec of proxies) {
      h.proxyNodeDied(
        rec,
        inflight.filter((t) => t.actor === rec),
        id,
        reason,
      );
    }
    for (const rec of [...h.actorRecords()]) {
      if (rec.remoteNode !== id || rec.state === 'dead' || rec.proxy) continue;
      h.remoteActorDied(
        rec,
        inflight.filter((t) => t.actor === rec),
        `its node ${id} died (${reason})`,
      );
    }
    h.scheduleDispatch();
  }

  /** Control calls from the GCS: a job ended elsewhere, a state snapshot of this node. */
  /**
   * The other nodes as this node holds them (from the GCS's node table) and the table version: the
   * state snapshot `node_table` (tests compare it with the GCS's table).
   */
  private nodeTableSnapshot(): { nodeId: string; version: number; nodes: { nodeId: string; alive: boolean; available: Record<string, number> }[] } {
    const version = this.link instanceof ClusterLink ? this.link.nodeTable().version : 0;
    const nodes = [...this.remoteNodes.values()].map((n) => ({ nodeId: n.nodeId ?? '', alive: n.alive === true, available: amountsToRecord(n.available) }));
    return { nodeId: this.host.nodeId, version, nodes };
  }

  onGcsRequest(req: tsray.v1.IGcsRequest): GcsResult {
    const kind = callKindOf(req);
    switch (kind) {
      case 'jobEnd':
        this.host.endJob(req.jobEnd?.jobId ?? '', 'its driver left on another node');
        return { ok: true };
      case 'stateSnapshot': {
        const what = req.stateSnapshot?.what || 'all';
        return { state: { json: [JSON.stringify(what === 'node_table' ? this.nodeTableSnapshot() : this.host.localState(what))] } };
      }
      default:
        throw notServedHere(kind, `node ${this.host.nodeId}`);
    }
  }
}
