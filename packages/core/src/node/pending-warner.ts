/**
 * The "cannot be scheduled right now" warning (as Ray's): work that fits this node's totals but has
 * waited longer than `TSRAY_PENDING_WARNING_S` for resources held by others (the 9th one-GPU actor on 8
 * GPUs) is named in one line: its shape, how many wait, and which resources are short now. One line
 * per wait: a shape warns again only after it stopped waiting. Infeasible work (it can never fit) is
 * the task manager's own one-time warning, not this one.
 * @module
 */
import { fromUnits, type ResourceRequest } from '@tsray/scheduler';
import { warnUser } from '../logger.js';
import type { Deque } from '../deque.js';
import type { ActorRecord, Pool, TaskRecord } from './records.js';

/** What the warner reads from its node. */
export interface PendingWarnerHost {
  readonly nodeId: string;
  /** Queues of runnable tasks, one per resource shape. */
  taskQueues(): Iterable<Deque<TaskRecord>>;
  /** Actors waiting for resources. */
  pendingActors(): readonly ActorRecord[];
  /** The pool of work outside placement groups (the node itself). */
  nodePool(): Pool;
}

/** One shape of waiting work, as seen by one check. */
interface Waiting {
  what: string;
  request: ResourceRequest;
  pool: Pool;
  count: number;
  /** Changes when the work moves (a task queue's head): the wait then starts again. */
  progress: string;
}

/** What the warner remembers of a shape between checks. */
interface Seen {
  since: number;
  progress: string;
  warned: boolean;
}

/** Watches this node's waiting tasks and actors; warns once per shape that waits too long. */
export class PendingWarner {
  private readonly seen = new Map<string, Seen>();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly warn: (line: string, fields: Record<string, unknown>) => void;
  private readonly now: () => number;

  /**
   * @param delayMs how long work waits before the warning (0: never warn).
   * @param opts.warn where the line goes (default: stderr, and the library log at `info`).
   * @param opts.now the clock; `opts.timer: false` leaves the checks to the caller (tests).
   */
  constructor(
    private readonly host: PendingWarnerHost,
    private readonly delayMs: number,
    opts: { warn?: (line: string, fields: Record<string, unknown>) => void; now?: () => number; timer?: boolean } = {},
  ) {
    this.warn = opts.warn ?? warnUser;
    this.now = opts.now ?? Date.now;
    if (delayMs > 0 && opts.timer !== false) {
      // Checked a few times per delay: the warning comes at most a quarter delay late.
      this.timer = setInterval(() => this.check(), Math.max(50, Math.min(1000, delayMs / 4)));
      this.timer.unref();
    }
  }

  /** Look at what waits now; warn for shapes waiting longer than the delay. */
  check(): void {
    if (this.delayMs <= 0) return;
    const t = this.now();
    const current = this.waiting();
    for (const key of this.seen.keys()) if (!current.has(key)) this.seen.delete(key);
    for (const [key, w] of current) {
      let s = this.seen.get(key);
      if (!s || s.progress !== w.progress) {
        s = { since: t, progress: w.progress, warned: s?.warned ?? false };
        this.seen.set(key, s);
      }
      if (s.warned || t - s.since < this.delayMs) continue;
      s.warned = true;
      this.warn(this.line(w, t - s.since), { what: w.what, request: w.request.toJSON(), count: w.count });
    }
  }

  /** Stop checking (node shutdown). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Waiting work that could fit its pool once resources free up, by shape. */
  private waiting(): Map<string, Waiting> {
    const out = new Map<string, Waiting>();
    for (const q of this.host.taskQueues()) {
      const head = q.peek();
      if (!head) continue;
      const pool = head.pool ?? this.host.nodePool();
      if (pool.resources.canFit(head.request) || !pool.resources.isFeasible(head.request)) continue;
      out.set(`task|${head.spec.name}|${head.request.key}|${pool.key}`, {
        what: `task ${head.spec.name}`,
        request: head.request,
        pool,
        count: q.length,
        progress: head.spec.taskId,
      });
    }
    for (const rec of this.host.pendingActors()) {
      if (rec.state === 'dead') continue;
      const pool = rec.pool ?? this.host.nodePool();
      if (pool.resources.canFit(rec.schedule) || !pool.resources.isFeasible(rec.schedule)) continue;
      const key = `actor|${rec.creation.className}|${rec.schedule.key}|${pool.key}`;
      const w = out.get(key);
      if (w) w.count++;
      else out.set(key, { what: `actor ${rec.creation.className}`, request: rec.schedule, pool, count: 1, progress: '' });
    }
    return out;
  }

  /** The warning: shape, how many, for how long, and which resources are short (needed vs free of total). */
  private line(w: Waiting, waitedMs: number): string {
    const r = w.pool.resources;
    const short = [...w.request.amounts]
      .filter(([name, units]) => r.availableOf(name) < units)
      .map(([name, units]) => `${name} (needs ${fromUnits(units)}, ${fromUnits(r.availableOf(name))} of ${fromUnits(r.total.get(name) ?? 0)} free)`);
    const where = w.pool.pg ? `bundle ${w.pool.bundleIndex} of placement group ${w.pool.pg.name || w.pool.pg.id}` : `node ${this.host.nodeId}`;
    const many = w.count > 1 ? `${w.count} of ` : '';
    return (
      `tsray: ${many}${w.what} ${JSON.stringify(w.request.toJSON())} cannot be scheduled right now (waiting ${Math.round(waitedMs / 1000)}s): ` +
      `${where} is short of ${short.join(', ') || 'resources'}, held by running actors and tasks; it starts when they are released ` +
      '(listActors() and pendingDemand() show what holds and waits)'
    );
  }
}
