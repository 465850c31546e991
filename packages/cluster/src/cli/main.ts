/**
 * The `tsray` command line: argument parsing and the client commands (`status`, `list`, `timeline`, `logs`, `job …`).
 * @module
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TsrayError } from '@tsray/core';
import { configuredToken, config as tsrayConfig } from '@tsray/core/internal';
import { ClusterError } from '../errors.js';
import type { JobInfo, NodeInfo, TaskEvent } from '../contracts.js';
import { apiKeyFor } from '../http/api-key.js';
import { HttpApiClient } from '../http/client.js';
import { CliUsageError, NoClusterError, TokenMissingError } from './errors.js';
import { askDashboardUrl } from './gcs-query.js';
import { formatList, formatStatus, type ListKind } from './format.js';
import { processIo, type CliIo } from './io.js';
import { findLocalHead, tsrayRoot } from './session.js';
import { cmdStart, parseLabels, parseResources, type StartOptions } from './start.js';
import { cmdStop } from './stop.js';
import { cmdCluster } from './cluster-file.js';
import { cmdGenTypes } from './gen-types.js';
import { cmdLogs } from './logs.js';
import { embeddedCluster, embeddedStateSource, type StateSource } from './embedded-state.js';
import { chromeTrace } from './timeline.js';

/** `tsray --help`. */
export const USAGE = `Usage: tsray <command> [options]

Cluster:
  tsray start --head [--port P] [--dashboard-port P] [--dashboard-host H] [--dashboard-cert F --dashboard-key F]
                     [--host H] [--num-cpus N] [--num-gpus N]
                     [--resources JSON] [--labels k=v,...] [--object-store-memory BYTES]
                     [--storage redis://HOST:PORT | PATH] [--token T | --token-file F] [--timeout S]
                      [--autoscaling-config CLUSTER.yaml]
  tsray start --address HOST:PORT [--host H] [--node-ip-address IP] [--head-lost-timeout S]
                     [--num-cpus N] [--num-gpus N] [--resources JSON] [--labels k=v,...]
                     [--token T | --token-file F] [--timeout S]        (token also from TSRAY_TOKEN)
    The head binds --host (default 127.0.0.1: this machine only; 0.0.0.0 or an address for others).
    --storage: where the GCS keeps its tables so a restarted head reloads them (default: a log in the
    session directory; redis://HOST:PORT for an external Redis).
    Its jobs HTTP API / dashboard binds --dashboard-host (default 127.0.0.1); beyond loopback it speaks
    only https, with --dashboard-cert/--dashboard-key or a self-signed certificate whose fingerprint is printed.
    A node binds and advertises --host, else the address it reaches the head on; it stops after
    --head-lost-timeout seconds without word from the head (default 60, TSRAY_HEAD_LOST_TIMEOUT_S).
  tsray stop [--grace S] [--force]
  tsray api-key [--token T | --token-file F]   (the jobs HTTP API / dashboard key, derived from the token)

Clusters from a config file (docs/autoscaler.md; the head runs the autoscaler):
  tsray up CLUSTER.yaml                    start the head; workers follow the load (provider local|ssh|kubernetes)
  tsray down CLUSTER.yaml                  stop the head and every worker node
  tsray attach CLUSTER.yaml                a shell on the head
  tsray exec CLUSTER.yaml -- CMD...        run a command on the head (drivers there attach with init())
  tsray submit CLUSTER.yaml SCRIPT [ARGS]  run a driver script on the head
  tsray status [--format table|json]   (--address HEAD:6380 asks the head's GCS where its dashboard is)
  tsray list nodes|actors|tasks|objects|placement-groups|jobs [--format table|json]
  tsray timeline [--output FILE]   (Chrome trace of recent tasks, as ray timeline; open in ui.perfetto.dev)
  tsray logs [NAME|PATH] [--pid N] [--tail N] [--follow]   (this machine's session logs, kept after
             shutdown; no argument lists them, newest first)

Serving (needs @tsray/vllm-bridge installed):
  tsray serve --model DIR [--ranks N] [--gpus-per-rank G] [--backend auto|vllm|transformers] [--port 8000]
              [--host H] [--served-model-name NAME] [--engine-args JSON] [--address auto|HOST:PORT]
              (OpenAI-compatible server; --address joins a running cluster, else an embedded one)

Python (development time):
  tsray gen-types <module> [--out FILE] [--check] [--python PATH]
              (a .d.ts of the module's actor classes and functions for python.actor<T>() and
              python.remote<A, R>(); --check fails when FILE is stale; the interpreter defaults to
              TSRAY_PYTHON, ./.venv/bin/python, python3)

Jobs:
  tsray job submit [--submission-id ID] [--runtime-env FILE | --runtime-env-json JSON] [--working-dir DIR]
                   [--metadata-json JSON] [--no-wait] -- <entrypoint...>
  tsray job status <id>
  tsray job logs <id> [--follow]
  tsray job stop <id>
  tsray job delete <id>
  tsray job list [--format table|json]

status, list and job take [--address http(s)://HOST:PORT] [--token T | --token-file F]
[--dashboard-fingerprint SHA256]; the address defaults to TSRAY_DASHBOARD_ADDRESS, else this machine's
running head; the token to TSRAY_TOKEN, else the local session's token file (the API key is derived
from it, the token is never sent); an https head's certificate must have the fingerprint given (or
TSRAY_DASHBOARD_FINGERPRINT, else the local head's). status and list also take the head's GCS address, --address HOST:PORT
(without http://), as ray status does: from a machine with only a node, or none.
`;

