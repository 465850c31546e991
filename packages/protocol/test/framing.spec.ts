import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_FRAME_BYTES,
  InvalidMessageBodyError,
  MalformedMessageError,
  MessageTooLargeError,
  PROTOCOL_VERSION,
  ProtocolError,
  ProtocolVersionError,
  UnknownMessageError,
  decodeMessage,
  encodeMessage,
  payloadBytes,
  tsray,
  type EnvelopeBody,
} from '../src/index.js';

const E = tsray.v1.Envelope;

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('encodeMessage / decodeMessage', () => {
  it('puts the version and body in frame 0 and the payloads after it, uncopied', () => {
    const big = Buffer.alloc(100_000, 7);
    const small = new Uint8Array([1, 2, 3]);
    const frames = encodeMessage({ putObjects: { objects: [{ objectId: 'o1', inline: { frame: 0, offset: 1, length: 2 }, size: 2 ** 40 }] } }, [small, big]);
    expect(frames).toHaveLength(3);
    expect(frames[2]).toBe(big);
    expect(frames[1]!.buffer).toBe(small.buffer);
    const head = E.decode(frames[0]!);
    expect(head.version).toBe(PROTOCOL_VERSION);

    const msg = decodeMessage(frames);
    expect(msg.kind).toBe('putObjects');
    expect(msg.envelope.body).toBe('putObjects');
    const obj = msg.envelope.putObjects!.objects![0]!;
    expect(obj.size).toBe(2 ** 40); // a number, not a Long
    expect(typeof obj.inline!.offset).toBe('number');
    expect(msg.payloads[1]).toBe(big);
    expect([...payloadBytes(obj.inline!, msg.payloads)]).toEqual([2, 3]);
  });

  it('rejects a body without exactly one known message', () => {
    expect(() => encodeMessage({} as EnvelopeBody)).toThrow(InvalidMessageBodyError);
    const both = { shutdown: { reason: 'a' }, cancelTask: { taskId: 't' } } as unknown as EnvelopeBody;
    expect(() => encodeMessage(both)).toThrow(/both cancelTask and shutdown/);
  });

  it('reports a version mismatch with the exact message', () => {
    const frame = Buffer.from(E.encode({ version: 2, shutdown: { reason: 'x' } }).finish());
    const err = catchError(() => decodeMessage([frame]));
    expect(err).toBeInstanceOf(ProtocolVersionError);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toBe('peer speaks protocol version 2, this is 1');
    expect((err as ProtocolVersionError).peerVersion).toBe(2);
    expect((err as ProtocolVersionError).code).toBe(tsray.v1.ErrorCode.ERROR_CODE_VERSION_MISMATCH);
    expect((err as Error).name).toBe('ProtocolVersionError');
  });

  it('reports a missing version as version 0', () => {
    const frame = Buffer.from(E.encode({ shutdown: { reason: 'x' } }).finish());
    expect(() => decodeMessage([frame])).toThrow('peer speaks protocol version 0, this is 1');
  });

  it('reports the version of a newer peer even when the rest of its envelope does not parse', () => {
    const frame = Buffer.concat([Buffer.from(E.encode({ version: 7 }).finish()), Buffer.from([0xff, 0xff, 0xff])]);
    expect(() => decodeMessage([frame])).toThrow('peer speaks protocol version 7, this is 1');
  });

  it('rejects a truncated envelope as malformed', () => {
    const [head] = encodeMessage({ executeTasks: { tasks: [{ taskId: 'task-1', returnIds: ['r1', 'r2'] }] } });
    for (const cut of [1, 3, head!.length - 1]) {
      const err = catchError(() => decodeMessage([head!.subarray(0, cut)]));
      expect(err).toBeInstanceOf(MalformedMessageError);
      expect((err as MalformedMessageError).code).toBe(tsray.v1.ErrorCode.ERROR_CODE_MALFORMED);
    }
  });

  it('rejects a message without frames as malformed', () => {
    expect(() => decodeMessage([])).toThrow(MalformedMessageError);
  });

  it('rejects frames over the limit', () => {
    const frames = encodeMessage({ shutdown: { reason: 'bye' } }, [Buffer.alloc(10), Buffer.alloc(64)]);
    const err = catchError(() => decodeMessage(frames, { maxFrameBytes: 32 }));
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect((err as MessageTooLargeError).frameIndex).toBe(2);
    expect((err as MessageTooLargeError).size).toBe(64);
    expect((err as MessageTooLargeError).limit).toBe(32);
    expect(() => decodeMessage(frames, { maxFrameBytes: 64 })).not.toThrow();
    expect(() => decodeMessage(frames, { maxFrameBytes: 4 })).toThrow(/frame 0 .* over the limit of 4 bytes/);
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(256 * 1024 * 1024);
  });

  it('rejects an envelope with an empty or unknown body', () => {
    const empty = Buffer.from(E.encode({ version: PROTOCOL_VERSION }).finish());
    expect(() => decodeMessage([empty])).toThrow(UnknownMessageError);
    // A body field from a future release (field 99, length-delimited, 2 bytes).
    const future = Buffer.concat([empty, Buffer.from([0x9a, 0x06, 0x02, 0x08, 0x01])]);
    const err = catchError(() => decodeMessage([future]));
    expect(err).toBeInstanceOf(UnknownMessageError);
    expect((err as UnknownMessageError).code).toBe(tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE);
  });

  it('accepts plain Uint8Array frames and returns Buffer views of them', () => {
    const frames = encodeMessage({ refUpdates: { add: ['a'], pin: ['p'] } }, [new Uint8Array([9])]);
    const asU8 = frames.map((f) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    const msg = decodeMessage(asU8);
    expect(msg.envelope.refUpdates!.pin).toEqual(['p']);
    expect(Buffer.isBuffer(msg.payloads[0])).toBe(true);
    expect(msg.payloads[0]!.buffer).toBe(asU8[1]!.buffer);
  });
});

describe('payloadBytes', () => {
  it('returns a view, not a copy', () => {
    const frame = Buffer.from('hello world');
    const view = payloadBytes({ frame: 0, offset: 6, length: 5 }, [frame]);
    expect(view.toString()).toBe('world');
    frame[6] = 'W'.charCodeAt(0);
    expect(view.toString()).toBe('World');
  });

  it('treats unset fields as 0', () => {
    expect(payloadBytes({}, [Buffer.from('x')]).length).toBe(0);
  });

  it('rejects descriptors outside the frames', () => {
    expect(() => payloadBytes({ frame: 1, length: 1 }, [Buffer.alloc(4)])).toThrow(MalformedMessageError);
    expect(() => payloadBytes({ frame: 0, offset: 3, length: 2 }, [Buffer.alloc(4)])).toThrow(/outside payload frame 0 \(4 bytes\)/);
  });
});
