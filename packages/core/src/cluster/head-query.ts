/**
 * One control call to a head's GCS from a connection that did not register as a node: a driver on a
 * machine without a node asks where to connect (`clusterEntry`), the CLI where the jobs HTTP API is
 * (`clusterDashboard`). The call carries a proof of the cluster token for the connection's routing id.
 * @internal
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, type tsray } from '@tsray/protocol';
import { GCS_AUDIENCE, makeTokenProof } from '../auth.js';
import { curveClientOptions, onCurveRefused, refusedMessage } from '../curve.js';
import { AuthenticationError } from '../errors.js';

/** The calls a connection that did not register may make. */
export type HeadQuery = 'clusterEntry' | 'clusterDashboard';

/**
 * Send `query` to the GCS at `hostPort` and return the envelope that answers it (a GcsResponse, or an
 * ErrorReply from a peer that is not a tsray head). Rejects with `onTimeout()` after `timeoutMs`.
 */
export async function askHead(hostPort: string, token: string, query: HeadQuery, timeoutMs: number, onTimeout: () => Error): Promise<tsray.v1.Envelope> {
  const id = `${query === 'clusterEntry' ? 'entry' : 'cli'}:${randomBytes(6).toString('hex')}`;
  const sock = new zmq.Dealer({ routingId: id, linger: 0, ...curveClientOptions(`tcp://${hostPort}`, token) });
  let timer: NodeJS.Timeout | undefined;
  // A head that refuses the CURVE handshake (another cluster's keys) never answers: say why instead of timing out.
  const refused = new Promise<never>((_, reject) => onCurveRefused(sock, (detail) => reject(new AuthenticationError(refusedMessage('the head', detail)))));
  refused.catch(() => undefined);
  try {
    sock.connect(`tcp://${hostPort}`);
    const proof = makeTokenProof(token, { kind: query === 'clusterEntry' ? 'ClusterEntry' : 'ClusterDashboard', audience: GCS_AUDIENCE, id });
    const call = query === 'clusterEntry' ? { clusterEntry: proof } : { clusterDashboard: proof };
    await sock.send(encodeMessage({ gcsRequest: { requestId: 1, ...call } }));
    const frames = await Promise.race([
      sock.receive(),
      refused,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
        timer.unref();
      }),
    ]);
    return decodeMessage(frames).envelope;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}
