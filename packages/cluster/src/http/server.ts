/**
 * The head's HTTP API ("dashboard" port, default 8265): Ray's Jobs REST API plus the state routes the
 * `tsray status` / `tsray list` commands read. Every route requires `Authorization: Bearer <API key>`,
 * the key derived from the cluster token (`apiKeyFor`, HKDF): the token itself is refused. Bound beyond
 * loopback the API speaks only TLS (`tls`: the user's certificate or a self-signed one, see `tls.ts`).
 *
 * | route | answer |
 * |---|---|
 * | `GET /api/version` | `{version, tsray_version, ray_version}` |
 * | `POST /api/jobs/` | body {@link JobSubmitRequestBody} → `{job_id, submission_id}` |
 * | `GET /api/jobs/` | `JobDetailsBody[]` |
 * | `GET /api/jobs/{id}` | `JobDetailsBody` |
 * | `GET /api/jobs/{id}/logs` | `{logs}` |
 * | `GET /api/jobs/{id}/logs?follow=1` (also `/logs/tail`) | `text/plain` chunked stream of the log from its start; the response ends when the job has ended and all of its output was sent |
 * | `POST /api/jobs/{id}/stop` | `{stopped}` (false: it had already ended); answers once the job has exited |
 * | `DELETE /api/jobs/{id}` | `{deleted}`; 400 while the job runs |
 * | `GET /api/cluster_status` | {@link ClusterStatus} |
 * | `GET /api/v0/{nodes,actors,tasks,objects,placement_groups,timeline}` | `{result: [...]}` (timeline: recent finished tasks) |
 * | `GET /dashboard/…` | the web dashboard and its JSON (see `dashboard.ts`; the API key by bearer header or the cookie `/dashboard?token=<key>` sets) |
 * | `GET /metrics` | Prometheus text: cluster metrics under Ray's names, application metrics (see `metrics/cluster-metrics.ts`) |
 *
 * Errors are JSON `{error: message}`: 400 malformed body or request, 401 missing/wrong key (or the token), 404 unknown
 * job or route, 405 wrong method, 413 body over 1 MiB, 500 a state provider failure.
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ClusterStatus, StateProvider } from '../contracts.js';
import { JobExistsError, JobNotFoundError, JobNotTerminalError, JobRequestError } from '../jobs/errors.js';
import type { JobManager } from '../jobs/job-manager.js';
import { PortInUseError } from '../errors.js';
import { partLogger } from '../logger.js';
import { apiKeyFor } from './api-key.js';
import { DashboardRequestError, handleDashboard } from './dashboard.js';
import { toJobDetails, type JobSubmitRequestBody } from './wire.js';

/** Options of {@link startHttpApi}. */
export interface HttpApiOptions {
  /** Interface to listen on (e.g. `127.0.0.1`, `0.0.0.0`). */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Cluster token: requests must send `Authorization: Bearer <apiKeyFor(token)>`; the token itself is refused. */
  token: string;
  /** Serve https with this certificate and key (PEM); plain http without (loopback only: the daemon sees to that). */
  tls?: { cert: string; key: string };
  /** Jobs the API submits to and reads. */
  jobs: JobManager;
  /** Cluster state for `/api/cluster_status` and `/api/v0/*`. */
  state: StateProvider;
  /** pino logger (default: tsray's stderr logger). */
  logger?: Logger;
  /** Full path of the file the head's log goes to, named in 500 answers (default: none named). */
  logFile?: string;
  /** `GET /metrics` (Prometheus text); without it the route answers 404. */
  metrics?: { text(): Promise<string> };
}

/** A running HTTP API. */
export interface HttpApi {
  /** `http://host:port`, or `https://…` with TLS (the address clients use). */
  url: string;
  /** The port it listens on (the chosen one when 0 was asked). */
  port: number;
  /**
   * Stop listening and close open connections. Log followers are ended first (their responses end
   * cleanly, so a client reads the end of the stream, not a cut); a follower that cannot finish within
   * a second is cut with the rest.
   */
  close(): Promise<void>;
}

/** The Ray Jobs REST API level these routes follow (reported as `ray_version` by `/api/version`). */
export const RAY_API_VERSION = '2.9.0';

