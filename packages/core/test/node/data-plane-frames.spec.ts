/**
 * The data plane's frames and their reader: what opens (sealed and plain), everything that must not
 * (altered, replayed, dropped, foreign, sealed otherwise), which sessions are sealed, and a stream read
 * in pieces of any size landing each payload in the buffer its envelope chose.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { resetConfig } from '../../src/config.js';
import {
  FRAME_HEAD_BYTES,
  FrameOpener,
  FrameStreamError,
  FrameWriter,
  dataPlaneKeys,
  helloProof,
  isLoopback,
  sessionSealed,
} from '../../src/node/data-plane-frames.js';
import { FrameStreamReader } from '../../src/node/data-plane-stream.js';

const TOKEN = 'a-cluster-token';
const MAX = 4 * 1024 * 1024;

function keys() {
  return dataPlaneKeys(TOKEN, randomBytes(32), randomBytes(32), 'node-c', 'node-b');
}

/** A frame as written on the wire (head ‖ envelope ‖ payload). */
function wire(w: FrameWriter, envelope: Buffer, payload?: Buffer): Buffer {
  const f = w.frame(envelope, payload, payload ? Buffer.alloc(payload.length) : undefined);
  return Buffer.concat(f.payload ? [f.head, f.payload] : [f.head]);
}

/** Read one frame from `bytes` with `o`: [envelope, payload opened in place] or the error. */
function readOne(o: FrameOpener, bytes: Buffer): [Buffer, Buffer] | Error {
  try {
    const h = o.head(bytes.subarray(0, FRAME_HEAD_BYTES));
    const env = o.envelope(h, Buffer.from(bytes.subarray(FRAME_HEAD_BYTES, FRAME_HEAD_BYTES + h.envelopeBytes)));
    const payload = Buffer.from(bytes.subarray(FRAME_HEAD_BYTES + h.envelopeBytes));
    return h.payloadBytes === 0 || o.payloadInPlace(h, payload) ? [env, payload] : new Error('payload refused');
  } catch (err) {
    return err as Error;
  }
}

describe('data plane frames', () => {
  afterEach(() => {
    delete process.env['TSRAY_SEAL_LOOPBACK'];
    delete process.env['TSRAY_TRANSPORT_CURVE'];
    resetConfig();
  });

  it('a sealed frame opens (its payload in place); none of its plaintext is on the wire', () => {
    const k = keys();
    const w = new FrameWriter(k.toServer);
    const o = new FrameOpener(k.toServer, MAX);
    const envelope = Buffer.from('an envelope naming the chunk');
    const payload = randomBytes(3 * 1024 * 1024 + 5);
    const bytes = wire(w, envelope, payload);
    expect(bytes.length).toBe(FRAME_HEAD_BYTES + envelope.length + payload.length);
    expect(bytes.includes(payload.subarray(1000, 1032))).toBe(false);
    expect(bytes.includes(Buffer.from('envelope'))).toBe(false);
    const [env, got] = readOne(o, bytes) as [Buffer, Buffer];
    expect(env.equals(envelope) && got.equals(payload)).toBe(true);
    expect(readOne(o, wire(w, Buffer.from('no payload')))).toEqual([Buffer.from('no payload'), Buffer.alloc(0)]);
  });

  it('refuses an altered envelope, head or payload, a replayed or skipped frame, another key, and a frame sealed otherwise', () => {
    const k = keys();
    const frames = () => {
      const w = new FrameWriter(k.toServer);
      return [wire(w, Buffer.from('one'), randomBytes(64)), wire(w, Buffer.from('two'), randomBytes(64)), wire(w, Buffer.from('three'))];
    };
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at]! ^= 1;
      return c;
    };
    const [one, two] = frames();
    const open = () => new FrameOpener(k.toServer, MAX);
    expect(readOne(open(), flip(one!, FRAME_HEAD_BYTES + 1))).toBeInstanceOf(FrameStreamError); // envelope
    expect(readOne(open(), flip(one!, 16))).toBeInstanceOf(FrameStreamError); // head: payload length
    expect(readOne(open(), flip(one!, 45))).toBeInstanceOf(FrameStreamError); // payload tag (bound into the envelope's)
    expect(readOne(open(), flip(one!, one!.length - 1))).toEqual(new Error('payload refused')); // payload byte
    const o = open();
    expect(readOne(o, one!)).not.toBeInstanceOf(Error);
    expect(readOne(o, one!)).toBeInstanceOf(FrameStreamError); // replayed
    expect(readOne(open(), two!)).toBeInstanceOf(FrameStreamError); // frame 2 first: 1 was dropped
    expect(readOne(new FrameOpener(k.toClient, MAX), one!)).toBeInstanceOf(FrameStreamError); // the other direction's key
    expect(readOne(new FrameOpener(keys().toServer, MAX), one!)).toBeInstanceOf(FrameStreamError); // another session's
    expect(readOne(new FrameOpener(undefined, MAX), one!)).toBeInstanceOf(FrameStreamError); // sealed, on a plain session
    const plain = wire(new FrameWriter(undefined), Buffer.from('p'), randomBytes(8));
    expect(readOne(open(), plain)).toBeInstanceOf(FrameStreamError); // plain, on a sealed session
    expect(readOne(new FrameOpener(k.toServer, 63), one!)).toBeInstanceOf(FrameStreamError); // over the payload bound
    expect(readOne(open(), Buffer.alloc(FRAME_HEAD_BYTES))).toBeInstanceOf(FrameStreamError); // not a frame
  });

  it('plain frames carry their bytes as they are; the hello proof names the role, the session and its sealing', () => {
    const o = new FrameOpener(undefined, MAX);
    const payload = randomBytes(100);
    const bytes = wire(new FrameWriter(undefined), Buffer.from('env'), payload);
    expect(bytes.includes(payload)).toBe(true);
    expect(readOne(o, bytes)).toEqual([Buffer.from('env'), payload]);
    const k = keys();
    const proofs = [helloProof(k, 'client', 7, true), helloProof(k, 'server', 7, true), helloProof(k, 'client', 8, true), helloProof(k, 'client', 7, false)];
    expect(new Set(proofs.map((p) => p.toString('hex'))).size).toBe(4);
    expect(helloProof(keys(), 'client', 7, true).equals(proofs[0]!)).toBe(false);
  });

  it('sessions on one host’s loopback are plain unless TSRAY_SEAL_LOOPBACK; every other one is sealed while CURVE is on', () => {
    expect(['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['10.0.0.1', '::ffff:10.0.0.1', 'fe80::1', '', undefined].map(isLoopback)).toEqual([false, false, false, false, false]);
    expect(sessionSealed('127.0.0.1', '127.0.0.1')).toBe(false);
    expect(sessionSealed('10.1.0.2', '10.1.0.1')).toBe(true);
    expect(sessionSealed('127.0.0.1', '10.1.0.1')).toBe(true);
    process.env['TSRAY_SEAL_LOOPBACK'] = '1';
    resetConfig();
    expect(sessionSealed('127.0.0.1', '127.0.0.1')).toBe(true);
    process.env['TSRAY_TRANSPORT_CURVE'] = '0';
    resetConfig();
    expect(sessionSealed('10.1.0.2', '10.1.0.1')).toBe(false);
  });
});

