/**
 * Typed errors of the cluster package.
 * @module
 */

/** Base class of cluster errors. */
export class ClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A port the head or a node wants is taken by another process. */
export class PortInUseError extends ClusterError {
  constructor(
    readonly what: string,
    readonly port: number,
    readonly host: string,
  ) {
    super(`${what} port ${port} on ${host} is already in use by another process: stop it (tsray stop), or pick another port (--port / --dashboard-port)`);
  }
}

/** `start --address` could not reach the head. */
export class HeadUnreachableError extends ClusterError {
  constructor(
    readonly address: string,
    readonly timeoutS: number,
  ) {
    super(`the head at ${address} is unreachable: no answer within ${timeoutS} s (is "tsray start --head" running there, and is the port open?)`);
  }
}

/** The head refused this node or driver (wrong or missing token, or declared dead). */
export class ConnectionRefusedError extends ClusterError {}