const CLIENT_OPTIONS = {
  address: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'dashboard-fingerprint': { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  return parseArgs({ args, options, allowPositionals: true, strict: true });
}

function num(name: string, v: string | undefined, opts: { int?: boolean; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (opts.int && !Number.isInteger(n)) || (opts.max !== undefined && n > opts.max)) {
    throw new CliUsageError(
      `--${name}: expected a non-negative ${opts.int ? 'integer' : 'number'}${opts.max !== undefined ? ` up to ${opts.max}` : ''}; got "${v}"`,
    );
  }
  return n;
}

type ClientValues = {
  address?: string | undefined;
  token?: string | undefined;
  'token-file'?: string | undefined;
  'dashboard-fingerprint'?: string | undefined;
};

/** The token: --token, --token-file, TSRAY_TOKEN, else the local session's. */
function resolveToken(values: ClientValues, local: ReturnType<typeof findLocalHead>): string {
  let token = values.token;
  if (token === undefined && values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (e) {
      throw new CliUsageError(`--token-file: cannot read ${values['token-file']} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  token ??= configuredToken() ?? local?.token;
  if (!token) throw new TokenMissingError(`no cluster token: pass --token or --token-file, or set TSRAY_TOKEN (the head keeps it in <sessionDir>/token)`);
  return token;
}

/** Build the HTTP client from `--address`/`TSRAY_DASHBOARD_ADDRESS`/the local head, and the token. */
export function resolveClient(values: ClientValues): HttpApiClient {
  const local = findLocalHead();
  let url = values.address ?? tsrayConfig().dashboardAddress ?? local?.entry.ready?.dashboardUrl;
  if (!url) {
    throw new NoClusterError(
      `no running tsray head found on this machine (looked for head ready files under ${tsrayRoot()}); start one with \`tsray start --head\`, or give the head's address with --address HEAD:6380 (its GCS) or --address http://HOST:PORT (its dashboard)`,
    );
  }
  if (!/^https?:\/\//.test(url)) url = `http://${url}`;
  // The local head's certificate is pinned from its ready file (the session is this user's, 0700).
  const fingerprint =
    values['dashboard-fingerprint'] ??
    tsrayConfig().dashboardFingerprint ??
    (url === local?.entry.ready?.dashboardUrl ? local.entry.ready.dashboardFingerprint : undefined);
  return new HttpApiClient({ url, token: resolveToken(values, local), ...(fingerprint ? { fingerprint } : {}) });
}

/**
 * For `status` and `list`: `--address HOST:PORT` without `http://` is the head's GCS address (as
 * `ray status --address`), asked for its dashboard; anything else as {@link resolveClient}. Without an
 * address or head, an embedded (`init()`) cluster of this machine is read through its node.
 */
export async function resolveStateClient(values: ClientValues): Promise<StateSource> {
  // No head to ask, but an init() cluster (or tsray serve's) runs here: attach to its node.
  if (values.address === undefined && !tsrayConfig().dashboardAddress && !findLocalHead()?.entry.ready?.dashboardUrl && embeddedCluster()) {
    return embeddedStateSource();
  }
  if (values.address === undefined || /^https?:\/\//.test(values.address)) return resolveClient(values);
  const gcs = values.address.replace(/^tcp:\/\//, '');
  const token = resolveToken(values, findLocalHead());
  const fingerprint = values['dashboard-fingerprint'] ?? tsrayConfig().dashboardFingerprint;
  return new HttpApiClient({ url: await askDashboardUrl(gcs, token), token, ...(fingerprint ? { fingerprint } : {}) });
}

function format(v: string | undefined): 'table' | 'json' {
  if (v === undefined || v === 'table' || v === 'json') return v ?? 'table';
  throw new CliUsageError(`--format: expected table or json; got "${v}"`);
}

/** Quote an argument for /bin/sh when it needs it. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_/.,:=+@%^-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const LIST_KINDS: Record<string, ListKind> = {
  nodes: 'nodes',
  actors: 'actors',
  tasks: 'tasks',
  objects: 'objects',
  'placement-groups': 'placement-groups',
  placement_groups: 'placement-groups',
  jobs: 'jobs',
};

async function cmdStatus(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS);
  if (positionals.length) throw new CliUsageError(`tsray status takes no arguments; got ${positionals.join(' ')}`);
  const fmt = format(values.format);
  const client = await resolveStateClient(values);
  try {
    const s = await client.clusterStatus();
    io.out(fmt === 'json' ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
  } finally {
    await client.close?.();
  }
  return 0;
}

async function cmdList(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS);
  const kind = LIST_KINDS[positionals[0] ?? ''];
  if (!kind || positionals.length !== 1) throw new CliUsageError(`tsray list needs one of: nodes, actors, tasks, objects, placement-groups, jobs`);
  const fmt = format(values.format);
  const client = await resolveStateClient(values);
  try {
    const items: unknown[] = kind === 'jobs' ? await client.listJobs() : await client.listState(kind === 'placement-groups' ? 'placement_groups' : kind);
    io.out(fmt === 'json' ? JSON.stringify(items, null, 2) + '\n' : formatList(kind, items));
  } finally {
    await client.close?.();
  }
  return 0;
}

/** `tsray timeline [--output FILE]`: write the Chrome trace of the cluster's recent tasks. */
async function cmdTimeline(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_OPTIONS, output: { type: 'string', short: 'o' } });
  if (positionals.length) throw new CliUsageError(`tsray timeline takes no arguments; got ${positionals.join(' ')}`);
  const client = await resolveStateClient(values);
  let events: TaskEvent[];
  let nodes: NodeInfo[];
  try {
    [events, nodes] = await Promise.all([client.listState('timeline'), client.listState('nodes')]);
  } finally {
    await client.close?.();
  }
  const trace = chromeTrace(events, nodes);
  const file = resolve(values.output ?? `tsray-timeline-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(trace));
  io.out(`${events.length} task event(s) written to ${file}; open it in https://ui.perfetto.dev or chrome://tracing\n`);
  return 0;
}

function readJsonOption(name: string, text: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new CliUsageError(`--${name}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new CliUsageError(`--${name}: expected a JSON object`);
  return o as Record<string, unknown>;
}

function finalLine(id: string, info: JobInfo): { text: string; code: number; toErr: boolean } {
  if (info.status === 'SUCCEEDED') return { text: `Job '${id}' succeeded\n`, code: 0, toErr: false };
  if (info.status === 'STOPPED') return { text: `Job '${id}' was stopped\n`, code: 1, toErr: true };
  return { text: `Job '${id}' failed: ${info.message}\n`, code: 1, toErr: true };
}

async function followToEnd(client: HttpApiClient, id: string, io: CliIo): Promise<JobInfo> {
  for await (const chunk of client.tailJobLogs(id)) io.out(chunk);
  return client.getJob(id);
}

async function cmdJob(args: string[], io: CliIo): Promise<number> {
  const sub = args[0];
  const rest = args.slice(1);
  switch (sub) {
    case 'submit': {
      const { values, positionals } = parse(rest, {
        ...CLIENT_OPTIONS,
        'submission-id': { type: 'string' },
        'runtime-env': { type: 'string' },
        'runtime-env-json': { type: 'string' },
        'working-dir': { type: 'string' },
        'metadata-json': { type: 'string' },
        'no-wait': { type: 'boolean' },
      });
      if (positionals.length === 0) throw new CliUsageError('tsray job submit needs an entrypoint: tsray job submit -- node driver.js');
      const entrypoint = positionals.length === 1 ? (positionals[0] as string) : positionals.map(shellQuote).join(' ');
      if (values['runtime-env'] !== undefined && values['runtime-env-json'] !== undefined)
        throw new CliUsageError('give either --runtime-env FILE or --runtime-env-json JSON, not both');
      let runtimeEnv: Record<string, unknown> | undefined;
      if (values['runtime-env'] !== undefined) {
        let text: string;
        try {
          text = readFileSync(values['runtime-env'], 'utf8');
        } catch (e) {
          throw new CliUsageError(`--runtime-env: cannot read ${values['runtime-env']} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        runtimeEnv = readJsonOption('runtime-env', text);
      }
      if (values['runtime-env-json'] !== undefined) runtimeEnv = readJsonOption('runtime-env-json', values['runtime-env-json']);
      if (values['working-dir'] !== undefined) runtimeEnv = { ...(runtimeEnv ?? {}), working_dir: resolve(values['working-dir']) };
      const metadata = values['metadata-json'] !== undefined ? (readJsonOption('metadata-json', values['metadata-json']) as Record<string, string>) : undefined;
      const client = resolveClient(values);
      const id = await client.submitJob({
        entrypoint,
        ...(values['submission-id'] !== undefined ? { submissionId: values['submission-id'] } : {}),
        ...(runtimeEnv ? { runtimeEnv } : {}),
        ...(metadata ? { metadata } : {}),
      });
      io.out(`Job '${id}' submitted successfully (server ${client.url})\n`);
      io.out(`  status: tsray job status ${id}\n  logs:   tsray job logs ${id} --follow\n  stop:   tsray job stop ${id}\n`);
      if (values['no-wait']) return 0;
      io.out(`Tailing logs until the job exits (disable with --no-wait):\n`);
      const info = await followToEnd(client, id, io);
      const f = finalLine(id, info);
      (f.toErr ? io.err : io.out)(f.text);
      return f.code;
    }
    case 'status': {
      const { values, positionals } = parse(rest, CLIENT_OPTIONS);
      const id = oneId('status', positionals);
      const info = await resolveClient(values).getJob(id);
      io.out(`Status for job '${id}': ${info.status}\nStatus message: ${info.message}\n`);
      return 0;
    }
    case 'logs': {
      const { values, positionals } = parse(rest, { ...CLIENT_OPTIONS, follow: { type: 'boolean', short: 'f' } });
      const id = oneId('logs', positionals);
      const client = resolveClient(values);
      if (values.follow) {
        for await (const chunk of client.tailJobLogs(id)) io.out(chunk);
      } else {
        io.out(await client.getJobLogs(id));
      }
      return 0;
    }
    case 'stop': {
      const { values, positionals } = parse(rest, CLIENT_OPTIONS);
      const id = oneId('stop', positionals);
      const client = resolveClient(values);
      if (await client.stopJob(id)) {
        io.out(`Job '${id}' was stopped\n`);
      } else {
        io.out(`Job '${id}' had already ended (${(await client.getJob(id)).status})\n`);
      }
      return 0;
    }
    case 'delete': {
      const { values, positionals } = parse(rest, CLIENT_OPTIONS);
      const id = oneId('delete', positionals);
      await resolveClient(values).deleteJob(id);
      io.out(`Job '${id}' deleted\n`);
      return 0;
    }
    case 'list': {
      const { values, positionals } = parse(rest, CLIENT_OPTIONS);
      if (positionals.length) throw new CliUsageError('tsray job list takes no arguments');
      const fmt = format(values.format);
      const jobs = await resolveClient(values).listJobs();
      io.out(fmt === 'json' ? JSON.stringify(jobs, null, 2) + '\n' : formatList('jobs', jobs));
      return 0;
    }
    default:
      throw new CliUsageError(`unknown job command "${sub ?? ''}": submit, status, logs, stop, delete or list`);
  }
}

function oneId(cmd: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new CliUsageError(`tsray job ${cmd} needs exactly one job id (see tsray job list)`);
  return positionals[0] as string;
}

function startOptions(args: string[]): StartOptions {
  const { values, positionals } = parse(args, {
    head: { type: 'boolean' },
    address: { type: 'string' },
    port: { type: 'string' },
    'dashboard-port': { type: 'string' },
    storage: { type: 'string' },
    'dashboard-host': { type: 'string' },
    'dashboard-cert': { type: 'string' },
    'dashboard-key': { type: 'string' },
    host: { type: 'string' },
    'num-cpus': { type: 'string' },
    'num-gpus': { type: 'string' },
    resources: { type: 'string' },
    labels: { type: 'string' },
    'object-store-memory': { type: 'string' },
    'node-death-timeout': { type: 'string' },
    'node-ip-address': { type: 'string' },
    'head-lost-timeout': { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    timeout: { type: 'string' },
    'autoscaling-config': { type: 'string' },
  });
  if (positionals.length) throw new CliUsageError(`tsray start takes no positional arguments; got ${positionals.join(' ')}`);
  const o: StartOptions = { head: values.head ?? false };
  const set = <K extends keyof StartOptions>(k: K, v: StartOptions[K] | undefined): void => {
    if (v !== undefined) o[k] = v;
  };
  set('address', values.address);
  set('port', num('port', values.port, { int: true, max: 65535 }));
  set('dashboardPort', num('dashboard-port', values['dashboard-port'], { int: true, max: 65535 }));
  set('host', values.host);
  set('storage', values.storage);
  set('dashboardHost', values['dashboard-host']);
  set('dashboardCert', values['dashboard-cert']);
  set('dashboardKey', values['dashboard-key']);
  set('numCpus', num('num-cpus', values['num-cpus']));
  set('numGpus', num('num-gpus', values['num-gpus']));
  set('resources', values.resources !== undefined ? parseResources(values.resources) : undefined);
  set('labels', values.labels !== undefined ? parseLabels(values.labels) : undefined);
  set('objectStoreMemory', num('object-store-memory', values['object-store-memory'], { int: true }));
  set('nodeDeathTimeoutS', num('node-death-timeout', values['node-death-timeout']));
  set('nodeIpAddress', values['node-ip-address']);
  set('headLostTimeoutS', num('head-lost-timeout', values['head-lost-timeout']));
  set('token', values.token);
  set('tokenFile', values['token-file']);
  set('timeoutS', num('timeout', values.timeout));
  set('autoscalingConfig', values['autoscaling-config']);
  return o;
}

/** `tsray serve ...`: run @tsray/vllm-bridge's server (tsray-serve) in the foreground. */
async function cmdServe(args: string[]): Promise<number> {
  let script: string;
  try {
    const req = createRequire(join(process.cwd(), 'package.json'));
    let pkg: string;
    try {
      pkg = req.resolve('@tsray/vllm-bridge/package.json');
    } catch {
      pkg = createRequire(import.meta.url).resolve('@tsray/vllm-bridge/package.json');
    }
    script = join(dirname(pkg), 'dist', 'serve-cli.js');
  } catch {
    throw new ClusterError('tsray serve needs the @tsray/vllm-bridge package: npm install @tsray/vllm-bridge');
  }
  const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  return code;
}

/**
 * Run the CLI with `argv` (without `node` and the script). Resolves to the exit code: 0 ok, 1 failure,
 * 2 usage error. Errors are printed as `tsray: <message>` on stderr.
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || rest.includes('--help') || rest.includes('-h')) {
      io.out(USAGE);
      return cmd === undefined ? 2 : 0;
    }
    switch (cmd) {
      case 'start':
        return await cmdStart(startOptions(rest), io);
      case 'stop': {
        const { values, positionals } = parse(rest, { grace: { type: 'string' }, force: { type: 'boolean' } });
        if (positionals.length) throw new CliUsageError('tsray stop takes no arguments');
        const graceS = num('grace', values.grace);
        return await cmdStop({ ...(graceS !== undefined ? { graceS } : {}), force: values.force ?? false }, io);
      }
      case 'api-key': {
        const { values, positionals } = parse(rest, { token: { type: 'string' }, 'token-file': { type: 'string' } });
        if (positionals.length) throw new CliUsageError('tsray api-key takes no arguments');
        io.out(`${apiKeyFor(resolveToken(values, findLocalHead()))}\n`);
        return 0;
      }
      case 'up':
      case 'down':
      case 'attach':
      case 'exec':
      case 'submit':
        return await cmdCluster(cmd, rest, io);
      case 'status':
        return await cmdStatus(rest, io);
      case 'list':
        return await cmdList(rest, io);
      case 'timeline':
        return await cmdTimeline(rest, io);
      case 'logs': {
        const { values, positionals } = parse(rest, { pid: { type: 'string' }, tail: { type: 'string' }, follow: { type: 'boolean', short: 'f' } });
        if (positionals.length > 1) throw new CliUsageError('tsray logs takes at most one file name');
        const pid = num('pid', values.pid, { int: true });
        const tail = num('tail', values.tail, { int: true });
        return await cmdLogs(
          {
            ...(positionals[0] !== undefined ? { what: positionals[0] } : {}),
            ...(pid !== undefined ? { pid } : {}),
            ...(tail !== undefined ? { tail } : {}),
            follow: values.follow ?? false,
          },
          io,
        );
      }
      case 'job':
        return await cmdJob(rest, io);
      case 'serve':
        return await cmdServe(rest);
      case 'gen-types': {
        const { values, positionals } = parse(rest, { out: { type: 'string' }, check: { type: 'boolean' }, python: { type: 'string' } });
        if (positionals.length !== 1) throw new CliUsageError('tsray gen-types takes one Python module name, e.g. tsray gen-types mypkg.model');
        return await cmdGenTypes(
          {
            module: positionals[0]!,
            check: values.check ?? false,
            ...(values.out ? { out: values.out } : {}),
            ...(values.python ? { python: values.python } : {}),
          },
          io,
        );
      }
      default:
        throw new CliUsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e instanceof CliUsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      io.err(`tsray: ${(e as Error).message}\nRun 'tsray --help' for usage.\n`);
      return 2;
    }
    if (TsrayError.isInstance(e) || e instanceof ClusterError) {
      io.err(`tsray: ${e.message}\n`);
      return 1;
    }
    io.err(`tsray: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
