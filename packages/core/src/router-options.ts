/**
 * Socket options of the ROUTERs that take connections from the network (the GCS's, each node's), so
 * that what one unauthenticated TCP peer can push is bounded.
 * @internal
 */
import { DEFAULT_MAX_FRAME_BYTES } from '@tsray/protocol';

/** Complete messages libzmq queues per connection before it stops reading that connection. */
export const ROUTER_RECEIVE_HIGH_WATER_MARK = 1000;

/**
 * - `sendHighWaterMark: 0`: a ROUTER drops messages to a peer over its mark, and a dropped reply to a
 *   worker or node would hang it; replies to unregistered peers are bounded instead (one each, see
 *   UnregisteredPeers).
 * - `receiveHighWaterMark`: over the mark libzmq stops reading from that connection (TCP pushes back),
 *   it drops nothing, so the bound costs legitimate senders nothing.
 * - `maxMessageSize`: a frame over twice the decoder's limit disconnects its sender before libzmq
 *   allocates it; frames up to twice the limit still arrive and get the clear ERROR_CODE_TOO_LARGE reply.
 */
export function routerSocketOptions(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): {
  sendHighWaterMark: number;
  receiveHighWaterMark: number;
  maxMessageSize: number;
} {
  return { sendHighWaterMark: 0, receiveHighWaterMark: ROUTER_RECEIVE_HIGH_WATER_MARK, maxMessageSize: 2 * maxFrameBytes };
}
