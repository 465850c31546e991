/**
 * The head's Prometheus metrics (`GET /metrics` on the dashboard port), under Ray's names so Ray's
 * queries and Grafana boards carry over: task, actor and placement-group counts by state, per-node
 * CPU/memory/object store, logical resources, and the application metrics (`Counter`, `Gauge`,
 * `Histogram` of `@tsray/core`) as `ray_<name>` with their tags. Values are read from the cluster at
 * scrape time (no background polling). Other registries (the LLM engines' `vllm:*`) are merged in.
 * @module
 */
import type { MetricSeries, NodeHardware } from '@tsray/core/internal';
import { Counter, Gauge, Registry } from 'prom-client';
import type { StateProvider } from '../contracts.js';

/** What the head's metrics read besides the state lists: every node's `localState('metrics')`. */
export interface MetricsSource {
  /** Every live node's application metric series and hardware reading. */
  nodeMetrics(): Promise<{ metrics: MetricSeries[]; hardware: NodeHardware[] }>;
}

/** Every metric name the head itself exports (the Grafana board's queries must name only these). */
export const CLUSTER_METRIC_NAMES = [
  'ray_tasks',
  'ray_actors',
  'ray_placement_groups',
  'ray_cluster_active_nodes',
  'ray_node_cpu_utilization',
  'ray_node_cpu_count',
  'ray_node_gpus_available',
  'ray_node_gpus_utilization',
  'ray_node_mem_used',
  'ray_node_mem_total',
  'ray_object_store_memory',
  'ray_object_store_available_memory',
  'ray_resources',
] as const;

type Labels = Record<string, string | number>;
/** One sample: name, labels, value. */
type Sample = [string, Labels, number];

