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

/** The ErrorReply code for an error raised while decoding or handling a message. */
export function errorCodeOf(err: unknown): tsray.v1.ErrorCode {
  return err instanceof ProtocolError ? err.code : tsray.v1.ErrorCode.ERROR_CODE_MALFORMED;
}
