/**
 * TaskTimeline alone: one event per task that ran on a worker of this node, oldest first, bounded to
 * MAX_EVENTS (the ring wraps and drops the oldest), nothing for tasks that never ran here.
 */
import { describe, expect, it } from 'vitest';
import type { WorkerHandle } from '../../src/node/records.js';
import { MAX_EVENTS, TaskTimeline } from '../../src/node/task-timeline.js';
import { taskRecord } from './cluster-fakes.js';

const worker = { id: 'w1', proc: { pid: 4242 } } as unknown as WorkerHandle;

function ran(timeline: TaskTimeline, id: string): void {
  const t = taskRecord(id);
  t.startedAt = performance.now();
  timeline.started(t, worker);
  timeline.record(t);
}

describe('TaskTimeline', () => {
  it('records a task that ran on a worker here, once, with its worker, pid, job and attempt', () => {
    const timeline = new TaskTimeline(() => 'node-a');
    const t = taskRecord('t1');
    t.startedAt = performance.now();
    t.attempt = 2;
    timeline.started(t, worker);
    timeline.record(t);
    timeline.record(t); // a second end of the same run is not a second event
    const rows = timeline.rows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ taskId: 't1', name: 'task-t1', nodeId: 'node-a', workerId: 'w1', pid: 4242, jobId: 'job1', attempt: 2 });
    expect(rows[0]!.durUs).toBeGreaterThanOrEqual(1);
    expect(rows[0]).not.toHaveProperty('actorId');
  });

  it('does not record a task that was never handed to a worker of this node', () => {
    const timeline = new TaskTimeline(() => 'node-a');
    timeline.record(taskRecord('forwarded'));
    expect(timeline.rows()).toEqual([]);
  });

  it('keeps the newest MAX_EVENTS events, oldest first, once the ring wraps', () => {
    const timeline = new TaskTimeline(() => 'node-a');
    const total = MAX_EVENTS + 5;
    for (let i = 0; i < total; i++) ran(timeline, `t${i}`);
    const rows = timeline.rows();
    expect(rows).toHaveLength(MAX_EVENTS);
    expect(rows[0]!.taskId).toBe('t5');
    expect(rows.at(-1)!.taskId).toBe(`t${total - 1}`);
    expect(new Set(rows.map((r) => r.taskId)).size).toBe(MAX_EVENTS);
  });
});