describe('data plane stream reader', () => {
  it('reads a hello and frames cut at any size; each payload lands in the buffer its envelope chose, unwanted ones are dropped', () => {
    const k = keys();
    const w = new FrameWriter(k.toClient);
    const payloads = [randomBytes(300_000), randomBytes(1), randomBytes(70_000), randomBytes(5000)];
    const stream = Buffer.concat([
      Buffer.from('HELLO'),
      ...payloads.map((p, i) => wire(w, Buffer.from(i === 2 ? 'drop' : `keep ${i}`), p)),
      wire(w, Buffer.from('no payload')),
    ]);
    for (const cut of [1, 7, 4096, 65_536, stream.length]) {
      const got: string[] = [];
      const landed: Buffer[] = [];
      let hello = '';
      const places = new Map<number, Buffer>();
      const opener = new FrameOpener(k.toClient, MAX);
      const reader = new FrameStreamReader(
        () => opener,
        {
          hello: (b) => void (hello = b.toString()),
          envelope: (h, env) => {
            got.push(env.toString());
            if (env.toString() === 'drop' || h.payloadBytes === 0) return undefined;
            const place = Buffer.alloc(h.payloadBytes);
            places.set(h.counter, place);
            return place;
          },
          payload: (h, dst) => {
            expect(dst).toBe(places.get(h.counter));
            expect(opener.payloadInPlace(h, dst)).toBe(true);
            landed.push(dst);
          },
          broken: (err) => {
            throw err;
          },
        },
        5,
        () => undefined,
      );
      for (let at = 0; at < stream.length; at += cut) reader.feed(stream.subarray(at, at + cut));
      expect(hello).toBe('HELLO');
      expect(got).toEqual(['keep 0', 'keep 1', 'drop', 'keep 3', 'no payload']);
      expect(landed.map((b) => b.toString('hex'))).toEqual([payloads[0], payloads[1], payloads[3]].map((b) => b!.toString('hex')));
    }
  });

  it('a frame that does not open, or a handler that refuses, breaks the stream once and destroys the socket', () => {
    const k = keys();
    const bad = wire(new FrameWriter(k.toServer), Buffer.from('x'));
    const cases: [string, Buffer, () => never | undefined][] = [
      ['another key', bad, () => undefined],
      [
        'refused',
        wire(new FrameWriter(k.toClient), Buffer.from('x')),
        () => {
          throw new FrameStreamError('refused by the handler');
        },
      ],
    ];
    for (const [name, frame, onEnvelope] of cases) {
      const broken: string[] = [];
      let destroyed = 0;
      const reader = new FrameStreamReader(
        () => new FrameOpener(k.toClient, MAX),
        { hello: () => undefined, envelope: onEnvelope, payload: () => undefined, broken: (e) => void broken.push(e.message) },
        1,
        () => void destroyed++,
      );
      reader.feed(Buffer.concat([Buffer.from('h'), frame, frame, randomBytes(1000)]));
      expect([name, broken.length, destroyed]).toEqual([name, 1, 1]);
    }
  });
});
