/**
 * Placement groups survive a node's death (issue #18, acceptance 4), real processes: a STRICT_SPREAD
 * group of 2 bundles on a cluster of 3 nodes (one `slot` each). The third node's slot is held by a
 * blocker actor, so when a bundle's node is killed the group is RESCHEDULING (`tsray status` shows it)
 * until the blocker goes; then the lost bundle is on the third node, the group CREATED, and the actor
 * that lived in the lost bundle is back (restarted per maxRestarts) inside the new bundle.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, kill, listPlacementGroups, placementGroup, shutdown, type PlacementGroupListEntry } from '@tsray/core';
import { TestCluster, type DaemonProc, until } from './fixtures/cluster-harness.js';
import { CLI } from './fixtures/cli.js';
import { BundleActor, SlotBlocker } from './fixtures/pg-fns.js';

const run = promisify(execFile);

// The blocker on the head: the lost bundle moves to the group's owner (reserved there at once); on
// another node: it moves there as a new part (reserved by that node, then answered).
describe.each(['head', 'node'] as const)('placement group rescheduling when a bundle node dies (third node: the %s)', (blockerOn) => {
  const c = new TestCluster();
  const byId = new Map<string, DaemonProc>();
  let nodeA: DaemonProc;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, resources: { slot: 1 }, nodeDeathTimeoutS: 2 });
    const [a, b] = await Promise.all([c.addNode({ numCpus: 1, resources: { slot: 1 } }), c.addNode({ numCpus: 1, resources: { slot: 1 } })]);
    for (const d of [c.head, a!, b!]) byId.set(d.ready.nodeId, d);
    nodeA = a!;
    c.attachHere();
    await init({ address: 'auto', namespace: 'pg' });
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('reschedules the lost bundle on the third node and restarts its actor there', async () => {
    const group = async (): Promise<PlacementGroupListEntry> => (await listPlacementGroups()).find((g) => g.name === 'spread2')!;
    const status = async () =>
      (await run(process.execPath, [CLI, 'status'], { env: { ...c.env(), TSRAY_DASHBOARD_ADDRESS: c.head.ready.dashboardUrl ?? '', TSRAY_TOKEN: c.token } }))
        .stdout;
    const thirdId = blockerOn === 'head' ? c.head.ready.nodeId : nodeA.ready.nodeId;
    const blocker = SlotBlocker.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: thirdId } }).remote();
    const third = await get(blocker.node.remote());
    expect(third).toBe(thirdId);
    const pg = placementGroup([{ slot: 1 }, { slot: 1 }], { strategy: 'STRICT_SPREAD', name: 'spread2' });
    await get(pg.ready());
    const before = await group();
    expect(before.state).toBe('CREATED');
    expect(before.bundleNodes).not.toContain(third);
    // The actor lives in a bundle on a node other than the head (the driver's node, the group's owner).
    const k = before.bundleNodes.findIndex((n) => n !== c.head.ready.nodeId);
    const victim = before.bundleNodes[k]!;
    const a = BundleActor.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: k } }).remote();
    expect(await get(a.node.remote())).toBe(victim);

    byId.get(victim)!.proc.kill('SIGKILL');
    // No node can take the lost bundle while the blocker holds the third node's slot.
    await until(async () => (await group()).state === 'RESCHEDULING', 30_000, 'the group to be RESCHEDULING');
    expect(await status()).toMatch(/spread2\s+STRICT_SPREAD\s+RESCHEDULING/);
    kill(blocker);
    const after = await until(async () => ((await group()).state === 'CREATED' ? group() : undefined), 30_000, 'the group to be CREATED again');
    expect(after.placementGroupId).toBe(before.placementGroupId);
    expect(after.bundleNodes[k]).toBe(third);
    expect(after.bundleNodes[1 - k]).toBe(before.bundleNodes[1 - k]);
    // Its actor is back, inside the new bundle.
    expect(await get(a.node.remote())).toBe(third);
    expect(await status()).toMatch(new RegExp(`spread2\\s+STRICT_SPREAD\\s+CREATED.*on .*${third.slice(0, 8)}`));
  }, 120_000);
});
