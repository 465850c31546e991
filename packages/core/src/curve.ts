/**
 * ZeroMQ CURVE on every tcp connection of a cluster. Every key is derived from the cluster token
 * (HKDF-SHA256, then X25519), so a process that holds the token can compute them and nothing else
 * needs distributing:
 * - the *server* keypair: every tcp ROUTER of the cluster (GCS, nodes) is a CURVE server with it; a
 *   client must know the server's public key to even start the handshake (CurveZMQ never sends it);
 * - the *member* keypair: every client connects with it, and this process's ZAP handler (ZeroMQ's
 *   authentication hook, `inproc://zeromq.zap.01`) admits only member keys of the tokens its servers
 *   serve; anything else is refused during the handshake, before a byte reaches tsray's decoder.
 * The Python side (`tsray._curve`) derives the same keys. ipc sockets inside one machine stay plain.
 * @module
 */
import { createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import * as zmq from 'zeromq';
import { config } from './config.js';
import { logger } from './logger.js';
import { LogLimiter } from './log-limiter.js';
import { PeerMemory } from './peer-memory.js';

/** The HKDF salt; part of the wire protocol (Python's `tsray._curve` uses the same). */
const SALT = 'tsray-curve-v1';
/** ZeroMQ's fixed ZAP endpoint (RFC 27). */
const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/** The ZAP domain of tsray's tcp ROUTERs. */
export const ZAP_DOMAIN = 'tsray';

/** The cluster's CURVE keys (Z85 text, as ZeroMQ's socket options take them). */
export interface ClusterCurveKeys {
  serverPublic: string;
  serverSecret: string;
  memberPublic: string;
  memberSecret: string;
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85-encode (ZeroMQ RFC 32) bytes whose length is a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError('z85Encode: length must be a multiple of 4');
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
    let chunk = '';
    for (let j = 0; j < 5; j++) {
      chunk = Z85[v % 85]! + chunk;
      v = Math.floor(v / 85);
    }
    out += chunk;
  }
  return out;
}

/** The X25519 public key of a 32-byte secret (via a PKCS#8 wrapper: node:crypto has no raw import). */
function x25519Public(secret: Buffer): Buffer {
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), secret]);
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

function keypair(token: string, role: 'server' | 'member'): { pub: string; sec: string } {
  const secret = Buffer.from(hkdfSync('sha256', token, SALT, role, 32));
  return { pub: z85Encode(x25519Public(secret)), sec: z85Encode(secret) };
}

const derived = new Map<string, ClusterCurveKeys>();

/** The CURVE keys of the cluster with this token (derived once per token and process). */
export function clusterCurveKeys(token: string): ClusterCurveKeys {
  let k = derived.get(token);
  if (!k) {
    const server = keypair(token, 'server');
    const member = keypair(token, 'member');
    k = { serverPublic: server.pub, serverSecret: server.sec, memberPublic: member.pub, memberSecret: member.sec };
    derived.set(token, k);
  }
  return k;
}

/** True when `endpoint` is a tcp endpoint and CURVE is on (`TSRAY_TRANSPORT_CURVE`, default on). */
export function curveApplies(endpoint: string): boolean {
  return endpoint.startsWith('tcp://') && config().transportCurve;
}

/**
 * Socket options of a client (DEALER) connecting to `endpoint`: CURVE with the member keypair for a
 * tcp endpoint, nothing for ipc (or without a token, or with CURVE off: then the server refuses it).
 */
export function curveClientOptions(endpoint: string, token: string | undefined): { curveServerKey?: string; curvePublicKey?: string; curveSecretKey?: string } {
  if (!token || !curveApplies(endpoint)) return {};
  const k = clusterCurveKeys(token);
  return { curveServerKey: k.serverPublic, curvePublicKey: k.memberPublic, curveSecretKey: k.memberSecret };
}

/**
 * Make `socket`'s next binds CURVE servers for the cluster of `token` (ZeroMQ copies options when an
 * endpoint is bound, so the ipc endpoints bound before stay plain) and admit its members through the
 * ZAP handler. Bind after `ready`; call `release` when the socket closes.
 */
