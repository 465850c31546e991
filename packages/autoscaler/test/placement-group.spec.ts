// Acceptance 2 of issue #19: a placement group of 3 STRICT_SPREAD bundles on a 1-node cluster → the
// head's autoscaler adds 2 nodes and the group becomes ready, one bundle per node; removed, its nodes
// go idle and are removed. Then requestResources() of 3 × {CPU: 1} adds 2 nodes again, which stay
// while the request stands (idle or not) and go once it is withdrawn. Local provider, real processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterEnv, processesOf, reap, ROOT, tempDir, tsray, until } from './fixtures/harness.js';
import { phases, type StatusJson, statusJson } from './fixtures/status.js';

const CONFIG = `cluster_name: pgtest
max_workers: 3
idle_timeout_minutes: 0.05
provider: { type: local, head_port: 0, dashboard_port: 0 }
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { CPU: 1 }, max_workers: 3 }
head_node_type: head
`;

/** A driver (fixtures/pg-driver.ts) with its output so far. */
function driver(env: Record<string, string>, args: string[]): { child: ChildProcess; out: () => string; exited: Promise<number> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/autoscaler/test/fixtures/pg-driver.ts'), ...args], {
    cwd: ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out, exited: new Promise((r) => child.on('close', (c) => r(c ?? 1))) };
}

const aliveWorkers = (s: StatusJson) => s.nodes.filter((n) => n.alive && !n.isHead);

describe('autoscaler: placement groups and requestResources (local provider)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  let config = '';
  beforeAll(() => {
    tmp = tempDir();
    env = clusterEnv(tmp.dir);
  });
  afterAll(async () => {
    if (config) await tsray(['down', config], env);
    await reap(tmp.dir);
    tmp.cleanup();
  });

  it('3 STRICT_SPREAD bundles on 1 node → 2 nodes added, the group ready; requestResources holds nodes', { timeout: 300_000 }, async () => {
    config = join(tmp.dir, 'cluster.yaml');
    writeFileSync(config, CONFIG);
    const up = await tsray(['up', config], env);
    expect(up.code, up.stderr).toBe(0);

    const pg = driver(env, ['pg']);
    const ready = await until(() => /^READY (.*)$/m.exec(pg.out())?.[1], 120_000, `the group to be ready (driver: ${pg.out()})`);
    const nodes = JSON.parse(ready) as string[];
    expect(new Set(nodes).size).toBe(3);
    const s1 = await statusJson(env);
    expect(s1.autoscaler?.launchedTotal).toBe(2);
    expect(aliveWorkers(s1)).toHaveLength(2);
    expect(nodes).toContain(s1.nodes.find((n) => n.isHead)!.nodeId);
    expect(s1.autoscaler?.events.map((e) => e.message)).toContain('adding a worker node for a STRICT_SPREAD placement group of 3 bundle(s)');
    // Bundles make their nodes busy: not idle while the group stands.
    expect(phases(s1)).toEqual({ launching: 0, active: 2, idle: 0 });

    pg.child.stdin!.end('go\n');
    expect(await pg.exited).toBe(0);
    const s2 = await until(
      async () => {
        const s = await statusJson(env);
        return s.autoscaler?.terminatedTotal === 2 && aliveWorkers(s).length === 0 && s;
      },
      90_000,
      'the idle nodes of the removed group to go',
    );
    expect(s2.autoscaler?.launchedTotal).toBe(2);

    // requestResources: 3 × {CPU: 1} on a 1-CPU head → 2 nodes, kept while the request stands.
    const req = driver(env, ['request', '3']);
    await until(() => req.out().includes('REQUESTED'), 60_000, `requestResources (driver: ${req.out()})`);
    const s3 = await until(
      async () => {
        const s = await statusJson(env);
        return aliveWorkers(s).length === 2 && phases(s).active === 2 && s;
      },
      120_000,
      '2 nodes for the request',
    );
    expect(s3.autoscaler?.launchedTotal).toBe(4);
    expect(s3.autoscaler?.events.map((e) => e.message)).toContain('adding a worker node for requestResources {CPU: 1}');
    // Idle past idle_timeout (3 s) yet kept: they hold the request. Observed over several rounds.
    const since = Date.now();
    await until(
      async () => {
        const s = await statusJson(env);
        expect(aliveWorkers(s)).toHaveLength(2);
        expect(s.autoscaler?.terminatedTotal).toBe(2);
        return Date.now() - since > 3 * 0.05 * 60_000 && s;
      },
      60_000,
      'two idle timeouts to pass',
    );

    req.child.stdin!.end('go\n');
    expect(await req.exited).toBe(0);
    await until(
      async () => {
        const s = await statusJson(env);
        return s.autoscaler?.terminatedTotal === 4 && aliveWorkers(s).length === 0;
      },
      90_000,
      'the nodes to go once the request is withdrawn',
    );

    const down = await tsray(['down', config], env);
    expect(down.code).toBe(0);
    config = '';
    await until(() => processesOf(tmp.dir).length === 0, 30_000, 'every process of the cluster to exit');
  });
});
