/**
 * Cluster token proofs. A connection proves it knows the cluster token without sending it:
 * `HMAC-SHA256(token, "tsray-auth-v2|" + kind + "|" + audience + "|" + id + "|" + time + "|" + nonce)`.
 * - `kind` is the message the proof is for (`RegisterNode`, `RegisterWorker`, `ClusterEntry`,
 *   `ClusterDashboard`): a proof for one cannot be used as another;
 * - `audience` is the receiver: `gcs` for the head's GCS (one per cluster), the node id for a node: a
 *   proof one node received cannot be replayed to another node, nor to the GCS;
 * - `id` is the connection's routing id; the receiver accepts a time within {@link AUTH_WINDOW_MS} of
 *   its clock and never accepts a nonce twice, so the same receiver cannot be replayed to either.
 * On tcp the proof also travels inside CURVE (curve.ts), so it is never on the wire in the clear.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How far a proof's timestamp may be from the receiver's clock. */
export const AUTH_WINDOW_MS = 5 * 60_000;

/** The audience of proofs for the head's GCS. */
export const GCS_AUDIENCE = 'gcs';

/** The message a proof is for. */
export type ProofKind = 'RegisterNode' | 'RegisterWorker' | 'ClusterEntry' | 'ClusterDashboard';

/** A proof of the cluster token for the connection `id`. */
export interface TokenProof {
  authProof: Buffer;
  authTime: number;
  authNonce: string;
}

/** What a proof is bound to: the message, the receiver and the connection. */
export interface ProofBinding {
  kind: ProofKind;
  /** {@link GCS_AUDIENCE}, or the receiving node's id. */
  audience: string;
  /** The connection's routing id. */
  id: string;
}

/** Most nonces remembered; older ones are forgotten first (they are outside the time window by then). */
const MAX_NONCES = 100_000;

function mac(token: string, b: ProofBinding, time: number, nonce: string): Buffer {
  return createHmac('sha256', token).update(`tsray-auth-v2|${b.kind}|${b.audience}|${b.id}|${time}|${nonce}`).digest();
}

/** Make a fresh proof for `binding`. */
export function makeTokenProof(token: string, binding: ProofBinding): TokenProof {
  const authTime = Date.now();
  const authNonce = randomBytes(12).toString('hex');
  return { authProof: mac(token, binding, authTime, authNonce), authTime, authNonce };
}

/** Checks proofs addressed to one receiver and remembers the nonces it accepted (replays are refused). */
export class TokenVerifier {
  private readonly seen = new Map<string, number>();

  /** `audience`: this receiver ({@link GCS_AUDIENCE} or the node's id). */
  constructor(
    private readonly token: string,
    private readonly audience: string,
  ) {}

  /** Why the proof is refused, or undefined when it is good. */
  check(
    kind: ProofKind,
    id: string,
    proof: Uint8Array | null | undefined,
    time: number | Long | null | undefined,
    nonce: string | null | undefined,
  ): string | undefined {
    if (!proof || proof.length === 0 || !nonce) return 'no token proof (the client has no cluster token: pass init({ token }), TSRAY_TOKEN or --token-file)';
    const t = Number(time ?? 0);
    const now = Date.now();
    if (Math.abs(now - t) > AUTH_WINDOW_MS)
      return `token proof timestamp is ${Math.round((t - now) / 1000)} s off this machine's clock (allowed ±${AUTH_WINDOW_MS / 1000} s)`;
    if (this.seen.has(nonce)) return 'token proof was already used (replayed)';
    const want = mac(this.token, { kind, audience: this.audience, id }, t, nonce);
    const got = Buffer.from(proof);
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return `wrong cluster token, or a proof made for another receiver or message (this is ${this.audience === GCS_AUDIENCE ? 'the GCS' : `node ${this.audience}`}, the message ${kind})`;
    this.seen.set(nonce, now);
    if (this.seen.size > 10_000) {
      for (const [n, at] of this.seen) {
        if (now - at <= 2 * AUTH_WINDOW_MS && this.seen.size <= MAX_NONCES) break;
        this.seen.delete(n);
      }
    }
    return undefined;
  }
}

type Long = { low: number; high: number };
