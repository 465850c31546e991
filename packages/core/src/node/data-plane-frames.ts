/**
 * The frames of the bulk data plane (docs/security.md, "Bulk data plane"): one TCP connection per
 * session carries, each way, a stream of frames = 56-byte head ‖ envelope ‖ payload. The envelope is a
 * protobuf Envelope (a pull request, a chunk's header, a refusal), the payload a chunk's bytes.
 *
 * Head: magic (u32 BE 'tDP2'), counter (u64 BE as two u32), envelope bytes (u32), payload bytes (u32),
 * flags (u32; bit 0: sealed), envelope tag (16), payload tag (16). On a sealed session the envelope and
 * the payload are two AES-256-GCM messages under the direction's key: IVs 0 ‖ counter and 1 ‖ counter,
 * the head's first 24 bytes as the payload's associated data and those plus the payload's tag as the
 * envelope's, so nothing of a frame can be altered, cut or moved under another head. Counters start at 1
 * and rise by one per frame (the receiver takes only the next one: no replay, no drop, no reordering).
 * On a plain session (both ends on one host's loopback, where the bytes never reach a wire: the
 * issue's "loopback inside one machine may stay plain") the tags are zero and a chunk is checked by its
 * crc windows; the session is authenticated the same way (the hello, data-plane-server.ts).
 * @internal
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { gcmOpenInto, gcmSealInto } from '@tsray/object-store';
import { config } from '../config.js';

/** Bytes of a frame's head. */
export const FRAME_HEAD_BYTES = 56;
/** Bytes of the head that are the payload's associated data. */
const HEAD_AAD_BYTES = 24;
/** Bytes of each side's nonce in the key exchange. */
export const DATA_PLANE_NONCE_BYTES = 32;
/** Largest envelope of a frame (requests and chunk headers are far smaller). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
/** Bytes of the client's hello (session id ‖ HMAC) and of the server's answer (HMAC). */
export const CLIENT_HELLO_BYTES = 36;
export const SERVER_HELLO_BYTES = 32;
const MAGIC = 0x74_44_50_32; // 'tDP2'
const SEALED_FLAG = 1;
const ALGORITHM = 'aes-256-gcm';

/** The keys of one session: a key per direction and the hello's HMAC key. */
export interface SessionKeys {
  readonly toServer: Buffer;
  readonly toClient: Buffer;
  readonly hello: Buffer;
}

/**
 * A 32-byte key for one purpose of one link: HKDF-SHA256 of the cluster token, salted with fresh nonces
 * of both ends, `info` naming the purpose, the two ends and the direction (so no two links or directions
 * share a key, and a counter restarting in a new session never reuses an IV).
 */
export function sealingKey(token: string, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, salt, info, 32));
}

/**
 * The keys of a data-plane session between `client` and `server` (node ids): HKDF-SHA256 of the cluster
 * token, salted with both nonces (exchanged over the CURVE control link), naming both nodes.
 */
export function dataPlaneKeys(token: string, clientNonce: Uint8Array, serverNonce: Uint8Array, client: string, server: string): SessionKeys {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const key = (purpose: string): Buffer => sealingKey(token, salt, `tsray-data-v2|${purpose}|${client}|${server}`);
  return { toServer: key('to-server'), toClient: key('to-client'), hello: key('hello') };
}

/** True for an address of this host's loopback (127/8, ::1, and 127/8 mapped into IPv6). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || (isIPv4(v4) && v4.startsWith('127.'));
}

/**
 * Whether a session's frames are sealed: with CURVE on (the default), unless both ends of its connection
 * are on loopback and `TSRAY_SEAL_LOOPBACK` is off (the default). Each end decides from its own socket's
 * addresses, which name the same kernel connection, and the hello binds the choice.
 */
export function sessionSealed(local: string | undefined, remote: string | undefined): boolean {
  const c = config();
  return c.transportCurve && (c.sealLoopback || !(isLoopback(local) && isLoopback(remote)));
}

