/**
 * The framing of the node's unix stream socket (stream-frames.ts): a hello, then multipart messages
 * that arrive split at any byte, small ones copied out of a big read, limits that close the stream.
 */
import { describe, expect, it } from 'vitest';
import { StreamFrameError, type StreamLimits, StreamMessageReader, streamHello, streamMessage } from '../src/stream-frames.js';

const OPEN: StreamLimits = { maxFrames: 1000, maxFrameBytes: 1 << 24, maxMessageBytes: 1 << 26 };

/** A reader collecting what it reads. */
function collector(limits: StreamLimits = OPEN, expectHello = true) {
  const got: { hello: string[]; messages: Buffer[][] } = { hello: [], messages: [] };
  const reader = new StreamMessageReader(
    { onHello: (id) => got.hello.push(id), onMessage: (frames) => got.messages.push(frames.map((f) => Buffer.from(f))) },
    () => limits,
    expectHello,
  );
  return { reader, got };
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('stream framing', () => {
  const messages = [[Buffer.from('envelope')], [bytes(10, 1), Buffer.alloc(0), bytes(300, 2)], [bytes(40_000, 3), bytes(5, 4)]];
  const stream = Buffer.concat([streamHello('w1-123'), ...messages.flatMap((m) => streamMessage(m))]);

  it('reads the hello and every message, whatever the chunk boundaries', () => {
    for (const size of [1, 2, 3, 7, 64, 1000, 16 * 1024, stream.length]) {
      const { reader, got } = collector();
      for (let i = 0; i < stream.length; i += size) reader.push(stream.subarray(i, i + size));
      expect(got.hello, `chunks of ${size}`).toEqual(['w1-123']);
      expect(got.messages, `chunks of ${size}`).toEqual(messages);
    }
  });

  it('hands a small message of a big read over as its own copy, a large one as views of the read', () => {
    const small = streamMessage([Buffer.from('small')])[0]!;
    const big = Buffer.concat(streamMessage([bytes(60_000, 5)]));
    const chunk = Buffer.concat([small, big]);
    const frames: Buffer[][] = [];
    new StreamMessageReader({ onMessage: (f) => frames.push(f) }, () => OPEN, false).push(chunk);
    expect(frames[0]![0]!.toString()).toBe('small');
    expect(frames[0]![0]!.buffer).not.toBe(chunk.buffer); // copied: it does not keep the 60 KB read alive
    expect(frames[1]![0]!.buffer).toBe(chunk.buffer); // most of the read: no copy
    expect(frames[1]![0]!.equals(bytes(60_000, 5))).toBe(true);
  });

  it('writes big messages as header + frames without copying them', () => {
    const frame = bytes(20_000, 6);
    const out = streamMessage([Buffer.from('env'), frame]);
    expect(out).toHaveLength(3);
    expect(out[2]).toBe(frame);
    expect(streamMessage([Buffer.from('env'), bytes(100, 7)])).toHaveLength(1);
  });

  it('closes the stream on a foreign start, a bad hello and messages over the limits', () => {
    const tight: StreamLimits = { maxFrames: 4, maxFrameBytes: 1000, maxMessageBytes: 1500 };
    const cases: [string, Buffer, RegExp][] = [
      ['HTTP', Buffer.from('GET / HTTP/1.1\r\n'), /does not start with a tsray hello/],
      ['empty id', Buffer.from([0x74, 0x73, 0x53, 0x31, 0, 0]), /routing id of 0 bytes/],
      ['long id', Buffer.from([0x74, 0x73, 0x53, 0x31, 0xff, 0xff]), /routing id of 65535 bytes/],
      ['frames', Buffer.concat([streamHello('a'), ...streamMessage([1, 2, 3, 4, 5].map(() => Buffer.from('x')))]), /5 frames \(1 to 4\)/],
      ['no frames', Buffer.concat([streamHello('a'), Buffer.alloc(4)]), /0 frames/],
      ['frame', Buffer.concat([streamHello('a'), ...streamMessage([bytes(1001, 8)])]), /frame of 1001 bytes/],
      ['message', Buffer.concat([streamHello('a'), ...streamMessage([bytes(800, 9), bytes(800, 9)])]), /message of 1600 bytes/],
    ];
    for (const [name, input, why] of cases) {
      const { reader, got } = collector(tight);
      // The limit is checked on the header, before the body arrives: only the first bytes are needed.
      const head = name === 'frame' || name === 'message' ? input.subarray(0, 7 + 4 + 4 * 2) : input;
      expect(() => reader.push(head), name).toThrow(StreamFrameError);
      expect(() => collector(tight).reader.push(input), name).toThrow(why);
      expect(got.messages, name).toEqual([]);
    }
  });

  it('refuses to write a hello with an empty or over-long routing id', () => {
    expect(() => streamHello('')).toThrow(StreamFrameError);
    expect(() => streamHello('x'.repeat(256))).toThrow(StreamFrameError);
  });
});