export function makeCurveServer(socket: zmq.Socket, token: string): { release: () => void; ready: Promise<void> } {
  const k = clusterCurveKeys(token);
  forNextBind(() => {
    socket.curveServer = true;
    socket.curveSecretKey = k.serverSecret;
    socket.zapDomain = ZAP_DOMAIN;
  });
  return ZapHandler.acquire(k.memberPublic);
}

/** Undo {@link makeCurveServer} for the socket's later binds (an ipc endpoint bound after a tcp one). */
export function makePlainServer(socket: zmq.Socket): void {
  forNextBind(() => {
    socket.curveServer = false;
    socket.zapDomain = null;
  });
}

/**
 * Set options meant for the socket's next bind. zeromq.js warns (process.emitWarning, looked up at
 * each call) when an option is set on a socket that already has an endpoint, because it only applies
 * to later ones; here that is the point (ipc plain, tcp CURVE on one ROUTER), so the warning is muted
 * for these synchronous setters only.
 */
function forNextBind(set: () => void): void {
  const emit = process.emitWarning;
  process.emitWarning = (() => undefined) as typeof process.emitWarning;
  try {
    set();
  } finally {
    process.emitWarning = emit;
  }
}

/**
 * This process's ZAP handler: one REP socket on ZeroMQ's ZAP endpoint of the shared context, alive
 * while a CURVE server uses it. It admits a CURVE client whose long-term key is the member key of a
 * token some server here serves; a refused client is logged once per address (rate-limited).
 */
class ZapHandler {
  private static current: ZapHandler | undefined;
  private readonly socket = new zmq.Reply();
  private readonly admitted = new Map<string, number>();
  private readonly refusedPeers = new PeerMemory();
  private readonly limiter = new LogLimiter({
    summary: (n, windowMs) => logger().warn({ suppressed: n }, `${n} more refused tcp peers not logged in the last ${windowMs / 1000} s`),
  });
  private closed = false;
  /** Resolves once the handler is bound: a CURVE server binds only after it (no window without ZAP). */
  readonly ready: Promise<void>;

  private constructor() {
    this.ready = this.bind();
    this.ready.then(
      () => this.serve(),
      (err) => logger().error({ err }, 'could not start the ZAP handler; CURVE clients will be refused'),
    );
  }

  /**
   * Bind the ZAP endpoint. A handler closed just before (its last server released it) frees the
   * endpoint only when ZeroMQ's reaper thread has destroyed its socket, a moment after `close()`
   * returned; until then the bind fails with EADDRINUSE, and there is no event to wait for, so it is
   * tried again (20 ms apart, up to 2 s).
   */
  private async bind(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.socket.bind(ZAP_ENDPOINT);
        return;
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'EADDRINUSE' || attempt >= 100 || this.closed) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Admit members with public key `memberPublic` until `release` is called; bind servers after `ready`. */
  static acquire(memberPublic: string): { release: () => void; ready: Promise<void> } {
    const h = (ZapHandler.current ??= new ZapHandler());
    h.admitted.set(memberPublic, (h.admitted.get(memberPublic) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (h.admitted.get(memberPublic) ?? 1) - 1;
      if (n > 0) h.admitted.set(memberPublic, n);
      else h.admitted.delete(memberPublic);
      if (h.admitted.size === 0) h.close();
    };
    return { release, ready: h.ready };
  }

  private close(): void {
    if (ZapHandler.current === this) ZapHandler.current = undefined;
    this.closed = true;
    this.socket.close();
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.socket) await this.socket.send(this.answer(frames));
    } catch (err) {
      if (!this.closed) logger().error({ err }, 'the ZAP handler stopped; CURVE clients will be refused');
    }
  }

  /** RFC 27: [version, request id, domain, address, identity, mechanism, credentials…] → reply. */
  private answer(frames: Buffer[]): string[] | Buffer[] {
    const [version, requestId, domain, address, , mechanism, key] = frames;
    const reply = (code: string, text: string): Buffer[] => [
      Buffer.from('1.0'),
      requestId ?? Buffer.alloc(0),
      Buffer.from(code),
      Buffer.from(text),
      Buffer.alloc(0),
      Buffer.alloc(0),
    ];
    const mech = mechanism?.toString() ?? '';
    if (version?.toString() !== '1.0') return reply('400', 'bad ZAP version');
    if (mech === 'CURVE' && key?.length === 32 && domain?.toString() === ZAP_DOMAIN && this.admitted.has(z85Encode(key))) return reply('200', 'OK');
    const from = address?.toString() ?? '?';
    if (this.refusedPeers.once(from))
      this.limiter.log(() =>
        logger().warn({ peer: from, mechanism: mech }, 'refused a tcp connection: its CURVE key is not this cluster\u2019s (wrong or no cluster token)'),
      );
    return reply('400', 'not a member of this cluster');
  }
}

