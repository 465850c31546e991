/**
 * PendingWarner alone (issue #22): "cannot be scheduled right now" once, after the delay, for work that
 * fits the node's totals but waits for resources others hold; never for infeasible work. A fake node
 * (plain records, real resource views) and a fake clock: no timers, no processes.
 */
import { describe, expect, it } from 'vitest';
import { NodeResources, ResourceRequest } from '@tsray/scheduler';
import { Deque } from '../../src/deque.js';
import { PendingWarner, type PendingWarnerHost } from '../../src/node/pending-warner.js';
import type { ActorRecord, Pool, TaskRecord } from '../../src/node/records.js';
import { taskRecord } from './cluster-fakes.js';

const DELAY = 10_000;

class FakeNode implements PendingWarnerHost {
  readonly nodeId = 'node-a';
  readonly resources = new NodeResources({ CPU: 16, GPU: 8 }, { gpuIds: ['0', '1', '2', '3', '4', '5', '6', '7'] });
  readonly pool: Pool = { key: '', resources: this.resources, pg: undefined, bundleIndex: -1 };
  readonly queues: Deque<TaskRecord>[] = [];
  readonly waiting: ActorRecord[] = [];
  taskQueues(): Iterable<Deque<TaskRecord>> {
    return this.queues;
  }
  pendingActors(): readonly ActorRecord[] {
    return this.waiting;
  }
  nodePool(): Pool {
    return this.pool;
  }
}

function gpuActor(gpus: number): ActorRecord {
  return {
    creation: { className: 'Engine' },
    schedule: ResourceRequest.of({ CPU: 1, GPU: gpus }),
    pool: undefined,
    state: 'pending',
  } as unknown as ActorRecord;
}

/** A warner over `node` whose lines land in `lines`, with a clock the test moves. */
function warner(node: FakeNode): { w: PendingWarner; lines: string[]; clock: { t: number } } {
  const lines: string[] = [];
  const clock = { t: 0 };
  const w = new PendingWarner(node, DELAY, { warn: (line) => lines.push(line), now: () => clock.t, timer: false });
  return { w, lines, clock };
}

describe('PendingWarner', () => {
  it('the 9th one-GPU actor on 8 GPUs: one line after the delay, naming the shape and the GPUs short', () => {
    const node = new FakeNode();
    for (let i = 0; i < 8; i++) expect(node.resources.allocate(ResourceRequest.of({ CPU: 1, GPU: 1 }))).not.toBeNull();
    node.waiting.push(gpuActor(1));
    const { w, lines, clock } = warner(node);
    w.check();
    clock.t = DELAY - 1;
    w.check();
    expect(lines).toEqual([]);
    clock.t = DELAY;
    w.check();
    clock.t = 5 * DELAY;
    w.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      'tsray: actor Engine {"CPU":1,"GPU":1} cannot be scheduled right now (waiting 10s): node node-a is short of GPU (needs 1, 0 of 8 free), ' +
        'held by running actors and tasks; it starts when they are released (listActors() and pendingDemand() show what holds and waits)',
    );
  });

  it('warns again only after the wait ended and a new one lasted the delay', () => {
    const node = new FakeNode();
    for (let i = 0; i < 8; i++) node.resources.allocate(ResourceRequest.of({ GPU: 1 }));
    node.waiting.push(gpuActor(1));
    const { w, lines, clock } = warner(node);
    w.check();
    clock.t = DELAY;
    w.check();
    node.waiting.length = 0; // it started
    clock.t += 1;
    w.check();
    node.waiting.push(gpuActor(1)); // another one waits
    clock.t += DELAY - 1;
    w.check();
    expect(lines).toHaveLength(1);
    clock.t += DELAY;
    w.check();
    expect(lines).toHaveLength(2);
  });

  it('counts actors of one shape in one line; never warns for infeasible work or work that fits', () => {
    const node = new FakeNode();
    for (let i = 0; i < 8; i++) node.resources.allocate(ResourceRequest.of({ GPU: 1 }));
    node.waiting.push(gpuActor(1), gpuActor(1), gpuActor(16));
    const { w, lines, clock } = warner(node);
    w.check();
    clock.t = DELAY;
    w.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tsray: 2 of actor Engine /);
    const idle = new FakeNode();
    idle.waiting.push(gpuActor(1));
    const quiet = warner(idle);
    quiet.w.check();
    quiet.clock.t = DELAY;
    quiet.w.check();
    expect(quiet.lines).toEqual([]);
  });

  it('a task queue warns only while its head does not move (a busy queue that progresses is not stuck)', () => {
    const node = new FakeNode();
    node.resources.allocate(ResourceRequest.of({ CPU: 16 }));
    const q = new Deque<TaskRecord>();
    q.push(taskRecord('t1'));
    q.push(taskRecord('t2'));
    node.queues.push(q);
    const { w, lines, clock } = warner(node);
    w.check();
    clock.t = DELAY - 1;
    q.shift(); // t1 ran: the queue moved
    w.check();
    clock.t = 2 * DELAY - 2;
    w.check();
    expect(lines).toEqual([]);
    clock.t = 2 * DELAY;
    w.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tsray: task task-t2 \{"CPU":1\} cannot be scheduled right now .* short of CPU \(needs 1, 0 of 16 free\)/);
  });
});
