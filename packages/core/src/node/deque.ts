/**
 * A FIFO queue with O(1) push, shift and unshift (arrays' shift is O(n) on long queues).
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
