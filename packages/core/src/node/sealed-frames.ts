/**
 * Sealing of the bulk data plane's messages (docs/security.md, "Bulk data plane"): each message is
 * AES-256-GCM under a per-session, per-direction key, so the plain data socket carries no plaintext
 * and a message that was not sealed by the other end of the session is refused.
 *
 * Sealed message = `[header][sealed envelope]` or `[header][sealed envelope][sealed payload]`, header =
 * session id (u32 BE) ‖ counter (u64 BE) ‖ envelope tag (16) ‖ payload tag (16). The envelope and the
 * payload are two GCM messages so that the receiver can read the envelope (which object, which
 * offset) before it opens the payload straight into its place in the arena (`gcmOpenInto`, no copy).
 * IVs: session ‖ counter for the envelope, the same with the counter's top bit set for the payload
 * (unique per key: one counter per direction). The payload's associated data is its IV and length; the
 * envelope's is both lengths and the payload's tag, which binds the two together. The receiver takes a
 * counter only above the last one it opened (no replay, no reordering; one ZeroMQ connection keeps
 * order).
 * @internal
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { gcmOpenInto, gcmSealInto } from '@tsray/object-store';

/** Bytes of a sealed message's header frame. */
export const SEALED_HEADER_BYTES = 44;
/** Bytes of each side's nonce in the key exchange. */
export const DATA_PLANE_NONCE_BYTES = 32;
const ALGORITHM = 'aes-256-gcm';
/** Set in the counter's high word for the payload's IV. */
const PAYLOAD_BIT = 0x8000_0000;

/** The two keys of one session: client → server and server → client. */
export interface SessionKeys {
  readonly toServer: Buffer;
  readonly toClient: Buffer;
}

/**
 * The keys of a data-plane session between `client` and `server` (node ids): HKDF-SHA256 of the
 * cluster token, salted with both nonces (exchanged over the encrypted control link), one key per
 * direction, both naming the two nodes.
 */
export function dataPlaneKeys(token: string, clientNonce: Uint8Array, serverNonce: Uint8Array, client: string, server: string): SessionKeys {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const key = (dir: string): Buffer => sealingKey(token, salt, `tsray-data-v1|${dir}|${client}|${server}`);
  return { toServer: key('to-server'), toClient: key('to-client') };
}

/**
 * A 32-byte AES-256-GCM key for one direction of one link: HKDF-SHA256 of the cluster token, salted
 * with fresh nonces of both ends, `info` naming the purpose, the two ends and the direction (so no two
 * links or directions share a key, and a counter restarting in a new session never reuses an IV).
 */
export function sealingKey(token: string, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, salt, info, 32));
}

/** The payload's IV: the envelope's with the counter's top bit set. */
function payloadIv(header: Buffer): Buffer {
  const iv = Buffer.from(header.subarray(0, 12));
  iv.writeUInt32BE((iv.readUInt32BE(4) | PAYLOAD_BIT) >>> 0, 4);
  return iv;
}

/** Associated data of the payload: its IV and length. */
function payloadAad(iv: Buffer, length: number): Buffer {
  const aad = Buffer.allocUnsafe(16);
  iv.copy(aad, 0);
  aad.writeUInt32BE(length, 12);
  return aad;
}

/** Associated data of the envelope: both lengths (u32 BE; payload 0xffffffff when absent) and the payload's tag. */
function envelopeAad(envelopeLength: number, payloadLength: number | undefined, header: Buffer): Buffer {
  const aad = Buffer.allocUnsafe(24);
  aad.writeUInt32BE(envelopeLength, 0);
  aad.writeUInt32BE(payloadLength ?? 0xffff_ffff, 4);
  header.copy(aad, 8, 28, 44);
  return aad;
}

/** Seals the messages of one direction of a session. */
export class Sealer {
  private counter = 0;

  constructor(
    private readonly key: Buffer,
    private readonly session: number,
  ) {}