/** Prometheus text escaping of a label value (histograms, which prom-client cannot fill pre-aggregated). */
function esc(v: string | number): string {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A prom-client family on `reg` with these samples (label names from the samples). */
function family(reg: Registry, name: string, type: 'gauge' | 'counter', help: string, samples: Sample[]): void {
  const labelNames = [...new Set(samples.flatMap(([, l]) => Object.keys(l)))];
  const m =
    type === 'gauge'
      ? new Gauge({ name, help: help || name, labelNames, registers: [reg] })
      : new Counter({ name, help: help || name, labelNames, registers: [reg] });
  for (const [, labels, value] of samples) {
    if (m instanceof Gauge) m.set(labels, Number.isFinite(value) ? value : 0);
    else if (value > 0) m.inc(labels, value);
  }
}

/** Text of a histogram family from node-aggregated buckets. */
function histogramText(name: string, help: string, samples: Sample[]): string {
  const line = ([n, labels, value]: Sample) =>
    `${n}{${Object.entries(labels)
      .map(([k, v]) => `${k}="${esc(v)}"`)
      .join(',')}} ${value}`;
  return [`# HELP ${name} ${(help || name).replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} histogram`, ...samples.map(line)].join('\n');
}

function countBy<T>(rows: T[], key: (r: T) => string[]): Map<string, { labels: string[]; n: number }> {
  const out = new Map<string, { labels: string[]; n: number }>();
  for (const r of rows) {
    const labels = key(r);
    const k = labels.join('\u0000');
    const e = out.get(k) ?? { labels, n: 0 };
    e.n++;
    out.set(k, e);
  }
  return out;
}

/** The head's `/metrics`: cluster state under Ray's names plus the application metrics and merged registries. */
export class ClusterMetrics {
  /** Registries merged into `/metrics` (e.g. the LLM engines' `vllm:*`); register more with {@link addRegistry}. */
  private readonly extra: Registry[] = [];

  constructor(
    private readonly state: StateProvider,
    private readonly source: MetricsSource,
    /** Labels on every cluster metric (Ray's `SessionName`). */
    private readonly common: Labels = {},
  ) {}

  /** Include another prom-client registry's metrics (e.g. engine metrics) in `/metrics`. */
  addRegistry(r: Registry): void {
    this.extra.push(r);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<string> {
    const [nodes, actors, tasks, pgs, node] = await Promise.all([
      this.state.nodes(),
      this.state.actors(),
      this.state.tasks(),
      this.state.placementGroups(),
      this.source.nodeMetrics(),
    ]);
    // A fresh registry per scrape: every value is read now, and series of gone actors/nodes vanish.
    const reg = new Registry();
    reg.setDefaultLabels(this.common);
    const byState = (name: string, m: Map<string, { labels: string[]; n: number }>, keys: string[]): Sample[] =>
      [...m.values()].map((e) => [name, Object.fromEntries(keys.map((k, i) => [k, e.labels[i]!])), e.n] as Sample);
    family(
      reg,
      'ray_tasks',
      'gauge',
      'Live tasks by name and state.',
      byState(
        'ray_tasks',
        countBy(tasks, (t) => [t.name, t.state]),
        ['Name', 'State'],
      ),
    );
    family(
      reg,
      'ray_actors',
      'gauge',
      'Actors by class and state.',
      byState(
        'ray_actors',
        countBy(actors, (a) => [a.className, a.state]),
        ['Name', 'State'],
      ),
    );
    family(
      reg,
      'ray_placement_groups',
      'gauge',
      'Placement groups by state.',
      byState(
        'ray_placement_groups',
        countBy(pgs, (p) => [p.state]),
        ['State'],
      ),
    );
    const alive = nodes.filter((n) => n.alive);
    family(reg, 'ray_cluster_active_nodes', 'gauge', 'Alive nodes.', [['ray_cluster_active_nodes', { node_type: 'node' }, alive.length]]);
    const hw = new Map(node.hardware.map((h) => [h.nodeId, h]));
    const perNode = (name: string, f: (h: NodeHardware) => number, extra: Labels = {}) =>
      alive.flatMap((n) => {
        const h = hw.get(n.nodeId);
        return h ? [[name, { NodeId: n.nodeId, instance: n.address, ...extra }, f(h)] as Sample] : [];
      });
    const nodeFamily = (name: string, help: string, f: (h: NodeHardware) => number) => family(reg, name, 'gauge', help, perNode(name, f));
    nodeFamily('ray_node_cpu_utilization', 'CPU use of the node, 0..100 over all cores.', (h) => h.cpuUtilization);
    nodeFamily('ray_node_cpu_count', 'CPU cores of the node.', (h) => h.cpuCount);
    nodeFamily('ray_node_mem_used', 'Memory used on the node (bytes).', (h) => h.memUsed);
    nodeFamily('ray_node_mem_total', 'Memory of the node (bytes).', (h) => h.memTotal);
    nodeFamily('ray_object_store_available_memory', 'Free object store memory of the node (bytes).', (h) => h.objectStoreCapacity - h.objectStoreUsed);
    const store = 'Object store memory in use (bytes) by location.';
    family(reg, 'ray_object_store_memory', 'gauge', store, [
      ...perNode('ray_object_store_memory', (h) => h.objectStoreUsed, { Location: 'MMAP_SHM' }),
      ...perNode('ray_object_store_memory', (h) => h.objectStoreSpilled, { Location: 'SPILLED' }),
    ]);
    const gpus = (name: string, f: (total: number, free: number) => number): Sample[] =>
      alive
        .filter((n) => (n.resourcesTotal['GPU'] ?? 0) > 0)
        .map((n) => [name, { NodeId: n.nodeId, instance: n.address }, f(n.resourcesTotal['GPU'] ?? 0, n.resourcesAvailable['GPU'] ?? 0)] as Sample);
    family(
      reg,
      'ray_node_gpus_available',
      'gauge',
      'GPUs of the node.',
      gpus('ray_node_gpus_available', (t) => t),
    );
    // Logical use (0..NGPU*100): the share of GPUs held by tasks and actors (no vendor counters are read here).
    family(
      reg,
      'ray_node_gpus_utilization',
      'gauge',
      'GPUs held by tasks/actors, 0..NGPU*100.',
      gpus('ray_node_gpus_utilization', (t, f) => (t - f) * 100),
    );
    family(
      reg,
      'ray_resources',
      'gauge',
      'Logical resources of each node, used and available.',
      alive.flatMap((n) =>
        Object.entries(n.resourcesTotal).flatMap(([name, total]) => {
          const free = n.resourcesAvailable[name] ?? 0;
          const l = { Name: name, instance: n.address, NodeId: n.nodeId };
          return [['ray_resources', { ...l, State: 'USED' }, total - free] as Sample, ['ray_resources', { ...l, State: 'AVAILABLE' }, free] as Sample];
        }),
      ),
    );
    const histograms = userFamilies(reg, node.metrics, this.common);
    const extra = this.extra.length ? await Registry.merge(this.extra).metrics() : '';
    return `${[await reg.metrics(), ...histograms, extra].filter((t) => t.trim() !== '').join('\n')}\n`;
  }
}

/** Merge every node's series of one application metric per tag set (counters and histograms add up; gauges too). */
function mergeSeries(list: MetricSeries[]): MetricSeries[] {
  const kind = list[0]!.kind;
  const merged = new Map<string, MetricSeries>();
  for (const s of list) {
    if (s.kind !== kind) continue;
    const key = JSON.stringify(Object.entries(s.tags).sort());
    const m = merged.get(key);
    if (!m) merged.set(key, { ...s, ...(s.bucketCounts ? { bucketCounts: [...s.bucketCounts] } : {}) });
    else {
      m.value += s.value;
      if (m.bucketCounts && s.bucketCounts && m.boundaries?.length === s.boundaries?.length) {
        for (const [i, n] of s.bucketCounts.entries()) m.bucketCounts[i]! += n;
        m.count = (m.count ?? 0) + (s.count ?? 0);
      }
    }
  }
  return [...merged.values()];
}

/**
 * Application metrics as `ray_<name>` families (Ray's prefix): counters and gauges go into `reg`;
 * histograms (pre-aggregated buckets) come back as text.
 */
function userFamilies(reg: Registry, series: MetricSeries[], common: Labels): string[] {
  const byName = new Map<string, MetricSeries[]>();
  for (const s of series) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  const texts: string[] = [];
  for (const [name, list] of byName) {
    const rows = mergeSeries(list);
    const { kind, description } = rows[0]!;
    const full = `ray_${name}`;
    if (kind === 'counter') {
      const n = `${full.replace(/_total$/, '')}_total`;
      family(
        reg,
        n,
        'counter',
        description,
        rows.map((s) => [n, s.tags, s.value] as Sample),
      );
    } else if (kind === 'gauge')
      family(
        reg,
        full,
        'gauge',
        description,
        rows.map((s) => [full, s.tags, s.value] as Sample),
      );
    else {
      const samples: Sample[] = [];
      for (const s of rows) {
        const l = { ...common, ...s.tags };
        let acc = 0;
        s.boundaries!.forEach((b, i) => {
          acc += s.bucketCounts![i]!;
          samples.push([`${full}_bucket`, { ...l, le: b }, acc]);
        });
        samples.push([`${full}_bucket`, { ...l, le: '+Inf' }, s.count ?? 0]);
        samples.push([`${full}_sum`, l, s.value]);
        samples.push([`${full}_count`, l, s.count ?? 0]);
      }
      texts.push(histogramText(full, description, samples));
    }
  }
  return texts;
}
