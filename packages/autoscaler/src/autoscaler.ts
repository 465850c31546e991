/**
 * The autoscaler the head runs (`tsray start --head --autoscaling-config FILE`, as `tsray up` starts
 * it): every interval it reads the pending demand (queued and infeasible tasks and actors, pending
 * placement groups with their strategies, `requestResources()` bundles) and the nodes from the GCS,
 * bin-packs the demand onto node types ({@link planScaleUp}), launches nodes through the provider,
 * and terminates workers idle longer than `idle_timeout_minutes` ({@link planScaleDown}). A node with
 * running or queued work, an actor, objects in its store (shared memory or spilled), a placement-group
 * bundle or a standing `requestResources()` is busy, never
 * idle. Decisions go to the log and to {@link AutoscalerStatus}, which `tsray status` prints.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { ActorListEntry, NodeState, ObjectListEntry, PendingDemand, PlacementGroupListEntry, TaskListEntry } from '@tsray/core';
import { type CapacityNode, type IdleCandidate, nodesHoldingRequest, planScaleDown, planScaleUp, type Shape, type ShapeDemand } from './bin-pack.js';
import type { ClusterConfig } from './config.js';
import { config as tsrayConfig } from '@tsray/core/internal';
import { logger } from './logger.js';
import { type NodeProvider, TAG_KIND, TAG_NODE_ID, TAG_NODE_TYPE } from './node-provider.js';

/** What the autoscaler reads from the GCS (the head passes its state; tests may fake it). */
export interface ClusterStateSource {
  nodes(): Promise<NodeState[]>;
  pendingDemand(): Promise<PendingDemand[]>;
  placementGroups(): Promise<PlacementGroupListEntry[]>;
  tasks(): Promise<TaskListEntry[]>;
  actors(): Promise<ActorListEntry[]>;
  objects(): Promise<ObjectListEntry[]>;
  /** The latest `requestResources()` bundles (empty: none). */
  requestedResources(): Promise<Shape[]>;
}

/** One worker as `tsray status` shows it. */
export interface AutoscalerNodeStatus {
  id: string;
  type: string;
  /** `launching`: started, not joined yet; `active`: joined and busy; `idle`: joined, idle for `idleS` seconds. */
  phase: 'launching' | 'active' | 'idle';
  idleS?: number;
  nodeId?: string;
  where: string;
}

/** The autoscaler's state for `tsray status` (as `ray status`'s autoscaler part). */
export interface AutoscalerStatus {
  clusterName: string;
  /** ms since epoch of the last round. */
  updatedAt: number;
  nodes: AutoscalerNodeStatus[];
  /** Demand no node type can hold, or that the limits leave out. */
  unfulfilled: string[];
  /** Recent decisions, newest last. */
  events: { time: number; message: string }[];
  /** Recent launch failures, newest last. */
  failures: { time: number; type: string; message: string }[];
  /** Worker nodes launched since the head started. */
  launchedTotal: number;
  /** Idle worker nodes terminated since the head started. */
  terminatedTotal: number;
}

/** Resources whose used/total says nothing about work (always partly "used" or not scheduled by shape). */
const NOT_WORK = new Set(['memory', 'object_store_memory']);

function busyByResources(n: NodeState): boolean {
  return Object.entries(n.resourcesTotal).some(([k, t]) => !NOT_WORK.has(k) && (n.resourcesAvailable[k] ?? 0) + 1e-9 < t);
}

function shapeOf(r: PendingDemand['resources']): Shape {
  return Array.isArray(r) ? {} : Object.fromEntries(Object.entries(r).filter(([k]) => !NOT_WORK.has(k)));
}

/** Options of {@link Autoscaler}. */
export interface AutoscalerOptions {
  /** Milliseconds between rounds (default TSRAY_AUTOSCALER_INTERVAL_S, else 5 s). */
  intervalMs?: number;
  now?: () => number;
}

const KEEP = 20;

