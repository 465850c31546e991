import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  availableResources,
  clusterResources,
  get,
  init,
  kill,
  labelExists,
  labelIn,
  pendingDemand,
  placementGroup,
  PlacementGroupError,
  removePlacementGroup,
  shutdown,
  ActorDiedError,
  TaskError,
  ValidationError,
  wait,
} from '@tsray/core';
import { gpuTask, parentInGroup, RemoteGpuProbe, spanTask } from './fixtures/gpus.js';
import { until } from './helpers/until.js';

beforeAll(async () => {
  // A node that declares 8 GPUs it does not have: scheduling and isolation are logical.
  await init({ numCpus: 8, numGpus: 8, objectStoreMemory: 128 * 1024 * 1024, logToDriver: false, labels: { zone: 'a', tier: 'gpu' } });
});
afterAll(async () => {
  await shutdown();
});

describe('GPU isolation on a fake-GPU node', () => {
  it("the seed's four actors with GPUs [1, 1, 2, 2] see disjoint CUDA_VISIBLE_DEVICES; a fifth waits for GPUs", async () => {
    const actors = [1, 1, 2, 2].map((n) => RemoteGpuProbe.options({ numGpus: n }).remote());
    const seen = await get(actors.map((a) => a.devices.remote()));
    const ids = seen.map((s) => s.cuda!.split(','));
    expect(ids.map((x) => x.length)).toEqual([1, 1, 2, 2]);
    const all = ids.flat();
    expect(new Set(all).size).toBe(6);
    for (const s of seen) expect([...s.gpuIds]).toEqual(s.cuda!.split(','));
    expect((await availableResources())['GPU']).toBe(2);
    // A fifth engine needing 4 GPUs cannot start yet; it shows as pending demand (feasible).
    const fifth = RemoteGpuProbe.options({ numGpus: 4 }).remote();
    const first = fifth.devices.remote();
    const demand = await until(
      async () => (await pendingDemand()).find((d) => d.kind === 'actor' && (d.resources as Record<string, number>)['GPU'] === 4),
      'the 4-GPU actor to show as pending demand',
    );
    expect(demand.infeasible).toBe(false);
    expect((await wait([first], { numReturns: 1, timeout: 0 })).ready).toEqual([]);
    // Killing a 2-GPU actor frees enough: the fifth starts on 4 free GPUs.
    kill(actors[2]!);
    const got = await get(first);
    expect(got.cuda!.split(',').length).toBe(4);
    for (const id of got.cuda!.split(',')) expect(ids[3]).not.toContain(id);
    for (const a of [actors[0]!, actors[1]!, actors[3]!, fifth]) kill(a);
  });

  it('two 0.5-GPU actors share one GPU id', async () => {
    const a = RemoteGpuProbe.options({ numGpus: 0.5 }).remote();
    const b = RemoteGpuProbe.options({ numGpus: 0.5 }).remote();
    const [da, db] = await get([a.devices.remote(), b.devices.remote()]);
    expect(da.cuda).toBe(db.cuda);
    expect(da.cuda!.split(',').length).toBe(1);
    kill(a);
    kill(b);
  });

  it('tasks get their GPUs and give them back', async () => {
    const r = await get(gpuTask.options({ numGpus: 2 }).remote());
    expect(r.cuda!.split(',').length).toBe(2);
    await until(async () => (await availableResources())['GPU'] === 8, 'all 8 GPUs to be free again');
  });
});

