/**
 * A bounded memory of connection ids (refused ones, closed ones) for the ROUTER sockets of the node
 * and the GCS: a peer that misbehaves is logged once, and the memory cannot grow without bound.
 * @internal
 */
import { ProtocolError, tsray } from '@tsray/protocol';

/** Most ids remembered; the oldest are forgotten first. */
export const MAX_REMEMBERED_PEERS = 10_000;

/** A set of connection ids with a size cap. */
export class PeerMemory {
  private readonly ids = new Set<string>();

  /** True when `id` is remembered. */
  has(id: string): boolean {
    return this.ids.size > 0 && this.ids.has(id);
  }

  /** Remember `id`; true the first time (log then), false when it was already there. */
  once(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > MAX_REMEMBERED_PEERS) this.ids.delete(this.ids.values().next().value!);
    return true;
  }
}

/** Most bytes of a binary connection id printed (in hex) in logs. */
const MAX_HEX_LABEL_BYTES = 32;

/**
 * A connection id (ROUTER identity) as a lossless map key: ids of raw peers are binary (libzmq's
 * 5 bytes, or up to 255 from a ZMTP 1.0 peer) and UTF-8 decoding would merge different ones.
 */
export function peerKey(identity: Buffer): string {
  return identity.toString('latin1');
}

/**
 * A connection id for a log line: as is when it is printable ASCII (the ids tsray's own sockets
 * choose; ZMTP limits ids to 255 bytes), else `0x` and the hex of its first
 * {@link MAX_HEX_LABEL_BYTES} bytes.
 */
export function peerLabel(identity: Buffer): string {
  if (identity.length > 0 && identity.every((b) => b >= 0x20 && b < 0x7f)) return identity.toString('latin1');
  const more = identity.length > MAX_HEX_LABEL_BYTES ? `...(${identity.length} bytes)` : '';
  return `0x${identity.subarray(0, MAX_HEX_LABEL_BYTES).toString('hex')}${more}`;
}

/** The ErrorReply code for an error raised while decoding or handling a message. */
export function errorCodeOf(err: unknown): tsray.v1.ErrorCode {
  return err instanceof ProtocolError ? err.code : tsray.v1.ErrorCode.ERROR_CODE_MALFORMED;
}
