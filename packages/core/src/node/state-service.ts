/**
 * The node's state API: the rows `listTasks()`, `listActors()`, `listPlacementGroups()`, `nodes()`, ...
 * show, resource sums and pending demand — of this node, or of the whole cluster through the GCS. It
 * only reads the other components' state (through {@link StateServiceHost}), never changes it.
 * @internal
 */
import { hostname } from 'node:os';
import type { ClusterView, NodeResources } from '@tsray/scheduler';
import type { PendingDemand } from '../state-api.js';
import type { Deque } from '../deque.js';
import type { ObjectTable } from './object-table.js';
import type { ActorRecord, PgRecord, Pool, TaskRecord, WorkerHandle } from './records.js';
import type { NodeStore } from './store.js';
import { nodeStateFromWire } from '../cluster/control-plane.js';
import type { GcsClient } from '../cluster/gcs-client.js';
import { METRIC_CALL_PREFIX, UserMetricsTable } from './user-metrics.js';
import { REQUEST_RESOURCES_CALL, REQUEST_RESOURCES_KEY } from '../request-resources.js';
import type { TaskEvent } from './task-timeline.js';
import type { TaskFailure } from './task-failures.js';
import { ENGINE_CALL_PREFIX, EngineStatsTable } from './engine-stats.js';
import { bundleNodesOf } from './placement-group-rescheduler.js';

/** Rows of one kind listed by one node: bounded so a snapshot stays a reasonable reply. */
const MAX_ROWS = 10_000;

/**
 * GPU ids as the state API shows them (`gpuIds` of actors, workers and bundles): numbers, as Ray's
 * `get_gpu_ids()`; an id that is not a decimal number (a GPU UUID from CUDA_VISIBLE_DEVICES) stays a string.
 */
export function gpuIdsOut(ids: readonly string[] | undefined): (number | string)[] {
  return (ids ?? []).map((id) => (/^\d+$/.test(id) ? Number(id) : id));
}

/** How this node describes itself in `nodes()`. */
export interface NodeIdentity {
  isHead: boolean;
  /** Where other nodes and drivers reach it (tcp in a cluster, else its ipc socket). */
  address: string;
  labels: Record<string, string>;
  /** When it started (ms since the epoch). */
  startTime: number;
}

/** The node's state as the state service reads it (read-only views of the other components). */
export interface StateServiceHost {
  readonly nodeId: string;
  /** This node's own resources (totals and what is free now). */
  readonly resources: NodeResources;
  readonly objects: Pick<ObjectTable, 'all' | 'size' | 'sealedCount'>;
  readonly store: Pick<NodeStore, 'used' | 'capacity' | 'spilledBytes'>;
  identity(): NodeIdentity;
  /** The pool of work outside placement groups (the node itself). */
  nodePool(): Pool;
  /** Every task this node tracks, by id. */
  tasks(): ReadonlyMap<string, TaskRecord>;
  /** This node's recent finished tasks (`tsray timeline`). */
  taskEvents?(): TaskEvent[];
  /** This node's counters of actor calls across nodes (see ActorCallCounters). */
  nodeCounters?(): object;
  /** This node's recent failed tasks with their errors (the dashboard's tasks page). */
  taskFailures?(): TaskFailure[];
  /** Object movement between nodes (bytes per peer, pull gauges): `localState('transfer')`. */
  transferStats?(): Record<string, unknown>;
  /** Queues of runnable tasks, one per resource shape. */
  taskQueues(): Iterable<Deque<TaskRecord>>;
  actors(): Iterable<ActorRecord>;
  /** Actors waiting for resources. */
  pendingActors(): readonly ActorRecord[];
  placementGroups(): Iterable<PgRecord>;
  /** Groups waiting for resources, in creation order. */
  pendingPlacementGroups(): readonly PgRecord[];
  workers(): ReadonlyMap<string, WorkerHandle>;
  /** Every known node's resources (this node included), as last reported. */
  clusterView(): ClusterView;
  /** Calls to the GCS while this node is in a cluster, else undefined (a single node answers alone). */
  gcs(): Pick<GcsClient, 'gatherState' | 'listNodes' | 'listJobs' | 'kvPut'> | undefined;
}

/** Answers state API calls from this node's records (read-only). */
export class StateService {
  /** Application metrics recorded on this node (Counter/Gauge/Histogram updates from its workers and drivers). */
  readonly userMetrics = new UserMetricsTable();
  /** Load of the LLM engines running on this node, as their actors report it. */
  readonly engines: EngineStatsTable;
  constructor(private readonly host: StateServiceHost) {
    this.engines = new EngineStatsTable(() => host.nodeId);
  }

  /** Total resources of the live nodes. */
  clusterResources(): Record<string, number> {
    return this.sumViews(false);
  }

  /** Free resources of the live nodes. */
  availableResources(): Record<string, number> {
    return this.sumViews(true);
  }

