/**
 * `init()` and `shutdown()`: start and stop the embedded local cluster (one node hosted in the driver).
 * @module
 */
import { processAlive } from './node/node-support.js';
import { pruneSessions, retireSession } from './node/session-logs.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AuthenticationError, ConnectionError, DriverCodeInWorkerError, RuntimeStateError, ValidationError } from './errors.js';
import { tsray } from '@tsray/protocol';
import { askHead } from './cluster/head-query.js';
import { WorkerRuntime } from './worker/worker-runtime.js';
import { config, configuredToken } from './config.js';
import { ensureRuntimeDir, readPrivateFile, runtimeDir } from './runtime-dir.js';
import { nodeIdOfSocketAddress } from './node/socket-path.js';
import { logger, setLogLevel } from './logger.js';
import { NodeRuntime } from './node/node-runtime.js';
import { resolveNodeGpus } from './gpus.js';
import { resetLocalRefs } from './object-ref.js';
import { state } from './state.js';
import type { RuntimeEnv } from '@tsray/runtime-env';
import { resolveRuntimeEnvOption } from './runtime-env.js';

/** Options of `init()`. */
export interface InitOptions {
  /**
   * Cluster to connect to. Left out: `TSRAY_ADDRESS` if set, else start an embedded local cluster.
   * 'local': always start one. 'auto': connect to the cluster running on this machine (an embedded
   * cluster of another driver). Or the address printed by that cluster (`ipc://...`, `tcp://host:port`).
   */
  address?: string;
  /** Namespace of this job's named actors. Default: an anonymous namespace per job (as Ray). */
  namespace?: string;
  /**
   * Cluster token, proved (never sent) on connect. Default: `TSRAY_TOKEN`, else the token file of the
   * local cluster found through `address: 'auto'`. An embedded cluster makes a random one.
   */
  token?: string;
  /** Logical CPUs of the node. Default: the machine's CPU count. */
  numCpus?: number;
  /** Logical GPUs of the node. Default: GPUs found by nvidia-smi (0 without it). */
  numGpus?: number;
  /** Custom resources of the node, e.g. `{ special_hardware: 1 }`. */
  resources?: Record<string, number>;
  /** Logical memory of the node in bytes (scheduling only). Default: 70% of RAM. */
  memory?: number;
  /** Labels of the node, e.g. `{ zone: 'a' }`, for `NODE_LABEL` scheduling strategies (as `tsray start --labels`). */
  labels?: Record<string, string>;
  /** Bytes of the shared-memory object store. Default: 30% of RAM, capped by free /dev/shm space. */
  objectStoreMemory?: number;
  /** Spill objects to disk when the store is full (else `ObjectStoreFullError`). Default true. */
  spilling?: boolean;
  /** Print worker output in the driver, prefixed `(name pid=N)`. Default true. */
  logToDriver?: boolean;
  /** Library log level (pino): 'trace'...'fatal', 'silent'. Default: TSRAY_LOG_LEVEL or 'warn'. */
  logLevel?: string;
  /** Bytes of the object store faulted in at start, in a background thread. Default: min(store, 2 GiB). */
  prefaultBytes?: number;
  /**
   * Python interpreter for Python tasks and actors (it needs the `tsray` package). Default:
   * TSRAY_PYTHON, else ./.venv/bin/python if present, else python3.
   */
  python?: string;
  /**
   * The job's runtime environment: every task and actor of this driver runs in it (merged with their
   * own `runtimeEnv`, field by field, envVars key by key), in workers started for it; the driver
   * process itself is not changed (as Ray). E.g. `{ pip: ['emoji'] }`, `{ workingDir: './src' }`.
   */
  runtimeEnv?: RuntimeEnv;
}

/** What `init()` returns. */
export interface ClusterInfo {
  nodeId: string;
  jobId: string;
  /** Session directory: worker logs (`logs/`), spill files, the token. `shutdown()` keeps only `logs/` (the newest TSRAY_SESSIONS_KEPT sessions). (The node socket is in a short directory: see `address`.) */
  sessionDir: string;
  /** The node's resources (floats). */
  resources: Record<string, number>;
  objectStoreMemory: number;
  /** Where other drivers connect (`init({ address })`). */
  address: string;
  /** This job's namespace. */
  namespace: string;
}

