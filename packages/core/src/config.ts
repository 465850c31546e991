/**
 * Every `TSRAY_*` environment variable in one typed table: name, type, default, who sets it, who reads
 * it, and what it does. Code reads `config().<key>` instead of `process.env`, so a bad value fails with
 * a {@link ConfigError} naming the variable instead of a silent fallback, and tests override values
 * without touching `process.env`. docs/configuration.md is this table in prose (a test keeps them in step).
 *
 * Each variable is parsed once, on first read (a bad value only fails the code that uses it);
 * {@link validateConfig} reads them all, for entry points that want to fail fast.
 * @module
 */
import { readFileSync } from 'node:fs';
import { setMaxPackageBytesSource } from '@tsray/runtime-env';
import { ConfigError } from './errors.js';

/** The pino log levels `TSRAY_LOG_LEVEL` accepts. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** A pino log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Who puts a variable into a process's environment. */
export type ConfigSetter = 'user' | 'node' | 'cli' | 'job' | 'test';
/** Which side reads a variable: the TypeScript packages, the Python package, or the npm resolve hook. */
export type ConfigReader = 'ts' | 'python' | 'hook' | 'none';

/** One environment variable: its parser and its documentation. */
export interface ConfigVariable<T> {
  /** The variable's name, `TSRAY_…`. */
  readonly name: string;
  /** The type as docs show it, e.g. `integer > 0 (ms)`. */
  readonly type: string;
  /** The value when unset (or empty). */
  readonly default: T;
  /** What it does. */
  readonly doc: string;
  readonly setBy: ConfigSetter;
  readonly readBy: readonly ConfigReader[];
  /** Parse a non-empty raw value; throw {@link ConfigError} for a bad one. */
  readonly parse: (raw: string, name: string) => T;
}

const text = (raw: string): string => raw;

function positiveInt(unit: string): (raw: string, name: string) => number {
  return (raw, name) => {
    const v = Number(raw);
    if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(v) || v <= 0) throw new ConfigError(name, raw, `a positive integer (${unit})`);
    return v;
  };
}

function nonNegativeInt(raw: string, name: string): number {
  const v = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(v)) throw new ConfigError(name, raw, 'a non-negative integer');
  return v;
}

function copyThreadCount(raw: string, name: string): number {
  const v = nonNegativeInt(raw, name);
  if (v > 16) throw new ConfigError(name, raw, 'an integer from 0 to 16');
  return v;
}

function positiveNumber(unit: string): (raw: string, name: string) => number {
  return (raw, name) => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v <= 0) throw new ConfigError(name, raw, `a positive number (${unit})`);
    return v;
  };
}

function nonNegativeNumber(unit: string): (raw: string, name: string) => number {
  return (raw, name) => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v < 0) throw new ConfigError(name, raw, `a number >= 0 (${unit})`);
    return v;
  };
}

function flag(raw: string, name: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new ConfigError(name, raw, '1 or 0 (true or false)');
}

function oneOf<const T extends string>(values: readonly T[]): (raw: string, name: string) => T {
  return (raw, name) => {
    if (!(values as readonly string[]).includes(raw)) throw new ConfigError(name, raw, `one of ${values.join(', ')}`);
    return raw as T;
  };
}

function stringArrayJson(raw: string, name: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new ConfigError(name, raw, 'a JSON array of strings, e.g. ["--index-url", "https://…"]');
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(name, raw, 'a JSON array of strings');
  return v;
}

function variable<T>(name: string, spec: Omit<ConfigVariable<T>, 'name'>): ConfigVariable<T> {
  return { name, ...spec };
}

const none = undefined as string | undefined;

