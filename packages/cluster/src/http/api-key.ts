/**
 * The Jobs API / dashboard key: derived from the cluster token with HKDF-SHA256, so a client of the
 * HTTP API (which runs shell commands) never holds or sends the token itself, and a key that leaks
 * (a browser cookie, a Prometheus credentials file, a proxy's log) does not let anyone join the
 * cluster or run tasks on its nodes. The head refuses the token where the key is expected.
 * @module
 */
import { hkdfSync } from 'node:crypto';

/** HKDF salt and info: a new purpose gets a new info string, never this key. */
const SALT = 'tsray';
const INFO = 'tsray jobs-api key v1';

/** The API key of the cluster whose token is `token` (64 hex digits). */
export function apiKeyFor(token: string): string {
  return Buffer.from(hkdfSync('sha256', token, SALT, INFO, 32)).toString('hex');
}
