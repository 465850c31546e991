/**
 * Restartable actor calls when the actor's node dies (issue #18, acceptance 2), real processes: a
 * restartable actor (maxRestarts -1, maxTaskRetries -1) on node 1 holds one call while thousands of its
 * calls wait behind it there; node 1 is killed (SIGKILL), the owner restarts the actor on node 2 and
 * sends it the calls again. Every call must complete, in order, each result once.
 *
 * The mechanism this guards: a restart's creation task was named `<creation task id>r0` (with
 * maxRestarts -1 every restart got that name), which is also the id the driver's counter gives a later
 * call (`<kind><prefix><base36 counter>`: counter `1r0` comes after ~2,270 ids). On node 2 that call,
 * arriving after the restart's creation, replaced it in the node's task table; the constructor's result
 * was then dropped, the actor never came up, and every call to it waited forever, with no error and no
 * log line. The test submits calls until one of them has that id, so the collision is part of the run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorInfo, get, init, nodes, shutdown, wait, type ObjectRef } from '@tsray/core';
import { TestCluster, type DaemonProc, until } from './fixtures/cluster-harness.js';
import { RestartableSequencer } from './fixtures/restart-fns.js';

/** The id the restart's creation task got before the fix: the creation task id followed by `r0`. */
function oldRestartTaskId(actorId: string): string {
  // `a<8-char prefix><base36 counter>`; the creation task is the driver's next id, `t<prefix><counter + 1>`.
  const prefix = actorId.slice(1, 9);
  const counter = Number.parseInt(actorId.slice(9), 36);
  return `t${prefix}${(counter + 1).toString(36)}r0`;
}

describe('restartable actor calls survive the death of the actor node (real processes)', () => {
  const c = new TestCluster();
  let node1: DaemonProc;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, nodeDeathTimeoutS: 2 });
    node1 = await c.addNode({ numCpus: 1, resources: { spot: 1 } });
    c.attachHere();
    await init({ address: 'auto', namespace: 'actor-restart' });
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('calls queued and in flight on the killed node all complete on the restarted actor, in order, once each', async () => {
    const a = RestartableSequencer.remote();
    const first = await get(a.node.remote());
    expect(first).toBe(node1.ready.nodeId);
    // Node 1 is busy with `held` (until it dies); the calls wait behind it there.
    const held = a.holdOn.remote(first);
    const collide = `${oldRestartTaskId(actorInfo(a).actorId)}.0`;
    const refs: ObjectRef<[number, number, string]>[] = [];
    while (!refs.some((r) => r.id === collide)) {
      if (refs.length >= 20_000) throw new Error(`no call got the id ${collide}: the id scheme changed; fix oldRestartTaskId`);
      refs.push(a.call.remote(refs.length));
    }
    // A few more behind the colliding one.
    for (let k = 0; k < 20; k++) refs.push(a.call.remote(refs.length));
    const node2 = await c.addNode({ numCpus: 1, resources: { spot: 1 } });
    await until(async () => (await nodes()).some((n) => n.nodeId === node2.ready.nodeId && n.alive), 60_000, 'node 2 alive');
    // Nothing ran yet: every call waits behind `held` on node 1.
    expect((await wait(refs, { numReturns: 1, timeout: 0 })).ready).toEqual([]);

    node1.proc.kill('SIGKILL');
    const all: ObjectRef<unknown>[] = [held, ...refs];
    await until(
      async () => (await wait(all, { numReturns: all.length, timeout: 1 })).notReady.length === 0,
      120_000,
      'every call to complete after the restart',
    );

    expect(await get(held)).toBe(node2.ready.nodeId);
    const results = await get(refs);
    const incarnation = results[0]![2];
    // One incarnation ran them all, in submission order: call s ran right after call s - 1.
    expect(results).toEqual(results.map((_, s) => [s, s - 1, incarnation]));
    expect(await get(a.node.remote())).toBe(node2.ready.nodeId);
  }, 240_000);
});
