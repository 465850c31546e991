/**
 * The CLI's one question to a head's GCS: where is its jobs HTTP API? `tsray status --address
 * HEAD:6380` (as `ray status --address`) works from a machine with only a node, or none: the GCS
 * answers `cluster.dashboard` to any connection proving the cluster token.
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage } from '@tsray/protocol';
import { makeTokenProof } from '@tsray/core/internal';
import { HeadUnreachableError } from '../errors.js';
import { NoClusterError, TokenMissingError } from './errors.js';

/**
 * Ask the GCS at `hostPort` for its dashboard URL.
 * @throws HeadUnreachableError without an answer in `timeoutMs`; TokenMissingError when the token is refused.
 */
export async function askDashboardUrl(hostPort: string, token: string, timeoutMs = 10_000): Promise<string> {
  const id = `cli:${randomBytes(6).toString('hex')}`;
  const sock = new zmq.Dealer({ routingId: id, linger: 0 });
  let timer: NodeJS.Timeout | undefined;
  try {
    sock.connect(`tcp://${hostPort}`);
    const p = makeTokenProof(token, id);
    const json = JSON.stringify({ authProof: p.authProof.toString('base64'), authTime: p.authTime, authNonce: p.authNonce });
    await sock.send(encodeMessage({ gcsCall: { requestId: 1, method: 'cluster.dashboard', json } }));
    const frames = await Promise.race([
      sock.receive(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new HeadUnreachableError(hostPort, timeoutMs / 1000)), timeoutMs))),
    ]);
    const r = decodeMessage(frames).envelope.gcsReply;
    if (!r) throw new NoClusterError(`${hostPort} did not answer as a tsray head`);
    if (r.error) throw r.error.startsWith('AUTH_FAILED') ? new TokenMissingError(r.error.replace(/^AUTH_FAILED: /, '')) : new NoClusterError(r.error);
    const url = (JSON.parse(r.json || '{}') as { dashboardUrl?: string | null }).dashboardUrl;
    if (!url) throw new NoClusterError(`the head at ${hostPort} runs no jobs HTTP API`);
    return url;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}
