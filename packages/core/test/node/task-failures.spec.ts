/**
 * TaskFailures alone: which finished tasks it keeps (error objects of tasks that ran here), what it
 * reads from each error (class, message, remote stack), and its bound.
 */
import { describe, expect, it } from 'vitest';
import { errorObject } from '../../src/node/node-support.js';
import type { TaskRecord } from '../../src/node/records.js';
import { MAX_FAILURES, MAX_STACK_CHARS, TaskFailures } from '../../src/node/task-failures.js';

function task(name: string, over: Record<string, unknown> = {}): TaskRecord {
  return { spec: { taskId: `t-${name}`, name }, jobId: 'job1', attempt: 0, actor: undefined, remote: undefined, ...over } as unknown as TaskRecord;
}

const taskError = (message: string, stack: string) =>
  errorObject({ type: 'TaskError', info: { name: 'TypeError', message, stack, taskName: 'f', pid: 4242, language: 'typescript' } });

describe('TaskFailures', () => {
  it('keeps a failed task with its error class, message and remote stack; not a success, and not a task forwarded elsewhere', () => {
    const f = new TaskFailures(() => 'node-a');
    f.record(task('ok'), { encoding: 'v8', rawKind: '', inline: Buffer.from([1]), size: 1, contained: [] });
    f.record(task('away', { remote: 'node-b' }), taskError('x', 'y'));
    f.record(task('no-data'), undefined);
    f.record(task('boom', { actor: { id: 'actor1' }, attempt: 2 }), taskError('bad input', 'TypeError: bad input\n    at boom (fns.ts:3:9)'));
    f.record(task('cancelled'), errorObject({ type: 'TaskCancelledError', taskName: 'cancelled', forced: true }));

    expect(f.rows()).toEqual([
      {
        taskId: 't-boom',
        name: 'boom',
        nodeId: 'node-a',
        jobId: 'job1',
        actorId: 'actor1',
        errorName: 'TypeError',
        message: 'bad input',
        stack: 'TypeError: bad input\n    at boom (fns.ts:3:9)',
        pid: 4242,
        attempt: 2,
        time: expect.any(Number),
      },
      expect.objectContaining({ taskId: 't-cancelled', errorName: 'TaskCancelledError', message: expect.stringContaining('cancelled'), stack: '', pid: 0 }),
    ]);
  });

  it(`keeps the last ${MAX_FAILURES} failures, oldest first, and clips a huge stack`, () => {
    const f = new TaskFailures(() => 'node-a');
    for (let i = 0; i < MAX_FAILURES + 5; i++) f.record(task(`t${i}`), taskError(`e${i}`, i === MAX_FAILURES + 4 ? 'x'.repeat(MAX_STACK_CHARS * 2) : 's'));
    const rows = f.rows();
    expect(rows).toHaveLength(MAX_FAILURES);
    expect(rows[0]!.name).toBe('t5');
    expect(rows.at(-1)!.name).toBe(`t${MAX_FAILURES + 4}`);
    expect(rows.at(-1)!.stack.length).toBeLessThan(MAX_STACK_CHARS + 100);
    expect(rows.at(-1)!.stack).toContain('more characters');
  });

  it('an unreadable error object is kept as ErrorPayloadDecodeError', () => {
    const f = new TaskFailures(() => 'node-a');
    f.record(task('garbled'), { encoding: 'error', rawKind: '', inline: Buffer.from([0xff, 0xff, 0xff]), size: 3, contained: [] });
    expect(f.rows()[0]).toMatchObject({ name: 'garbled', errorName: 'ErrorPayloadDecodeError' });
  });
});