/** The autoscaling loop; see the module comment. */
export class Autoscaler {
  private readonly idleSince = new Map<string, number>();
  private readonly events: AutoscalerStatus['events'] = [];
  private readonly failures: AutoscalerStatus['failures'] = [];
  private last: AutoscalerStatus;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private launchedTotal = 0;
  private terminatedTotal = 0;
  private readonly now: () => number;
  readonly intervalMs: number;

  constructor(
    private readonly config: ClusterConfig,
    private readonly provider: NodeProvider,
    private readonly source: ClusterStateSource,
    opts: AutoscalerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? tsrayConfig().autoscalerIntervalS * 1000;
    this.last = { clusterName: config.cluster_name, updatedAt: 0, nodes: [], unfulfilled: [], events: [], failures: [], launchedTotal: 0, terminatedTotal: 0 };
  }

  /** Run a round every interval until {@link stop}. */
  start(): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      this.running = this.step().catch((err: unknown) => this.note(`round failed: ${(err as Error).message}`, 'warn'));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.intervalMs);
    };
    this.timer = setTimeout(() => void tick(), 0);
  }

  /** Stop the loop and the provider's launches in flight (nodes already up stay). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.provider.close();
  }

  /** The latest state (`tsray status`). */
  status(): AutoscalerStatus {
    return { ...this.last, events: [...this.events], failures: [...this.failures], launchedTotal: this.launchedTotal, terminatedTotal: this.terminatedTotal };
  }

  private note(message: string, level: 'info' | 'warn' = 'info'): void {
    this.events.push({ time: this.now(), message });
    if (this.events.length > KEEP) this.events.shift();
    logger()[level]({ cluster: this.config.cluster_name }, `autoscaler: ${message}`);
  }

  /** One round: failures, scale up, scale down, status. */
  async step(): Promise<void> {
    const now = this.now();
    const [pnodes, gnodes, demand, groups, tasks, actors, objects, requested] = await Promise.all([
      this.provider.nonTerminatedNodes({ [TAG_KIND]: 'worker' }),
      this.source.nodes(),
      this.source.pendingDemand(),
      this.source.placementGroups(),
      this.source.tasks(),
      this.source.actors(),
      this.source.objects(),
      this.source.requestedResources(),
    ]);
    for (const f of pnodes.filter((n) => n.status === 'failed')) {
      const type = f.tags[TAG_NODE_TYPE] ?? '?';
      this.failures.push({ time: now, type, message: f.error ?? 'failed' });
      if (this.failures.length > KEEP) this.failures.shift();
      this.note(`a ${type} node (${f.id}) failed to start: ${f.error ?? ''}`, 'warn');
      await this.provider.terminateNode(f.id);
    }
    const workers = pnodes.filter((n) => n.status !== 'failed');
    const alive = gnodes.filter((n) => n.alive);
    const byProviderId = new Map(alive.filter((n) => n.labels[TAG_NODE_ID]).map((n) => [n.labels[TAG_NODE_ID]!, n]));
    const launching = workers.filter((w) => !byProviderId.has(w.id));

    // Scale up: the demand onto free resources, launching nodes, then new nodes.
    const capacity: CapacityNode[] = [
      ...alive.map((n) => ({ id: n.nodeId, type: n.labels[TAG_NODE_TYPE], free: { ...n.resourcesAvailable }, total: { ...n.resourcesTotal } })),
      ...launching.map((w) => {
        const res = this.config.available_node_types[w.tags[TAG_NODE_TYPE] ?? '']?.resources ?? {};
        return { id: w.id, type: w.tags[TAG_NODE_TYPE], free: { ...res }, total: { ...res } };
      }),
    ];
    const perType: Record<string, number> = {};
    for (const w of workers) perType[w.tags[TAG_NODE_TYPE] ?? '?'] = (perType[w.tags[TAG_NODE_TYPE] ?? '?'] ?? 0) + 1;
    const shapes: ShapeDemand[] = demand.filter((d) => d.kind !== 'placement_group').map((d) => ({ shape: shapeOf(d.resources), count: d.count }));
    const pending = groups.filter((g) => g.state === 'PENDING').map((g) => ({ bundles: g.bundles.map((b) => shapeOf(b)), strategy: g.strategy }));
    const plan = planScaleUp({ config: this.config, nodes: capacity, workers: perType, launching: launching.length, shapes, groups: pending, requested });
    for (const r of plan.reasons) this.note(r);
    for (const [type, n] of Object.entries(plan.launch)) {
      const ids = Array.from({ length: n }, () => `${this.config.cluster_name}-${type}-${randomBytes(4).toString('hex')}`);
      await this.provider.createNodes(type, ids);
      this.launchedTotal += n;
      this.note(`launching ${n} ${type} node(s): ${ids.join(', ')}`);
    }

    // Scale down: idle workers past idle_timeout_minutes.
    const busy = new Set<string>();
    for (const t of tasks) busy.add(t.nodeId);
    for (const a of actors) if (a.state !== 'DEAD') busy.add(a.nodeId);
    // Objects in a node's store (shared memory or spilled) would be lost with it; inline values are
    // small copies kept with their refs (a placement group's ready marker stays listed after removal).
    for (const o of objects) if (o.location !== 'inline') busy.add(o.nodeId);
    for (const g of groups) if (g.state === 'CREATED') for (const n of g.bundleNodes) busy.add(n);
    // Nodes that hold a standing requestResources() are kept too (the head first, then by age).
    const byAge = [...alive].sort((a, b) => Number(b.isHead) - Number(a.isHead) || a.startTime - b.startTime);
    for (const id of nodesHoldingRequest(
      requested,
      byAge.map((n) => ({ id: n.nodeId, total: n.resourcesTotal })),
    ))
      busy.add(id);
    const candidates: IdleCandidate[] = [];
    const statusNodes: AutoscalerNodeStatus[] = [];
    for (const w of workers) {
      const type = w.tags[TAG_NODE_TYPE] ?? '?';
      const g = byProviderId.get(w.id);
      if (!g) {
        statusNodes.push({ id: w.id, type, phase: 'launching', where: w.where });
        continue;
      }
      const isBusy = busy.has(g.nodeId) || busyByResources(g);
      if (isBusy) this.idleSince.delete(w.id);
      else if (!this.idleSince.has(w.id)) this.idleSince.set(w.id, now);
      const since = this.idleSince.get(w.id);
      candidates.push({ id: w.id, type, idleSince: since });
      statusNodes.push({
        id: w.id,
        type,
        phase: since === undefined ? 'active' : 'idle',
        ...(since !== undefined ? { idleS: Math.round((now - since) / 1000) } : {}),
        nodeId: g.nodeId,
        where: w.where,
      });
    }
    const remove = plan.launch && Object.keys(plan.launch).length ? [] : planScaleDown(this.config, candidates, now);
    for (const r of remove) {
      this.note(
        `terminating ${r.type} node ${r.id}: idle for ${Math.round((now - r.idleSince!) / 1000)} s (idle_timeout_minutes ${this.config.idle_timeout_minutes})`,
      );
      await this.provider.terminateNode(r.id);
      this.idleSince.delete(r.id);
      this.terminatedTotal++;
    }
    const removed = new Set(remove.map((r) => r.id));
    if (plan.unfulfilled.length) logger().debug({ unfulfilled: plan.unfulfilled }, 'autoscaler: demand left unfulfilled');
    this.last = {
      clusterName: this.config.cluster_name,
      updatedAt: now,
      nodes: statusNodes.filter((n) => !removed.has(n.id)),
      unfulfilled: plan.unfulfilled,
      events: [],
      failures: [],
      launchedTotal: this.launchedTotal,
      terminatedTotal: this.terminatedTotal,
    };
  }
}
