/**
 * A real multi-node cluster on one machine: a head and node managers as separate processes, this test
 * process a driver attached to the head's node.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  get,
  init,
  kill,
  listActors,
  listJobs,
  listObjects,
  listPlacementGroups,
  listTasks,
  nodes,
  placementGroup,
  put,
  removePlacementGroup,
  shutdown,
  type NodeState,
  wait,
} from '@tsray/core';
import { ensureTinyModel } from '@tsray/vllm-bridge';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { apiKeyFor } from '../src/http/api-key.js';
import { bundleWhere, digest, holdUntilGate, readFromWorkingDir, GpuActor, makeBig, Named, onNode2, slowOnSpot, SpotActor, whereAmI } from './fixtures/fns.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

describe('multi-node cluster (head + 3 node managers, separate processes)', () => {
  const c = new TestCluster();
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, nodeDeathTimeoutS: 2.5, objectStoreMemory: 700 * 1024 * 1024 });
    const [n2, gpu, spotA] = await Promise.all([
      c.addNode({ numCpus: 1, resources: { node2: 1 }, objectStoreMemory: 700 * 1024 * 1024, env: { TSRAY_RUNTIME_ENV_DIR: join(c.tmp, 'rtenv-node2') } }),
      c.addNode({ numCpus: 1, numGpus: 2, resources: { spot: 1 } }),
      c.addNode({ numCpus: 1, resources: { spot: 1 } }),
    ]);
    ids['head'] = c.head.ready.nodeId;
    ids['node2'] = n2!.ready.nodeId;
    ids['gpu'] = gpu!.ready.nodeId;
    ids['spot'] = spotA!.ready.nodeId;
    c.attachHere();
    const info = await init({ address: 'auto', namespace: 'head' });
    expect(info.nodeId).toBe(ids['head']);
    await until(async () => (await nodes()).filter((n) => n.alive).length === 4, 10_000, 'all 4 nodes in the table');
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('nodes() lists every node with its resources', async () => {
    const ns = await nodes();
    const byId = new Map(ns.map((n: NodeState) => [n.nodeId, n]));
    expect(byId.get(ids['head']!)?.isHead).toBe(true);
    expect(byId.get(ids['node2']!)?.resourcesTotal['node2']).toBe(1);
    expect(byId.get(ids['gpu']!)?.resourcesTotal['GPU']).toBe(2);
    expect(ns.every((n) => n.alive)).toBe(true);
  });

  it('runs tasks on other nodes by resources, and SPREAD shares a burst out', async () => {
    expect(await get(onNode2.remote(21))).toEqual([ids['node2'], 42]);
    // 8 tasks on a 4-CPU cluster: more than one node runs them.
    const where = await get(Array.from({ length: 8 }, () => whereAmI.options({ schedulingStrategy: 'SPREAD' }).remote()));
    expect(new Set(where).size).toBeGreaterThan(1);
  }, 60_000);

  it('spills a DEFAULT task to another node while the local node is busy', async () => {
    const started = join(c.tmp, 'spill-started');
    const gate = join(c.tmp, 'spill-gate');
    // The head's only CPU is held by a task pinned there, until the test opens its gate.
    const blocker = holdUntilGate.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: ids['head']! } }).remote(started, gate);
    await until(() => existsSync(started), 30_000, 'the blocking task to start on the head');
    // A plain task submitted here (the head's node) runs on another node, while the head is still busy:
    // without spilling it would wait for the blocker, which never ends on its own.
    const ranOn = await get(whereAmI.remote(), { timeout: 30 });
    expect(ranOn).not.toBe(ids['head']);
    expect((await wait([blocker], { numReturns: 1, timeout: 0 })).ready).toEqual([]);
    writeFileSync(gate, '');
    expect(await get(blocker)).toBe(ids['head']);
  }, 60_000);

  it('the state API lists tasks, objects and jobs of the whole cluster from this driver', async () => {
    const started = join(c.tmp, 'state-started');
    const gate = join(c.tmp, 'state-gate');
    // A task running on node2 until the test opens its gate, an object in this node's store, a job.
    const running = holdUntilGate.options({ resources: { node2: 0.1 } }).remote(started, gate);
    await until(() => existsSync(started), 30_000, 'the task to start on node2');
    const obj = put(Buffer.alloc(1024 * 1024, 5));
    const sub = await run(process.execPath, [CLI, 'job', 'submit', '--', 'echo listed'], { env: c.env(), timeout: 60_000 });
    const jobId = /'(tsraysubmit_[A-Za-z0-9]+)'/.exec(sub.stdout)![1]!;
    try {
      const tasks = await until(
        async () => (await listTasks()).filter((t) => t.name === 'holdUntilGate' && t.state === 'RUNNING'),
        30_000,
        'the running task in listTasks()',
      );
      expect(tasks).toEqual([expect.objectContaining({ nodeId: ids['node2'] })]);
      const objects = (await listObjects()).filter((o) => o.objectId === obj.id);
      expect(objects).toEqual([expect.objectContaining({ nodeId: ids['head'], location: 'shm' })]);
      expect(objects[0]!.sizeBytes).toBeGreaterThanOrEqual(1024 * 1024);
      expect((await listJobs()).find((j) => j.submissionId === jobId)).toMatchObject({ entrypoint: 'echo listed', status: 'SUCCEEDED' });
    } finally {
      writeFileSync(gate, '');
    }
    expect(await get(running)).toBe(ids['node2']);
    obj.release();
    await until(async () => !(await listTasks()).some((t) => t.name === 'holdUntilGate'), 30_000, 'the finished task to leave listTasks()');
  }, 90_000);

  it('places actors by resources (the GPU actor on the fake-GPU node, CUDA_VISIBLE_DEVICES set there)', async () => {
    const a = GpuActor.remote();
    expect(await get(a.node.remote())).toBe(ids['gpu']);
    expect(await get(a.gpus.remote())).toMatch(/^[01]$/);
  }, 60_000);

  it('moves a 256 MiB object between nodes both ways with its content intact', async () => {
    const big = Buffer.allocUnsafe(256 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    const want = createHash('sha256').update(big).digest('hex');
    const [sum, len, where] = await get(digest.remote(put(big)));
    expect([sum, len, where]).toEqual([want, big.length, ids['node2']]);
    const back = await get(makeBig.remote(256));
    expect(back.length).toBe(256 * 1024 * 1024);
    const [sum2] = await get(digest.remote(back));
    expect(sum2).toBe(createHash('sha256').update(back).digest('hex'));
  }, 120_000);

  it('reserves a STRICT_SPREAD placement group across nodes atomically; tasks run in their bundle on its node', async () => {
    const pg = placementGroup([{ CPU: 0.1 }, { CPU: 0.1 }, { CPU: 0.1 }], { strategy: 'STRICT_SPREAD' });
    const info = await get(pg.ready());
    const bundleNodes = info.bundles.map((b) => b.nodeId);
    expect(new Set(bundleNodes).size).toBe(3);
    const ran = await get(
      bundleNodes.map((_, i) =>
        bundleWhere.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: i }, numCpus: 0.1 }).remote(),
      ),
    );
    expect(ran.map((r) => r[0])).toEqual(bundleNodes);
    // Listed once, as the group it is (not once per node holding a part of it), with every bundle's node.
    const rows = (await listPlacementGroups()).filter((p) => p.placementGroupId === pg.id);
    expect(rows).toEqual([expect.objectContaining({ strategy: 'STRICT_SPREAD', state: 'CREATED', bundleNodes })]);
    expect(rows[0]!.bundles).toHaveLength(3);
    const listed = await run(process.execPath, [CLI, 'list', 'placement-groups', '--format', 'json'], { env: c.env(), timeout: 30_000 });
    const cliRows = (JSON.parse(listed.stdout) as { placementGroupId: string; strategy: string; bundleNodes: string[] }[]).filter(
      (p) => p.placementGroupId === pg.id,
    );
    expect(cliRows).toEqual([expect.objectContaining({ strategy: 'STRICT_SPREAD', bundleNodes })]);
    const table = await run(process.execPath, [CLI, 'list', 'placement-groups'], { env: c.env(), timeout: 30_000 });
    const tableRows = table.stdout.split('\n').filter((l) => l.startsWith(pg.id));
    expect(tableRows).toHaveLength(1);
    expect(tableRows[0]).toMatch(/STRICT_SPREAD\s+CREATED/);
    expect(tableRows[0]).toContain(bundleNodes.join(','));
    const status = await run(process.execPath, [CLI, 'status'], { env: c.env(), timeout: 30_000 });
    expect(status.stdout.split('\n').filter((l) => l.includes(pg.id))).toEqual([expect.stringMatching(/STRICT_SPREAD\s+CREATED/)]);
    // GPUs of a bundle on the fake-GPU node come with it.
    const gpuPg = placementGroup([{ GPU: 1, CPU: 0.1 }], { strategy: 'PACK' });
    const gi = await get(gpuPg.ready());
    expect(gi.bundles[0]!.nodeId).toBe(ids['gpu']);
    const [node, cvd] = await get(
      bundleWhere.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: gpuPg, bundleIndex: 0 }, numGpus: 1, numCpus: 0.1 }).remote(),
    );
    expect(node).toBe(ids['gpu']);
    expect(cvd).toBe(gi.bundles[0]!.gpuIds.join(','));
    removePlacementGroup(pg);
    removePlacementGroup(gpuPg);
    // An impossible group (5 nodes for STRICT_SPREAD, 4 alive) waits; nothing is held meanwhile.
    const tooWide = placementGroup(
      Array.from({ length: 5 }, () => ({ CPU: 0.1 })),
      { strategy: 'STRICT_SPREAD' },
    );
    await until(
      async () => (await listPlacementGroups()).find((p) => p.placementGroupId === tooWide.id)?.state === 'PENDING',
      10_000,
      'the impossible group to be listed as pending',
    );
    expect(await tooWide.wait(0)).toBe(false);
    removePlacementGroup(tooWide);
  }, 60_000);

  it('ships a runtime env workingDir to another node through the GCS (packed once, fetched by hash)', async () => {
    const dir = join(c.tmp, 'wd');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hello.txt'), 'hello from the driver machine');
    const [node, text, cwd] = await get(readFromWorkingDir.options({ runtimeEnv: { workingDir: dir } }).remote('hello.txt'));
    expect(node).toBe(ids['node2']);
    expect(text).toBe('hello from the driver machine');
    // Unpacked in node2's own environment cache, not read from the driver's folder.
    expect(cwd.startsWith(join(c.tmp, 'rtenv-node2'))).toBe(true);
  }, 120_000);

  it('a second driver process finds a named actor living on another node', async () => {
    const h = Named.options({ name: 'where', lifetime: 'detached' }).remote();
    expect(await get(h.node.remote())).toBe(ids['node2']);
    const script = `
      import { init, getActor, get, shutdown } from '@tsray/core';
      await init({ address: 'auto' });
      const a = await getActor('where', { namespace: 'head' });
      console.log('found', await get(a.node.remote()));
      await shutdown();`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...c.env(), TSRAY_LOG_LEVEL: 'info' },
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      timeout: 60_000,
    }).catch((e: Error & { stdout?: string; stderr?: string }) => {
      // Say where it stopped (the child's own log lines) and what the head logged.
      throw new Error(`${e.message}\nstdout: ${e.stdout}\nstderr: ${e.stderr?.slice(-3000)}\nhead log: ${readFileSync(c.head.errLog, 'utf8').slice(-3000)}`);
    });
    expect(stdout).toContain(`found ${ids['node2']}`);
    const actors = await listActors();
    expect(actors.find((a) => a.name === 'where')).toMatchObject({ state: 'ALIVE', nodeId: ids['node2'] });
  }, 90_000);

  it('kill -9 of a node manager: declared dead (no heartbeat), its task retried and its actor restarted on another node', async () => {
    const a = SpotActor.remote();
    const first = await get(a.node.remote());
    expect([ids['gpu'], ids['spot']]).toContain(first);
    const victim = c.nodes.find((n) => n.ready.nodeId === first)!;
    const survivor = first === ids['gpu'] ? ids['spot'] : ids['gpu'];
    // A task running on the same node when it dies (soft affinity: its retry may go elsewhere).
    const task = slowOnSpot.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: first, soft: true } }).remote(4000);
    await until(async () => (await nodes()).find((n) => n.nodeId === first)!.resourcesAvailable['spot'] === 0, 10_000, 'the spot task and actor on the victim');
    victim.proc.kill('SIGKILL');
    // How fast (nodeDeathTimeoutS) is measured in bench/; here: it is declared dead, for the right reason.
    await until(async () => (await nodes()).find((n) => n.nodeId === first)?.alive === false, 30_000, 'the node declared dead');
    expect((await nodes()).find((n) => n.nodeId === first)!.deathReason).toMatch(/no heartbeat/);
    // tsray status shows every node, the dead one counted as dead.
    const status = await run(process.execPath, [CLI, 'status'], { env: c.env(), timeout: 30_000 });
    expect(status.stdout).toMatch(/Nodes: 3 alive, 1 dead/);
    expect(status.stdout).toContain(ids['node2']);
    // The actor restarts on the other spot node and keeps answering; the task ran again there.
    expect(await get(a.node.remote())).toBe(survivor);
    expect(await get(task)).toBe(survivor);
  }, 90_000);

  it('refuses a node with a wrong token, with a clear error, and logs it at the head', async () => {
    await expect(c.addNode({ token: 'wrong-token' })).rejects.toThrow(/refused the connection: wrong cluster token/);
    // Another token means other CURVE keys: the head refuses it in the handshake (it cannot say why).
    await until(
      () =>
        readFileSync(c.head.errLog, 'utf8').includes('GCS refused a tcp connection: the CURVE handshake failed (wrong cluster token, or not a tsray client)'),
      10_000,
      'the head log line',
    );
  }, 60_000);

  it('a driver on a machine without a node connects to the head by address and token (objects in frames)', async () => {
    const empty = join(c.tmp, 'elsewhere');
    mkdirSync(empty, { recursive: true });
    const script = fileURLToPath(new URL('./fixtures/remote-driver.ts', import.meta.url));
    const env = { ...process.env, TMPDIR: empty };
    const ok = await run(process.execPath, ['--import', 'tsx', script, c.gcsAddress, c.token], {
      env: { ...env, TSRAY_LOG_LEVEL: 'info' },
      timeout: 60_000,
    }).catch((e: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`${e.message}\nstdout: ${e.stdout}\nstderr: ${e.stderr?.slice(-3000)}\nhead log: ${readFileSync(c.head.errLog, 'utf8').slice(-3000)}`);
    });
    expect(ok.stdout).toContain(`put true ${20 * 1024 * 1024} ${ids['node2']}`);
    expect(ok.stdout).toContain(`get ${24 * 1024 * 1024} true`);
    const bad = await run(process.execPath, ['--import', 'tsx', script, c.gcsAddress, 'wrong-token'], { env, timeout: 60_000 });
    expect(bad.stdout).toMatch(/AuthenticationError: the head refused the connection: wrong cluster token/);
  }, 120_000);

  it('a Python program on a machine without a node joins by address and token', async () => {
    // Its own named actor (not one an earlier test left): the test runs alone too.
    const h = Named.options({ name: 'where-py', lifetime: 'detached' }).remote();
    expect(await get(h.node.remote())).toBe(ids['node2']);
    const empty = join(c.tmp, 'elsewhere-py');
    mkdirSync(empty, { recursive: true });
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const code = [
      'import sys, tsray',
      'tsray.init(address=sys.argv[1], token=sys.argv[2])',
      'big = bytes(range(256)) * (48 * 4096)',
      'ref = tsray.put(big)',
      'print("roundtrip", tsray.get(ref) == big, len(big))',
      'a = tsray.get_actor("where-py", namespace="head")',
      'print("actor", tsray.get(a.node.remote()))',
      'tsray.shutdown()',
    ].join('\n');
    const { stdout } = await run(`${root}.venv/bin/python`, ['-c', code, c.gcsAddress, c.token], {
      env: { ...process.env, TMPDIR: empty, PYTHONPATH: `${root}python` },
      timeout: 60_000,
    });
    expect(stdout).toContain(`roundtrip True ${256 * 48 * 4096}`);
    expect(stdout).toContain(`actor ${ids['node2']}`);
    kill(h);
  }, 90_000);

  it('refuses a driver with a wrong token (AuthenticationError)', async () => {
    const script = `
      import { init } from '@tsray/core';
      try { await init({ address: 'auto', token: 'nope' }); console.log('connected'); }
      catch (e) { console.log(e.name + ': ' + e.message); }
      process.exit(0);`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: c.env(),
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      timeout: 60_000,
    });
    expect(stdout).toMatch(new RegExp(`${AuthenticationError.name}: node .* refused the connection: wrong cluster token`));
  }, 60_000);

  it('runs jobs through the CLI and the HTTP API, with logs and stop', async () => {
    const env = c.env();
    const sub = await run(process.execPath, [CLI, 'job', 'submit', '--', 'echo hello-from-job; echo $TSRAY_ADDRESS'], { env, timeout: 60_000 });
    expect(sub.stdout).toContain('hello-from-job');
    expect(sub.stdout).toContain(c.gcsAddress);
    expect(sub.stdout).toMatch(/succeeded/);
    const long = await run(process.execPath, [CLI, 'job', 'submit', '--no-wait', '--', 'sleep 600'], { env, timeout: 60_000 });
    const id = /'(tsraysubmit_[A-Za-z0-9]+)'/.exec(long.stdout)![1]!;
    const url = c.head.ready.dashboardUrl!;
    const auth = { authorization: `Bearer ${apiKeyFor(c.token)}` };
    await until(
      async () => ((await (await fetch(`${url}/api/jobs/${id}`, { headers: auth })).json()) as { status: string }).status === 'RUNNING',
      10_000,
      'job running',
    );
    const stop = await fetch(`${url}/api/jobs/${id}/stop`, { method: 'POST', headers: auth });
    expect(await stop.json()).toEqual({ stopped: true });
    const info = (await (await fetch(`${url}/api/jobs/${id}`, { headers: auth })).json()) as { status: string };
    expect(info.status).toBe('STOPPED');
    const list = await run(process.execPath, [CLI, 'job', 'list'], { env, timeout: 30_000 });
    expect(list.stdout).toContain(id);
    expect((await fetch(`${url}/api/jobs/`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  }, 90_000);

  it('tsray serve deploys an engine on the running cluster and serves the OpenAI API', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const py = `${root}.venv/bin/python`;
    const model = ensureTinyModel(py);
    const srv = spawn(process.execPath, [CLI, 'serve', '--model', model, '--backend', 'transformers', '--port', '0', '--address', 'auto'], {
      env: { ...c.env(), TSRAY_PYTHON: py },
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let buf = '';
        srv.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /listening on (\S+)/.exec(buf);
          if (m) resolve(m[1]!);
        });
        srv.on('exit', (code) => reject(new Error(`tsray serve exited (${code}): ${buf}`)));
      });
      await until(async () => (await fetch(url.replace(/\/v1$/, '') + '/health').catch(() => undefined))?.status === 200, 60_000, 'the engine to load');
      const r = await fetch(`${url}/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: 'Hello', max_tokens: 4, temperature: 0 }),
      });
      expect(r.status).toBe(200);
      // The tiny random-weight model's text has no meaning to check: that it generated text, and counted
      // between 1 and 4 tokens (it may stop at its end-of-text token).
      const body = (await r.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
      expect(body.choices[0]!.text.length).toBeGreaterThan(0);
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
      expect(body.usage.completion_tokens).toBeLessThanOrEqual(4);
      expect((await listActors()).some((a) => a.className.includes('EngineActor') && a.state === 'ALIVE')).toBe(true);
    } finally {
      srv.kill('SIGINT');
      await new Promise((r) => srv.on('close', r));
    }
  }, 120_000);
});
