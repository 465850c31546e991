/**
 * GCS fault tolerance (issue #18, acceptance 5), real processes: a head (no CPUs) whose GCS keeps its
 * tables in Redis or in the default on-disk log, a node with 4 CPUs, and a driver on that node running
 * ~100 tasks/s and calls to a named detached actor. The head is killed with SIGKILL: tasks and calls
 * keep completing during the outage; a named actor created during it starts only after the head is
 * back; the restarted head (same port, same store) has the same actor by name, placement groups, jobs
 * and KV, and the node re-registers by itself. The recovery times are printed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLink } from '@tsray/core/internal';
import { TestCluster, type DaemonProc, until } from './fixtures/cluster-harness.js';
import { CLI } from './fixtures/cli.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';

const run = promisify(execFile);
const T0 = Date.now();
/** One line per step on stderr (where a slow or stuck run got to). */
const step = (what: string) => process.stderr.write(`[gcs-restart +${((Date.now() - T0) / 1000).toFixed(1)} s] ${what}\n`);
const DRIVER = fileURLToPath(new URL('./fixtures/gcs-ft-driver.ts', import.meta.url));

interface DriverEvent {
  event: string;
  t: number;
  tasks?: number;
  calls?: number;
  total?: number;
  pong?: string;
  error?: string;
}

/** The workload driver: its events as they come. */
class Driver {
  readonly events: DriverEvent[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private err = '';
  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', DRIVER, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (c: Buffer) => {
      buf += String(c);
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('{')) this.events.push(JSON.parse(line) as DriverEvent);
      }
    });
    this.proc.stderr!.on('data', (c: Buffer) => (this.err = (this.err + String(c)).slice(-4000)));
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }
  find(event: string): DriverEvent | undefined {
    return this.events.find((e) => e.event === event);
  }
  last(event: string): DriverEvent | undefined {
    return this.events.findLast((e) => e.event === event);
  }
  wait(event: string, timeoutMs: number): Promise<DriverEvent> {
    return until(
      () => {
        if (this.proc.exitCode !== null && !this.find(event)) throw new Error(`the driver exited (${this.proc.exitCode}) before "${event}": ${this.err}`);
        return this.find(event);
      },
      timeoutMs,
      `driver event ${event}`,
    );
  }
  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }
}