  /** Tasks (one row per queue shape), actors and placement groups waiting for resources on this node. */
  pendingDemand(): PendingDemand[] {
    const out: PendingDemand[] = [];
    const byShape = new Map<string, PendingDemand>();
    for (const q of this.host.taskQueues()) {
      for (let t = q.peek(), k = 0; t && k < 1; k++) {
        const pool = t.pool ?? this.host.nodePool();
        const key = `task|${t.spec.name}|${t.request.key}`;
        const d = byShape.get(key) ?? {
          kind: 'task' as const,
          name: t.spec.name,
          resources: t.request.toJSON(),
          count: 0,
          infeasible: !pool.resources.isFeasible(t.request),
          missing: pool.resources.missing(t.request),
        };
        d.count += q.length;
        byShape.set(key, d);
      }
    }
    out.push(...byShape.values());
    for (const rec of this.host.pendingActors()) {
      const pool = rec.pool ?? this.host.nodePool();
      out.push({
        kind: 'actor',
        name: rec.creation.className,
        resources: rec.schedule.toJSON(),
        count: 1,
        infeasible: !pool.resources.isFeasible(rec.schedule),
        missing: pool.resources.missing(rec.schedule),
      });
    }
    for (const pg of this.host.pendingPlacementGroups()) {
      out.push({ kind: 'placement_group', name: pg.name || pg.id, resources: pg.raw, count: 1, infeasible: pg.warned, missing: [] });
    }
    return out;
  }

