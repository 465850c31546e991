/**
 * `tsray start --head …` / `tsray start --address HOST:PORT …`: start a daemon in the background and
 * wait until it is ready.
 * @module
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DaemonConfig, ReadyInfo } from '../contracts.js';
import { HeadUnreachableError, PortInUseError } from '../errors.js';
import { configuredToken, config as tsrayConfig } from '@tsray/core/internal';
import { logger as clusterLogger } from '../logger.js';
import { isBindAll, isLoopback, nodeAddressFor } from '../node-address.js';
import { CliUsageError, DaemonStartError, TokenMissingError } from './errors.js';
import { sleep, type CliIo } from './io.js';
import { createSession, daemonFile, latestSession, linkLatest, liveDaemons, nextOrdinal, readReady, sessionToken } from './session.js';

/** Default GCS port of a head (`--port`). */
export const DEFAULT_GCS_PORT = 6380;
/** Default jobs HTTP API / dashboard port of a head (`--dashboard-port`). */
export const DEFAULT_DASHBOARD_PORT = 8265;

/** Parsed `tsray start` options. */
export interface StartOptions {
  head: boolean;
  /** Head's GCS address `host:port` (node). */
  address?: string;
  port?: number;
  dashboardPort?: number;
  /** Head: where the GCS keeps its tables (`redis://host:port`, or a file path; default in the session directory). */
  storage?: string;
  host?: string;
  /** Head: interface of the jobs HTTP API / dashboard (default 127.0.0.1; beyond loopback it speaks TLS only). */
  dashboardHost?: string;
  /** Head: PEM certificate and key files of the HTTP API's TLS (default: a self-signed one, its fingerprint printed). */
  dashboardCert?: string;
  dashboardKey?: string;
  numCpus?: number;
  numGpus?: number;
  resources?: Record<string, number>;
  labels?: Record<string, string>;
  objectStoreMemory?: number;
  nodeDeathTimeoutS?: number;
  /** Node: the address other nodes reach it on (default: detected from the route to the head). */
  nodeIpAddress?: string;
  /** Node: seconds without word from the head before the node stops (default 60). */
  headLostTimeoutS?: number;
  token?: string;
  tokenFile?: string;
  /** Seconds to wait for the head to be reachable and for the daemon to be ready (default 30). */
  timeoutS?: number;
  /** Head only: a cluster config whose autoscaler the head runs (`tsray up` passes it). */
  autoscalingConfig?: string;
}

/** The daemon entry script: `TSRAY_DAEMON_SCRIPT`, else `daemon-main.js` beside `cli.js`. */
export function daemonScript(): string {
  return tsrayConfig().daemonScript ?? fileURLToPath(new URL('../daemon-main.js', import.meta.url));
}

