/** TaskPipeline: a worker's tasks in flight in send order, with removal from anywhere. */
import { describe, expect, it } from 'vitest';
import { TaskPipeline } from '../../src/node/task-pipeline.js';
import { taskRecord } from './cluster-fakes.js';

const ids = (p: TaskPipeline) => [...p].map((t) => t.spec.taskId);

describe('TaskPipeline', () => {
  it('keeps send order; peek/shift take the oldest; remove takes any task out', () => {
    const p = new TaskPipeline();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => taskRecord(id));
    for (const t of [a!, b!, c!, d!]) p.push(t);
    expect(ids(p)).toEqual(['a', 'b', 'c', 'd']);
    expect(p.remove(c!)).toBe(true); // out of order (an async actor's call)
    expect(p.remove(c!)).toBe(false);
    expect(p.length).toBe(3);
    expect(p.peek()).toBe(a);
    expect(p.remove(a!)).toBe(true);
    expect(p.peek()).toBe(b); // the head moves past removed tasks
    expect(p.shift()).toBe(b);
    expect(ids(p)).toEqual(['d']);
    expect(p.removeById('d')).toBe(true);
    expect(p.length).toBe(0);
    expect(p.peek()).toBeUndefined();
  });

  it('a task pushed again (re-sent) counts once, at its new place', () => {
    const p = new TaskPipeline();
    const [a, b] = [taskRecord('a'), taskRecord('b')];
    p.push(a);
    p.push(b);
    p.remove(a);
    p.push(a);
    expect(ids(p)).toEqual(['b', 'a']);
    expect(p.length).toBe(2);
    expect(p.shift()).toBe(b);
    expect(p.shift()).toBe(a);
    expect(p.shift()).toBeUndefined();
  });

  it('drain takes every task out in order', () => {
    const p = new TaskPipeline();
    const ts = ['a', 'b', 'c'].map((id) => taskRecord(id));
    for (const t of ts) p.push(t);
    p.remove(ts[1]!);
    expect(p.drain().map((t) => t.spec.taskId)).toEqual(['a', 'c']);
    expect(p.length).toBe(0);
    expect(ids(p)).toEqual([]);
  });

  it('50,000 tasks removed in and out of order each come out once, in order', () => {
    const p = new TaskPipeline();
    const ts = Array.from({ length: 50_000 }, (_, i) => taskRecord(`t${i}`));
    for (const t of ts) p.push(t);
    // Every other one out of order first, then the rest from the head.
    for (let i = 1; i < ts.length; i += 2) p.remove(ts[i]!);
    for (let i = 0; i < ts.length; i += 2) expect(p.shift()).toBe(ts[i]);
    expect(p.length).toBe(0);
  });
});