describe('placement groups', () => {
  it('reserves bundles atomically with stable bundle order and GPU ids', async () => {
    const pg = placementGroup(
      [
        { GPU: 2, CPU: 1 },
        { GPU: 1, CPU: 1 },
      ],
      { strategy: 'STRICT_PACK', name: 'engines' },
    );
    const info = await get(pg.ready());
    expect(info.bundles.map((b) => b.gpuIds.length)).toEqual([2, 1]);
    expect((await availableResources())['GPU']).toBe(5);
    const b0 = RemoteGpuProbe.options({ numGpus: 2, schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 0 } }).remote();
    const b1 = RemoteGpuProbe.options({ numGpus: 1, schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 1 } }).remote();
    const [d0, d1] = await get([b0.devices.remote(), b1.devices.remote()]);
    expect(d0.cuda!.split(',')).toEqual(info.bundles[0]!.gpuIds);
    expect(d1.cuda!.split(',')).toEqual(info.bundles[1]!.gpuIds);
    expect(d0.pg).toBe(pg.id);
    // Bundle GPUs follow bundle order.
    expect(Number(info.bundles[0]!.gpuIds[0])).toBeLessThan(Number(info.bundles[1]!.gpuIds[0]));
    // Removing the group stops what runs in it and frees the resources; twice is an error.
    removePlacementGroup(pg);
    await expect(get(b0.devices.remote())).rejects.toBeInstanceOf(ActorDiedError);
    expect(() => removePlacementGroup(pg)).toThrow(PlacementGroupError);
    await until(async () => (await availableResources())['GPU'] === 8, 'all 8 GPUs to be free again');
  });

  it('captures child tasks into the group', async () => {
    const pg = placementGroup([{ CPU: 2 }]);
    await get(pg.ready());
    const r = await get(
      parentInGroup.options({ numCpus: 0.5, schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, captureChildTasks: true } }).remote(),
    );
    expect(r).toEqual({ parent: pg.id, child: pg.id });
    removePlacementGroup(pg);
  });

  it('tasks in a bundle never use more than the bundle holds', async () => {
    const pg = placementGroup([{ CPU: 1 }]);
    await get(pg.ready());
    const inPg = spanTask.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 0 } });
    // Two 1-CPU tasks in a 1-CPU bundle run one after the other (spans recorded inside the tasks).
    const [a, b] = (await get([inPg.remote(50), inPg.remote(50)])).sort((x, y) => x.start - y.start);
    expect(b!.start).toBeGreaterThanOrEqual(a!.end);
    removePlacementGroup(pg);
  });

  it('a group no node can hold stays pending and is named in one warning', async () => {
    const writes: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((c: unknown) => (writes.push(String(c)), true));
    try {
      const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }], { strategy: 'STRICT_SPREAD', name: 'spread-2' });
      await until(async () => (await pendingDemand()).some((d) => d.kind === 'placement_group' && d.name === 'spread-2'), 'the group to show as pending');
      await until(() => writes.some((w) => w.includes('spread-2')), 'the warning naming the group');
      expect(await pg.wait(0)).toBe(false);
      expect(writes.filter((w) => w.includes('spread-2')).length).toBe(1);
      removePlacementGroup(pg);
      await expect(get(pg.ready())).rejects.toThrow(/removed/);
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects bad input with typed errors', async () => {
    expect(() => placementGroup([])).toThrow(ValidationError);
    expect(() => placementGroup([{ CPU: 0 }])).toThrow(ValidationError);
    expect(() => placementGroup([{ CPU: -1 }])).toThrow(/CPU/);
    expect(() => placementGroup([{ CPU: 1 }], { strategy: 'DIAGONAL' as never })).toThrow(ValidationError);
    const pg = placementGroup([{ CPU: 1 }]);
    expect(() => gpuTask.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 3 } })).toThrow(
      /bundleIndex 3 is out of range/,
    );
    expect(() => gpuTask.options({ schedulingStrategy: 'SIDEWAYS' as never })).toThrow(ValidationError);
    removePlacementGroup(pg);
    const afterRemove = await get(gpuTask.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg } }).remote()).catch((e: unknown) => e);
    expect(String((afterRemove as Error).message)).toContain('was removed');
    void TaskError;
  });

  it('everything released restores the initial resource view', async () => {
    // Self-contained: take GPUs and CPUs with a group, an actor and a task, then release them all.
    const pg = placementGroup([{ GPU: 1, CPU: 1 }]);
    await get(pg.ready());
    const a = RemoteGpuProbe.options({ numGpus: 2 }).remote();
    await get([a.devices.remote(), gpuTask.options({ numGpus: 1 }).remote()]);
    expect(JSON.stringify(await availableResources())).not.toBe(JSON.stringify(await clusterResources()));
    removePlacementGroup(pg);
    kill(a);
    const total = JSON.stringify(await clusterResources());
    await until(async () => JSON.stringify(await availableResources()) === total, 'available resources to equal the totals');
  });
});

describe('NODE_LABEL strategies on one labelled node (init({ labels }))', () => {
  it('runs tasks and actors whose hard and soft selectors the node matches', async () => {
    const here = { type: 'NODE_LABEL', hard: [labelIn('zone', 'a')], soft: [labelExists('tier')] } as const;
    expect((await get(gpuTask.options({ schedulingStrategy: here }).remote())).gpuIds).toEqual([]);
    // Soft is a preference: a soft selector no node matches still runs.
    expect((await get(gpuTask.options({ schedulingStrategy: { type: 'NODE_LABEL', soft: [labelIn('zone', 'b')] } }).remote())).gpuIds).toEqual([]);
    const a = RemoteGpuProbe.options({ schedulingStrategy: here }).remote();
    expect((await get(a.devices.remote())).gpuIds).toEqual([]);
    kill(a);
  });

  it('fails work whose hard selector no node matches, naming the selector (no silent hang)', async () => {
    const nowhere = { type: 'NODE_LABEL', hard: [labelIn('zone', 'b')] } as const;
    const err = await get(gpuTask.options({ schedulingStrategy: nowhere }).remote()).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'TaskUnschedulableError', message: expect.stringMatching(/hard label constraints .*"zone".*no alive node matches/) });
    const a = RemoteGpuProbe.options({ schedulingStrategy: nowhere }).remote();
    const callErr = await get(a.devices.remote()).catch((e: unknown) => e);
    expect(callErr).toBeInstanceOf(ActorDiedError);
    expect(callErr).toMatchObject({ reason: 'unschedulable', message: expect.stringMatching(/no alive node matches/) });
  });

  it('rejects a malformed selector at options() with a ValidationError naming the field', () => {
    const bad = { type: 'NODE_LABEL', hard: [{ key: 'zone', op: 'near', values: ['a'] }] } as never;
    expect(() => gpuTask.options({ schedulingStrategy: bad })).toThrow(
      expect.objectContaining({ name: 'ValidationError', option: 'schedulingStrategy.hard[0]' }),
    );
    expect(() => RemoteGpuProbe.options({ schedulingStrategy: bad })).toThrow(
      expect.objectContaining({ name: 'ValidationError', option: 'schedulingStrategy.hard[0]' }),
    );
  });
});
