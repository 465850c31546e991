/**
 * The door of a ROUTER that takes connections from the network (the GCS's, each node's) for
 * connections that have not registered. A ROUTER cannot drop one TCP peer, so a connection that is
 * refused (bad token proof, a message before registering, an undecodable message) is closed by
 * ignoring everything it sends later: it gets one ErrorReply, and what the receiver keeps about it
 * (the closed ids, the log lines) is bounded.
 * @internal
 */
import { logger } from './logger.js';
import { LogLimiter } from './log-limiter.js';
import { PeerMemory, peerKey, peerLabel } from './peer-memory.js';

/** Closed unregistered connections of one ROUTER, with rate-limited logging. */
export class UnregisteredPeers {
  private readonly closed = new PeerMemory();
  private readonly limiter: LogLimiter;

  /** `where` names the receiver in the summary line ('GCS', 'node'). */
  constructor(where: string) {
    this.limiter = new LogLimiter({
      summary: (n, windowMs) =>
        logger().warn({ suppressed: n }, `${where}: ${n} more rejected connection${n === 1 ? '' : 's'} not logged in the last ${windowMs / 1000} s`),
    });
  }

  /** True when `identity` was closed: ignore what it sends. */
  isClosed(identity: Buffer): boolean {
    return this.closed.has(peerKey(identity));
  }

  /**
   * Close `identity` and log `msg` with `fields` (the peer's id escaped, rate-limited). True the first
   * time: the caller sends its one ErrorReply then.
   */
  refuse(identity: Buffer, fields: Record<string, unknown>, msg: string): boolean {
    if (!this.closed.once(peerKey(identity))) return false;
    this.limiter.log(() => logger().warn({ peer: peerLabel(identity), ...fields }, msg));
    return true;
  }
}
