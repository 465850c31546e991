/**
 * Drivers of every kind against a real cluster (a head and one node as separate processes): the state
 * API (`clusterResources()`, `availableResources()`, `pendingDemand()`) and the runtime context in a
 * driver attached with `init({ address: 'auto' })`, in a remote driver (no node on its machine), and
 * the same from the Python client.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableResources, clusterResources, get, getRuntimeContext, init, isWorker, kill, pendingDemand, shutdown } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { needsNode2, Node2Holder, nodeOfTask, resourcesInTask } from './fixtures/state-driver.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DRIVER = fileURLToPath(new URL('./fixtures/state-driver.ts', import.meta.url));
const PYTHON = `${ROOT}.venv/bin/python`;

/** Logical resources of the cluster below (the numbers the state API must add up). */
const TOTAL = { CPU: 3, headres: 1, node2: 1 };

function pick(r: Record<string, number>): Record<string, number> {
  return { CPU: r['CPU']!, headres: r['headres']!, node2: r['node2']! };
}

describe('state API and runtime context in attached and remote drivers (real head + node)', () => {
  const c = new TestCluster();
  let headId = '';
  let nodeId = '';

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, resources: { headres: 1 } });
    const n = await c.addNode({ numCpus: 2, resources: { node2: 1 } });
    headId = c.head.ready.nodeId;
    nodeId = n.ready.nodeId;
    c.attachHere();
  }, 60_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it("an attached driver (init({ address: 'auto' })) has the cluster's resources, live availability, demand, and its own context", async () => {
    const info = await init({ address: 'auto' });
    // The context is the driver's: the node it attached to, its job, not a worker.
    const ctx = getRuntimeContext();
    expect({ nodeId: ctx.nodeId, jobId: ctx.jobId, isWorker: ctx.isWorker, taskId: ctx.taskId }).toEqual({
      nodeId: headId,
      jobId: info.jobId,
      isWorker: false,
      taskId: undefined,
    });
    expect(isWorker()).toBe(false);
    expect(info.nodeId).toBe(headId);
    // Both nodes counted (the head's node alone has no node2).
    await until(async () => (await clusterResources())['node2'] === 1, 10_000, 'the other node in the resource view');
    expect(pick(await clusterResources())).toEqual(TOTAL);
    expect(pick(await availableResources())).toEqual(TOTAL);
    // An actor holding node2 shows in availableResources(); a task needing node2 waits as pending demand.
    const holder = Node2Holder.remote();
    expect(await get(holder.node.remote())).toBe(nodeId);
    await until(async () => (await availableResources())['node2'] === 0, 10_000, 'node2 taken in availableResources()');
    expect((await clusterResources())['node2']).toBe(1);
    const waiting = needsNode2.remote();
    await until(
      async () => (await pendingDemand()).some((d) => d.name === 'needsNode2' && !d.infeasible && d.count >= 1),
      10_000,
      'needsNode2 in pendingDemand()',
    );
    kill(holder);
    expect(await get(waiting)).toBe(nodeId);
    await until(async () => (await availableResources())['node2'] === 1, 10_000, 'node2 free again');
    expect(await get(nodeOfTask.remote())).toMatch(/./);
    // The same answer inside a task (a worker asks its node).
    expect(pick(await get(resourcesInTask.remote()))).toEqual(TOTAL);
    await shutdown();
  }, 60_000);

  it('a driver process attached by ipc and a remote driver (head address + token, no node here) both answer', async () => {
    const env = { ...process.env, TMPDIR: c.tmp };
    const attached = JSON.parse((await run(process.execPath, ['--import', 'tsx', DRIVER, 'auto'], { env, timeout: 60_000 })).stdout);
    expect(attached.error).toBeUndefined();
    expect(pick(attached.clusterResources)).toEqual(TOTAL);
    expect(attached.availableResources['node2']).toBe(1);
    expect(attached.context).toEqual({ nodeId: headId, jobId: attached.info.jobId, isWorker: false, taskId: null });
    expect(attached.isWorker).toBe(false);

    const elsewhere = join(c.tmp, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    const remote = JSON.parse(
      (await run(process.execPath, ['--import', 'tsx', DRIVER, c.gcsAddress, c.token], { env: { ...env, TMPDIR: elsewhere }, timeout: 60_000 })).stdout,
    );
    expect(remote.error).toBeUndefined();
    expect(pick(remote.clusterResources)).toEqual(TOTAL);
    expect(remote.availableResources['node2']).toBe(1);
    expect(remote.context).toEqual({ nodeId: headId, jobId: remote.info.jobId, isWorker: false, taskId: null });
  }, 120_000);

  it('the Python client: tsray.cluster_resources() / available_resources(), attached and remote', async () => {
    const code = [
      'import json, sys, tsray',
      'tsray.init(address=sys.argv[1], token=sys.argv[2] or None)',
      'print(json.dumps({"total": tsray.cluster_resources(), "free": tsray.available_resources()}))',
      'tsray.shutdown()',
    ].join('\n');
    const py = async (address: string, token: string, tmp: string) =>
      JSON.parse(
        (await run(PYTHON, ['-c', code, address, token], { env: { ...process.env, TMPDIR: tmp, PYTHONPATH: `${ROOT}python` }, timeout: 60_000 })).stdout,
      );
    const attached = await py('auto', '', c.tmp);
    expect(pick(attached.total)).toEqual(TOTAL);
    expect(attached.free['node2']).toBe(1);
    const elsewhere = join(c.tmp, 'elsewhere-py');
    mkdirSync(elsewhere, { recursive: true });
    const remote = await py(c.gcsAddress, c.token, elsewhere);
    expect(pick(remote.total)).toEqual(TOTAL);
    expect(remote.free['headres']).toBe(1);
    // A wrong token is refused with the error the package root exports.
    const refused = [
      'import sys, tsray',
      'try:',
      '    tsray.init(address=sys.argv[1], token="wrong-token")',
      'except tsray.AuthenticationError as e:',
      '    print("AuthenticationError", e)',
    ].join('\n');
    const bad = await run(PYTHON, ['-c', refused, c.gcsAddress], { env: { ...process.env, TMPDIR: elsewhere, PYTHONPATH: `${ROOT}python` }, timeout: 60_000 });
    expect(bad.stdout).toMatch(/^AuthenticationError .*wrong cluster token/);
  }, 90_000);
});
