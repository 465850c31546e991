/**
 * The head and node daemons (`tsray start`): a node runtime that listens on tcp for other nodes and
 * joins the GCS; the head also runs the GCS, the jobs manager and the jobs HTTP API.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import {
  ensureRuntimeDir,
  config as tsrayConfig,
  NodeRuntime,
  resolveNodeGpus,
  retireSession,
  type MetricSeries,
  type NodeHardware,
} from '@tsray/core/internal';
import type {
  ActorState,
  ClusterStatus,
  DaemonConfig,
  DemandState,
  NodeInfo,
  ObjectState,
  PlacementGroupState,
  ReadyInfo,
  StateProvider,
  EngineRow,
  TaskEvent,
  TaskFailure,
  TaskState,
  WorkerState,
} from './contracts.js';
import { GcsServer, type ActorEntry } from './gcs.js';
import { type GcsStorage, openGcsStorage } from './gcs-storage.js';
import { JobManager } from './jobs/job-manager.js';
import { startHttpApi, type HttpApi } from './http/server.js';
import { loadTls, selfSignedTls, type ApiTls } from './http/tls.js';
import { ClusterMetrics, type MetricsSource } from './metrics/cluster-metrics.js';
import { logger } from './logger.js';
import { startAutoscalerOnHead } from './head-autoscaler.js';
import { firstExternalIpv4, isBindAll, isLoopback, nodeAddressFor } from './node-address.js';

/** A running daemon. */
export interface Daemon {
  ready: ReadyInfo;
  node: NodeRuntime;
  gcs: GcsServer | undefined;
  /** Head only: the `/metrics` exporter (`addRegistry()` merges more prom-client registries, e.g. engines' `vllm:*`). */
  metrics: ClusterMetrics | undefined;
  /** Stop everything (jobs, HTTP API, node, GCS). */
  stop(): Promise<void>;
}