/** Failed CURVE handshakes in a row (none succeeded) after which a client gives up: a wrong token. */
export const CURVE_REFUSALS_BEFORE_GIVING_UP = 3;

/**
 * Watch a CURVE client's handshakes (subscribe before it connects: ZeroMQ reports them only to a
 * monitor that exists by then). The server cannot tell a client with the wrong token why it refuses
 * it (it cannot even decrypt its hello), so a client whose handshakes fail
 * {@link CURVE_REFUSALS_BEFORE_GIVING_UP} times before any succeeds calls `onRefused` once. A ZMTP
 * protocol error (one side plain, the other CURVE: `TSRAY_TRANSPORT_CURVE` differs) ends it at once:
 * ZeroMQ does not reconnect after one; `detail` then says so ('' for a plain refusal). A client that
 * itself runs without CURVE (NULL mechanism) gets the same detail after its failed handshakes: which
 * event ZeroMQ reports for the server's refusal (protocol error, or a reset before the greeting is
 * read) depends on timing, but the cause is the same.
 */
export function onCurveRefused(socket: zmq.Socket, onRefused: (detail: string) => void): void {
  let failures = 0;
  let done = false;
  const give = (detail: string) => {
    done = true;
    onRefused(detail);
  };
  const failed = () => {
    if (!done && ++failures >= CURVE_REFUSALS_BEFORE_GIVING_UP) give(socket.securityMechanism === null ? CURVE_MISMATCH : '');
  };
  socket.events.on('handshake', () => (done = true));
  socket.events.on('handshake:error:protocol', () => {
    if (!done) give(CURVE_MISMATCH);
  });
  socket.events.on('handshake:error:auth', failed);
  socket.events.on('handshake:error:other', failed);
}

/** The detail of a refusal where one side runs with CURVE and the other without. */
const CURVE_MISMATCH = 'the handshake failed: one side runs without CURVE (TSRAY_TRANSPORT_CURVE differs), or it is not a tsray process';

/** The error text of a connection the head (or a node) refused during the CURVE handshake. */
export const WRONG_TOKEN = 'wrong cluster token';

/** `<who> refused the connection: wrong cluster token`, with the detail onCurveRefused gave, if any. */
export function refusedMessage(who: string, detail: string): string {
  return `${who} refused the connection: ${WRONG_TOKEN}${detail ? ` (${detail})` : ''}`;
}

/**
 * Log a CURVE server's failed handshakes (a client without this cluster's token, or not a tsray
 * client): ZeroMQ names only the listening endpoint, not the peer, so the first is logged and the
 * rest are counted, one summary line a minute.
 */
export function logCurveRefusals(socket: zmq.Socket, where: string): void {
  const limiter = new LogLimiter({
    lines: 1,
    windowMs: 60_000,
    summary: (n) => logger().warn({ suppressed: n }, `${where}: ${n} more tcp connections failed the CURVE handshake in the last minute`),
  });
  const refused = (ev: { address: string; error: Error }) =>
    limiter.log(() =>
      logger().warn(
        { endpoint: ev.address, reason: ev.error.message },
        `${where} refused a tcp connection: the CURVE handshake failed (${WRONG_TOKEN}, or not a tsray client)`,
      ),
    );
  socket.events.on('handshake:error:protocol', refused);
  socket.events.on('handshake:error:other', refused);
}
