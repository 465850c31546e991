import { describe, expect, it } from 'vitest';
import { AUTH_WINDOW_MS, makeTokenProof, TokenVerifier } from '../src/auth.js';

describe('token proofs', () => {
  it('accepts a fresh proof once and never the token itself', () => {
    const v = new TokenVerifier('s3cret');
    const p = makeTokenProof('s3cret', 'worker-1');
    expect(p.authProof.includes(Buffer.from('s3cret'))).toBe(false);
    expect(v.check('worker-1', p.authProof, p.authTime, p.authNonce)).toBeUndefined();
    expect(v.check('worker-1', p.authProof, p.authTime, p.authNonce)).toMatch(/replayed/);
  });

  it('refuses a wrong token, another connection id, a missing proof and a stale time', () => {
    const v = new TokenVerifier('s3cret');
    const wrong = makeTokenProof('other', 'w');
    expect(v.check('w', wrong.authProof, wrong.authTime, wrong.authNonce)).toBe('wrong cluster token');
    const p = makeTokenProof('s3cret', 'w');
    expect(v.check('someone-else', p.authProof, p.authTime, p.authNonce)).toBe('wrong cluster token');
    expect(v.check('w', undefined, undefined, undefined)).toMatch(/no token proof/);
    expect(v.check('w', p.authProof, p.authTime - AUTH_WINDOW_MS - 1000, p.authNonce)).toMatch(/off this machine's clock/);
  });
});
