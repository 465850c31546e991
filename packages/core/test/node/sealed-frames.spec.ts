/** The data plane's sealing: what opens, and everything that must not (altered, replayed, re-framed, foreign). */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Opener, Sealer, dataPlaneKeys, sealedSession, SEALED_HEADER_BYTES } from '../../src/node/sealed-frames.js';

const TOKEN = 'a-cluster-token';
const SESSION = 0x01020304;

function pair(session = SESSION) {
  const nc = randomBytes(32);
  const ns = randomBytes(32);
  const k = dataPlaneKeys(TOKEN, nc, ns, 'node-c', 'node-b');
  return { sealer: new Sealer(k.toServer, session), opener: new Opener(k.toServer, session), keys: k, nc, ns };
}

/** Open `m` and its payload (into a fresh buffer): [envelope, payload or undefined], or undefined. */
function openAll(opener: Opener, m: Buffer[]): [Buffer, Buffer | undefined] | undefined | 'payload-refused' {
  const o = opener.open(m);
  if (!o) return undefined;
  if (!o.payload) return [o.envelope, undefined];
  const dst = Buffer.alloc(o.payload.length);
  return o.payload.openInto(dst) ? [o.envelope, dst] : 'payload-refused';
}

describe('sealed frames', () => {
  it('opens what the other end sealed, the payload straight into a buffer; no plaintext in the sealed bytes', () => {
    const { sealer, opener } = pair();
    const envelope = Buffer.from('an envelope');
    const payload = randomBytes(3 * 1024 * 1024 + 5);
    const sealed = sealer.seal(envelope, payload);
    expect(sealed.map((f) => f.byteLength)).toEqual([SEALED_HEADER_BYTES, envelope.length, payload.length]);
    expect(sealedSession(sealed)).toBe(SESSION);
    expect(sealed[2]!.includes(payload.subarray(1000, 1032))).toBe(false);
    expect(sealed[1]!.includes(Buffer.from('envelope'))).toBe(false);
    const got = openAll(opener, sealed) as [Buffer, Buffer];
    expect(got[0].equals(envelope) && got[1].equals(payload)).toBe(true);
    expect(openAll(opener, sealer.seal(Buffer.from('no payload')))).toEqual([Buffer.from('no payload'), undefined]);
  });

  it('refuses an altered byte or tag, a replay and an older counter', () => {
    const { sealer, opener } = pair();
    const m1 = sealer.seal(Buffer.from('one'), Buffer.from('payload one'));
    const m2 = sealer.seal(Buffer.from('two'), Buffer.from('payload two'));
    const copy = (m: Buffer[]) => m.map((f) => Buffer.from(f));
    const altered = copy(m1);
    altered[1]![0]! ^= 1;
    expect(openAll(opener, altered)).toBeUndefined();
    const badTag = copy(m1);
    badTag[0]![20]! ^= 1;
    expect(openAll(opener, badTag)).toBeUndefined();
    // A payload tag changed: the envelope's associated data covers it, so nothing opens.
    const badPayloadTag = copy(m1);
    badPayloadTag[0]![40]! ^= 1;
    expect(openAll(opener, badPayloadTag)).toBeUndefined();
    // An altered payload byte: the envelope opens, the payload does not.
    const alteredPayload = copy(m1);
    alteredPayload[2]![3]! ^= 1;
    expect(openAll(opener, alteredPayload)).toBe('payload-refused');
    expect(openAll(opener, m2)?.[0]).toEqual(Buffer.from('two'));
    expect(openAll(opener, m2)).toBeUndefined(); // replay
    expect(openAll(opener, m1)).toBeUndefined(); // an older counter
  });

  it('refuses a payload moved to another message, dropped, or cut', () => {
    const { sealer, opener } = pair();
    const m1 = sealer.seal(Buffer.from('one'), Buffer.from('first payload'));
    const m2 = sealer.seal(Buffer.from('two'), Buffer.from('other payload'));
    const m3 = sealer.seal(Buffer.from('three'), Buffer.from('third payload'));
    expect(openAll(opener, [m2[0]!, m2[1]!])).toBeUndefined(); // payload dropped
    expect(openAll(opener, [m2[0]!, m2[1]!, m2[2]!.subarray(1)])).toBeUndefined(); // payload cut
    // m1's payload (same length) under m2's envelope: the envelope opens, the payload does not.
    expect(openAll(opener, [m2[0]!, m2[1]!, m1[2]!])).toBe('payload-refused');
    expect(openAll(opener, m3)?.[1]).toEqual(Buffer.from('third payload'));
  });

  it('refuses another session, the other direction, and keys from other nonces, nodes or token', () => {
    const { sealer, keys, nc, ns } = pair();
    const m = sealer.seal(Buffer.from('x'));
    expect(new Opener(keys.toServer, SESSION + 1).open(m)).toBeUndefined();
    expect(new Opener(keys.toClient, SESSION).open(m)).toBeUndefined();
    for (const k of [
      dataPlaneKeys(TOKEN, randomBytes(32), ns, 'node-c', 'node-b'),
      dataPlaneKeys(TOKEN, nc, ns, 'node-d', 'node-b'),
      dataPlaneKeys('another-token', nc, ns, 'node-c', 'node-b'),
    ]) {
      expect(new Opener(k.toServer, SESSION).open(m)).toBeUndefined();
    }
    expect(new Opener(keys.toServer, SESSION).open([Buffer.from('not a header'), Buffer.from('x')])).toBeUndefined();
    expect(sealedSession([Buffer.from('short')])).toBeUndefined();
  });
});
