/**
 * Bytes and messages a socket received and sent, in total and per message kind: the GCS's control
 * plane cost as `GcsServer.stats()` shows it (bench/scale reads it, tests assert on it).
 * @internal
 */

/** Totals of one direction: per message kind, and all kinds together. */
export interface TrafficTotals {
  messages: number;
  bytes: number;
  /** Message kind (the envelope's body, e.g. `nodeHeartbeat`) → its messages and bytes. */
  byKind: Record<string, { messages: number; bytes: number }>;
}

/** Monotonic counters of a socket's traffic (never reset; readers take differences). */
export class TrafficCounters {
  readonly in: TrafficTotals = { messages: 0, bytes: 0, byKind: {} };
  readonly out: TrafficTotals = { messages: 0, bytes: 0, byKind: {} };

  /** Count one message of `bytes` bytes (all its frames but the routing id) of `kind`. */
  count(direction: 'in' | 'out', kind: string, bytes: number): void {
    const t = this[direction];
    t.messages++;
    t.bytes += bytes;
    const k = (t.byKind[kind] ??= { messages: 0, bytes: 0 });
    k.messages++;
    k.bytes += bytes;
  }

  /** A copy of the counters now (safe to keep while they go on counting). */
  snapshot(): { in: TrafficTotals; out: TrafficTotals } {
    return structuredClone({ in: this.in, out: this.out });
  }
}

/** Total length of `frames`. */
export function framesBytes(frames: readonly Uint8Array[], from = 0): number {
  let n = 0;
  for (let i = from; i < frames.length; i++) n += frames[i]!.length;
  return n;
}