function writeAtomic(file: string, text: string, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

/** The head's address for others: its host, or this machine's first IPv4 address when bound to all. */
function advertised(host: string): string {
  return isBindAll(host) ? firstExternalIpv4() : host;
}

/** Seconds a node waits for a silent head before it stops: the config, else TSRAY_HEAD_LOST_TIMEOUT_S, else 60. */
function headLostTimeoutS(config: DaemonConfig): number {
  return config.headLostTimeoutS ?? tsrayConfig().headLostTimeoutS;
}

function defaultPython(): string {
  const python = tsrayConfig().python;
  if (python) return python;
  const venv = join(process.cwd(), '.venv/bin/python');
  return existsSync(venv) ? venv : 'python3';
}

/** The node's resources: CPUs, memory, object store, custom ones, and GPUs as Ray counts them. */
function nodeResources(config: DaemonConfig): { resources: Record<string, number>; gpuIds: string[] | undefined; store: number } {
  const numCpus = config.numCpus ?? availableParallelism();
  const store = config.objectStoreMemory ?? Math.min(Math.floor(totalmem() * 0.3), 4 * 1024 ** 3);
  const resources: Record<string, number> = { CPU: numCpus, memory: Math.floor(totalmem() * 0.7), object_store_memory: store, ...(config.resources ?? {}) };
  // GPUs: the devices in this process's CUDA_VISIBLE_DEVICES, else nvidia-smi's.
  const { numGpus, gpuIds } = resolveNodeGpus(config.numGpus, 'tsray start');
  if (numGpus > 0) resources['GPU'] = numGpus;
  return { resources, gpuIds, store };
}

/**
 * Write `<runtime dir>/current.json` (this user's 0700 `$TMPDIR/tsray-<uid>`) so drivers on this machine find the cluster with
 * `init({ address: 'auto' })`. The head's node wins; another node takes the file only when no live
 * cluster process has it. Returns the file's path.
 */
function publishCurrent(role: DaemonConfig['role'], entry: { pid: number } & Record<string, unknown>): string {
  const root = ensureRuntimeDir();
  const current = join(root, 'current.json');
  let taken = false;
  try {
    const cur = JSON.parse(readFileSync(current, 'utf8')) as { pid: number };
    process.kill(cur.pid, 0);
    taken = cur.pid !== process.pid;
  } catch {
    /* none or dead */
  }
  if (role === 'head' || !taken) writeAtomic(current, JSON.stringify(entry));
  return current;
}

/**
 * The head's GCS, its tables in the store `--storage` names (Redis), else in the on-disk log of the
 * session directory: a head restarted with the same store reloads the cluster.
 */
async function startGcs(config: DaemonConfig, host: string, token: string): Promise<GcsServer> {
  const storage: GcsStorage = await openGcsStorage(config.storage ?? join(config.sessionDir, 'gcs', 'store.jsonl'));
  try {
    return await GcsServer.start({
      storage,
      host,
      port: config.port ?? 6380,
      token,
      nodeDeathTimeoutMs: (config.nodeDeathTimeoutS ?? 3) * 1000,
      ...(config.maxFrameBytes ? { maxFrameBytes: config.maxFrameBytes } : {}),
    });
  } catch (e) {
    await storage.close().catch(() => undefined);
    throw e;
  }
}

/** Start a head or node daemon in this process. */
export async function startDaemon(config: DaemonConfig): Promise<Daemon> {
  // A head binds --host (default loopback); a node binds and advertises the address it reaches the head on.
  const { bind: host, advertise: adv } =
    config.role === 'head'
      ? { bind: config.host ?? '127.0.0.1', advertise: advertised(config.host ?? '127.0.0.1') }
      : await nodeAddressFor({ headAddress: config.headAddress ?? '', host: config.host, nodeIpAddress: config.nodeIpAddress });
  const nodeId = randomBytes(8).toString('hex');
  const nodeDir = join(config.sessionDir, `node-${nodeId.slice(0, 8)}`);
  mkdirSync(join(config.sessionDir, 'logs'), { recursive: true, mode: 0o700 });
  mkdirSync(nodeDir, { recursive: true, mode: 0o700 });
  const tokenFile = config.tokenFile ?? join(config.sessionDir, 'token');
  const token = config.token ?? readToken(tokenFile);
  if (!existsSync(tokenFile)) writeAtomic(tokenFile, token, 0o600);
  const { resources, gpuIds, store } = nodeResources(config);
  let gcs: GcsServer | undefined;
  let gcsAddress = config.headAddress ?? '';
  if (config.role === 'head') {
    gcs = await startGcs(config, host, token);
    gcsAddress = `${adv}:${gcs.address.split(':').pop()}`;
  }
  let stopping: Promise<void> | undefined;
  let node: NodeRuntime;
  // Set once started: a refusal while starting rejects NodeRuntime.start instead (daemonMain reports it).
  let d: Daemon | undefined;
  try {
    node = await NodeRuntime.start({
      nodeId,
      jobId: nodeId.slice(0, 8),
      sessionDir: nodeDir,
      resources,
      ...(gpuIds ? { gpuIds } : {}),
      objectStoreMemory: store,
      spilling: true,
      logToDriver: true,
      prefaultBytes: 0,
      namespace: 'default',
      python: defaultPython(),
      token,
      tcp: { host, port: 0, advertise: adv },
      // The head's own node reaches the GCS on the interface it is bound to (loopback for a bind-all host).
      gcsAddress: config.role === 'head' ? `${isBindAll(host) ? '127.0.0.1' : host}:${gcs!.address.split(':').pop()}` : gcsAddress,
      // The head's own node shares its process with the GCS: it never gives up on it.
      headLostTimeoutMs: config.role === 'node' ? headLostTimeoutS(config) * 1000 : Infinity,
      isHead: config.role === 'head',
      labels: config.labels ?? {},
      ...(config.maxFrameBytes ? { maxFrameBytes: config.maxFrameBytes } : {}),
      onFatal: (reason) => {
        if (!d) return; // still starting: NodeRuntime.start rejects with the reason
        logger().error({ reason }, 'this node stops: the head refused or dropped it, or was lost');
        process.stderr.write(`tsray node ${nodeId}: ${reason}\n`);
        void d.stop().then(() => process.exit(1));
      },
    });
  } catch (e) {
    await gcs?.close();
    throw e;
  }
  const nodeAddress = node.tcpAddress;
  const { jobs, api, tls, metrics, dashboardUrl, autoscaler } = gcs ? await startHeadServices(config, gcs, gcsAddress, token, tokenFile) : {};
  if (gcs && !isBindAll(host) && !isLoopback(host)) gcs.refuseLoopbackNodes = true;
  const ready: ReadyInfo = {
    role: config.role,
    nodeId,
    pid: process.pid,
    gcsAddress,
    ...(dashboardUrl ? { dashboardUrl } : {}),
    ...(gcs ? { gcsStorage: gcs.storageDescription, clusterId: gcs.clusterId } : {}),
    ...(tls ? { dashboardFingerprint: tls.fingerprint } : {}),
    nodeSocket: node.address,
    nodeAddress,
    sessionDir: config.sessionDir,
  };
  const current = publishCurrent(config.role, { address: node.address, pid: process.pid, nodeId, sessionDir: nodeDir, tokenFile, gcsAddress, dashboardUrl });
  d = {
    ready,
    node,
    gcs,
    metrics,
    stop: () =>
      (stopping ??= (async () => {
        await autoscaler?.stop().catch(() => undefined);
        await api?.close().catch(() => undefined);
        await jobs?.shutdown().catch(() => undefined);
        await node.shutdown().catch(() => undefined);
        await gcs?.close().catch(() => undefined);
        try {
          if ((JSON.parse(readFileSync(current, 'utf8')) as { pid: number }).pid === process.pid) rmSync(current, { force: true });
        } catch {
          /* gone */
        }
        // Worker logs stay with the session (errors name them by path); sockets and spill files go.
        retireSession(nodeDir);
      })()),
  };
  return d;
}

/** The head's jobs manager, `/metrics` and HTTP API (TLS beyond loopback); the GCS learns the dashboard's URL. */
async function startHeadServices(
  config: DaemonConfig,
  gcs: GcsServer,
  gcsAddress: string,
  token: string,
  tokenFile: string,
): Promise<{
  jobs: JobManager;
  api: HttpApi;
  tls: ApiTls | undefined;
  metrics: ClusterMetrics;
  dashboardUrl: string;
  autoscaler: ReturnType<typeof startAutoscalerOnHead> | undefined;
}> {
  // Entrypoints find the token in its 0600 file: the token itself stays out of their environment.
  const jobs = new JobManager({
    logDir: join(config.sessionDir, 'logs'),
    env: { TSRAY_ADDRESS: gcsAddress, TSRAY_TOKEN_FILE: tokenFile },
    logger: logger(),
    // Job rows are GCS state: stored, so a restarted head lists the same jobs.
    onChange: (id, info) => void gcs.service.persistJob(id, info).catch((err: Error) => logger().warn({ submissionId: id, err }, 'a job row was not stored')),
  });
  jobs.restore(gcs.service.restoredJobs());
  gcs.service.listJobs = () => jobs.list();
  const base = headState(gcs);
  // A head of `tsray up` runs the cluster's autoscaler; its state joins `tsray status`.
  const autoscaler = config.autoscalingConfig ? startAutoscalerOnHead(config.autoscalingConfig, gcs, base, gcsAddress, tokenFile) : undefined;
  const state: StateProvider = autoscaler ? { ...base, status: async () => ({ ...(await base.status()), autoscaler: autoscaler.status() }) } : base;
  const metrics = new ClusterMetrics(state, nodeMetricsOf(gcs), { SessionName: basename(config.sessionDir) });
  const apiHost = config.dashboardHost ?? '127.0.0.1';
  const tls = await apiTls(config, apiHost);
  const api = await startHttpApi({
    host: apiHost,
    port: config.dashboardPort ?? 8265,
    token,
    jobs,
    state,
    logger: logger(),
    metrics,
    ...logFileOpt(),
    ...(tls ? { tls } : {}),
  });
  const dashboardUrl = api.url.replace('0.0.0.0', advertised(apiHost));
  // Over the GCS (a token-proved connection) the URL carries its certificate's fingerprint, so
  // `tsray status --address HEAD:6380` on another machine pins it: `https://…#sha256=AA:BB:…`.
  gcs.service.dashboardUrl = tls ? `${dashboardUrl}#sha256=${tls.fingerprint}` : dashboardUrl;
  return { jobs, api, tls, metrics, dashboardUrl, autoscaler };
}

/** The token in `file` (written 0600 by `tsray start`); the daemon's argv never holds it. */
function readToken(file: string): string {
  const t = readFileSync(file, 'utf8').trim();
  if (!t) throw new Error(`the cluster token file ${file} is empty`);
  return t;
}

/**
 * TLS of the HTTP API: none on loopback; beyond it the user's certificate (`--dashboard-cert` and
 * `--dashboard-key`) or a self-signed one for the addresses clients use (its fingerprint goes to the
 * ready file and `tsray start` prints it).
 */
async function apiTls(config: DaemonConfig, apiHost: string): Promise<ApiTls | undefined> {
  if (config.dashboardCert !== undefined || config.dashboardKey !== undefined) {
    if (!config.dashboardCert || !config.dashboardKey) throw new Error('--dashboard-cert and --dashboard-key go together');
    return loadTls(config.dashboardCert, config.dashboardKey);
  }
  if (isLoopback(apiHost)) return undefined;
  return selfSignedTls([advertised(apiHost), ...(isBindAll(apiHost) ? ['127.0.0.1'] : [apiHost]), 'localhost', hostname()]);
}

/** `{ logFile }`: the file this process's stderr (its log) goes to, when it is a file (`tsray start` points it at `<session>/logs/head-<n>.err`). */
function logFileOpt(): { logFile?: string } {
  try {
    const target = readlinkSync('/proc/self/fd/2');
    return target.startsWith('/') && statSync(target).isFile() ? { logFile: target } : {};
  } catch {
    return {};
  }
}

/** Every node's application metrics and hardware reading, asked at scrape time. */
function nodeMetricsOf(gcs: GcsServer): MetricsSource {
  return {
    nodeMetrics: async () => {
      const all = await gcs.service.gatherState('metrics');
      return { metrics: all.flatMap((r) => (r['metrics'] ?? []) as MetricSeries[]), hardware: all.flatMap((r) => (r['hardware'] ?? []) as NodeHardware[]) };
    },
  };
}

/** Cluster state for the HTTP API and the CLI, from the GCS and the nodes. */
function headState(gcs: GcsServer): StateProvider {
  const gather = async <T>(what: string): Promise<T[]> => {
    const all = await gcs.service.gatherState(what);
    return all.flatMap((r) => (r[what] ?? []) as T[]);
  };
  const actors = async (): Promise<ActorState[]> => {
    // The GCS directory has no GPU ids: the nodes' workers say which GPUs each actor's process holds.
    const [workers, engines] = await Promise.all([gather<WorkerState>('workers').catch(() => []), gather<EngineRow>('engines').catch(() => [])]);
    const gpus = new Map(workers.filter((w) => w.actorId).map((w) => [w.actorId!, w.gpuIds]));
    const tp = new Map(engines.map((e) => [e.actorId, e.tensorParallelSize]));
    return gcs.actorEntries().map((a: ActorEntry) => ({
      actorId: a.actorId,
      className: a.className,
      name: a.name,
      namespace: a.namespace,
      state: a.state,
      nodeId: a.hostNodeId,
      pid: a.pid,
      numRestarts: a.numRestarts,
      detached: a.detached,
      gpuIds: gpus.get(a.actorId) ?? [],
      ...(tp.has(a.actorId) ? { tensorParallelSize: tp.get(a.actorId)! } : {}),
      ...(a.deathCause ? { deathCause: a.deathCause } : {}),
    }));
  };
  return {
    nodes: async () => gcs.nodeInfos(),
    actors,
    tasks: () => gather<TaskState>('tasks'),
    objects: () => gather<ObjectState>('objects'),
    placementGroups: () => gather<PlacementGroupState>('placement_groups'),
    timeline: () => gather<TaskEvent>('timeline'),
    workers: () => gather<WorkerState>('workers'),
    taskFailures: () => gather<TaskFailure>('failures'),
    engines: () => gather<EngineRow>('engines'),
    status: async (): Promise<ClusterStatus> => {
      const snap = await gcs.service.gatherState('all');
      const pick = <T>(k: string) => snap.flatMap((r) => (r[k] ?? []) as T[]);
      const nodes: NodeInfo[] = gcs.nodeInfos();
      return { nodes, pendingDemand: pick<DemandState>('demand'), placementGroups: pick<PlacementGroupState>('placement_groups') };
    },
  };
}

/** Entry of `daemon-main.js`: start from the JSON config in argv[2], write the ready file, serve until SIGTERM. */
export async function daemonMain(argv: string[]): Promise<void> {
  let config: DaemonConfig;
  try {
    config = JSON.parse(argv[2] ?? '') as DaemonConfig;
  } catch {
    process.stderr.write('tsray daemon: expected the JSON configuration as the first argument\n');
    process.exit(2);
  }
  try {
    const d = await startDaemon(config);
    const stop = () => {
      void d.stop().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    writeAtomic(config.readyFile, JSON.stringify(d.ready));
    logger().info(d.ready, 'tsray daemon ready');
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    process.stderr.write(`tsray ${config.role}: ${msg}\n`);
    try {
      writeAtomic(config.readyFile, JSON.stringify({ error: msg }));
    } catch {
      /* no session dir */
    }
    process.exit(1);
  }
}