const MAX_BODY = 1024 * 1024;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new RequestError(413, `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new RequestError(400, 'the request body is empty; send a JSON object such as {"entrypoint": "node driver.js"}');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RequestError(400, `the request body is not valid JSON (${(e as Error).message})`);
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** What the route handlers share. */
interface ApiContext {
  opts: HttpApiOptions;
  log: Logger;
  /** sha256 of the API key, and of the token (refused with its own message). */
  keyDigest: Buffer;
  tokenDigest: Buffer;
  version: { version: string; tsray_version: string; ray_version: string };
  /** `reason|remote address` pairs already logged (a rejected client is logged once per reason). */
  authLogged: Set<string>;
  /** Open log-follow streams, each with a promise that settles once its response has ended (close waits on it). */
  followers: Map<AbortController, Promise<void>>;
}

/** One request, its path split into decoded segments. */
interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Path without trailing slashes. */
  path: string;
  seg: string[];
  method: string;
  /** 405 unless the request's method is one of these. */
  expect(...methods: string[]): void;
}

/** True when the request carries the API key; else answers 401 (and logs it once per client and reason). */
function authorized(c: ApiContext, req: IncomingMessage, res: ServerResponse): boolean {
  const header = req.headers['authorization'];
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  let reason: string | undefined;
  if (!m) {
    reason = header === undefined ? 'missing' : 'malformed';
  } else if (!timingSafeEqual(digest(m[1] as string), c.keyDigest)) {
    reason = timingSafeEqual(digest(m[1] as string), c.tokenDigest) ? 'cluster-token' : 'wrong';
  }
  if (!reason) return true;
  const message =
    reason === 'cluster-token'
      ? 'the cluster token is not the API key: send the key derived from it ("tsray api-key" prints it; the CLI derives it from --token/--token-file/TSRAY_TOKEN)'
      : reason === 'wrong'
        ? 'invalid API key: the bearer key does not match this cluster\'s ("tsray api-key" on the head prints it; the CLI derives it from --token/--token-file/TSRAY_TOKEN)'
        : `${reason} API key: send "Authorization: Bearer <API key>" ("tsray api-key" on the head prints it; the CLI derives it from --token, --token-file or TSRAY_TOKEN)`;
  const key = `${reason}|${req.socket.remoteAddress ?? '?'}`;
  if (!c.authLogged.has(key)) {
    c.authLogged.add(key);
    c.log.warn(
      { remote: req.socket.remoteAddress, reason, route: `${req.method} ${req.url}` },
      `rejected an HTTP API request: ${reason} API key (logged once per client and reason)`,
    );
  }
  send(res, 401, { error: message }, { 'www-authenticate': 'Bearer realm="tsray"' });
  return false;
}

/** `GET /api/v0/{name}`: the state lists. */
const STATE_LISTS: Record<string, (state: StateProvider) => Promise<unknown[]>> = {
  nodes: (state) => state.nodes(),
  actors: (state) => state.actors(),
  tasks: (state) => state.tasks(),
  objects: (state) => state.objects(),
  placement_groups: (state) => state.placementGroups(),
  timeline: async (state) => (await state.timeline?.()) ?? [],
};

/** `GET /api/v0/{name}`. */
async function handleStateList(c: ApiContext, r: ApiRequest): Promise<void> {
  const fn = STATE_LISTS[r.seg[2] as string];
  if (!fn) throw new RequestError(404, `no such state list: ${r.seg[2]} (one of ${Object.keys(STATE_LISTS).join(', ')})`);
  r.expect('GET');
  send(r.res, 200, { result: await fn(c.opts.state) });
}

/** `GET /api/jobs/` (list) and `POST /api/jobs/` (submit). */
async function handleJobs(c: ApiContext, r: ApiRequest): Promise<void> {
  r.expect('GET', 'POST');
  if (r.method === 'GET') return send(r.res, 200, c.opts.jobs.list().map(toJobDetails));
  const body = await readJson(r.req);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RequestError(400, 'the request body must be a JSON object such as {"entrypoint": "node driver.js"}');
  }
  const b = body as Partial<JobSubmitRequestBody> & { job_id?: unknown };
  const submissionId = b.submission_id ?? (typeof b.job_id === 'string' ? b.job_id : undefined);
  const info = c.opts.jobs.submit({
    entrypoint: b.entrypoint as string,
    ...(submissionId != null ? { submissionId } : {}),
    ...(b.runtime_env != null ? { runtimeEnv: b.runtime_env } : {}),
    ...(b.metadata != null ? { metadata: b.metadata } : {}),
  });
  send(r.res, 200, { job_id: info.submissionId, submission_id: info.submissionId });
}

/** `GET /api/jobs/{id}` (details) and `DELETE /api/jobs/{id}`. */
function handleJob(c: ApiContext, r: ApiRequest, id: string): void {
  r.expect('GET', 'DELETE');
  if (r.method === 'DELETE') return send(r.res, 200, { deleted: c.opts.jobs.delete(id) });
  const info = c.opts.jobs.get(id);
  if (!info) throw new JobNotFoundError(id);
  send(r.res, 200, toJobDetails(info));
}

/** `GET /api/jobs/{id}/logs`: the log so far, or (follow) a chunked stream until the job ended. */
async function handleLogs(c: ApiContext, r: ApiRequest, id: string): Promise<void> {
  r.expect('GET');
  const { res } = r;
  const follow = r.seg.length === 5 || ['1', 'true', 'yes'].includes(r.url.searchParams.get('follow') ?? '');
  if (!follow) return send(res, 200, { logs: await c.opts.jobs.logs(id) });
  if (!c.opts.jobs.get(id)) throw new JobNotFoundError(id);
  const ac = new AbortController();
  const iter = c.opts.jobs.follow(id, { signal: ac.signal });
  let ended!: () => void;
  c.followers.set(
    ac,
    new Promise<void>((resolve) => {
      ended = resolve;
    }),
  );
  res.on('close', () => ac.abort());
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  res.flushHeaders();
  try {
    for await (const chunk of iter) {
      if (!res.write(chunk))
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
      if (ac.signal.aborted) break;
    }
  } finally {
    c.followers.delete(ac);
    if (res.destroyed) ended();
    else res.end(ended);
  }
}

/** `GET /metrics`: Prometheus text, behind the same token as every route (Prometheus sends it with `authorization: {credentials_file: …}`). */
async function handleMetrics(c: ApiContext, r: ApiRequest): Promise<void> {
  if (!authorized(c, r.req, r.res)) return;
  r.expect('GET');
  if (!c.opts.metrics) throw new RequestError(404, 'this server exports no metrics');
  const text = await c.opts.metrics.text();
  r.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  r.res.end(text);
}

/** Parse the request's path and method. */
function apiRequest(req: IncomingMessage, res: ServerResponse): ApiRequest {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  const method = req.method ?? 'GET';
  const expect = (...methods: string[]): void => {
    if (!methods.includes(method)) throw new RequestError(405, `${method} is not allowed on ${path} (use ${methods.join(' or ')})`);
  };
  return { req, res, url, path, seg, method, expect };
}

/** What the dashboard routes read; the key check is the Jobs API's (constant time; the cluster token is not a key). */
function dashboardDeps(c: ApiContext): Parameters<typeof handleDashboard>[0] {
  return { state: c.opts.state, jobs: c.opts.jobs, log: c.log, tokenOk: (t) => timingSafeEqual(digest(t), c.keyDigest) };
}

/** Route a request (after the token check) to its handler. */
async function route(c: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const r = apiRequest(req, res);
  const { path, seg, method } = r;
  if (path === '/metrics') return handleMetrics(c, r);
  if (seg[0] === 'dashboard') return handleDashboard(dashboardDeps(c), req, res, r.url, seg);
  if (seg[0] !== 'api') throw new RequestError(404, `no such route: ${method} ${path}`);
  if (!authorized(c, req, res)) return;
  if (path === '/api/version') {
    r.expect('GET');
    return send(res, 200, c.version);
  }
  if (path === '/api/cluster_status') {
    r.expect('GET');
    const s: ClusterStatus = await c.opts.state.status();
    return send(res, 200, s);
  }
  if (seg[1] === 'v0' && seg.length === 3) return handleStateList(c, r);
  if (seg[1] !== 'jobs') throw new RequestError(404, `no such route: ${method} ${path}`);
  if (seg.length === 2) return handleJobs(c, r);
  const id = seg[2] as string;
  if (seg.length === 3) return handleJob(c, r, id);
  if (seg.length === 4 && seg[3] === 'stop') {
    r.expect('POST');
    return send(res, 200, { stopped: await c.opts.jobs.stop(id) });
  }
  if (seg[3] === 'logs' && (seg.length === 4 || (seg.length === 5 && seg[4] === 'tail'))) return handleLogs(c, r, id);
  throw new RequestError(404, `no such route: ${method} ${path}`);
}

/** Answer a failed request: its status for known errors, else 500 (logged). */
function sendError(c: ApiContext, req: IncomingMessage, res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (e instanceof RequestError || e instanceof DashboardRequestError) return send(res, e.status, { error: e.message });
  if (e instanceof JobNotFoundError) return send(res, 404, { error: e.message });
  if (e instanceof JobRequestError || e instanceof JobExistsError || e instanceof JobNotTerminalError) return send(res, 400, { error: e.message });
  c.log.error({ err: e, route: `${req.method} ${req.url}` }, 'HTTP API request failed');
  const where = c.opts.logFile ? `see the head's log: ${c.opts.logFile}` : "see the head's log";
  send(res, 500, { error: `internal error: ${(e as Error)?.message ?? String(e)} (${where})` });
}

