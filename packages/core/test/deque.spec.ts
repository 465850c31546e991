/** The FIFO queue behind actor call queues, socket outboxes and worker task queues. */
import { describe, expect, it } from 'vitest';
import { Deque } from '../src/deque.js';

function filled(n: number): Deque<number> {
  const q = new Deque<number>();
  for (let i = 0; i < n; i++) q.push(i);
  return q;
}

describe('Deque', () => {
  it('keeps FIFO order across the compaction of a long queue (past 16k elements, where arrays shift in O(n))', () => {
    const q = filled(50_000);
    const out: number[] = [];
    for (let i = 0; i < 30_000; i++) out.push(q.shift()!);
    for (let i = 50_000; i < 50_010; i++) q.push(i);
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: 50_010 }, (_, i) => i));
    expect(q.shift()).toBeUndefined();
  });

  it('unshiftAll puts a batch back in front in its order, with room in front and without', () => {
    const q = filled(5);
    q.shift();
    q.shift();
    q.unshiftAll([10, 11]); // room in front: the two shifted slots
    expect(q.toArray()).toEqual([10, 11, 2, 3, 4]);
    q.unshiftAll([20, 21, 22]); // no room: rebuilt
    expect(q.toArray()).toEqual([20, 21, 22, 10, 11, 2, 3, 4]);
    q.unshiftAll([]);
    expect(q.length).toBe(8);
    expect(q.peek()).toBe(20);
  });

  it('drain empties it in order; find, remove and removeWhere see only what is queued', () => {
    const q = filled(6);
    q.shift();
    expect(q.find((x) => x % 2 === 0)).toBe(2);
    expect(q.find((x) => x === 0)).toBeUndefined(); // shifted out
    expect(q.remove(3)).toBe(true);
    expect(q.remove(0)).toBe(false);
    expect(q.removeWhere((x) => x === 5)).toEqual([5]);
    expect(q.drain()).toEqual([1, 2, 4]);
    expect(q.length).toBe(0);
    q.push(7);
    expect(q.toArray()).toEqual([7]);
  });
});
