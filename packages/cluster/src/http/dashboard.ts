/**
 * The web dashboard the head serves on its HTTP API port (issue #20): static pages under `/dashboard/`
 * (shipped in the package's `dashboard/` folder, no CDN) and the JSON they read under `/dashboard/api/`.
 *
 * Auth is the Jobs API's key, derived from the cluster token (`tsray api-key`; the token itself is
 * refused; Ray's dashboard was reachable without any, CVE-2023-48022): a browser
 * opens `/dashboard?token=<API key>` once; the head answers with an HttpOnly, SameSite=Strict cookie
 * scoped to `/dashboard` and redirects to `/dashboard/`, so the token leaves the address bar and every
 * later request (pages, JSON, the SSE stream) carries it. `Authorization: Bearer` works as well. No
 * route under `/dashboard` answers anything but 401 without one of them.
 *
 * | route | answer |
 * |---|---|
 * | `GET /dashboard?token=T` | 303 to `/dashboard/` with the cookie set (401 for a wrong token) |
 * | `GET /dashboard/`, `/dashboard/{app.js,style.css}` | the page and its assets |
 * | `GET /dashboard/api/overview` | {@link DashboardOverview} |
 * | `GET /dashboard/api/{nodes,jobs,actors,tasks,failures,placement_groups,engines}?offset=&limit=` | {@link DashboardPage} |
 * | `GET /dashboard/api/jobs/{id}/logs` | `{logs}`: the last 64 KiB of the job's log |
 * | `GET /dashboard/api/events` | `text/event-stream`: a `change` event whenever the cluster state changed |
 *
 * Every list is paginated (`limit` at most {@link MAX_PAGE}); the task list holds live tasks plus the
 * nodes' recent finished tasks (each node keeps the last 10,000), so its size is capped too; the
 * failures (error class, message, remote stack) are the nodes' rings of their last 200 failed tasks;
 * the engines are the LLM engines (one row per rank) that reported their load in the last 10 s.
 * @module
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EngineRow, StateProvider } from '../contracts.js';
import type { JobManager } from '../jobs/job-manager.js';
import { toJobDetails } from './wire.js';

/** Largest page a list route answers. */
export const MAX_PAGE = 500;
/** Default page size. */
export const DEFAULT_PAGE = 50;
/** Most SSE streams open at once (each polls the state; more are refused with 503). */
export const MAX_EVENT_STREAMS = 32;
/** How often an SSE stream looks for a change, in ms. */
export const EVENT_POLL_MS = 500;
/** Bytes of a job's log the jobs page shows (its tail). */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Name of the cookie that carries the token. */
export const DASHBOARD_COOKIE = 'tsray_dashboard';

/** One page of a list. */
export interface DashboardPage<T = unknown> {
  total: number;
  offset: number;
  limit: number;
  items: T[];
  /** Tasks only: how many tasks are in each state (PENDING, RUNNING, FINISHED). */
  counts?: Record<string, number>;
}

/** `GET /dashboard/api/overview`. */
export interface DashboardOverview {
  nodes: { alive: number; dead: number };
  /** Per resource (CPU, GPU, memory, object_store_memory, custom): total and in use over alive nodes. */
  resources: Record<string, { total: number; used: number }>;
  pendingDemand: { kind: string; name: string; count: number; infeasible: boolean; missing: string[] }[];
  infeasible: number;
  actors: Record<string, number>;
  tasks: Record<string, number>;
  jobs: Record<string, number>;
  placementGroups: Record<string, number>;
}

/** What the dashboard reads; `tokenOk` checks a token against the cluster's (constant time). */
export interface DashboardDeps {
  state: StateProvider;
  jobs: JobManager;
  log: Logger;
  tokenOk(token: string): boolean;
}

/** A bad request of the dashboard (answered with `status`). */
export class DashboardRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'DashboardRequestError';
  }
}

const ASSETS: Record<string, string> = {
  '': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};
const ASSET_DIR = new URL('../../dashboard/', import.meta.url);
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'cache-control': 'no-store',
};
/** Open SSE streams per server (keyed by its state provider), for {@link MAX_EVENT_STREAMS}. */
const openStreams = new WeakMap<StateProvider, number>();

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...SECURITY_HEADERS, ...headers });
  res.end(text);
}

