/**
 * Errors of the HTTP API server and its client.
 * @module
 */
import { ClusterError } from '../errors.js';

/** The HTTP API answered with an error status; `status` is the HTTP status, the message is the server's. */
export class HttpApiError extends ClusterError {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly url: string,
    readonly serverMessage: string,
  ) {
    super(`${method} ${url} failed with HTTP ${status}: ${serverMessage}`);
  }
}

/** Nothing answered at the HTTP API's address. */
export class ApiUnreachableError extends ClusterError {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`the tsray head's HTTP API at ${url} is unreachable (${detail}); is the head running (tsray start --head) and is the address right?`);
  }
}

/**
 * The HTTP API's TLS certificate is not the pinned one (its SHA-256 fingerprint differs): someone
 * else answers at that address, or the head was restarted with a new self-signed certificate (its
 * `tsray start` output prints the new fingerprint). Nothing was sent to it.
 */
export class TlsFingerprintError extends ClusterError {
  constructor(
    readonly url: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`the HTTP API at ${url} presented a TLS certificate with fingerprint ${actual}, not the pinned ${expected}; refusing to send it anything`);
  }
}

/**
 * An https:// HTTP API address with no way to check its certificate: a self-signed certificate
 * needs its fingerprint (`--dashboard-fingerprint`, `TSRAY_DASHBOARD_FINGERPRINT`; `tsray start`
 * prints it), or the certificate must be signed by a CA this machine trusts.
 */
export class TlsVerificationError extends ClusterError {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(
      `cannot verify the TLS certificate of the HTTP API at ${url} (${detail}); pass its fingerprint with --dashboard-fingerprint or TSRAY_DASHBOARD_FINGERPRINT (tsray start --head prints it)`,
    );
  }
}