/** The table: one entry per `TSRAY_*` variable (keys are what {@link config} returns). */
export const CONFIG_VARIABLES = {
  // --- user: drivers, CLI, daemons ---
  address: variable('TSRAY_ADDRESS', {
    type: 'string',
    default: none,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: text,
    doc: "Cluster a driver's `init()` connects to when `address` is left out (`auto`, `ipc://…`, or the head's `host:port`); `tsray-serve` and job entrypoints use it too (the job manager sets it).",
  }),
  token: variable('TSRAY_TOKEN', {
    type: 'string (secret)',
    default: none,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: text,
    doc: 'Cluster token (proved, never sent) for `init()`, the CLI and workers; the node passes it to its workers. Never logged.',
  }),
  tokenFile: variable('TSRAY_TOKEN_FILE', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: text,
    doc: 'File holding the cluster token (mode 0600), read when `TSRAY_TOKEN` is not set: job entrypoints get it from the job manager instead of the token itself, which stays out of their environment.',
  }),
  connectTimeoutMs: variable('TSRAY_CONNECT_TIMEOUT_MS', {
    type: 'integer > 0 (ms)',
    default: 10_000,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: positiveInt('milliseconds'),
    doc: 'How long a client driver waits for the cluster to accept its connection.',
  }),
  logLevel: variable('TSRAY_LOG_LEVEL', {
    type: LOG_LEVELS.join(' | '),
    default: 'warn' as LogLevel,
    setBy: 'user',
    readBy: ['ts'],
    parse: oneOf(LOG_LEVELS),
    doc: 'Level of the library logs (pino, JSON on stderr); `init({ logLevel })` overrides it.',
  }),
  python: variable('TSRAY_PYTHON', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: 'Python interpreter for Python workers and engines (default: `./.venv/bin/python` if present, else `python3`); `init({ python })` overrides it.',
  }),
  dashboardAddress: variable('TSRAY_DASHBOARD_ADDRESS', {
    type: 'URL',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: "Jobs HTTP API the `tsray job …` commands talk to (default: this machine's running head).",
  }),
  dashboardFingerprint: variable('TSRAY_DASHBOARD_FINGERPRINT', {
    type: 'SHA-256 fingerprint',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: "The head's HTTP API certificate the `tsray job …` commands accept over https (`AA:BB:…`, printed by `tsray start --head`; default: the local head's, from its session).",
  }),
  clientTimeoutMs: variable('TSRAY_CLIENT_TIMEOUT_MS', {
    type: 'integer > 0 (ms)',
    default: 10000,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('milliseconds'),
    doc: "How long a node keeps a silent remote client driver (one on another machine; drivers send a heartbeat every second) before it drops it and releases its work. A dropped driver's pending and later calls fail with ConnectionError. Drivers on the node's own machine are dropped only when their process exits.",
  }),
  headLostTimeoutS: variable('TSRAY_HEAD_LOST_TIMEOUT_S', {
    type: 'number > 0 (s)',
    default: 60,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveNumber('seconds'),
    doc: 'Seconds a node waits for a silent head before it stops (`tsray start --head-lost-timeout` overrides it).',
  }),
  autoscalerIntervalS: variable('TSRAY_AUTOSCALER_INTERVAL_S', {
    type: 'number > 0 (s)',
    default: 5,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveNumber('seconds'),
    doc: 'Seconds between rounds of the autoscaler a head started by `tsray up` runs (read by the head daemon; docs/autoscaler.md).',
  }),
  pendingWarningS: variable('TSRAY_PENDING_WARNING_S', {
    type: 'number >= 0 (s)',
    default: 10,
    setBy: 'user',
    readBy: ['ts'],
    parse: nonNegativeNumber('seconds'),
    doc: 'Seconds work that fits the node waits for resources held by others before one "cannot be scheduled right now" line names it and what is short (0: never).',
  }),
  peerConnectTimeoutMs: variable('TSRAY_PEER_CONNECT_TIMEOUT_MS', {
    type: 'integer > 0 (ms)',
    default: 10_000,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('milliseconds'),
    doc: 'How long a peer node has to answer a new node-to-node connection before it is reported unreachable.',
  }),
  joinTimeoutMs: variable('TSRAY_JOIN_TIMEOUT_MS', {
    type: 'integer > 0 (ms)',
    default: 15_000,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('milliseconds'),
    doc: 'How long a node waits for the head (GCS) to accept it when joining a cluster.',
  }),
  socketDir: variable('TSRAY_SOCKET_DIR', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: "Directory of the node's unix socket when the session directory's path is too long for one (107 bytes).",
  }),
  cli: variable('TSRAY_CLI', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['python'],
    parse: text,
    doc: "The `tsray` executable (or its `cli.js`) that a Python driver's `tsray.init()` runs to start a local cluster when none is running (default: `tsray` on `PATH`).",
  }),
  sessionsKept: variable('TSRAY_SESSIONS_KEPT', {
    type: 'integer >= 0',
    default: 10,
    setBy: 'user',
    readBy: ['ts'],
    parse: nonNegativeInt,
    doc: "How many finished `init()` sessions keep their logs (`<tmp>/tsray-<uid>/session-*/logs`, as Ray's `/tmp/ray/session_*`); older ones are removed.",
  }),
  transferChunkBytes: variable('TSRAY_TRANSFER_CHUNK_BYTES', {
    type: 'integer > 0 (bytes)',
    default: 8 * 1024 * 1024,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('bytes'),
    doc: 'Chunk size of node-to-node object transfers.',
  }),
  pullMaxBytesInFlight: variable('TSRAY_PULL_MAX_BYTES_IN_FLIGHT', {
    type: 'integer > 0 (bytes)',
    default: 128 * 1024 * 1024,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('bytes'),
    doc: 'Most bytes a node has requested from holders and not yet received, over all its object pulls (admission control: further chunk requests wait). At least one chunk is always in flight.',
  }),
  pullPauseAfterChunks: variable('TSRAY_TEST_PULL_PAUSE_AFTER_CHUNKS', {
    type: 'integer >= 0',
    default: 0,
    setBy: 'test',
    readBy: ['ts'],
    parse: nonNegativeInt,
    doc: 'Test hook: a node serving pulls stops sending chunks after this many (0: never), so a test can kill it mid-transfer without timing.',
  }),
  transferChecksum: variable('TSRAY_TRANSFER_CHECKSUM', {
    type: 'sampled | full',
    default: 'sampled' as 'sampled' | 'full',
    setBy: 'user',
    readBy: ['ts'],
    parse: oneOf(['sampled', 'full'] as const),
    doc: 'Check value of transferred chunks: crc32 of the first, middle and last 16 KiB (`sampled`), or of every byte (`full`).',
  }),
  transportCurve: variable('TSRAY_TRANSPORT_CURVE', {
    type: '1 | 0',
    default: true,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: flag,
    doc: 'Encrypt and authenticate every tcp connection with ZeroMQ CURVE (keys derived from the cluster token). `0` turns it off (every process of a cluster alike): plaintext on the wire, for benchmarks or a trusted private network where transfer bandwidth matters more (BENCHMARKS.md).',
  }),
  dataPlane: variable('TSRAY_DATA_PLANE', {
    type: '1 | 0',
    default: true,
    setBy: 'user',
    readBy: ['ts'],
    parse: flag,
    doc: "Pulled objects move between nodes on a second socket per node (a plain TCP connection per pair of nodes; with CURVE on, chunks sealed with AES-256-GCM under keys from the token and a per-session exchange over CURVE, unless both nodes are on one host's loopback: `TSRAY_SEAL_LOOPBACK`; docs/security.md). `0`: chunks go over the control link (CURVE).",
  }),
  workerStream: variable('TSRAY_WORKER_STREAM', {
    type: '1 | 0',
    default: true,
    setBy: 'user',
    readBy: ['ts'],
    parse: flag,
    doc: "A node's workers (TypeScript and Python) talk to it over a unix stream socket beside its ZeroMQ ipc socket (a round trip ≈ 21 µs instead of ≈ 96 µs); 0 puts them on the ZeroMQ socket, as client drivers are (docs/architecture.md, *Worker channel*).",
  }),
  replyPollUs: variable('TSRAY_REPLY_POLL_US', {
    type: 'number >= 0 (µs)',
    default: 0,
    setBy: 'user',
    readBy: ['ts'],
    parse: nonNegativeNumber('microseconds'),
    doc: "Off (0) by default. After each message it writes to a node↔worker stream, the driver's node or a TypeScript worker keeps its event loop polling for the reply this long instead of sleeping, while the machine has a CPU for it (runnable threads ≤ CPUs; at most 10,000). Sync calls up to 2× faster on a 2-core VM, async task throughput 20–30 % lower there (BENCHMARKS.md, 2026-12-07; docs/architecture.md, *Worker channel*).",
  }),
  sealLoopback: variable('TSRAY_SEAL_LOOPBACK', {
    type: '1 | 0',
    default: false,
    setBy: 'user',
    readBy: ['ts'],
    parse: flag,
    doc: "With CURVE on, also seal the bulk data plane's chunks between nodes whose connection is on one host's loopback (127.0.0.0/8, ::1). Off by default: those bytes never reach a wire and no other user can read loopback traffic without root, and the connection is still authenticated (docs/security.md, *Bulk data plane*).",
  }),
  objectCopyThreads: variable('TSRAY_OBJECT_COPY_THREADS', {
    type: 'integer 0..16',
    default: 0,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: copyThreadCount,
    doc: "Threads for one large copy into the node's shared-memory object store (a put or a task result of 8 MiB or more; each thread takes at least 4 MiB): the process's own thread and helpers (TypeScript: native threads started for the copy; Python: a pool of numpy copies, which release the GIL). 0: the machine's cores, at most 8 (Ray's puts copy on several threads too). 1: a plain memcpy.",
  }),
  collectiveThreads: variable('TSRAY_COLLECTIVE_THREADS', {
    type: 'integer >= 0',
    default: 0,
    setBy: 'user',
    readBy: ['ts'],
    parse: nonNegativeInt,
    doc: "Threads per rank process for the copies and float32 sums of a shared-memory allreduce (@tsray/collective's native addon: the rank's own thread and helpers). 0: the machine's cores / (2 x the node's ranks in the group), at least 1 (so 1 on 2 cores; 4 with 2 ranks per node on 16 cores).",
  }),
  dataPlanePort: variable('TSRAY_DATA_PLANE_PORT', {
    type: 'integer >= 0',
    default: 0,
    setBy: 'user',
    readBy: ['ts'],
    parse: nonNegativeInt,
    doc: "Port of a node's data-plane socket (on the interface of its node port); 0: a free one. Other nodes must reach it, or their pulls stay on the control link (logged once).",
  }),
  trace: variable('TSRAY_TRACE', {
    type: '1 | 0',
    default: false,
    setBy: 'user',
    readBy: ['ts'],
    parse: flag,
    doc: 'Print every message a node sends and receives (debugging).',
  }),
  daemonScript: variable('TSRAY_DAEMON_SCRIPT', {
    type: 'path',
    default: none,
    setBy: 'test',
    readBy: ['ts'],
    parse: text,
    doc: 'Entry script `tsray start` runs as the daemon (default: `daemon-main.js` beside the CLI); tests point it at sources.',
  }),
  apiKey: variable('TSRAY_API_KEY', {
    type: 'string (secret)',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: 'Bearer key `tsray-serve` requires on /v1/* (as `vllm serve --api-key`; `VLLM_API_KEY` is read too); `--api-key` overrides it. Never logged.',
  }),
  modelCache: variable('TSRAY_MODEL_CACHE', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['ts', 'python'],
    parse: text,
    doc: 'Model cache: the real default model `ensureModel()` / `tsray.models.ensure()` converts and the tiny test model `ensureTinyModel()` writes (default `~/.cache/tsray/models`).',
  }),
  // --- runtime environments (the node's agent) ---
  runtimeEnvDir: variable('TSRAY_RUNTIME_ENV_DIR', {
    type: 'path',
    default: none,
    setBy: 'user',
    readBy: ['ts'],
    parse: text,
    doc: 'Cache of built runtime environments, shared by the processes of a machine (default `$TMPDIR/tsray-<uid>/runtime_resources`).',
  }),
  runtimeEnvCacheBytes: variable('TSRAY_RUNTIME_ENV_CACHE_BYTES', {
    type: 'integer > 0 (bytes)',
    default: undefined as number | undefined,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('bytes'),
    doc: "Size cap of that cache; unused environments are evicted past it (default: the agent's).",
  }),
  runtimeEnvInstaller: variable('TSRAY_RUNTIME_ENV_INSTALLER', {
    type: 'auto | uv | pip',
    default: 'auto' as 'auto' | 'uv' | 'pip',
    setBy: 'user',
    readBy: ['ts'],
    parse: oneOf(['auto', 'uv', 'pip'] as const),
    doc: 'Installer of `pip` environments: `uv` when found (`auto`), or always `uv` / `pip`.',
  }),
  runtimeEnvPipArgs: variable('TSRAY_RUNTIME_ENV_PIP_ARGS', {
    type: 'JSON string array',
    default: undefined as string[] | undefined,
    setBy: 'user',
    readBy: ['ts'],
    parse: stringArrayJson,
    doc: 'Extra arguments of every pip/uv install, e.g. `["--index-url","http://mirror/simple"]`.',
  }),
  runtimeEnvNpmArgs: variable('TSRAY_RUNTIME_ENV_NPM_ARGS', {
    type: 'JSON string array',
    default: undefined as string[] | undefined,
    setBy: 'user',
    readBy: ['ts'],
    parse: stringArrayJson,
    doc: 'Extra arguments of every `npm install` of an environment.',
  }),
  runtimeEnvMaxPackageBytes: variable('TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES', {
    type: 'integer > 0 (bytes)',
    default: 100 * 1024 * 1024,
    setBy: 'user',
    readBy: ['ts'],
    parse: positiveInt('bytes'),
    doc: 'Cap of the files of a packed `workingDir` / `pyModules` / `tsModules` directory.',
  }),
  // --- set by the node for its workers (not for users) ---
  workerId: variable('TSRAY_WORKER_ID', {
    type: 'string',
    default: none,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: text,
    doc: "The worker's routing id on its node; a process with it set is a worker.",
  }),
  nodeAddress: variable('TSRAY_NODE_ADDRESS', {
    type: 'ipc:// or tcp:// address',
    default: none,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: text,
    doc: "The node's ROUTER socket a worker connects to.",
  }),
  nodeStream: variable('TSRAY_NODE_STREAM', {
    type: 'path of a unix socket',
    default: none,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: text,
    doc: "The node's unix stream socket a worker connects to instead of `TSRAY_NODE_ADDRESS` (faster than ZeroMQ ipc; see `TSRAY_WORKER_STREAM`).",
  }),
  nodeId: variable('TSRAY_NODE_ID', { type: 'string', default: none, setBy: 'node', readBy: ['ts', 'python'], parse: text, doc: "The worker's node id." }),
  jobId: variable('TSRAY_JOB_ID', {
    type: 'string',
    default: none,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: text,
    doc: "The job a worker (or a job's entrypoint, set by the job manager) belongs to.",
  }),
  sessionDir: variable('TSRAY_SESSION_DIR', {
    type: 'path',
    default: none,
    setBy: 'node',
    readBy: ['none'],
    parse: text,
    doc: 'Session directory of the node (workers) or of the daemon (`tsray start` marks its daemons with it to find them again).',
  }),
  arenaFd: variable('TSRAY_ARENA_FD', {
    type: 'integer >= 0',
    default: 3,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: nonNegativeInt,
    doc: "File descriptor of the node's shared-memory arena a worker inherits.",
  }),
  arenaSize: variable('TSRAY_ARENA_SIZE', {
    type: 'integer > 0 (bytes)',
    default: undefined as number | undefined,
    setBy: 'node',
    readBy: ['ts', 'python'],
    parse: positiveInt('bytes'),
    doc: 'Size of that arena.',
  }),
  workerCwd: variable('TSRAY_WORKER_CWD', {
    type: 'path',
    default: none,
    setBy: 'node',
    readBy: ['ts'],
    parse: text,
    doc: "A TypeScript worker's working directory (a runtime env's `workingDir`), entered after its `--import` preloads.",
  }),
  codeDir: variable('TSRAY_CODE_DIR', {
    type: 'path',
    default: none,
    setBy: 'node',
    readBy: ['ts'],
    parse: text,
    doc: "Where a worker finds its job's shipped project folder (unpacked from the driver's; see docs/architecture.md, Code shipping): module URLs under `TSRAY_CODE_ROOT` are imported from here.",
  }),
  codeRoot: variable('TSRAY_CODE_ROOT', {
    type: 'path',
    default: none,
    setBy: 'node',
    readBy: ['ts'],
    parse: text,
    doc: "The driver's project folder that `TSRAY_CODE_DIR` is a copy of (functions keep their module URLs under it, as the driver named them).",
  }),
  runtimeEnv: variable('TSRAY_RUNTIME_ENV', {
    type: 'JSON',
    default: none,
    setBy: 'node',
    readBy: ['ts'],
    parse: text,
    doc: 'Canonical JSON of the runtime env a worker runs in; tasks it submits inherit it.',
  }),
  runtimeEnvHash: variable('TSRAY_RUNTIME_ENV_HASH', {
    type: 'string',
    default: none,
    setBy: 'node',
    readBy: ['none'],
    parse: text,
    doc: "Content hash of a worker's runtime env (informational).",
  }),
  runtimeEnvNodeModules: variable('TSRAY_RUNTIME_ENV_NODE_MODULES', {
    type: 'path list',
    default: none,
    setBy: 'node',
    readBy: ['hook'],
    parse: text,
    doc: "`node_modules` directories of an npm runtime env (and, for shipped job code, one beside `@tsray/runtime-env` from which the node's own `@tsray/*` packages resolve); the resolve hook (`@tsray/runtime-env/hooks/npm-register.mjs`) reads it.",
  }),
  runtimeEnvJson: variable('TSRAY_RUNTIME_ENV_JSON', {
    type: 'JSON',
    default: none,
    setBy: 'job',
    readBy: ['none'],
    parse: text,
    doc: "A job's runtime env, given to its entrypoint (informational).",
  }),
  // --- Python side (python/tsray reads these itself) ---
  nodeIp: variable('TSRAY_NODE_IP', {
    type: 'IP address',
    default: none,
    setBy: 'user',
    readBy: ['python'],
    parse: text,
    doc: "This machine's address for vLLM data-parallel handshakes (default `127.0.0.1`).",
  }),
  pyLogLevel: variable('TSRAY_PY_LOG_LEVEL', {
    type: 'Python logging level',
    default: 'WARNING',
    setBy: 'user',
    readBy: ['python'],
    parse: text,
    doc: 'Log level of Python workers (`logging` module).',
  }),
  vllmPush: variable('TSRAY_VLLM_PUSH', {
    type: '1 | 0',
    default: true,
    setBy: 'user',
    readBy: ['python'],
    parse: flag,
    doc: "Push vLLM's output deltas from its output handler; `0` falls back to one reader task per request.",
  }),
} as const;

