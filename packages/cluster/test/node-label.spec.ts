/**
 * NODE_LABEL scheduling strategies on a real cluster (separate processes): an unlabelled head and two
 * nodes started with labels (as `tsray start --labels`). Hard selectors place tasks and actors on the
 * matching node only; soft selectors prefer it; a hard selector no node matches fails with a message.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableResources, get, init, labelExists, labelIn, labelNotIn, nodes, shutdown } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { whereAmI, WhereActor } from './fixtures/fns.js';
import { holdUntil } from './fixtures/spread-fns.js';

describe('NODE_LABEL on a head and two labelled nodes', () => {
  const c = new TestCluster();
  let head = '';
  let zoneB = '';
  let zoneC = '';

  beforeAll(async () => {
    await c.startHead({ numCpus: 1 });
    const [b, cc] = await Promise.all([c.addNode({ numCpus: 1, labels: { zone: 'b', disk: 'ssd' } }), c.addNode({ numCpus: 1, labels: { zone: 'c' } })]);
    head = c.head.ready.nodeId;
    zoneB = b!.ready.nodeId;
    zoneC = cc!.ready.nodeId;
    c.attachHere();
    await init({ address: 'auto' });
    await until(async () => (await nodes()).filter((n) => n.alive).length === 3, 10_000, 'all 3 nodes in the table');
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('the labels given at start are in the node table', async () => {
    const byId = new Map((await nodes()).map((n) => [n.nodeId, n.labels]));
    expect(byId.get(zoneB)).toEqual({ zone: 'b', disk: 'ssd' });
    expect(byId.get(zoneC)).toEqual({ zone: 'c' });
  });

  it('hard: every task runs on the matching node, also when it is busy (they queue there)', async () => {
    const onB = whereAmI.options({ schedulingStrategy: { type: 'NODE_LABEL', hard: [labelIn('zone', 'b'), labelExists('disk')] } });
    expect(await get(onB.remote())).toBe(zoneB);
    // Four at once on a 1-CPU node: the other nodes are idle, yet none of them takes one.
    expect(await get(Array.from({ length: 4 }, () => onB.remote()))).toEqual([zoneB, zoneB, zoneB, zoneB]);
    const notB = whereAmI.options({ schedulingStrategy: { type: 'NODE_LABEL', hard: [labelNotIn('zone', 'b'), labelExists('zone')] } });
    expect(await get(notB.remote())).toBe(zoneC);
  }, 60_000);

  it('hard: an actor is created on the matching node', async () => {
    const a = WhereActor.options({ schedulingStrategy: { type: 'NODE_LABEL', hard: [labelIn('zone', 'c')] } }).remote();
    expect(await get(a.node.remote())).toBe(zoneC);
  }, 60_000);

  /** Until the head's cluster view (what it schedules by) shows `cpus` CPUs free in all. */
  const cpusFree = (cpus: number) => until(async () => (await availableResources())['CPU'] === cpus, 20_000, `${cpus} CPUs free in the head's view`);

  it('soft: prefers the matching node while it has room, runs elsewhere when it has none', async () => {
    const preferC = whereAmI.options({ schedulingStrategy: { type: 'NODE_LABEL', soft: [labelIn('zone', 'c')] } });
    // Every node has room (the driver's own node, the head, included), and the labelled node is picked.
    for (let i = 0; i < 3; i++) {
      await cpusFree(3);
      expect(await get(preferC.remote())).toBe(zoneC);
    }
    // The labelled node busy: soft is only a preference, another node runs it.
    const started = join(c.tmp, 'hold-c.started');
    const released = join(c.tmp, 'hold-c.release');
    const hold = get(holdUntil.options({ schedulingStrategy: { type: 'NODE_LABEL', hard: [labelIn('zone', 'c')] } }).remote(started, released));
    await until(() => existsSync(started), 30_000, 'the zone-c node to run the blocking task');
    await cpusFree(2);
    expect([head, zoneB]).toContain(await get(preferC.remote()));
    writeFileSync(released, '');
    expect(await hold).toBe(zoneC);
  }, 60_000);

  it('a hard selector no node matches fails the task with TaskUnschedulableError naming it', async () => {
    const nowhere = whereAmI.options({ schedulingStrategy: { type: 'NODE_LABEL', hard: [labelIn('zone', 'z')] } });
    const err = await get(nowhere.remote()).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'TaskUnschedulableError',
      message: expect.stringMatching(/hard label constraints .*"zone".*"z".*no alive node matches \(3 node/),
    });
  }, 60_000);
});