const KNOWN = new Set([
  'runtimeEnv',
  'python',
  'address',
  'namespace',
  'numCpus',
  'numGpus',
  'resources',
  'labels',
  'memory',
  'objectStoreMemory',
  'spilling',
  'logToDriver',
  'logLevel',
  'prefaultBytes',
  'token',
]);

function checkAmount(name: string, v: unknown, integer = false): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
    throw new ValidationError(name, `init(): ${name} must be a finite number >= 0${integer ? ' (whole)' : ''}, got ${String(v)}`);
  }
  return v;
}

/** Write `file` through a temporary file and a rename (inside the 0700 runtime directory: no one else can swap it). */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Finished sessions keep their logs (the newest TSRAY_SESSIONS_KEPT); a session of this process is
 * live while it is the running one (a process may init() again after shutdown()).
 */
function pruneFinishedSessions(root: string): void {
  const running = info?.sessionDir;
  pruneSessions(root, config().sessionsKept, (pid, dir) => (pid === process.pid ? dir === running : processAlive(pid)));
}

/** Retire session directories of drivers that died (keeping their logs) and remove arenas they left. */
function cleanStale(root: string): void {
  pruneFinishedSessions(root);
  try {
    for (const name of readdirSync('/dev/shm')) {
      const m = /^tsray-(\d+)-[0-9a-f]+$/.exec(name);
      if (m && !processAlive(Number(m[1]))) rmSync(join('/dev/shm', name), { force: true });
    }
  } catch {
    /* no /dev/shm */
  }
}

let info: ClusterInfo | undefined;
let starting = false;

/**
 * Start tsray in this process: an embedded local cluster (head + one node) whose resources are
 * detected or given. Call `shutdown()` when done (the process does not exit while tsray runs).
 */