type Variables = typeof CONFIG_VARIABLES;
/** Parsed configuration: one typed value per variable of {@link CONFIG_VARIABLES}. */
export type TsrayConfig = { readonly [K in keyof Variables]: Variables[K]['default'] | ReturnType<Variables[K]['parse']> };

/**
 * Parse an environment into a {@link TsrayConfig}. Each value is parsed on first read and kept;
 * unset or empty variables take their default. A bad value throws {@link ConfigError} on read.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): TsrayConfig {
  const out = {} as Record<string, unknown>;
  for (const [key, spec] of Object.entries(CONFIG_VARIABLES) as [string, ConfigVariable<unknown>][]) {
    let parsed = false;
    let value: unknown;
    Object.defineProperty(out, key, {
      enumerable: true,
      get() {
        if (!parsed) {
          const raw = env[spec.name];
          value = raw === undefined || raw === '' ? spec.default : spec.parse(raw, spec.name);
          parsed = true;
        }
        return value;
      },
    });
  }
  return Object.freeze(out) as TsrayConfig;
}

let fromEnv: TsrayConfig | undefined;
let overrides: Partial<Record<keyof TsrayConfig, unknown>> = {};
let merged: TsrayConfig | undefined;

/** This process's configuration, from `process.env` (read once) and any {@link overrideConfig} values. */
export function config(): TsrayConfig {
  if (merged) return merged;
  const base = (fromEnv ??= parseConfig(process.env));
  if (Object.keys(overrides).length === 0) return (merged = base);
  const out = {} as Record<string, unknown>;
  for (const key of Object.keys(CONFIG_VARIABLES) as (keyof TsrayConfig)[]) {
    Object.defineProperty(out, key, { enumerable: true, get: () => (key in overrides ? overrides[key] : base[key]) });
  }
  return (merged = Object.freeze(out) as TsrayConfig);
}