  /** This node's tasks, objects, actors, placement groups and demand (state API). */
  localState(what: string): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    if (what === 'all' || what === 'tasks') out['tasks'] = this.taskRows();
    if (what === 'all' || what === 'objects') out['objects'] = this.objectRows();
    if (what === 'all' || what === 'actors') out['actors'] = this.actorRows();
    if (what === 'all' || what === 'placement_groups') out['placement_groups'] = this.placementGroupRows();
    if (what === 'all' || what === 'demand') out['demand'] = this.pendingDemand();
    if (what === 'timeline') out['timeline'] = this.host.taskEvents?.() ?? [];
    if (what === 'failures') out['failures'] = this.host.taskFailures?.() ?? [];
    if (what === 'engines') out['engines'] = this.engines.list();
    if (what === 'workers') out['workers'] = this.workerRows();
    if (what === 'counters') out['counters'] = [{ nodeId: this.host.nodeId, ...this.host.nodeCounters?.() }];
    if (what === 'transfer') out['transfer'] = this.host.transferStats ? [this.host.transferStats()] : [];
    // Only on request (the head's /metrics scrape): not part of 'all'.
    if (what === 'metrics') {
      const { store } = this.host;
      out['metrics'] = this.userMetrics.rows();
      out['hardware'] = [this.userMetrics.hardware(this.host.nodeId, { used: store.used, capacity: store.capacity, spilled: store.spilledBytes })];
    }
    return out;
  }

  /** State API calls from drivers (`nodes()`, `listActors()`, ...): local, or cluster-wide through the GCS. */
  async stateCall(method: string): Promise<unknown> {
    const gcs = this.host.gcs();
    const gather = async (what: string): Promise<unknown[]> => {
      if (!gcs) return this.localState(what)[what] ?? [];
      const all = await gcs.gatherState(what);
      return all.flatMap((s) => s[what] ?? []);
    };
    switch (method) {
      case 'nodes':
        return gcs ? (await gcs.listNodes()).map(nodeStateFromWire) : [this.selfInfo()];
      case 'actors':
        return gather('actors');
      case 'tasks':
        return gather('tasks');
      case 'objects':
        return gather('objects');
      case 'placement_groups':
        return gather('placement_groups');
      case 'jobs':
        return gcs ? gcs.listJobs().catch(() => []) : [];
      case 'cluster_resources':
        return this.sumViews(false);
      case 'available_resources':
        return this.sumViews(true);
      case 'pending_demand':
        return gather('demand');
      case 'timeline':
        return gather('timeline');
      case 'task_failures':
        return gather('failures');
      case 'engines':
        return gather('engines');
      case 'workers':
        return gather('workers');
      case 'node_counters':
        return gather('counters');
      case 'transfer':
        return gather('transfer');
      default:
        if (method.startsWith(REQUEST_RESOURCES_CALL)) {
          // requestResources(): kept in the GCS for the head's autoscaler (no cluster, no autoscaler).
          await gcs?.kvPut(REQUEST_RESOURCES_KEY, Buffer.from(method.slice(REQUEST_RESOURCES_CALL.length)), true);
          return null;
        }
        if (method.startsWith(METRIC_CALL_PREFIX)) {
          this.userMetrics.record(method.slice(METRIC_CALL_PREFIX.length));
          return null;
        }
        if (method.startsWith(ENGINE_CALL_PREFIX)) {
          this.engines.record(method.slice(ENGINE_CALL_PREFIX.length));
          return null;
        }
        throw new Error(`unknown state call "${method}"`);
    }
  }

  /** Numbers for tests and the state API. */
  stats(): { objects: number; sealed: number; storeUsed: number; storeCapacity: number; spilledBytes: number; workers: number; tasks: number } {
    const { objects, store } = this.host;
    return {
      objects: objects.size,
      sealed: objects.sealedCount,
      storeUsed: store.used,
      storeCapacity: store.capacity,
      spilledBytes: store.spilledBytes,
      workers: this.host.workers().size,
      tasks: this.host.tasks().size,
    };
  }

  /** Pids of live workers (for tests). */
  workerPids(): number[] {
    return [...this.host.workers().values()].filter((w) => w.proc).map((w) => w.proc!.pid);
  }

  private taskRows(): unknown[] {
    const tasks: unknown[] = [];
    for (const t of this.host.tasks().values()) {
      if (tasks.length >= MAX_ROWS) break;
      // A task forwarded to another node is listed by that node (listed here too, it came twice).
      if (t.remote) continue;
      tasks.push({
        taskId: t.spec.taskId,
        name: t.spec.name,
        state: t.state === 'dispatched' ? 'RUNNING' : 'PENDING',
        nodeId: this.host.nodeId,
        ...(t.actor ? { actorId: t.actor.id } : {}),
      });
    }
    return tasks;
  }

  private objectRows(): unknown[] {
    const objs: unknown[] = [];
    for (const e of this.host.objects.all()) {
      if (objs.length >= MAX_ROWS) break;
      if (!e.data) continue;
      objs.push({ objectId: e.id, sizeBytes: e.data.size, nodeId: this.host.nodeId, location: e.data.inline ? 'inline' : e.data.shm ? 'shm' : 'spilled' });
    }
    return objs;
  }

  private actorRows(): unknown[] {
    const engines = new Map(this.engines.list().map((e) => [e.actorId, e]));
    return [...this.host.actors()]
      .filter((r) => !r.proxy)
      .map((r) => ({
        // The creator's fields first: the node's own fields below always win.
        ...r.creation.stateInfo,
        actorId: r.id,
        className: r.creation.className,
        name: r.creation.name,
        namespace: r.namespace,
        state: r.state.toUpperCase(),
        nodeId: r.remoteNode ?? this.host.nodeId,
        pid: r.worker?.proc?.pid ?? 0,
        numRestarts: r.restarts ?? 0,
        detached: r.creation.detached,
        gpuIds: gpuIdsOut(r.allocation?.gpuIds),
        ...(engines.has(r.id) ? { tensorParallelSize: engines.get(r.id)!.tensorParallelSize } : {}),
        ...(r.death ? { deathCause: `${r.death.reason}: ${r.death.detail}` } : {}),
      }));
  }

  /** This node's worker processes and the GPU ids each holds (its lease's, or its actor's). */
  private workerRows(): unknown[] {
    const rows: unknown[] = [];
    for (const w of this.host.workers().values()) {
      if (w.kind !== 'worker' || !w.proc || w.state === 'dead') continue;
      rows.push({
        workerId: w.id,
        pid: w.proc.pid,
        nodeId: this.host.nodeId,
        state: w.actor ? 'ACTOR' : w.lease ? 'LEASED' : 'IDLE',
        gpuIds: gpuIdsOut(w.lease?.gpuIds.length ? w.lease.gpuIds : w.actor?.allocation?.gpuIds),
        ...(w.actor ? { actorId: w.actor.id } : {}),
      });
    }
    return rows;
  }

  private placementGroupRows(): unknown[] {
    // A group is listed by the node that created it (its reservation names every bundle's node); the
    // parts other nodes hold for it (noWait, one STRICT_PACK share each) are not groups of their own.
    return [...this.host.placementGroups()]
      .filter((pg) => !pg.noWait)
      .map((pg) => ({
        placementGroupId: pg.id,
        name: pg.name,
        strategy: pg.strategy,
        state: pg.state.toUpperCase(),
        bundles: pg.raw,
        bundleNodes: bundleNodesOf(pg),
        bundleGpuIds: pg.reservation ? pg.raw.map((_, b) => gpuIdsOut(bundleGpus(pg, b))) : [],
      }));
  }

  /** This node as the state API shows it. */
  private selfInfo(): Record<string, unknown> {
    const rec = (m: ReadonlyMap<string, number>) => Object.fromEntries([...m].map(([k, v]) => [k, v / 10_000]));
    const id = this.host.identity();
    return {
      nodeId: this.host.nodeId,
      alive: true,
      isHead: id.isHead,
      address: id.address,
      hostname: hostname(),
      pid: process.pid,
      resourcesTotal: rec(this.host.resources.total),
      resourcesAvailable: rec(this.host.resources.available()),
      labels: id.labels,
      startTime: id.startTime,
    };
  }

  private sumViews(available: boolean): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.host.clusterView().entries()) {
      if (!e.alive) continue;
      const m = available ? e.resources.available() : e.resources.total;
      for (const [k, v] of m) out[k] = (out[k] ?? 0) + v / 10_000;
    }
    return out;
  }
}

/** GPU ids reserved for bundle `b` of a created group: this node's, or those the node holding it reported. */
function bundleGpus(pg: PgRecord, b: number): readonly string[] {
  const pool = pg.pools[b];
  if (pool?.remoteNode !== undefined) return pg.remoteParts?.get(pool.remoteNode)?.ready?.[pool.remoteIndex!]?.gpuIds ?? [];
  return pg.reservation?.gpuIds(b) ?? [];
}
