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
