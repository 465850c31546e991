import { describe, expect, it } from 'vitest';
import { AUTH_WINDOW_MS, GCS_AUDIENCE, makeTokenProof, TokenVerifier, type ProofBinding } from '../src/auth.js';

const toNode: ProofBinding = { kind: 'RegisterWorker', audience: 'node-a', id: 'worker-1' };

describe('token proofs', () => {
  it('accepts a fresh proof once and never the token itself', () => {
    const v = new TokenVerifier('s3cret', 'node-a');
    const p = makeTokenProof('s3cret', toNode);
    expect(p.authProof.includes(Buffer.from('s3cret'))).toBe(false);
    expect(v.check('RegisterWorker', 'worker-1', p.authProof, p.authTime, p.authNonce)).toBeUndefined();
    expect(v.check('RegisterWorker', 'worker-1', p.authProof, p.authTime, p.authNonce)).toMatch(/replayed/);
  });

  it('refuses a wrong token, another connection id, a missing proof and a stale time', () => {
    const v = new TokenVerifier('s3cret', 'node-a');
    const wrong = makeTokenProof('other', toNode);
    expect(v.check('RegisterWorker', 'worker-1', wrong.authProof, wrong.authTime, wrong.authNonce)).toMatch(/^wrong cluster token/);
    const p = makeTokenProof('s3cret', toNode);
    expect(v.check('RegisterWorker', 'someone-else', p.authProof, p.authTime, p.authNonce)).toMatch(/^wrong cluster token/);
    expect(v.check('RegisterWorker', 'worker-1', undefined, undefined, undefined)).toMatch(/no token proof/);
    expect(v.check('RegisterWorker', 'worker-1', p.authProof, p.authTime - AUTH_WINDOW_MS - 1000, p.authNonce)).toMatch(/off this machine's clock/);
  });

  it('binds the receiver and the message: a proof for node A is refused by node B, by the GCS and as another message', () => {
    const p = makeTokenProof('s3cret', toNode);
    const nodeB = new TokenVerifier('s3cret', 'node-b');
    const gcs = new TokenVerifier('s3cret', GCS_AUDIENCE);
    // Each receiver has its own nonce cache: only the audience in the MAC stops these replays.
    expect(nodeB.check('RegisterWorker', 'worker-1', p.authProof, p.authTime, p.authNonce)).toMatch(/another receiver or message \(this is node node-b/);
    expect(gcs.check('RegisterNode', 'worker-1', p.authProof, p.authTime, p.authNonce)).toMatch(/this is the GCS, the message RegisterNode/);
    const entry = makeTokenProof('s3cret', { kind: 'ClusterEntry', audience: GCS_AUDIENCE, id: 'entry:1' });
    expect(gcs.check('ClusterDashboard', 'entry:1', entry.authProof, entry.authTime, entry.authNonce)).toMatch(/another receiver or message/);
    expect(gcs.check('ClusterEntry', 'entry:1', entry.authProof, entry.authTime, entry.authNonce)).toBeUndefined();
    // The right receiver still takes the original once.
    expect(new TokenVerifier('s3cret', 'node-a').check('RegisterWorker', 'worker-1', p.authProof, p.authTime, p.authNonce)).toBeUndefined();
  });
});
