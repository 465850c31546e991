/** LineageKeeper against a fake node: which finished tasks are kept, rebuilt, refused, and released. */
import { describe, expect, it } from 'vitest';
import { LineageKeeper } from '../../src/node/lineage.js';
import { taskRecord } from './cluster-fakes.js';

function fakeNode(max?: number) {
  const referenced = new Set<string>();
  const live = new Set<string>();
  const released: string[] = [];
  const resubmits: { taskId: string; retriesLeft: number; attempt: number }[] = [];
  const keeper = new LineageKeeper(
    {
      referenced: (id) => referenced.has(id),
      live: (taskId) => live.has(taskId),
      release: (ids) => released.push(...ids),
      resubmit: (spec, _owner, retriesLeft, attempt) => resubmits.push({ taskId: spec.taskId, retriesLeft, attempt }),
    },
    max,
  );
  return { keeper, referenced, live, released, resubmits };
}

describe('LineageKeeper', () => {
  it('keeps a finished task with a referenced return, takes over its argument holds, re-runs it within maxRetries', () => {
    const n = fakeNode();
    const t = taskRecord('tAAAAAAAAa', { name: 'make' }, 1);
    t.holds = ['pARG'];
    n.referenced.add('tAAAAAAAAa.0');
    n.keeper.keep(t);
    expect(t.holds).toEqual([]);
    expect(n.keeper.stats()).toEqual({ kept: 1, rebuilds: 0 });
    expect(n.keeper.rebuild('tAAAAAAAAa.0')).toBeUndefined();
    expect(n.resubmits).toEqual([{ taskId: 'tAAAAAAAAa', retriesLeft: 0, attempt: 1 }]);
    // The re-run is live: a second lost return of it does not start another.
    n.live.add('tAAAAAAAAa');
    expect(n.keeper.rebuild('tAAAAAAAAa.0')).toBeUndefined();
    n.live.delete('tAAAAAAAAa');
    expect(n.keeper.rebuild('tAAAAAAAAa.0')).toMatch(/task make \(tAAAAAAAAa\), which has no retries left/);
    expect(n.resubmits).toHaveLength(1);
    expect(n.keeper.stats().rebuilds).toBe(1);
  });

  it('maxRetries -1 rebuilds forever', () => {
    const n = fakeNode();
    n.referenced.add('tAAAAAAAAb.0');
    n.keeper.keep(taskRecord('tAAAAAAAAb', {}, -1));
    for (let i = 0; i < 3; i++) expect(n.keeper.rebuild('tAAAAAAAAb.0')).toBeUndefined();
    expect(n.resubmits.map((r) => r.retriesLeft)).toEqual([-1, -1, -1]);
  });

  it('drops the lineage (releasing its arguments) once no return is referenced; then says it does not keep it', () => {
    const n = fakeNode();
    const t = taskRecord('tAAAAAAAAc', { returnIds: ['tAAAAAAAAc.0', 'tAAAAAAAAc.1'] }, 2);
    t.holds = ['pARG', 'tUP.0'];
    n.referenced.add('tAAAAAAAAc.0').add('tAAAAAAAAc.1');
    n.keeper.keep(t);
    n.keeper.freed('tAAAAAAAAc.0');
    expect(n.released).toEqual([]);
    n.keeper.freed('tAAAAAAAAc.1');
    expect(n.released).toEqual(['pARG', 'tUP.0']);
    expect(n.keeper.stats().kept).toBe(0);
    expect(n.keeper.rebuild('tAAAAAAAAc.0')).toMatch(/whose lineage this node does not keep/);
  });

  it('refuses put objects; does not keep actor or streaming tasks, nor tasks without a referenced return', () => {
    const n = fakeNode();
    expect(n.keeper.rebuild('pAAAAAAAAd')).toMatch(/created by put\(\), and put objects cannot be rebuilt/);
    n.referenced.add('tAAAAAAAAe.0').add('tAAAAAAAAf.0');
    n.keeper.keep(taskRecord('tAAAAAAAAe', { actorId: 'aX' }, 3));
    n.keeper.keep(taskRecord('tAAAAAAAAf', { streaming: true }, 3));
    n.keeper.keep(taskRecord('tAAAAAAAAg', {}, 3));
    expect(n.keeper.stats().kept).toBe(0);
  });

  it('a task without retries is kept without its arguments, to say why it is not rebuilt', () => {
    const n = fakeNode();
    const t = taskRecord('tAAAAAAAAh', { name: 'once' }, 0);
    t.holds = ['pARG'];
    n.referenced.add('tAAAAAAAAh.0');
    n.keeper.keep(t);
    expect(t.holds).toEqual(['pARG']);
    expect(n.keeper.rebuild('tAAAAAAAAh.0')).toMatch(/task once .* no retries left/);
    expect(n.resubmits).toEqual([]);
  });

  it('past its bound the oldest kept task is dropped (its arguments released)', () => {
    const n = fakeNode(2);
    for (const id of ['tAAAAAAAA1', 'tAAAAAAAA2', 'tAAAAAAAA3']) {
      const t = taskRecord(id, {}, 1);
      t.holds = [`${id}.arg`];
      n.referenced.add(`${id}.0`);
      n.keeper.keep(t);
    }
    expect(n.keeper.stats().kept).toBe(2);
    expect(n.released).toEqual(['tAAAAAAAA1.arg']);
    expect(n.keeper.rebuild('tAAAAAAAA1.0')).toMatch(/past the bound of 2 kept tasks/);
  });
});