/** Listen on the options' host and port (PortInUseError when taken). */
function listen(server: Server, opts: HttpApiOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(e.code === 'EADDRINUSE' ? new PortInUseError('the jobs HTTP API (dashboard)', opts.port, opts.host) : e);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts.port, opts.host);
  });
}

/**
 * Start the head's HTTP API.
 * @throws PortInUseError when the port is taken (the message names it).
 */
export async function startHttpApi(opts: HttpApiOptions): Promise<HttpApi> {
  const c: ApiContext = {
    opts,
    log: opts.logger ?? partLogger('http'),
    keyDigest: digest(apiKeyFor(opts.token)),
    tokenDigest: digest(opts.token),
    version: { version: '1', tsray_version: packageVersion(), ray_version: RAY_API_VERSION },
    authLogged: new Set(),
    followers: new Map(),
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    route(c, req, res).catch((e: unknown) => sendError(c, req, res, e));
  };
  const server: Server = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, handler) : createServer(handler);
  await listen(server, opts);
  server.on('error', (err) => c.log.error({ err }, 'HTTP API server error'));
  const port = (server.address() as AddressInfo).port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `${opts.tls ? 'https' : 'http'}://${hostPart}:${port}`;
  c.log.info({ url }, 'HTTP API listening');
  return {
    url,
    port,
    close: async () => {
      const ending = [...c.followers.values()];
      for (const ac of c.followers.keys()) ac.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(ending), new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
      clearTimeout(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
