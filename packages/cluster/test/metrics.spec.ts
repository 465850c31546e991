/**
 * The head's `/metrics` (issue #20 acceptance 2): parsed by Prometheus's own Python parser
 * (`prometheus_client.parser`), Ray's metric names, an application Counter from a task with its tags,
 * and the Grafana board in deploy/grafana/ naming only exported metrics.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Counter, Gauge, get, Histogram, init, kill, placementGroup, removePlacementGroup, shutdown, ValidationError } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { apiKeyFor } from '../src/http/api-key.js';
import { holdUntil, RemoteHolder, work } from './fixtures/metric-fns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = join(ROOT, '.venv/bin/python');
const run = promisify(execFile);

function fetchText(url: string, token: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One parsed sample: family name, sample name, labels, value (from prometheus_client's parser). */
interface ParsedSample {
  family: string;
  type: string;
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse exposition text with prometheus_client.parser (a parse error fails the command). */
async function parseWithPrometheus(text: string): Promise<ParsedSample[]> {
  const script = [
    'import json, sys',
    'from prometheus_client.parser import text_string_to_metric_families',
    'out = []',
    'for f in text_string_to_metric_families(sys.stdin.read()):',
    '    for s in f.samples:',
    '        out.append({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value})',
    'print(json.dumps(out))',
  ].join('\n');
  const child = run(PYTHON, ['-c', script], { maxBuffer: 64 * 1024 * 1024 });
  child.child.stdin!.end(text);
  const { stdout } = await child;
  return JSON.parse(stdout) as ParsedSample[];
}

describe('head /metrics', () => {
  const c = new TestCluster();
  let url: string;

  beforeAll(async () => {
    await c.startHead({ numCpus: 2 });
    await c.addNode({ numCpus: 1 });
    url = `${c.head.ready.dashboardUrl}/metrics`;
    c.attachHere();
    await init({ address: 'auto', namespace: 'metrics' });
  }, 60_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('needs the API key derived from the cluster token', async () => {
    expect((await fetchText(url, undefined)).status).toBe(401);
    expect((await fetchText(url, 'wrong-token')).status).toBe(401);
  });

  it("parses with prometheus_client, under Ray's names, with a task's Counter, Gauge and Histogram and their tags", async () => {
    expect(await get([work.remote(3, 'parse'), work.remote(4, 'parse'), work.remote(5, 'emit')])).toEqual([3, 4, 5]);
    const { status, body } = await fetchText(url, apiKeyFor(c.token));
    expect(status).toBe(200);
    const samples = await parseWithPrometheus(body);
    const families = new Set(samples.map((s) => s.family));
    for (const name of ['ray_node_cpu_utilization', 'ray_node_mem_used', 'ray_object_store_memory', 'ray_resources', 'ray_cluster_active_nodes']) {
      expect(families, name).toContain(name);
    }
    const of = (name: string, labels: Record<string, string> = {}) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    expect(of('ray_cluster_active_nodes')).toBe(2);
    // Both nodes report hardware; CPU totals are the nodes' (2 + 1).
    expect(samples.filter((s) => s.name === 'ray_node_mem_used').length).toBe(2);
    expect(of('ray_resources', { Name: 'CPU', State: 'USED' }) + of('ray_resources', { Name: 'CPU', State: 'AVAILABLE' })).toBe(3);
    // The application Counter: ray_ prefix, summed over tasks (and nodes), tags kept.
    const counter = samples.filter((s) => s.name === 'ray_test_items_done_total');
    expect(counter.find((s) => s.labels['stage'] === 'parse')).toMatchObject({ type: 'counter', value: 7, labels: { stage: 'parse', color: 'blue' } });
    expect(counter.find((s) => s.labels['stage'] === 'emit')?.value).toBe(5);
    expect(of('ray_test_queue_depth', { stage: 'emit' })).toBe(50);
    expect(of('ray_test_latency_seconds_count', { stage: 'parse' })).toBe(2);
    expect(of('ray_test_latency_seconds_sum', { stage: 'parse' })).toBe(3.5);
    // 1.5 and 2 are <= 10 but not <= 1.
    expect(of('ray_test_latency_seconds_bucket', { stage: 'parse', le: '0.1' })).toBe(0);
    expect(of('ray_test_latency_seconds_bucket', { stage: 'parse', le: '1' })).toBe(0);
    expect(of('ray_test_latency_seconds_bucket', { stage: 'parse', le: '+Inf' })).toBe(2);
    expect(of('ray_test_latency_seconds_bucket', { stage: 'parse', le: '10' })).toBe(2);
    expect(samples.find((s) => s.name === 'ray_test_items_done_total')?.labels['SessionName']).toBeTruthy();
  });

  it('counts live tasks, actors and placement groups by state (ray_tasks, ray_actors, ray_placement_groups)', async () => {
    const release = join(c.tmp, 'release-hold');
    const held = holdUntil.remote(release);
    const h = RemoteHolder.remote();
    expect(await get(h.ping.remote())).toBe('pong');
    const pg = placementGroup([{ CPU: 0.1 }], { name: 'metrics-pg' });
    await get(pg.ready());
    const scrape = async () => {
      const samples = await parseWithPrometheus((await fetchText(url, apiKeyFor(c.token))).body);
      return (name: string, labels: Record<string, string>) =>
        samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    };
    const of = await until(
      async () => {
        const f = await scrape();
        return f('ray_tasks', { Name: 'holdUntil', State: 'RUNNING' }) === 1 ? f : undefined;
      },
      20_000,
      'the held task to show as RUNNING',
    );
    expect(of('ray_actors', { Name: 'Holder', State: 'ALIVE' })).toBe(1);
    expect(of('ray_placement_groups', { State: 'CREATED' })).toBe(1);
    writeFileSync(release, '');
    expect(await get(held)).toBe(true);
    removePlacementGroup(pg);
    kill(h);
  });
});

describe('metrics API bad input', () => {
  it('refuses bad names, undeclared tags, non-positive increments and unordered buckets with ValidationError', () => {
    expect(() => new Counter('bad name')).toThrow(ValidationError);
    const c = new Counter('ok_name', { tagKeys: ['a'] });
    expect(() => c.inc(1, { b: 'x' })).toThrow(/not one of its tagKeys/);
    expect(() => c.inc(0)).toThrow(ValidationError);
    expect(() => new Gauge('g').set(Number.NaN)).toThrow(/finite/);
    expect(() => new Histogram('h', { boundaries: [2, 1] })).toThrow(/ascending/);
  });
});

describe('Grafana dashboard JSON (deploy/grafana/)', () => {
  it('is valid JSON and every panel query names a metric /metrics exports', async () => {
    const dir = join(ROOT, 'deploy/grafana');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const { CLUSTER_METRIC_NAMES } = await import('../src/metrics/cluster-metrics.js');
    const exported = new Set<string>(CLUSTER_METRIC_NAMES);
    for (const f of files) {
      const board = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
      expect(board.panels.length, f).toBeGreaterThan(0);
      for (const p of board.panels) {
        expect(p.targets?.length, `${f}: panel ${p.title} has no query`).toBeGreaterThan(0);
        for (const t of p.targets!) {
          const names = (t.expr.match(/\bray_[a-z_]+/g) ?? []).filter((n) => !['ray_'].includes(n));
          expect(names.length, `${f}: ${p.title}: ${t.expr}`).toBeGreaterThan(0);
          for (const n of names) expect(exported, `${f}: ${p.title} queries ${n}`).toContain(n);
        }
      }
    }
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
  });
});