  /** The sealed message of an envelope and at most one payload frame (header first). */
  seal(envelope: Uint8Array, payload?: Uint8Array): Buffer[] {
    this.counter++;
    const header = Buffer.alloc(SEALED_HEADER_BYTES);
    header.writeUInt32BE(this.session, 0);
    header.writeUInt32BE(Math.floor(this.counter / 2 ** 32), 4);
    header.writeUInt32BE(this.counter >>> 0, 8);
    const out = [header, Buffer.alloc(0)];
    if (payload) {
      // Natively into one new buffer, tag straight into the header: node:crypto's Cipher.update runs
      // 1.5–3× slower on large payloads (bench/collective/gcm-speed.mjs).
      const iv = payloadIv(header);
      const sealed = Buffer.allocUnsafeSlow(payload.byteLength);
      const src = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      gcmSealInto(this.key, iv, payloadAad(iv, payload.byteLength), src, sealed, header.subarray(28, 44));
      out.push(sealed);
    }
    const e = createCipheriv(ALGORITHM, this.key, header.subarray(0, 12));
    e.setAAD(envelopeAad(envelope.byteLength, payload?.byteLength, header));
    out[1] = Buffer.concat([e.update(envelope), e.final()]);
    e.getAuthTag().copy(header, 12);
    return out;
  }
}

/** The session id a sealed message names, or undefined when its first frame is not a header. */
export function sealedSession(frames: readonly Buffer[]): number | undefined {
  const h = frames[0];
  return h && h.byteLength === SEALED_HEADER_BYTES ? h.readUInt32BE(0) : undefined;
}

/** A sealed payload whose envelope opened: its length, and the open into a place of the caller's. */
export class SealedPayload {
  constructor(
    private readonly key: Buffer,
    private readonly header: Buffer,
    private readonly sealed: Buffer,
  ) {}

  get length(): number {
    return this.sealed.byteLength;
  }

  /** Decrypt into `dst` (at least {@link length} bytes); false when the tag does not match (then `dst` holds garbage). */
  openInto(dst: Buffer): boolean {
    const iv = payloadIv(this.header);
    return gcmOpenInto(this.key, iv, payloadAad(iv, this.sealed.byteLength), this.header.subarray(28, 44), this.sealed, dst);
  }
}

/** An opened message: the envelope's bytes, and the payload still sealed (opened where it goes). */
export interface OpenedMessage {
  envelope: Buffer;
  payload: SealedPayload | undefined;
}

/** Opens the messages of one direction of a session. */
export class Opener {
  private last = 0;

  constructor(
    private readonly key: Buffer,
    private readonly session: number,
  ) {}

  /**
   * The envelope of a message from the other end of this session, with its payload ready to open; or
   * undefined: another session, a counter not above the last one opened (a replay), frames that do not
   * fit the format, or an envelope tag that does not match (altered, truncated, another key, or a
   * payload swapped in from another message).
   */
  open(frames: readonly Buffer[]): OpenedMessage | undefined {
    const header = frames[0];
    if (!header || header.byteLength !== SEALED_HEADER_BYTES || frames.length < 2 || frames.length > 3) return undefined;
    if (header.readUInt32BE(0) !== this.session) return undefined;
    const high = header.readUInt32BE(4);
    const counter = high * 2 ** 32 + header.readUInt32BE(8);
    if (high & PAYLOAD_BIT || counter <= this.last) return undefined;
    const sealedEnvelope = frames[1]!;
    const payload = frames[2];
    const d = createDecipheriv(ALGORITHM, this.key, header.subarray(0, 12));
    d.setAAD(envelopeAad(sealedEnvelope.byteLength, payload?.byteLength, header));
    d.setAuthTag(header.subarray(12, 28));
    let envelope: Buffer;
    try {
      envelope = Buffer.concat([d.update(sealedEnvelope), d.final()]);
    } catch {
      return undefined;
    }
    this.last = counter;
    return { envelope, payload: payload ? new SealedPayload(this.key, header, payload) : undefined };
  }
}
