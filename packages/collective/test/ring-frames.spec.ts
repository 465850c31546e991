/**
 * The ring link's frame reader on its own (no socket: reads are fed through its `onread` buffer and
 * callback, as node:net would): frames split at any byte assemble in order, a frame the ring places lands
 * in its place, a reader whose frame buffers are all taken pauses the socket and resumes it with nothing
 * lost when the loop gives one back, and a stream that holds something other than frames breaks with a
 * typed error.
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { FRAME_HEAD_BYTES, RingReader, RingStreamError, writeFrameHead } from '../src/ring-frames.js';

function frame(counter: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEAD_BYTES);
  writeFrameHead(head, { seq: 7, step: 1, at: counter * 10, bytes: payload.length, counter });
  head.fill(0xab, 32); // a tag
  return Buffer.concat([head, payload]);
}

/** A reader fed by `feed(bytes)` in reads of at most `readSize` bytes; its socket's pause/resume recorded. */
function harness(maxPayload: number, pool: number) {
  const reader = new RingReader(maxPayload, pool);
  const events: string[] = [];
  let backlog = Buffer.alloc(0);
  let paused = false;
  let lastReadSize = 1;
  // As node:net: pause() stops the reads, resume() reads on.
  const socket = {
    pause: () => {
      events.push('pause');
      paused = true;
    },
    resume: () => {
      events.push('resume');
      paused = false;
      pump(lastReadSize);
    },
    destroy: () => events.push('destroy'),
  };
  reader.attach(socket as unknown as Socket);
  const { buffer, callback } = reader.onread;
  // As node:net: each read lands in the buffer the reader gave (asked for again after every read).
  let target = buffer();
  function pump(readSize: number): void {
    lastReadSize = readSize;
    while (!paused && backlog.length > 0) {
      const n = Math.min(readSize, backlog.length, target.length);
      expect(target.length).toBeGreaterThan(0); // libuv refuses an empty buffer
      backlog.copy(target, 0, 0, n);
      backlog = backlog.subarray(n);
      if (callback(n) === false) paused = true;
      target = buffer();
    }
  }
  return {
    reader,
    events,
    feed(bytes: Buffer, readSize: number) {
      backlog = Buffer.concat([backlog, bytes]);
      pump(readSize);
    },
    /** Read on, unless the reader paused the socket (node:net reads on once it resumes it). */
    resume(readSize: number) {
      pump(readSize);
    },
  };
}

const payloads = [Buffer.alloc(1000, 1), Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(4096, 3), Buffer.alloc(777, 9)];

describe('RingReader', () => {
  it('assembles frames split at any read boundary, in order, with their fields', () => {
    const stream = Buffer.concat(payloads.map((p, i) => frame(i + 1, p)));
    for (const readSize of [1, 7, 48, 49, 1000, 1 << 20]) {
      const h = harness(8192, 8);
      h.feed(stream, readSize);
      for (let i = 0; i < payloads.length; i++) {
        const f = h.reader.take()!;
        expect(f, `read size ${readSize}, frame ${i}`).toBeDefined();
        expect([f.seq, f.step, f.at, f.bytes, f.counter]).toEqual([7, 1, (i + 1) * 10, payloads[i]!.length, i + 1]);
        expect(f.payload.equals(payloads[i]!)).toBe(true);
        expect(f.head.subarray(32).equals(Buffer.alloc(16, 0xab))).toBe(true);
        f.release();
      }
      expect(h.reader.take()).toBeUndefined();
      expect(h.events).toEqual([]);
    }
  });

  it('pauses the socket when every frame buffer is taken and resumes, losing nothing, when one comes back', () => {
    const h = harness(8192, 2);
    h.feed(Buffer.concat(payloads.map((p, i) => frame(i + 1, p))), 600);
    // Two frames held by the loop: the third head waits, the rest of that read is spilled.
    expect(h.events).toEqual(['pause']);
    const first = h.reader.take()!;
    const second = h.reader.take()!;
    expect(h.reader.take()).toBeUndefined();
    first.release();
    expect(h.events).toEqual(['pause', 'pause']); // the spilled bytes ran into the next full pool
    second.release();
    h.resume(600);
    const rest: number[] = [];
    for (let f = h.reader.take(); f; f = h.reader.take()) {
      rest.push(f.counter);
      expect(f.payload.equals(payloads[f.counter - 1]!)).toBe(true);
      f.release();
      h.resume(600);
    }
    expect(rest).toEqual([3, 4, 5]);
    expect(h.events.at(-1)).toBe('resume');
  });

  it('breaks the stream on a head that is not a frame, and on a payload longer than the largest frame', () => {
    const garbage = harness(8192, 2);
    garbage.feed(Buffer.alloc(100, 0x41), 100);
    expect(() => garbage.reader.take()).toThrow(RingStreamError);
    expect(garbage.events).toContain('destroy');
    const big = harness(1000, 2);
    big.feed(frame(1, Buffer.alloc(1001)), 2000);
    expect(() => big.reader.take()).toThrow(/1001 bytes/);
  });

  it('reads a payload the placer names straight into that place; the others into pooled buffers', () => {
    const stream = Buffer.concat(payloads.map((p, i) => frame(i + 1, p)));
    for (const readSize of [1, 49, 1 << 20]) {
      const h = harness(8192, 1);
      const places = new Map<number, Buffer>();
      // Frames 1 and 4 are placed (by their offset `at`), the rest pooled (one pooled buffer: each is released before the next).
      h.reader.placer = (f) => {
        if (f.at !== 10 && f.at !== 40) return undefined;
        const place = Buffer.alloc(f.bytes);
        places.set(f.counter, place);
        return place;
      };
      const got: number[] = [];
      h.feed(stream, readSize);
      for (let f = h.reader.take(); f; f = h.reader.take()) {
        got.push(f.counter);
        expect(f.payload.equals(payloads[f.counter - 1]!)).toBe(true);
        const place = places.get(f.counter);
        if (place) expect(f.payload.buffer === place.buffer && f.payload.byteOffset === place.byteOffset).toBe(true);
        f.release();
        h.resume(readSize);
      }
      expect([readSize, got]).toEqual([readSize, [1, 2, 3, 4, 5]]);
      expect([...places.keys()]).toEqual([1, 4]);
    }
  });
});