/** Parse `--labels`: `k=v,k2=v2` or a JSON object of strings. */
export function parseLabels(s: string): Record<string, string> {
  if (s.trim().startsWith('{')) {
    let o: unknown;
    try {
      o = JSON.parse(s);
    } catch (e) {
      throw new CliUsageError(`--labels: not valid JSON (${(e as Error).message})`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.values(o).some((v) => typeof v !== 'string')) {
      throw new CliUsageError('--labels: the JSON must be an object of strings, e.g. {"zone":"a"}');
    }
    return o as Record<string, string>;
  }
  const out: Record<string, string> = {};
  for (const part of s
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw new CliUsageError(`--labels: "${part}" is not key=value (expected k=v,k2=v2)`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** Parse `--resources`: a JSON object of non-negative numbers. */
export function parseResources(s: string): Record<string, number> {
  let o: unknown;
  try {
    o = JSON.parse(s);
  } catch (e) {
    throw new CliUsageError(`--resources: not valid JSON (${(e as Error).message}); expected e.g. '{"accel": 2}'`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new CliUsageError(`--resources: expected a JSON object such as '{"accel": 2}'`);
  for (const [k, v] of Object.entries(o)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new CliUsageError(`--resources: "${k}" must be a non-negative number; got ${JSON.stringify(v)}`);
  }
  return o as Record<string, number>;
}

/** Split `host:port` (also `tcp://host:port`, `[v6]:port`). */
export function parseHostPort(address: string): { host: string; port: number } {
  const a = address.replace(/^tcp:\/\//, '');
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(a);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new CliUsageError(`--address: "${address}" is not HOST:PORT (the head's GCS address, printed by tsray start --head)`);
  return { host: m[1] as string, port };
}

function checkPortFree(host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new PortInUseError(what, port, host) : e));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

async function waitReachable(address: string, timeoutS: number): Promise<void> {
  const { host, port } = parseHostPort(address);
  const deadline = Date.now() + timeoutS * 1000;
  let last = 'no answer';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      clusterLogger().debug({ address, last }, 'head unreachable');
      throw new HeadUnreachableError(address, timeoutS);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect({ host, port });
      const timer = setTimeout(
        () => {
          last = 'connect timed out';
          sock.destroy();
          resolve(false);
        },
        Math.min(remaining, 2000),
      );
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve(true);
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        last = e.code ?? e.message;
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
  }
}

function readTokenFile(path: string): string {
  let t: string;
  try {
    t = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new CliUsageError(`--token-file: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!t) throw new CliUsageError(`--token-file: ${path} is empty`);
  return t;
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Refuse option combinations that make no sense (before anything starts). */
function checkStartOptions(o: StartOptions): void {
  if (o.head === (o.address !== undefined))
    throw new CliUsageError('tsray start needs exactly one of --head (start a cluster) or --address HOST:PORT (join one)');
  if (
    !o.head &&
    (o.port !== undefined ||
      o.dashboardPort !== undefined ||
      o.storage !== undefined ||
      o.dashboardHost !== undefined ||
      o.dashboardCert !== undefined ||
      o.dashboardKey !== undefined)
  )
    throw new CliUsageError('--port, --storage and the --dashboard-* options go with --head');
  if ((o.dashboardCert === undefined) !== (o.dashboardKey === undefined)) throw new CliUsageError('--dashboard-cert and --dashboard-key go together');
  if (o.head && (o.nodeIpAddress !== undefined || o.headLostTimeoutS !== undefined))
    throw new CliUsageError('--node-ip-address and --head-lost-timeout go with --address (a node)');
  if (!o.head && o.autoscalingConfig !== undefined) throw new CliUsageError('--autoscaling-config goes with --head');
  if (o.token !== undefined && o.tokenFile !== undefined) throw new CliUsageError('give either --token or --token-file, not both');
}

/**
 * The cluster token: the one given (--token, --token-file), else for a node TSRAY_TOKEN or the live
 * session's (TokenMissingError without one), else for a head a new random one.
 */
function resolveToken(o: StartOptions, given: string | undefined, latestToken: string | undefined): string {
  let token = given;
  if (!o.head) {
    token ??= configuredToken() ?? latestToken;
    if (!token) {
      throw new TokenMissingError(
        `tsray start --address needs the cluster token: --token <t>, --token-file <file> (the head prints it: <sessionDir>/token) or TSRAY_TOKEN`,
      );
    }
  }
  return token ?? randomBytes(32).toString('hex');
}

/** The session directory: the latest one when a daemon of the same cluster runs in it, else a new one; holds the token file. */
function sessionFor(
  o: StartOptions,
  token: string,
  latest: string | undefined,
  latestLive: ReturnType<typeof liveDaemons>,
  latestToken: string | undefined,
): string {
  let sessionDir: string | undefined;
  if (latest && latestLive.length > 0 && (!latestToken || latestToken === token) && !(o.head && latestLive.some((d) => d.role === 'head'))) {
    sessionDir = latest;
    linkLatest(latest);
  }
  sessionDir ??= createSession();
  const tokenPath = join(sessionDir, 'token');
  if (!existsSync(tokenPath)) {
    // O_EXCL: never through a link or over a file someone else put there.
    const fd = openSync(tokenPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, `${token}\n`);
    } finally {
      closeSync(fd);
    }
  }
  chmodSync(tokenPath, 0o600);
  return sessionDir;
}

/** The daemon's configuration (passed to it as its one argument, readable by anyone in /proc: no token, the daemon reads its 0600 file). */
function daemonConfig(o: StartOptions, role: 'head' | 'node', host: string | undefined, sessionDir: string, readyFile: string): DaemonConfig {
  return {
    role,
    sessionDir,
    tokenFile: join(sessionDir, 'token'),
    ...(host !== undefined ? { host } : {}),
    readyFile,
    ...(o.head
      ? {
          port: o.port ?? DEFAULT_GCS_PORT,
          dashboardPort: o.dashboardPort ?? DEFAULT_DASHBOARD_PORT,
          ...(o.storage ? { storage: o.storage } : {}),
          ...(o.dashboardHost !== undefined ? { dashboardHost: o.dashboardHost } : {}),
          ...(o.dashboardCert !== undefined ? { dashboardCert: resolve(o.dashboardCert), dashboardKey: resolve(o.dashboardKey as string) } : {}),
        }
      : { headAddress: (o.address as string).replace(/^tcp:\/\//, '') }),
    ...(o.numCpus !== undefined ? { numCpus: o.numCpus } : {}),
    ...(o.numGpus !== undefined ? { numGpus: o.numGpus } : {}),
    ...(o.resources ? { resources: o.resources } : {}),
    ...(o.labels ? { labels: o.labels } : {}),
    ...(o.objectStoreMemory !== undefined ? { objectStoreMemory: o.objectStoreMemory } : {}),
    ...(o.nodeDeathTimeoutS !== undefined ? { nodeDeathTimeoutS: o.nodeDeathTimeoutS } : {}),
    ...(o.nodeIpAddress !== undefined ? { nodeIpAddress: o.nodeIpAddress } : {}),
    ...(o.headLostTimeoutS !== undefined ? { headLostTimeoutS: o.headLostTimeoutS } : {}),
    ...(o.autoscalingConfig !== undefined ? { autoscalingConfig: resolve(o.autoscalingConfig) } : {}),
  };
}

/** A daemon process started in the background, and what became of it so far. */
interface SpawnedDaemon {
  pid: number | undefined;
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  spawnError: Error | undefined;
}

/** Start the daemon detached, its output appended to `outLog` / `errLog`. */
function spawnDaemon(script: string, config: DaemonConfig, outLog: string, errLog: string): SpawnedDaemon {
  const outFd = openSync(outLog, 'a', 0o600);
  const errFd = openSync(errLog, 'a', 0o600);
  const child = (() => {
    try {
      return spawn(process.execPath, [script, JSON.stringify(config)], {
        detached: true,
        stdio: ['ignore', outFd, errFd],
        // The daemon reads the token from its file; one in the environment would reach its jobs.
        env: { ...process.env, TSRAY_TOKEN: undefined, TSRAY_SESSION_DIR: config.sessionDir },
      });
    } finally {
      closeSync(outFd);
      closeSync(errFd);
    }
  })();
  const d: SpawnedDaemon = { pid: child.pid, exited: undefined, spawnError: undefined };
  child.on('exit', (code, signal) => (d.exited = { code, signal }));
  child.on('error', (e) => (d.spawnError = e));
  child.unref();
  return d;
}

/** Wait for the daemon's ready file; DaemonStartError (the daemon stopped, its pid file removed) when it fails or times out. */
async function waitReady(d: SpawnedDaemon, role: 'head' | 'node', readyFile: string, pidFile: string, errLog: string, timeoutS: number): Promise<ReadyInfo> {
  const deadline = Date.now() + timeoutS * 1000;
  const fail = (detail: string): never => {
    if (d.pid !== undefined && !d.exited) {
      try {
        process.kill(d.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    rmSync(pidFile, { force: true });
    throw new DaemonStartError(role, detail, errLog);
  };
  for (;;) {
    const ready = readReady(readyFile);
    if (ready?.error) {
      rmSync(readyFile, { force: true });
      return fail(ready.error);
    }
    if (ready?.pid) return ready;
    if (d.spawnError) return fail(`it could not be spawned (${d.spawnError.message})`);
    if (d.exited) {
      const why = d.exited.signal ? `was killed by ${d.exited.signal}` : `exited with code ${d.exited.code}`;
      const t = tail(errLog);
      return fail(`it ${why} before it was ready${t ? `; last lines of its stderr:\n${t}` : ''}`);
    }
    if (Date.now() > deadline) {
      const t = tail(errLog);
      return fail(`it was not ready within ${timeoutS} s${t ? `; last lines of its stderr:\n${t}` : ''}`);
    }
    await sleep(50);
  }
}

/** Start a daemon as the contract says and wait for its ready file. Resolves to its ready info. */
export async function startDaemon(o: StartOptions): Promise<{ ready: ReadyInfo; sessionDir: string; tokenGiven: boolean; token: string }> {
  const role: 'head' | 'node' = o.head ? 'head' : 'node';
  checkStartOptions(o);
  const timeoutS = o.timeoutS ?? 30;
  // A head binds loopback unless told; a node (no --host) binds the address it reaches the head on.
  const host = o.head ? (o.host ?? '127.0.0.1') : o.host;
  // Refuse a node that would advertise loopback to a head elsewhere before anything starts.
  if (!o.head) {
    parseHostPort(o.address as string);
    await nodeAddressFor({ headAddress: (o.address as string).replace(/^tcp:\/\//, ''), host, nodeIpAddress: o.nodeIpAddress });
  }

  const given = o.token ?? (o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined);
  const tokenGiven = given !== undefined;
  const latest = latestSession();
  const latestLive = latest ? liveDaemons(latest) : [];
  const latestToken = latest && latestLive.length > 0 ? sessionToken(latest).token : undefined;
  const token = resolveToken(o, given, latestToken);

  if (o.head) {
    const port = o.port ?? DEFAULT_GCS_PORT;
    const dport = o.dashboardPort ?? DEFAULT_DASHBOARD_PORT;
    if (port !== 0) await checkPortFree(host as string, port, 'the head (GCS)');
    if (dport !== 0) await checkPortFree(o.dashboardHost ?? '127.0.0.1', dport, 'the jobs HTTP API (dashboard)');
  } else {
    await waitReachable(o.address as string, timeoutS);
  }

  // Reuse the latest session for a second daemon of the same cluster on this machine.
  const sessionDir = sessionFor(o, token, latest, latestLive, latestToken);
  const n = nextOrdinal(sessionDir, role);
  const readyFile = daemonFile(sessionDir, role, n, '.ready.json');
  const config = daemonConfig(o, role, host, sessionDir, readyFile);
  const script = daemonScript();
  const errLog = join(sessionDir, 'logs', `${role}-${n}.err`);
  if (!existsSync(script)) throw new DaemonStartError(role, `its entry script ${script} is missing (is @tsray/cluster built?)`, errLog);
  const d = spawnDaemon(script, config, join(sessionDir, 'logs', `${role}-${n}.out`), errLog);
  const pidFile = daemonFile(sessionDir, role, n, '.pid');
  if (d.pid !== undefined) writeFileSync(pidFile, `${d.pid}\n`);
  const ready = await waitReady(d, role, readyFile, pidFile, errLog, timeoutS);
  return { ready, sessionDir, tokenGiven, token };
}

/**
 * `tsray start`. Head output:
 * ```text
 * tsray runtime started. Address: <gcsAddress>  Dashboard: <dashboardUrl>
 * To add a node: tsray start --address <gcsAddress> --token-file <sessionDir>/token
 *   (on another machine: copy <sessionDir>/token there first, or set TSRAY_TOKEN to its content)
 * Session: <sessionDir> (logs in <sessionDir>/logs)
 * Submit a job: tsray job submit -- <entrypoint>   Status: tsray status   Stop: tsray stop
 * ```
 * A head bound to loopback says instead, on the second line's continuation, that only this machine
 * can join and how to open it (`--host`). The token never appears in the output (nor in argv). Node output:
 * ```text
 * tsray node started. Node ID: <nodeId>  Address: <nodeAddress or nodeSocket>  Head: <gcsAddress>
 * Session: <sessionDir> (logs in <sessionDir>/logs)
 * ```
 */
export async function cmdStart(o: StartOptions, io: CliIo): Promise<number> {
  const { ready, sessionDir } = await startDaemon(o);
  if (o.head) {
    const tokenFile = join(sessionDir, 'token');
    const bindHost = o.host ?? '127.0.0.1';
    io.out(`tsray runtime started. Address: ${ready.gcsAddress}  Dashboard: ${ready.dashboardUrl ?? '-'}\n`);
    if (ready.dashboardFingerprint) io.out(`Dashboard TLS certificate SHA-256 fingerprint: ${ready.dashboardFingerprint}\n`);
    io.out(`To add a node: tsray start --address ${ready.gcsAddress} --token-file ${tokenFile}\n`);
    if (isLoopback(bindHost) || (isBindAll(bindHost) && isLoopback(ready.gcsAddress.replace(/:\d+$/, '')))) {
      io.out(
        `  (this head listens on ${bindHost} only: nodes of this machine can join; to let other machines join, start it with --host 0.0.0.0 or --host <this machine's address>)\n`,
      );
    } else {
      io.out(`  (on another machine: copy ${tokenFile} there first, or set TSRAY_TOKEN to its content)\n`);
    }
  } else {
    io.out(`tsray node started. Node ID: ${ready.nodeId}  Address: ${ready.nodeAddress ?? ready.nodeSocket}  Head: ${ready.gcsAddress}\n`);
  }
  io.out(`Session: ${sessionDir} (logs in ${join(sessionDir, 'logs')})\n`);
  if (o.head && ready.gcsStorage) io.out(`GCS store: ${ready.gcsStorage} (cluster ${ready.clusterId ?? '-'}; a head restarted with it reloads the cluster)\n`);
  if (o.head) io.out(`Submit a job: tsray job submit -- <entrypoint>   Status: tsray status   Stop: tsray stop\n`);
  return 0;
}
