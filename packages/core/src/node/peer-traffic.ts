/**
 * Bytes this node sent to and received from each peer node (payload frames: object data, task
 * arguments), so a test or an operator can see which way an object travelled: a result made on node B
 * and consumed on node C shows up as B → C only, not B → owner → C.
 * @internal
 */

/** Byte counters per peer node. */
export class PeerTraffic {
  private readonly sent = new Map<string, number>();
  private readonly received = new Map<string, number>();

  /** Count `bytes` sent to (`out`) or received from (`in`) node `peer`. */
  add(peer: string, dir: 'in' | 'out', bytes: number): void {
    if (bytes <= 0 || !peer) return;
    const m = dir === 'out' ? this.sent : this.received;
    m.set(peer, (m.get(peer) ?? 0) + bytes);
  }

  /** Count the payload frames of a message (every frame after the envelope). */
  addFrames(peer: string, dir: 'in' | 'out', frames: readonly Uint8Array[] | undefined): void {
    if (!frames) return;
    let n = 0;
    for (const f of frames) n += f.byteLength;
    this.add(peer, dir, n);
  }

  /** Totals by peer node id: `{ sent: { B: 123 }, received: { C: 456 } }`. */
  snapshot(): { sent: Record<string, number>; received: Record<string, number> } {
    return { sent: Object.fromEntries(this.sent), received: Object.fromEntries(this.received) };
  }
}
