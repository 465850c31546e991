import { describe, expect, it } from 'vitest';
import { PayloadWriter, decodeMessage, encodeMessage, payloadBytes } from '../src/index.js';

describe('PayloadWriter', () => {
  it('packs small payloads into one frame and gives big ones their own, uncopied', () => {
    const w = new PayloadWriter();
    const smalls = Array.from({ length: 1000 }, (_, i) => Buffer.from(`payload-${i}`));
    const big = Buffer.alloc(64 * 1024, 1);
    const refs = smalls.slice(0, 500).map((b) => w.add(b));
    const bigRef = w.add(big);
    refs.push(...smalls.slice(500).map((b) => w.add(b)));
    expect(w.frameCount).toBe(2);
    expect(bigRef).toEqual({ frame: 1, offset: 0, length: big.length });
    expect(refs[0]).toEqual({ frame: 0, offset: 0, length: smalls[0]!.length });
    expect(refs[999]!.frame).toBe(0);
    expect(w.byteLength).toBe(smalls.reduce((n, b) => n + b.length, 0) + big.length);

    const frames = w.finish();
    expect(frames).toHaveLength(2);
    expect(frames[1]).toBe(big);
    expect(w.frameCount).toBe(0); // reset for the next message

    const tasks = refs.map((inline, i) => ({ taskId: `t${i}`, args: [{ objectId: `o${i}`, inline }] }));
    const msg = decodeMessage(encodeMessage({ executeTasks: { tasks } }, frames));
    const decoded = msg.envelope.executeTasks!.tasks!;
    decoded.forEach((t, i) => {
      expect(payloadBytes(t.args![0]!.inline!, msg.payloads).toString()).toBe(`payload-${i}`);
    });
    expect(payloadBytes(bigRef, msg.payloads).buffer).toBe(big.buffer);
  });

  it('opens a new packed frame when one would grow past maxPackBytes', () => {
    const w = new PayloadWriter({ ownFrameBytes: 100, maxPackBytes: 10 });
    const a = w.add(Buffer.alloc(6, 1));
    const b = w.add(Buffer.alloc(6, 2));
    const c = w.add(Buffer.alloc(3, 3));
    const d = w.add(Buffer.alloc(100, 4));
    expect([a.frame, b.frame, c.frame, d.frame]).toEqual([0, 1, 1, 2]);
    expect(c.offset).toBe(6);
    const frames = w.finish();
    expect(frames.map((f) => f.length)).toEqual([6, 9, 100]);
    expect([...payloadBytes(c, frames)]).toEqual([3, 3, 3]);
  });

  it('handles empty payloads', () => {
    const w = new PayloadWriter();
    const ref = w.add(new Uint8Array(0));
    const frames = w.finish();
    expect(payloadBytes(ref, frames).length).toBe(0);
  });
});