/**
 * Replace some values (tests, embedders). Returns a function that restores the previous overrides.
 * @example const restore = overrideConfig({ peerConnectTimeoutMs: 300 }); try { … } finally { restore(); }
 */
export function overrideConfig(values: Partial<TsrayConfig>): () => void {
  const previous = overrides;
  overrides = { ...overrides, ...values };
  merged = undefined;
  return () => {
    overrides = previous;
    merged = undefined;
  };
}

/** Forget the parsed values and overrides: the next {@link config} reads `process.env` again. */
export function resetConfig(): void {
  fromEnv = undefined;
  overrides = {};
  merged = undefined;
}

/** Read every variable now: throws the first {@link ConfigError} (for entry points that fail fast). */
export function validateConfig(): TsrayConfig {
  const c = config();
  for (const key of Object.keys(CONFIG_VARIABLES) as (keyof TsrayConfig)[]) void c[key];
  return c;
}

// runtime-env cannot import this module (core depends on it): it asks for its cap through this source.
setMaxPackageBytesSource(() => config().runtimeEnvMaxPackageBytes);

/** The cluster token from the environment: `TSRAY_TOKEN`, else the content of `TSRAY_TOKEN_FILE`, else undefined. */
export function configuredToken(): string | undefined {
  const c = config();
  if (c.token) return c.token;
  if (!c.tokenFile) return undefined;
  return readFileSync(c.tokenFile, 'utf8').trim() || undefined;
}
