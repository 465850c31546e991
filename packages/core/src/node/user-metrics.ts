/**
 * A node's table of application metrics (`Counter`, `Gauge`, `Histogram` of `@tsray/core`, as Ray's
 * `ray.util.metrics`): workers and drivers send each update to their node, which aggregates per
 * metric and tag set; the head reads every node's table when Prometheus scrapes `/metrics`.
 * @internal
 */
import { cpus, freemem, totalmem } from 'node:os';

/** Prefix of a state call that records one metric update (the payload is {@link MetricUpdate} JSON). */
export const METRIC_CALL_PREFIX = 'metric:';
/** Distinct tag sets kept per node (a runaway tag value cannot grow the table without bound). */
const MAX_SERIES = 10_000;

/** One update of an application metric, as sent from a worker or driver to its node. */
export interface MetricUpdate {
  /** Metric name (Prometheus-safe; the head exports it as `ray_<name>`). */
  n: string;
  k: 'counter' | 'gauge' | 'histogram';
  /** Description (HELP text). */
  d: string;
  /** Tags (labels). */
  t: Record<string, string>;
  /** The increment (counter), the value (gauge) or the observation (histogram). */
  v: number;
  /** Histogram bucket upper bounds. */
  b?: number[];
}

/** One series of an application metric as a node reports it (`localState('metrics')`). */
export interface MetricSeries {
  name: string;
  kind: 'counter' | 'gauge' | 'histogram';
  description: string;
  tags: Record<string, string>;
  /** Counter total or gauge value; for a histogram the sum of observations. */
  value: number;
  /** Histogram: bucket upper bounds and the (non-cumulative) count in each, plus +Inf last. */
  boundaries?: number[];
  bucketCounts?: number[];
  count?: number;
}

/** The node's hardware as `/metrics` shows it (`ray_node_*`). */
export interface NodeHardware {
  nodeId: string;
  /** 0..100 over all cores, since the previous reading. */
  cpuUtilization: number;
  cpuCount: number;
  memUsed: number;
  memTotal: number;
  objectStoreUsed: number;
  objectStoreCapacity: number;
  objectStoreSpilled: number;
}

/** Aggregated application metrics of one node. */
export class UserMetricsTable {
  private readonly series = new Map<string, MetricSeries>();
  private lastCpu = cpuTimes();

  /** Apply one update (JSON of {@link MetricUpdate}); a malformed one throws. */
  record(json: string): void {
    const u = JSON.parse(json) as MetricUpdate;
    if (typeof u.n !== 'string' || typeof u.v !== 'number' || !['counter', 'gauge', 'histogram'].includes(u.k)) throw new Error('malformed metric update');
    const key = `${u.n}\u0000${JSON.stringify(Object.entries(u.t ?? {}).sort())}`;
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= MAX_SERIES) return;
      s = { name: u.n, kind: u.k, description: u.d ?? '', tags: u.t ?? {}, value: 0 };
      if (u.k === 'histogram') {
        s.boundaries = u.b ?? [];
        s.bucketCounts = new Array<number>(s.boundaries.length + 1).fill(0);
        s.count = 0;
      }
      this.series.set(key, s);
    }
    if (u.k === 'gauge') s.value = u.v;
    else s.value += u.v;
    if (u.k === 'histogram') {
      const i = s.boundaries!.findIndex((b) => u.v <= b);
      s.bucketCounts![i < 0 ? s.boundaries!.length : i]!++;
      s.count!++;
    }
  }

  /** Every series. */
  rows(): MetricSeries[] {
    return [...this.series.values()];
  }

  /** CPU (since the previous reading) and memory of this machine, with the store's numbers. */
  hardware(nodeId: string, store: { used: number; capacity: number; spilled: number }): NodeHardware {
    const now = cpuTimes();
    const busy = now.busy - this.lastCpu.busy;
    const total = now.total - this.lastCpu.total;
    this.lastCpu = now;
    return {
      nodeId,
      cpuUtilization: total > 0 ? (100 * busy) / total : 0,
      cpuCount: cpus().length,
      memUsed: totalmem() - freemem(),
      memTotal: totalmem(),
      objectStoreUsed: store.used,
      objectStoreCapacity: store.capacity,
      objectStoreSpilled: store.spilled,
    };
  }
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}