/** The hello proof of `role` for a session: HMAC-SHA256 of the session id and its sealing. */
export function helloProof(keys: SessionKeys, role: 'client' | 'server', session: number, sealed: boolean): Buffer {
  return createHmac('sha256', keys.hello)
    .update(`tsray-data-hello-v2|${role}|${session}|${sealed ? 'sealed' : 'plain'}`)
    .digest();
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(got: Buffer, expected: Buffer): boolean {
  return got.byteLength === expected.byteLength && timingSafeEqual(got, expected);
}

/** The fields of a frame's head. */
export interface FrameHead {
  readonly counter: number;
  readonly envelopeBytes: number;
  readonly payloadBytes: number;
  readonly sealed: boolean;
  /** The head's bytes (tags included). */
  readonly raw: Buffer;
}

/** Why a stream is unusable: a frame that is not the next one, or that does not open. */
export class FrameStreamError extends Error {}

function iv(kind: 0 | 1, counter: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(kind, 0);
  b.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  b.writeUInt32BE(counter >>> 0, 8);
  return b;
}

/** Writes the frames of one direction of a session: sealed under `key`, or plain (no key). */
export class FrameWriter {
  private counter = 0;

  constructor(private readonly key: Buffer | undefined) {}

  get sealed(): boolean {
    return this.key !== undefined;
  }

  /**
   * The next frame: its head and envelope in one buffer, and the payload to write after it — sealed into
   * `into` (at least the payload's length; reusable once the bytes were written) or, plain, `payload` itself.
   */
  frame(envelope: Uint8Array, payload?: Buffer, into?: Buffer): { head: Buffer; payload: Buffer | undefined } {
    if (envelope.byteLength > MAX_ENVELOPE_BYTES) throw new RangeError(`data plane: an envelope of ${envelope.byteLength} bytes`);
    const counter = ++this.counter;
    const out = Buffer.alloc(FRAME_HEAD_BYTES + envelope.byteLength);
    out.writeUInt32BE(MAGIC, 0);
    out.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
    out.writeUInt32BE(counter >>> 0, 8);
    out.writeUInt32BE(envelope.byteLength, 12);
    out.writeUInt32BE(payload?.byteLength ?? 0, 16);
    out.writeUInt32BE(this.key ? SEALED_FLAG : 0, 20);
    if (!this.key) {
      out.set(envelope, FRAME_HEAD_BYTES);
      return { head: out, payload };
    }
    let sealedPayload: Buffer | undefined;
    if (payload) {
      if (!into || into.byteLength < payload.byteLength) throw new RangeError('data plane: no sealing buffer for the payload');
      sealedPayload = into.subarray(0, payload.byteLength);
      gcmSealInto(this.key, iv(1, counter), out.subarray(0, HEAD_AAD_BYTES), payload, sealedPayload, out.subarray(40, 56));
    }
    const e = createCipheriv(ALGORITHM, this.key, iv(0, counter));
    e.setAAD(Buffer.concat([out.subarray(0, HEAD_AAD_BYTES), out.subarray(40, 56)]));
    const sealed = e.update(envelope);
    e.final();
    sealed.copy(out, FRAME_HEAD_BYTES);
    e.getAuthTag().copy(out, 24);
    return { head: out, payload: sealedPayload };
  }
}

/** Reads the frames of one direction of a session (see the module comment). */
export class FrameOpener {
  private last = 0;

  constructor(
    private readonly key: Buffer | undefined,
    private readonly maxPayload: number,
  ) {}

  /** The head's fields, or a {@link FrameStreamError}: not a frame, not the next counter, sizes out of bounds, another sealing. */
  head(raw: Buffer): FrameHead {
    if (raw.readUInt32BE(0) !== MAGIC) throw new FrameStreamError('data plane: the stream holds something that is not a frame');
    const counter = raw.readUInt32BE(4) * 2 ** 32 + raw.readUInt32BE(8);
    const envelopeBytes = raw.readUInt32BE(12);
    const payloadBytes = raw.readUInt32BE(16);
    const sealed = (raw.readUInt32BE(20) & SEALED_FLAG) !== 0;
    if (counter !== this.last + 1) throw new FrameStreamError(`data plane: frame ${counter} where ${this.last + 1} was next (replayed or dropped)`);
    if (sealed !== (this.key !== undefined)) throw new FrameStreamError('data plane: a frame sealed otherwise than its session');
    if (envelopeBytes > MAX_ENVELOPE_BYTES || payloadBytes > this.maxPayload)
      throw new FrameStreamError(`data plane: a frame of ${envelopeBytes} + ${payloadBytes} bytes (at most ${MAX_ENVELOPE_BYTES} + ${this.maxPayload})`);
    this.last = counter;
    return { counter, envelopeBytes, payloadBytes, sealed, raw: Buffer.from(raw) };
  }

  /** The envelope's bytes (opened when sealed); throws a {@link FrameStreamError} when its tag does not match. */
  envelope(h: FrameHead, bytes: Buffer): Buffer {
    if (!this.key) return bytes;
    const d = createDecipheriv(ALGORITHM, this.key, iv(0, h.counter));
    d.setAAD(Buffer.concat([h.raw.subarray(0, HEAD_AAD_BYTES), h.raw.subarray(40, 56)]));
    d.setAuthTag(h.raw.subarray(24, 40));
    try {
      return Buffer.concat([d.update(bytes), d.final()]);
    } catch {
      throw new FrameStreamError('data plane: a frame whose envelope does not match its seal (altered, or not from the session)');
    }
  }

  /** Open a sealed payload in place (plain: nothing to do); false when its tag does not match (then `bytes` holds garbage). */
  payloadInPlace(h: FrameHead, bytes: Buffer): boolean {
    if (!this.key) return true;
    return gcmOpenInto(this.key, iv(1, h.counter), h.raw.subarray(0, HEAD_AAD_BYTES), h.raw.subarray(40, 56), bytes, bytes);
  }
}
