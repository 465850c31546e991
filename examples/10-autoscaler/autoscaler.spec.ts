// Acceptance 1 of issue #19: `tsray up examples/10-autoscaler/cluster.yaml` (local provider, head +
// min_workers 0 / max_workers 4); 16 tasks needing `slot`, which only workers have → the head's
// autoscaler adds the 2 workers the demand needs (no more), the tasks run, the idle workers are
// removed after idle_timeout; `tsray status` shows each phase; `tsray down` leaves no process.
// The config is the example's, with free ports, a short idle timeout and a worker setup command that holds
// the launches until the test has seen them launching (a gate file, an observable condition).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterEnv, processesOf, reap, tempDir, tsray, until, writeConfig } from '../../packages/autoscaler/test/fixtures/harness.js';
import { phases, statusJson } from '../../packages/autoscaler/test/fixtures/status.js';

const HERE = import.meta.dirname;

describe('examples/10-autoscaler: tsray up with the local provider', () => {
  let tmp: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  let config: string;
  beforeAll(() => {
    tmp = tempDir();
    env = clusterEnv(tmp.dir);
  });
  afterAll(async () => {
    if (config) await tsray(['down', config], env);
    await reap(tmp.dir);
    tmp.cleanup();
  });

  it('adds the workers 16 tasks need, runs them, removes the idle workers; down leaves no process', async () => {
    const gate = join(tmp.dir, 'go');
    config = writeConfig(
      join(HERE, 'cluster.yaml'),
      join(tmp.dir, 'cluster.yaml'),
      { idle_timeout_minutes: 0.1, worker_setup_commands: [`while [ ! -e ${gate} ]; do sleep 0.1; done`] },
      { head_port: 0, dashboard_port: 0 },
    );
    const up = await tsray(['up', config], env);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/Cluster demo is up\. Head: 127\.0\.0\.1:\d+/);

    const s0 = await statusJson(env);
    expect(s0.autoscaler?.clusterName).toBe('demo');
    expect(s0.nodes.filter((n) => n.alive)).toHaveLength(1);
    expect(phases(s0)).toEqual({ launching: 0, active: 0, idle: 0 });

    const driver = spawn('npx', ['tsx', 'driver.ts'], { cwd: HERE, env: { ...env, TSRAY_ADDRESS: 'auto' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    driver.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    driver.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number>((r) => driver.on('close', (c) => r(c ?? 1)));

    // Phase 1: launching — 16 × {CPU: 0.5, slot: 1} fit 2 workers of {CPU: 4, slot: 8}.
    const launching = await until(
      async () => {
        const s = await statusJson(env);
        return phases(s).launching > 0 && s;
      },
      120_000,
      'workers launching',
    );
    expect(phases(launching).launching).toBe(2);
    const text = await tsray(['status'], env);
    expect(text.stdout).toMatch(/Autoscaler \(cluster demo, updated [\d:]+; 2 launched, 0 removed idle\)/);
    expect(text.stdout).toMatch(/Launching: 2\n {2}demo-worker-\w+ {2}worker {2}localhost/);
    expect(text.stdout).toContain('launching 2 worker node(s)');
    writeFileSync(gate, '');

    // Phase 2: the workers joined and run the tasks.
    const code = await exited;
    expect(err.replace(/.*ExperimentalWarning.*\n?/g, '')).not.toMatch(/Error/);
    expect(code).toBe(0);
    expect(out).toMatch(/^16 tasks done: sum of squares 1240 in \d+ worker process\(es\)$/m);
    const s2 = await statusJson(env);
    // Both joined (one may be idle and removed already when the other ran most tasks): the GCS lists dead nodes too.
    const workers = s2.nodes.filter((n) => n.labels['tsray-node-kind'] === 'worker');
    expect(workers).toHaveLength(2);
    expect(workers.every((n) => n.labels['tsray-cluster'] === 'demo' && n.labels['tsray-node-type'] === 'worker')).toBe(true);
    expect(s2.autoscaler?.launchedTotal).toBe(2); // no more than needed

    // Phase 3: idle, then removed after idle_timeout_minutes (6 s).
    await until(
      async () => {
        const s = await statusJson(env);
        return phases(s).idle > 0 || s.autoscaler?.terminatedTotal;
      },
      60_000,
      'an idle worker in tsray status',
    );
    const gone = await until(
      async () => {
        const s = await statusJson(env);
        return s.autoscaler?.nodes.length === 0 && s.nodes.filter((n) => n.alive).length === 1 && s;
      },
      90_000,
      'the idle workers to be removed',
    );
    expect(gone.autoscaler?.terminatedTotal).toBe(2);
    expect(gone.autoscaler?.launchedTotal).toBe(2);
    expect(gone.autoscaler?.failures).toEqual([]);
    expect((await tsray(['status'], env)).stdout).toMatch(/terminating worker node demo-worker-\w+: idle for \d+ s \(idle_timeout_minutes 0\.1\)/);

    // tsray down: nothing of the cluster is left.
    const down = await tsray(['down', config], env);
    expect(down.code).toBe(0);
    expect(down.stdout).toMatch(/Cluster demo is down: head stopped/);
    await until(() => processesOf(tmp.dir).length === 0, 30_000, 'every process of the cluster to exit');
    config = '';
  });
});
