/**
 * Which address a node advertises to the rest of its cluster. As Ray does, a node that is not told
 * (`--host` / `--node-ip-address`) takes the local address of the route it uses to reach the head:
 * the address the head (and, on the same network, every other node) can reach it on. A node that
 * would advertise a loopback address to a head on another address is refused: nothing off its
 * machine could ever connect to it, and work sent there would never arrive.
 * @module
 */
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ClusterError } from './errors.js';

/** A node would advertise a loopback address (127.0.0.0/8, ::1, localhost) to a head that is not on loopback. */
export class LoopbackAdvertiseError extends ClusterError {
  constructor(
    readonly advertised: string,
    readonly headAddress: string,
  ) {
    super(
      `this node would advertise ${advertised} (loopback) to the head at ${headAddress}, which is not on loopback: ` +
        `the head and the other nodes could not reach it, so work sent to it would never arrive. ` +
        `Leave out --host to let tsray use the address this machine reaches the head on, or pass --host <this machine's address> (or --node-ip-address)`,
    );
  }
}

/** True for 127.0.0.0/8, ::1, `localhost` (and an IPv4-mapped loopback). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\./.test(h);
}

/** True for the any-address (`0.0.0.0`, `::`). */
export function isBindAll(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** This machine's first non-internal IPv4 address (what a bind-all head advertises), else 127.0.0.1. */
export function firstExternalIpv4(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * The local address of the route to `host`: a UDP socket "connects" (no packet is sent; the kernel
 * picks the route and its source address) and reads its own address. Names are resolved first.
 */
export function routeSourceAddress(host: string, port: number): Promise<string> {
  const h = host.replace(/^\[|\]$/g, '');
  const sock = createSocket(isIP(h) === 6 ? 'udp6' : 'udp4');
  return new Promise<string>((resolve, reject) => {
    sock.once('error', (e) => {
      sock.close();
      reject(
        new ClusterError(
          `cannot find a route to the head at ${host}:${port} (${(e as NodeJS.ErrnoException).code ?? e.message}); pass --host <this machine's address>`,
        ),
      );
    });
    sock.connect(port, h, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  });
}

/**
 * The address a node binds and advertises: `nodeIpAddress`, else `host` (a bind-all host advertises
 * the route's address), else the route's address to the head.
 * @throws LoopbackAdvertiseError when it is loopback and the head is not.
 */
export async function nodeAddressFor(opts: {
  headAddress: string;
  host?: string | undefined;
  nodeIpAddress?: string | undefined;
}): Promise<{ bind: string; advertise: string }> {
  const i = opts.headAddress.lastIndexOf(':');
  const headHost = opts.headAddress.slice(0, i).replace(/^\[|\]$/g, '');
  const headPort = Number(opts.headAddress.slice(i + 1));
  const needRoute = opts.nodeIpAddress === undefined && (opts.host === undefined || isBindAll(opts.host));
  const route = needRoute ? await routeSourceAddress(headHost, headPort) : undefined;
  const bind = opts.host ?? route!;
  const advertise = opts.nodeIpAddress ?? (isBindAll(bind) ? route! : bind);
  if (isLoopback(advertise) && !isLoopback(headHost)) throw new LoopbackAdvertiseError(advertise, opts.headAddress);
  return { bind, advertise };
}