/** The token a request carries: bearer header, else the dashboard cookie. */
function requestToken(req: IncomingMessage): string | undefined {
  const h = req.headers['authorization'];
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (m) return m[1];
  for (const part of (req.headers['cookie'] ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === DASHBOARD_COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

function unauthorized(res: ServerResponse): void {
  sendJson(
    res,
    401,
    {
      error:
        'the dashboard needs the cluster API key: open /dashboard?token=<API key> ("tsray api-key" on the head prints it; the cluster token itself is not accepted)',
    },
    { 'www-authenticate': 'Bearer realm="tsray"' },
  );
}

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new DashboardRequestError(400, `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Math.min(n, max);
}

function page<T>(url: URL, all: T[]): DashboardPage<T> {
  const limit = intParam(url, 'limit', DEFAULT_PAGE, MAX_PAGE);
  const offset = intParam(url, 'offset', 0, Number.MAX_SAFE_INTEGER);
  return { total: all.length, offset, limit, items: all.slice(offset, offset + limit) };
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

/** Live tasks first, then finished ones, newest first. */
async function allTasks(state: StateProvider): Promise<{ items: Record<string, unknown>[]; counts: Record<string, number> }> {
  const live = await state.tasks();
  const done = ((await state.timeline?.()) ?? []).slice().sort((a, b) => b.startUs + b.durUs - (a.startUs + a.durUs));
  const items: Record<string, unknown>[] = [
    ...live.map((t) => ({ taskId: t.taskId, name: t.name, state: t.state, nodeId: t.nodeId, actorId: t.actorId ?? '' })),
    ...done.map((t) => ({
      taskId: t.taskId,
      name: t.name,
      state: 'FINISHED',
      nodeId: t.nodeId,
      actorId: t.actorId ?? '',
      pid: t.pid,
      durationMs: t.durUs / 1000,
    })),
  ];
  return { items, counts: { PENDING: 0, RUNNING: 0, FINISHED: 0, ...countBy(items, (t) => t.state as string) } };
}

/** GPU ids in use on each node: which worker (and actor) holds each. */
async function gpusInUse(state: StateProvider): Promise<Map<string, { gpuId: number | string; pid: number; actorId?: string }[]>> {
  const out = new Map<string, { gpuId: number | string; pid: number; actorId?: string }[]>();
  for (const w of (await state.workers?.()) ?? []) {
    for (const gpuId of w.gpuIds) {
      const list = out.get(w.nodeId) ?? [];
      list.push({ gpuId, pid: w.pid, ...(w.actorId ? { actorId: w.actorId } : {}) });
      out.set(w.nodeId, list);
    }
  }
  for (const list of out.values()) list.sort((a, b) => String(a.gpuId).localeCompare(String(b.gpuId), undefined, { numeric: true }));
  return out;
}

async function overview(d: DashboardDeps): Promise<DashboardOverview> {
  const [status, actors, tasks, pgs] = await Promise.all([d.state.status(), d.state.actors(), allTasks(d.state), d.state.placementGroups()]);
  const resources: DashboardOverview['resources'] = {};
  for (const n of status.nodes.filter((x) => x.alive)) {
    for (const [k, total] of Object.entries(n.resourcesTotal)) {
      const r = (resources[k] ??= { total: 0, used: 0 });
      r.total += total;
      r.used += total - (n.resourcesAvailable[k] ?? 0);
    }
  }
  return {
    nodes: { alive: status.nodes.filter((n) => n.alive).length, dead: status.nodes.filter((n) => !n.alive).length },
    resources,
    pendingDemand: status.pendingDemand.map((p) => ({ kind: p.kind, name: p.name, count: p.count, infeasible: p.infeasible, missing: p.missing })),
    infeasible: status.pendingDemand.filter((p) => p.infeasible).reduce((s, p) => s + p.count, 0),
    actors: countBy(actors, (a) => a.state),
    tasks: tasks.counts,
    jobs: countBy(d.jobs.list(), (j) => j.status),
    placementGroups: countBy(pgs, (p) => p.state),
  };
}

/**
 * The LLM engines with their actor's name (an engine reports its actor id; a data-parallel rank `i` is
 * the actor named `<name>-<i>`), sorted by name and rank.
 */
async function engines(state: StateProvider): Promise<EngineRow[]> {
  const rows = (await state.engines?.()) ?? [];
  if (rows.length === 0) return [];
  const names = new Map((await state.actors()).map((a) => [a.actorId, a.name]));
  return rows
    .map((e) => {
      const name = e.name || names.get(e.actorId) || '';
      const rank = /-(\d+)$/.exec(name);
      return { ...e, name, rank: e.rank || (rank ? Number(rank[1]) : 0) };
    })
    .sort((a, b) => a.name.localeCompare(b.name) || a.rank - b.rank || a.actorId.localeCompare(b.actorId));
}

/** Rows of a list route, in display order. */
async function listRows(d: DashboardDeps, name: string): Promise<{ items: unknown[]; counts?: Record<string, number> }> {
  switch (name) {
    case 'nodes': {
      const gpus = await gpusInUse(d.state);
      const nodes = (await d.state.nodes()).slice().sort((a, b) => Number(b.isHead) - Number(a.isHead) || a.startTime - b.startTime);
      return { items: nodes.map((n) => ({ ...n, gpusInUse: gpus.get(n.nodeId) ?? [] })) };
    }
    case 'jobs':
      return {
        items: d.jobs
          .list()
          .map(toJobDetails)
          .sort((a, b) => (b.start_time ?? 0) - (a.start_time ?? 0)),
      };
    case 'actors':
      return { items: await d.state.actors() };
    case 'tasks':
      return allTasks(d.state);
    case 'failures':
      return { items: ((await d.state.taskFailures?.()) ?? []).slice().sort((a, b) => b.time - a.time) };
    case 'engines':
      return { items: await engines(d.state) };
    case 'placement_groups':
      return { items: await d.state.placementGroups() };
    default:
      throw new DashboardRequestError(404, `no such dashboard list: ${name} (one of nodes, jobs, actors, tasks, failures, placement_groups, engines)`);
  }
}

/** A digest of what the pages show; a change of it is what the SSE stream reports. */
async function fingerprint(d: DashboardDeps): Promise<string> {
  const [o, nodes, actors, pgs, workers, failures, engines] = await Promise.all([
    overview(d),
    d.state.nodes(),
    d.state.actors(),
    d.state.placementGroups(),
    d.state.workers?.() ?? [],
    d.state.taskFailures?.() ?? [],
    d.state.engines?.() ?? [],
  ]);
  const jobs = d.jobs.list().map((j) => [j.submissionId, j.status]);
  // Engines report every second: only a change of what their row shows counts (not the report time).
  const load = engines.map(({ reportedAt: _, ...shown }) => shown);
  return createHash('sha1')
    .update(
      JSON.stringify([
        o,
        nodes,
        actors,
        pgs,
        workers.map((w) => [w.pid, w.gpuIds]),
        failures.length,
        failures.reduce((m, f) => Math.max(m, f.time), 0),
        load,
        jobs,
      ]),
    )
    .digest('hex');
}

/** `GET /dashboard/api/events`: `change` events while the client stays connected. */
function events(d: DashboardDeps, req: IncomingMessage, res: ServerResponse): void {
  const open = openStreams.get(d.state) ?? 0;
  if (open >= MAX_EVENT_STREAMS) throw new DashboardRequestError(503, `too many open dashboard event streams (at most ${MAX_EVENT_STREAMS})`);
  openStreams.set(d.state, open + 1);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...SECURITY_HEADERS });
  res.write('retry: 1000\n\n');
  let last = '';
  let busy = false;
  const tick = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const fp = await fingerprint(d);
      if (fp !== last) {
        last = fp;
        res.write(`event: change\ndata: ${JSON.stringify({ version: fp, at: Date.now() })}\n\n`);
      }
    } catch (err) {
      d.log.warn({ err }, 'dashboard: reading the cluster state for the event stream failed');
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), EVENT_POLL_MS);
  req.on('close', () => {
    clearInterval(timer);
    openStreams.set(d.state, (openStreams.get(d.state) ?? 1) - 1);
  });
}

async function asset(res: ServerResponse, name: string): Promise<void> {
  const type = ASSETS[name];
  if (type === undefined) throw new DashboardRequestError(404, `no such dashboard file: ${name}`);
  const body = await readFile(new URL(name === '' ? 'index.html' : name, ASSET_DIR));
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, ...SECURITY_HEADERS });
  res.end(body);
}

/**
 * Answer a request whose path starts with `/dashboard` (after the server parsed it); errors are thrown
 * as {@link DashboardRequestError} for the caller's error handler, or answered here (401).
 */
export async function handleDashboard(d: DashboardDeps, req: IncomingMessage, res: ServerResponse, url: URL, seg: string[]): Promise<void> {
  if ((req.method ?? 'GET') !== 'GET') throw new DashboardRequestError(405, `${req.method} is not allowed on the dashboard (it is read-only: use GET)`);
  const entry = url.searchParams.get('token');
  if (seg.length === 1 && entry !== null) {
    if (!d.tokenOk(entry)) return unauthorized(res);
    res.writeHead(303, {
      location: '/dashboard/',
      'set-cookie': `${DASHBOARD_COOKIE}=${encodeURIComponent(entry)}; HttpOnly; SameSite=Strict; Path=/dashboard`,
      ...SECURITY_HEADERS,
    });
    return void res.end();
  }
  const token = requestToken(req);
  if (token === undefined || !d.tokenOk(token)) return unauthorized(res);
  if (seg.length === 1 && !url.pathname.endsWith('/')) {
    res.writeHead(303, { location: '/dashboard/', ...SECURITY_HEADERS });
    return void res.end();
  }
  if (seg[1] !== 'api') return asset(res, seg.slice(1).join('/'));
  const what = seg[2] ?? '';
  if (seg.length === 3 && what === 'overview') return sendJson(res, 200, await overview(d));
  if (seg.length === 3 && what === 'events') return events(d, req, res);
  if (seg.length === 5 && what === 'jobs' && seg[4] === 'logs') {
    const logs = await d.jobs.logs(seg[3] as string);
    return sendJson(res, 200, { logs: logs.length > LOG_TAIL_BYTES ? logs.slice(-LOG_TAIL_BYTES) : logs });
  }
  if (seg.length !== 3) throw new DashboardRequestError(404, `no such dashboard route: ${url.pathname}`);
  const rows = await listRows(d, what);
  return sendJson(res, 200, { ...page(url, rows.items), ...(rows.counts ? { counts: rows.counts } : {}) });
}
