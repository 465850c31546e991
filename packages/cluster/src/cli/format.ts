/**
 * Text formats of `tsray status` and `tsray list` (pure functions; unit tested).
 * @module
 */
import { formatAutoscaler } from './format-autoscaler.js';
import type { ActorState, ClusterStatus, DemandState, JobInfo, NodeInfo, ObjectState, PlacementGroupState, TaskState } from '../contracts.js';

const RULE = '-'.repeat(64);
const MEMORY_KEYS = new Set(['memory', 'object_store_memory']);

/** Resource names in display order: CPU, GPU, memory, object_store_memory, then the rest sorted. */
export function resourceOrder(names: Iterable<string>): string[] {
  const first = ['CPU', 'GPU', 'memory', 'object_store_memory'];
  const set = new Set(names);
  return [...first.filter((n) => set.has(n)), ...[...set].filter((n) => !first.includes(n)).sort()];
}

/** A quantity: bytes for memory resources (`1.5GiB`), else a number with at most 4 decimals. */
export function formatQuantity(name: string, v: number): string {
  if (MEMORY_KEYS.has(name)) return formatBytes(v);
  return String(Math.round(v * 1e4) / 1e4);
}

/** `0B`, `512B`, `1.5KiB`, `2GiB`… */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : Math.round(v * 100) / 100}${units[i]}`;
}

/** `{CPU: 1, GPU: 0.5}` (or a list of them for bundles). */
export function formatShape(r: Record<string, number> | Record<string, number>[]): string {
  if (Array.isArray(r)) return `[${r.map((b) => formatShape(b)).join(', ')}]`;
  return `{${resourceOrder(Object.keys(r))
    .map((k) => `${k}: ${formatQuantity(k, r[k] as number)}`)
    .join(', ')}}`;
}

/** `CPU 1/4  GPU 1/2  memory 0B/8GiB` — used/total of one node. */
export function formatUsage(total: Record<string, number>, available: Record<string, number>): string {
  const names = resourceOrder(Object.keys(total));
  if (names.length === 0) return '(no resources)';
  return names
    .map((k) => {
      const t = total[k] as number;
      const used = Math.max(0, t - (available[k] ?? 0));
      return `${k} ${formatQuantity(k, used)}/${formatQuantity(k, t)}`;
    })
    .join('  ');
}

function nodeLine(n: NodeInfo): string {
  return ` ${n.nodeId}${n.isHead ? ' (head)' : ''}  ${n.address}  ${n.hostname}`;
}

function demandLine(d: DemandState): string {
  const what = `${d.kind} ${d.name}`;
  return ` ${formatShape(d.resources)} x${d.count}  ${what}${d.infeasible && d.missing.length ? `  (no node has: ${d.missing.join(', ')})` : ''}`;
}

/**
 * The `tsray status` report:
 *
 * ```text
 * ======== Cluster status ========
 * Nodes: 2 alive, 1 dead
 * ----------------------------------------------------------------
 * Alive:
 *  <nodeId> (head)  127.0.0.1:6380  host-a
 *    CPU 1/4  GPU 1/2  memory 0B/8GiB  accel 0/2
 * Dead:
 *  <nodeId>  10.0.0.3:6381  host-c  (death reason)
 *
 * Resources (used/total, alive nodes)
 * ----------------------------------------------------------------
 *  1/6 CPU
 *  1/2 GPU
 *
 * Pending demand
 * ----------------------------------------------------------------
 *  {CPU: 1} x3  task train
 * Infeasible demand (fits no node)
 * ----------------------------------------------------------------
 *  [{GPU: 8}] x1  placement_group big  (no node has: GPU)
 *
 * Placement groups
 * ----------------------------------------------------------------
 *  <pgId>  name  STRICT_PACK  CREATED  [{CPU: 1}, {GPU: 1}]  on <node>, <node>
 * ```
 *
 * Empty sections say `(none)`.
 */
export function formatStatus(s: ClusterStatus): string {
  const out: string[] = [];
  const alive = s.nodes.filter((n) => n.alive);
  const dead = s.nodes.filter((n) => !n.alive);
  out.push('======== Cluster status ========');
  out.push(`Nodes: ${alive.length} alive, ${dead.length} dead`);
  out.push(RULE);
  out.push('Alive:');
  if (alive.length === 0) out.push(' (none)');
  for (const n of alive) {
    out.push(nodeLine(n));
    out.push(`   ${formatUsage(n.resourcesTotal, n.resourcesAvailable)}`);
  }
  out.push('Dead:');
  if (dead.length === 0) out.push(' (none)');
  for (const n of dead) out.push(`${nodeLine(n)}${n.deathReason ? `  (${n.deathReason})` : ''}`);
  out.push('');
  out.push('Resources (used/total, alive nodes)');
  out.push(RULE);
  const total: Record<string, number> = {};
  const avail: Record<string, number> = {};
  for (const n of alive) {
    for (const [k, v] of Object.entries(n.resourcesTotal)) total[k] = (total[k] ?? 0) + v;
    for (const [k, v] of Object.entries(n.resourcesAvailable)) avail[k] = (avail[k] ?? 0) + v;
  }
  const names = resourceOrder(Object.keys(total));
  if (names.length === 0) out.push(' (none)');
  for (const k of names) out.push(` ${formatQuantity(k, Math.max(0, (total[k] as number) - (avail[k] ?? 0)))}/${formatQuantity(k, total[k] as number)} ${k}`);
  out.push('');
  const pending = s.pendingDemand.filter((d) => !d.infeasible);
  const infeasible = s.pendingDemand.filter((d) => d.infeasible);
  out.push('Pending demand');
  out.push(RULE);
  if (pending.length === 0) out.push(' (none)');
  for (const d of pending) out.push(demandLine(d));
  out.push('Infeasible demand (fits no node)');
  out.push(RULE);
  if (infeasible.length === 0) out.push(' (none)');
  for (const d of infeasible) out.push(demandLine(d));
  out.push('');
  out.push('Placement groups');
  out.push(RULE);
  if (s.placementGroups.length === 0) out.push(' (none)');
  for (const pg of s.placementGroups) {
    const nodes = pg.bundleNodes.filter(Boolean);
    out.push(
      ` ${pg.placementGroupId}  ${pg.name || '-'}  ${pg.strategy}  ${pg.state}  ${formatShape(pg.bundles)}${nodes.length ? `  on ${nodes.join(', ')}` : ''}`,
    );
  }
  if (s.autoscaler) out.push(...formatAutoscaler(s.autoscaler));
  return out.join('\n') + '\n';
}

/** A left-aligned text table (two spaces between columns); `(no <what>)` under the header when empty. */
export function formatTable(headers: string[], rows: string[][], what = 'rows'): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const out = [line(headers), ...rows.map(line)];
  if (rows.length === 0) out.push(`(no ${what})`);
  return out.join('\n') + '\n';
}

function time(ms: number | undefined): string {
  return ms ? new Date(ms).toISOString() : '-';
}

/** The kinds `tsray list` knows. */
export type ListKind = 'nodes' | 'actors' | 'tasks' | 'objects' | 'placement-groups' | 'jobs';

/** Rows of `tsray list <kind>` as a table (columns per kind, see the CLI help). */
export function formatList(kind: ListKind, items: unknown[]): string {
  switch (kind) {
    case 'nodes':
      return formatTable(
        ['NODE_ID', 'STATE', 'HEAD', 'ADDRESS', 'HOSTNAME', 'PID', 'RESOURCES'],
        (items as NodeInfo[]).map((n) => [
          n.nodeId,
          n.alive ? 'ALIVE' : 'DEAD',
          n.isHead ? 'yes' : '',
          n.address,
          n.hostname,
          String(n.pid),
          formatShape(n.resourcesTotal),
        ]),
        'nodes',
      );
    case 'actors':
      return formatTable(
        ['ACTOR_ID', 'CLASS', 'NAME', 'STATE', 'NODE_ID', 'PID', 'RESTARTS', 'GPU_IDS', 'TP'],
        (items as ActorState[]).map((a) => [
          a.actorId,
          a.className,
          a.name || '-',
          a.state,
          a.nodeId,
          String(a.pid),
          String(a.numRestarts),
          a.gpuIds?.length ? a.gpuIds.join(',') : '-',
          // An LLM engine's tensor-parallel size, once the engine reported it (other actors: '-').
          a.tensorParallelSize === undefined ? '-' : String(a.tensorParallelSize),
        ]),
        'actors',
      );
    case 'tasks':
      return formatTable(
        ['TASK_ID', 'NAME', 'STATE', 'NODE_ID', 'ACTOR_ID'],
        (items as TaskState[]).map((t) => [t.taskId, t.name, t.state, t.nodeId, t.actorId ?? '-']),
        'tasks',
      );
    case 'objects':
      return formatTable(
        ['OBJECT_ID', 'SIZE', 'LOCATION', 'NODE_ID'],
        (items as ObjectState[]).map((o) => [o.objectId, formatBytes(o.sizeBytes), o.location, o.nodeId]),
        'objects',
      );
    case 'placement-groups':
      return formatTable(
        ['PLACEMENT_GROUP_ID', 'NAME', 'STRATEGY', 'STATE', 'BUNDLES', 'BUNDLE_NODES'],
        (items as PlacementGroupState[]).map((p) => [
          p.placementGroupId,
          p.name || '-',
          p.strategy,
          p.state,
          formatShape(p.bundles),
          p.bundleNodes.join(',') || '-',
        ]),
        'placement groups',
      );
    case 'jobs':
      return formatTable(
        ['SUBMISSION_ID', 'STATUS', 'START_TIME', 'END_TIME', 'ENTRYPOINT'],
        (items as JobInfo[]).map((j) => [j.submissionId, j.status, time(j.startTime), time(j.endTime), j.entrypoint]),
        'jobs',
      );
  }
}