export async function init(options: InitOptions = {}): Promise<ClusterInfo> {
  const s = state();
  if (s.isWorker) throw new DriverCodeInWorkerError(s.importing ?? process.argv[1] ?? 'the worker');
  if (s.runtime || starting) throw new RuntimeStateError('init() was already called in this process; call shutdown() first');
  for (const k of Object.keys(options)) if (!KNOWN.has(k)) throw new ValidationError(k, `init(): unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  if (options.logLevel) setLogLevel(options.logLevel);
  if (options.namespace !== undefined && (typeof options.namespace !== 'string' || options.namespace === '')) {
    throw new ValidationError('namespace', 'init(): namespace must be a non-empty string');
  }
  // Validated before anything starts: RuntimeEnvValidationError names the bad field.
  const jobEnv = resolveRuntimeEnvOption(options.runtimeEnv);
  const address = options.address ?? config().address;
  if (address !== undefined && address !== 'local') {
    const r = await connect(address, options);
    s.jobRuntimeEnv = jobEnv;
    return r;
  }
  const numCpus = checkAmount('numCpus', options.numCpus) ?? availableParallelism();
  const { numGpus, gpuIds } = resolveNodeGpus(checkAmount('numGpus', options.numGpus, true), 'init()');
  const memory = checkAmount('memory', options.memory) ?? Math.floor(totalmem() * 0.7);
  const custom = options.resources ?? {};
  if (typeof custom !== 'object' || custom === null || Array.isArray(custom))
    throw new ValidationError('resources', 'init(): resources must be an object of name -> amount');
  for (const [k, v] of Object.entries(custom)) {
    if (k === 'CPU' || k === 'GPU' || k === 'memory')
      throw new ValidationError(`resources.${k}`, `init(): use ${k === 'CPU' ? 'numCpus' : k === 'GPU' ? 'numGpus' : 'memory'} instead of resources.${k}`);
    checkAmount(`resources.${k}`, v);
  }
  const labels = options.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels))
    throw new ValidationError('labels', 'init(): labels must be an object of name -> string');
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') throw new ValidationError(`labels.${k}`, `init(): labels.${k} must be a string, got ${typeof v}`);
  }
  // This user's 0700 runtime directory (UnsafeRuntimeDirError when another user made it).
  const root = ensureRuntimeDir();
  cleanStale(root);
  let shmFree = Infinity;
  try {
    const st = statfsSync('/dev/shm');
    shmFree = st.bavail * st.bsize;
  } catch {
    /* no /dev/shm */
  }
  const store =
    checkAmount('objectStoreMemory', options.objectStoreMemory, true) ??
    Math.max(75 * 1024 * 1024, Math.min(Math.floor(totalmem() * 0.3), Math.floor(shmFree * 0.95), 200e9));
  const sessionDir = join(root, `session-${Date.now()}-${process.pid}`);
  mkdirSync(sessionDir, { recursive: true, mode: 0o700 });
  const nodeId = randomBytes(8).toString('hex');
  const jobId = randomBytes(4).toString('hex');
  const namespace = options.namespace ?? `anon-${jobId}`;
  const resources: Record<string, number> = { CPU: numCpus, memory, object_store_memory: store, ...custom };
  if (numGpus > 0) resources['GPU'] = numGpus;
  starting = true;
  try {
    const node = await NodeRuntime.start({
      nodeId,
      jobId,
      sessionDir,
      resources,
      labels,
      ...(gpuIds ? { gpuIds } : {}),
      objectStoreMemory: store,
      spilling: options.spilling ?? true,
      logToDriver: options.logToDriver ?? true,
      prefaultBytes: options.prefaultBytes ?? Math.min(store, 2 * 1024 ** 3),
      namespace,
      ...(options.token ? { token: options.token } : {}),
      python: options.python ?? config().python ?? (existsSync(join(process.cwd(), '.venv/bin/python')) ? join(process.cwd(), '.venv/bin/python') : 'python3'),
    });
    s.runtime = node;
    s.jobRuntimeEnv = jobEnv;
    // Other drivers on this machine find the cluster with init({ address: 'auto' }); the token file
    // is readable by this user only.
    const tokenFile = join(sessionDir, 'token');
    writeFileSync(tokenFile, node.token, { mode: 0o600, flag: 'wx' });
    writeAtomic(join(root, 'current.json'), JSON.stringify({ address: node.address, pid: process.pid, nodeId, sessionDir, tokenFile }));
  } catch (e) {
    rmSync(sessionDir, { recursive: true, force: true });
    throw e;
  } finally {
    starting = false;
  }
  info = { nodeId, jobId, sessionDir, resources, objectStoreMemory: store, address: (s.runtime as NodeRuntime).address, namespace };
  logger().info(info, 'tsray started');
  return info;
}

/** Connect this process to a running cluster as a client driver. */
async function connect(address: string, options: InitOptions): Promise<ClusterInfo> {
  const s = state();
  const fromEnv = config().address;
  let target = address === 'auto' && fromEnv ? fromEnv : address;
  let token = options.token ?? configuredToken();
  let remote = false;
  // The node attached to: the audience of the registration's token proof (auth.ts).
  let nodeId: string | undefined;
  let cur: { address: string; pid: number; nodeId: string; sessionDir: string; tokenFile?: string; gcsAddress?: string } | undefined;
  try {
    // Only from this user's private runtime directory: another user's current.json is not trusted.
    cur = JSON.parse(readPrivateFile('current.json') ?? '');
    if (cur && !processAlive(cur.pid)) cur = undefined;
  } catch {
    /* none */
  }
  const localToken = () => {
    try {
      return cur?.tokenFile ? readFileSync(cur.tokenFile, 'utf8').trim() : undefined;
    } catch {
      return undefined;
    }
  };
  if (target === 'auto') {
    if (!cur) {
      throw new ConnectionError(
        `init({ address: 'auto' }): no tsray cluster is running on this machine (looked in ${join(runtimeDir(), 'current.json')}, read only when that directory is this user's and closed to others); start one with init() in another process or with "tsray start --head"`,
      );
    }
    target = cur.address;
    nodeId = cur.nodeId;
    token ??= localToken();
  } else if (target.startsWith('ipc://')) {
    if (cur && cur.address === target) {
      token ??= localToken();
      nodeId = cur.nodeId;
    } else nodeId = nodeIdOfSocketAddress(target);
  } else {
    // host:port of a cluster's head (GCS): attach to this machine's node of that cluster.
    if (cur?.gcsAddress && sameHostPort(cur.gcsAddress, target)) {
      target = cur.address;
      nodeId = cur.nodeId;
      token ??= localToken();
    } else {
      // No node of that cluster here: a remote driver (objects travel in frames, no shared memory),
      // attached to the head's node over tcp.
      const t0 = config().connectTimeoutMs;
      const nodes = await clusterEntry(target.replace(/^tcp:\/\//, ''), token, t0);
      const node = nodes.find((n) => n.alive && n.isHead) ?? nodes.find((n) => n.alive);
      if (!node) throw new ConnectionError(`init({ address: '${target}' }): the cluster has no alive node`);
      target = node.address;
      nodeId = node.nodeId;
      remote = true;
    }
  }
  const jobId = randomBytes(4).toString('hex');
  const namespace = options.namespace ?? `anon-${jobId}`;
  const rt = new WorkerRuntime(`c${randomBytes(6).toString('hex')}`, target, 'driver', {
    namespace,
    jobId,
    ...(token ? { token } : {}),
    ...(remote ? { remote } : {}),
    ...(nodeId ? { nodeId } : {}),
  });
  starting = true;
  try {
    const timeout = config().connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const running = rt.run();
    running.catch((err) => logger().error({ err }, 'client connection failed'));
    const accepted = await Promise.race([
      rt.register(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ConnectionError(`init(): no tsray cluster answered at ${target} within ${timeout} ms (is it running? is the address right?)`)),
          timeout,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    s.runtime = rt;
    info = {
      nodeId: accepted.nodeId ?? '',
      jobId,
      sessionDir: '',
      resources: {},
      objectStoreMemory: Number(accepted.shmSize ?? 0),
      address: target,
      namespace,
    };
    return info;
  } catch (e) {
    await rt.shutdown().catch(() => undefined);
    throw e;
  } finally {
    starting = false;
  }
}

/** Ask a cluster's head (GCS at host:port) for its nodes, proving the token. */
async function clusterEntry(
  hostPort: string,
  token: string | undefined,
  timeoutMs: number,
): Promise<{ nodeId: string; address: string; alive: boolean; isHead: boolean }[]> {
  if (!token) throw new AuthenticationError(`init({ address: '${hostPort}' }): connecting to a remote cluster needs its token (init({ token }), TSRAY_TOKEN)`);
  const envelope = await askHead(
    hostPort,
    token,
    'clusterEntry',
    timeoutMs,
    () => new ConnectionError(`init(): no tsray cluster answered at ${hostPort} within ${timeoutMs} ms (is it running? is the address right?)`),
  );
  const r = envelope.gcsResponse;
  if (!r) throw new ConnectionError(`init(): ${hostPort} did not answer as a tsray head (${envelope.error?.message ?? 'unexpected reply'})`);
  if (r.error)
    throw r.error.code === tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED
      ? new AuthenticationError(r.error.message ?? 'refused')
      : new ConnectionError(r.error.message ?? 'refused');
  return (r.nodes?.nodes ?? []).map((n) => ({ nodeId: n.nodeId ?? '', address: n.address ?? '', alive: n.alive === true, isHead: n.isHead === true }));
}

function sameHostPort(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/^tcp:\/\//, '').replace(/^localhost:/, '127.0.0.1:');
  return norm(a) === norm(b);
}

/** Stop tsray: workers are stopped, the object store freed; the session directory keeps only its `logs/` (see TSRAY_SESSIONS_KEPT). */
export async function shutdown(): Promise<void> {
  const s = state();
  if (s.isWorker) return;
  const rt = s.runtime;
  if (!rt) return;
  s.runtime = undefined;
  s.jobRuntimeEnv = undefined;
  await rt.shutdown();
  resetLocalRefs();
  if (info?.sessionDir) {
    // Worker logs stay (errors name them by path); sockets, spill files and the token go.
    const dir = info.sessionDir;
    retireSession(dir);
    info = undefined;
    pruneFinishedSessions(dirname(dir));
    const cur = join(runtimeDir(), 'current.json');
    try {
      if ((JSON.parse(readFileSync(cur, 'utf8')) as { pid: number }).pid === process.pid) rmSync(cur, { force: true });
    } catch {
      /* none */
    }
  }
  info = undefined;
}

/** The running cluster's info, or undefined. */
export function clusterInfo(): ClusterInfo | undefined {
  return info;
}
