/**
 * The CLI's one question to a head's GCS: where is its jobs HTTP API? `tsray status --address
 * HEAD:6380` (as `ray status --address`) works from a machine with only a node, or none: the GCS
 * answers `cluster_dashboard` to any connection proving the cluster token.
 * @module
 */
import { tsray } from '@tsray/protocol';
import { askHead } from '@tsray/core/internal';
import { HeadUnreachableError } from '../errors.js';
import { NoClusterError, TokenMissingError } from './errors.js';

/**
 * Ask the GCS at `hostPort` for its dashboard URL.
 * @throws HeadUnreachableError without an answer in `timeoutMs`; TokenMissingError when the token is refused.
 */
export async function askDashboardUrl(hostPort: string, token: string, timeoutMs = 10_000): Promise<string> {
  const envelope = await askHead(hostPort, token, 'clusterDashboard', timeoutMs, () => new HeadUnreachableError(hostPort, timeoutMs / 1000));
  const r = envelope.gcsResponse;
  if (!r) throw new NoClusterError(`${hostPort} did not answer as a tsray head`);
  if (r.error)
    throw r.error.code === tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED
      ? new TokenMissingError(r.error.message ?? 'refused')
      : new NoClusterError(r.error.message ?? 'refused');
  if (!r.dashboardUrl) throw new NoClusterError(`the head at ${hostPort} runs no jobs HTTP API`);
  return r.dashboardUrl;
}
