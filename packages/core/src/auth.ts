/**
 * Cluster token proofs. A connection proves it knows the cluster token without sending it:
 * `HMAC-SHA256(token, "tsray-auth-v1|" + id + "|" + time + "|" + nonce)`. The receiver recomputes
 * it, accepts a time within {@link AUTH_WINDOW_MS} of its clock and never accepts a nonce twice, so a
 * proof seen on the wire cannot be replayed.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How far a proof's timestamp may be from the receiver's clock. */
export const AUTH_WINDOW_MS = 5 * 60_000;

/** A proof of the cluster token for the connection `id`. */
export interface TokenProof {
  authProof: Buffer;
  authTime: number;
  authNonce: string;
}

function mac(token: string, id: string, time: number, nonce: string): Buffer {
  return createHmac('sha256', token).update(`tsray-auth-v1|${id}|${time}|${nonce}`).digest();
}

/** Make a fresh proof for the connection `id`. */
export function makeTokenProof(token: string, id: string): TokenProof {
  const authTime = Date.now();
  const authNonce = randomBytes(12).toString('hex');
  return { authProof: mac(token, id, authTime, authNonce), authTime, authNonce };
}

/** Checks proofs and remembers the nonces it accepted (replays are refused). */
export class TokenVerifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly token: string) {}

  /** Why the proof is refused, or undefined when it is good. */
  check(id: string, proof: Uint8Array | null | undefined, time: number | Long | null | undefined, nonce: string | null | undefined): string | undefined {
    if (!proof || proof.length === 0 || !nonce) return 'no token proof (the client has no cluster token: pass init({ token }), TSRAY_TOKEN or --token-file)';
    const t = Number(time ?? 0);
    const now = Date.now();
    if (Math.abs(now - t) > AUTH_WINDOW_MS)
      return `token proof timestamp is ${Math.round((t - now) / 1000)} s off this machine's clock (allowed ±${AUTH_WINDOW_MS / 1000} s)`;
    if (this.seen.has(nonce)) return 'token proof was already used (replayed)';
    const want = mac(this.token, id, t, nonce);
    const got = Buffer.from(proof);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return 'wrong cluster token';
    this.seen.set(nonce, now);
    if (this.seen.size > 10_000) {
      for (const [n, at] of this.seen) if (now - at > 2 * AUTH_WINDOW_MS) this.seen.delete(n);
    }
    return undefined;
  }
}

type Long = { low: number; high: number };