describe.each(['redis', 'file'] as const)('GCS restart with the %s store (head killed with SIGKILL)', (store) => {
  const c = new TestCluster();
  let redis: RedisServer | undefined;
  let node: DaemonProc;
  let driver: Driver | undefined;
  let probe: ClusterLink | undefined;
  const cliEnv = (head: DaemonProc) => ({ TMPDIR: c.tmp, TSRAY_DASHBOARD_ADDRESS: head.ready.dashboardUrl ?? '', TSRAY_TOKEN: c.token });
  const startHead = (port: number) =>
    c.spawn('head', { numCpus: 0 }, { port, dashboardPort: 0, ...(redis ? { storage: redis.url } : {}) }).then((h) => (c.head = h));

  beforeAll(async () => {
    if (store === 'redis') redis = await startRedis();
    await startHead(0);
    node = await c.addNode({ numCpus: 4 });
  }, 60_000);

  afterAll(async () => {
    probe?.close();
    if (driver && driver.proc.exitCode === null) {
      driver.proc.kill('SIGKILL');
      await driver.exited;
    }
    await c.stop();
    await redis?.stop();
  }, 60_000);

  it('keeps work going during the outage and reloads actors, names, groups, jobs and KV', async () => {
    expect(c.head.ready.gcsStorage).toMatch(store === 'redis' ? /^redis:\/\/127\.0\.0\.1:\d+$/ : /^file:.*gcs\/store\.jsonl$/);
    const clusterId = c.head.ready.clusterId;
    const env = { ...c.env(), TSRAY_LOG_LEVEL: 'warn' };
    driver = new Driver([node.ready.nodeSocket, c.token], env);
    await driver.wait('ready', 60_000);
    step('driver ready');
    // A finished job, a KV entry (through a registered probe node), and the state as the head shows it.
    const job = await run(process.execPath, [CLI, 'job', 'submit', '--submission-id', 'ft-job', '--', 'echo job-ran'], { env: { ...env, ...cliEnv(c.head) } });
    expect(job.stdout).toContain('job-ran');
    probe = new ClusterLink(
      {
        gcsAddress: c.gcsAddress,
        token: c.token,
        node: { nodeId: `probe${store}`, address: 'tcp://127.0.0.1:1', hostname: hostname(), isHead: false, total: [] },
        available: () => ({ amounts: [], gpuFree: [] }),
      },
      {
        onNodeTable: () => undefined,
        onGcsRequest: () => ({ state: { json: ['{}'] } }),
        onPeerMessage: () => undefined,
        onFatal: () => undefined,
        onPeerUnreachable: () => undefined,
      },
    );
    await probe.ready;
    step('probe registered');
    expect(await probe.gcs.kvPut('ft-key', Buffer.from('ft-value'), true)).toBe(true);
    const listPgs = async (head: DaemonProc) =>
      (
        JSON.parse((await run(process.execPath, [CLI, 'list', 'placement-groups', '--format', 'json'], { env: { ...env, ...cliEnv(head) } })).stdout) as {
          name: string;
          placementGroupId: string;
          state: string;
        }[]
      )
        .map((g) => ({ id: g.placementGroupId, name: g.name, state: g.state }))
        .sort((a, b) => a.name.localeCompare(b.name));
    const listJobs = async (head: DaemonProc) =>
      (
        JSON.parse((await run(process.execPath, [CLI, 'job', 'list', '--format', 'json'], { env: { ...env, ...cliEnv(head) } })).stdout) as {
          submissionId: string;
          status: string;
        }[]
      )
        .map((j) => ({ id: j.submissionId, status: j.status }))
        .filter((j) => j.id === 'ft-job');
    const pgsBefore = await listPgs(c.head);
    const jobsBefore = await listJobs(c.head);
    expect(pgsBefore).toEqual([expect.objectContaining({ name: 'ft-pg', state: 'CREATED' })]);
    expect(jobsBefore).toEqual([{ id: 'ft-job', status: 'SUCCEEDED' }]);

    // The outage: the head (its GCS) is killed; tasks and actor calls go on on the node.
    const port = Number(c.gcsAddress.split(':').pop());
    const atKill = driver.last('progress')!;
    const tKill = Date.now();
    c.head.proc.kill('SIGKILL');
    await c.head.exited;
    step('head killed');
    const during = await until(
      () => {
        const p = driver!.last('progress')!;
        return p.t > tKill && p.tasks! >= atKill.tasks! + 100 && p.calls! >= atKill.calls! + 10 ? p : undefined;
      },
      30_000,
      '100 tasks and 10 actor calls completed while the head is down',
    );
    // A named actor created now needs the GCS (its name is cluster-wide): it waits for the head.
    const atLate = driver.last('progress')!;
    driver.send('late');
    await driver.wait('late-submitted', 10_000);
    step('late actor submitted');
    await until(() => driver!.last('progress')!.tasks! >= atLate.tasks! + 100, 30_000, '100 more tasks after the late actor was submitted');
    expect(driver.find('late-ready')).toBeUndefined();
    expect(driver.find('late-failed')).toBeUndefined();

    // The head comes back on the same port with the same store.
    const tRestart = Date.now();
    await startHead(port);
    const tReady = Date.now();
    step('head restarted');
    expect(c.head.ready.clusterId).toBe(clusterId);
    // The probe node re-registers by itself and its held KV read is answered; the held actor creation goes on.
    const kvBack = until(async () => (await probe!.gcs.kvGet('ft-key'))?.toString() === 'ft-value', 30_000, 'the KV entry from the restarted GCS').then(() =>
      Date.now(),
    );
    const late = await driver.wait('late-ready', 60_000);
    step('late actor ready');
    expect(late.t).toBeGreaterThan(tRestart);
    const tKv = await kvBack;
    step('KV read back');
    const entry = await probe.gcs.lookupActor({ name: 'counter', namespace: 'ft' });
    expect(entry).toMatchObject({ name: 'counter', detached: true, ownerNodeId: node.ready.nodeId });
    const nodes = await probe.gcs.listNodes();
    expect(nodes.find((n) => n.nodeId === node.ready.nodeId)?.alive).toBe(true);
    // getActor by name from a driver on the new head's node: found through the reloaded GCS, and it answers.
    const lookup = await run(process.execPath, ['--import', 'tsx', DRIVER, c.head.ready.nodeSocket, c.token, 'lookup'], { env, timeout: 60_000 });
    expect(lookup.stdout).toContain('"pong":"pong"');
    step('lookup driver done');
    expect(await listPgs(c.head)).toEqual(pgsBefore);
    expect(await listJobs(c.head)).toEqual(jobsBefore);

    driver.send('stop');
    const done = await driver.wait('done', 60_000);
    // Every add(1) counted once: the actor's total is the number of completed calls.
    expect(done.total).toBe(done.calls);
    expect(await driver.exited).toBe(0);
    const outageTasks = during.tasks! - atKill.tasks!;
    process.stdout.write(
      `[gcs-restart ${store}] head down ${tRestart - tKill} ms (kill -> restart), head start ${tReady - tRestart} ms, ` +
        `held named-actor creation done ${late.t - tReady} ms after the head was ready, KV served ${tKv - tReady} ms after; ` +
        `during the outage ${outageTasks} tasks and ${during.calls! - atKill.calls!} actor calls completed; ${done.tasks} tasks, ${done.calls} calls in all, 0 lost\n`,
    );
  }, 240_000);
});
