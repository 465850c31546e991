/**
 * Errors of the `tsray` CLI. The CLI prints their message and exits 1 (2 for {@link CliUsageError}).
 * @module
 */
import { ClusterError } from '../errors.js';

/** The command line is wrong (unknown command or option, a bad value). */
export class CliUsageError extends ClusterError {}

/** A daemon (head or node) failed to start: it reported an error, exited, or did not become ready in time. */
export class DaemonStartError extends ClusterError {
  constructor(
    readonly role: string,
    detail: string,
    readonly logPath: string,
  ) {
    super(`the tsray ${role} did not start: ${detail}\n(its log: ${logPath})`);
  }
}

/** No running head was found to talk to. */
export class NoClusterError extends ClusterError {}

/** No cluster token was given or found. */
export class TokenMissingError extends ClusterError {}
