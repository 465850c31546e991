/**
 * A FIFO queue with O(1) push, shift and unshift. Why not an array: V8 shifts an array in O(1) only
 * while its backing store is small; past ~16k elements (large-object space) every shift moves the
 * whole array, so draining a queue of 50,000 costs ~0.1 ms per element (quadratic) — actor call
 * queues, socket outboxes and worker task queues reach that under load.
 * @internal
 */
export class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(x: T): void {
    this.items.push(x);
  }

  unshift(x: T): void {
    if (this.head > 0) this.items[--this.head] = x;
    else this.items.unshift(x);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }

  /** Put `xs` in front, in their order (O(xs.length) while there is room in front, else O(n)). */
  unshiftAll(xs: readonly T[]): void {
    if (xs.length === 0) return;
    if (this.head >= xs.length) {
      this.head -= xs.length;
      for (let i = 0; i < xs.length; i++) this.items[this.head + i] = xs[i];
    } else {
      this.items = [...xs, ...this.items.slice(this.head)];
      this.head = 0;
    }
  }

  /** Take every element out, in order. */
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }

  /** The elements in order (a copy). */
  toArray(): T[] {
    return this.items.slice(this.head) as T[];
  }

  /** The first element that matches, if any. */
  find(match: (x: T) => boolean): T | undefined {
    for (let i = this.head; i < this.items.length; i++) if (match(this.items[i] as T)) return this.items[i];
    return undefined;
  }

  /** Remove one element (O(n)); returns whether it was found. */
  remove(x: T): boolean {
    const i = this.items.indexOf(x, this.head);
    if (i === -1) return false;
    this.items.splice(i, 1);
    return true;
  }

  /** Remove every element that matches (one O(n) pass, order kept); returns them. */
  removeWhere(match: (x: T) => boolean): T[] {
    const out: T[] = [];
    const kept: (T | undefined)[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const x = this.items[i] as T;
      if (match(x)) out.push(x);
      else kept.push(x);
    }
    if (out.length > 0) {
      this.items = kept;
      this.head = 0;
    }
    return out;
  }
}
