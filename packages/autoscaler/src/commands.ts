/**
 * `tsray up|down|attach|exec|submit CLUSTER.yaml` (as `ray up` …): start the head (setup commands,
 * then `tsray start --head --autoscaling-config`, so the head runs the autoscaler), stop everything
 * the cluster runs, open a shell or run a command or script on the head.
 * @module
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ClusterConfig, loadClusterConfig } from './config.js';
import { ClusterNotRunningError, NodeLaunchError } from './errors.js';
import { clusterStateDir, type HeadRecord, readHeadRecord, removeClusterState, writeHeadRecord } from './head-record.js';
import { parseStartOutput, sh, startArgs } from './launch-command.js';
import { pidAlive } from './providers/local.js';
import { makeProvider } from './providers/index.js';
import { sshDown, sshExec, sshUp } from './ssh-cluster.js';
import { clientNodeApi, type K8sApi } from './k8s-api.js';
import { k8sDown, k8sUp } from './k8s-cluster.js';

/** Where command output goes. */
export interface CommandIo {
  out(s: string): void;
  err(s: string): void;
}

/** Options of the cluster commands. */
export interface CommandOptions {
  /** The tsray CLI command on this machine, quoted for sh (`node …/cli.js`). */
  tsray: string;
  /** The Kubernetes API (tests; default @kubernetes/client-node). */
  k8s?: () => Promise<K8sApi>;
}

/** Run `script` with bash; resolves to its exit code and output. */
function bash(script: string, opts: { env?: NodeJS.ProcessEnv; inherit?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn('bash', ['-c', script], { stdio: opts.inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => done({ code: 127, out, err: err + e.message }));
    child.on('close', (code, signal) => done({ code: code ?? (signal ? 1 : 0), out, err }));
  });
}

/** The head daemon's pid from its session's ready files. */
function headPid(sessionDir: string, gcsAddress: string): number | undefined {
  for (const f of readdirSync(sessionDir).filter((n) => n.startsWith('head-') && n.endsWith('.ready.json'))) {
    try {
      const r = JSON.parse(readFileSync(join(sessionDir, f), 'utf8')) as { pid?: number; gcsAddress?: string };
      if (r.gcsAddress === gcsAddress && typeof r.pid === 'number') return r.pid;
    } catch {
      /* half-written */
    }
  }
  return undefined;
}

/** True while the recorded head runs. */
function headRunning(h: HeadRecord | undefined): boolean {
  return h !== undefined && h.pid !== undefined && pidAlive(h.pid);
}

/** `tsray up`: validate, start the head with its autoscaler (and min_workers follow from it). */
export async function clusterUp(configPath: string, io: CommandIo, opts: CommandOptions): Promise<number> {
  const config = loadClusterConfig(configPath);
  const existing = readHeadRecord(config.cluster_name);
  if (headRunning(existing)) {
    io.out(`cluster ${config.cluster_name} is already up: head ${existing!.gcsAddress}, dashboard ${existing!.dashboardUrl}\n`);
    return 0;
  }
  if (config.provider.type === 'ssh') return sshUp(config, configPath, io);
  if (config.provider.type === 'kubernetes') return k8sUp(config, configPath, await (opts.k8s ?? clientNodeApi)(), io);
  const p = config.provider;
  const head = config.head_node_type;
  const start = [
    opts.tsray,
    'start',
    '--head',
    '--port',
    String(p.head_port),
    '--dashboard-port',
    String(p.dashboard_port),
    ...startArgs(config, head, `${config.cluster_name}-head`, 'head').map(sh),
    '--autoscaling-config',
    sh(resolve(configPath)),
  ].join(' ');
  io.out(`Starting the head of cluster ${config.cluster_name} (provider local)\n`);
  const r = await bash(['set -e', ...config.setup_commands, ...config.head_setup_commands, start].join('\n'));
  const started = parseStartOutput(r.out);
  if (r.code !== 0 || !started.gcsAddress || !started.sessionDir) {
    throw new NodeLaunchError(head, 'localhost', `exit code ${r.code}: ${(r.err || r.out).trim()}`);
  }
  const pid = headPid(started.sessionDir, started.gcsAddress);
  writeHeadRecord(config.cluster_name, {
    gcsAddress: started.gcsAddress,
    dashboardUrl: started.dashboardUrl ?? '',
    host: 'localhost',
    sessionDir: started.sessionDir,
    ...(pid !== undefined ? { pid } : {}),
    startedAt: Date.now(),
  });
  io.out(`Cluster ${config.cluster_name} is up. Head: ${started.gcsAddress}  Dashboard: ${started.dashboardUrl ?? '-'}\n`);
  io.out(`Session: ${started.sessionDir}\n`);
  io.out(
    `The head's autoscaler adds ${Object.keys(config.available_node_types)
      .filter((t) => t !== head)
      .join(', ')} nodes with load (max_workers ${config.max_workers}).\n`,
  );
  io.out(`Status: tsray status   Stop: tsray down ${configPath}\n`);
  return 0;
}

async function killPid(pid: number): Promise<void> {
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** Pids in the session's pid files (every daemon started there: head and local nodes). */
function sessionPids(sessionDir: string): number[] {
  try {
    return readdirSync(sessionDir)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(readFileSync(join(sessionDir, f), 'utf8').trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/** `tsray down`: stop the head (its autoscaler first stops launching), then every worker node. */
export async function clusterDown(configPath: string, io: CommandIo, opts: CommandOptions): Promise<number> {
  const config: ClusterConfig = loadClusterConfig(configPath);
  if (config.provider.type === 'ssh') return sshDown(config, io);
  if (config.provider.type === 'kubernetes') return k8sDown(config, await (opts.k8s ?? clientNodeApi)(), io);
  const head = readHeadRecord(config.cluster_name);
  if (head?.pid !== undefined) await killPid(head.pid);
  const provider = makeProvider(config, { tsray: opts.tsray });
  const nodes = await provider.nonTerminatedNodes();
  for (const n of nodes) await provider.terminateNode(n.id);
  // Anything else of the head's session (a node whose launch was cut short by the head stopping).
  const stray = head?.sessionDir ? sessionPids(head.sessionDir).filter(pidAlive) : [];
  for (const pid of stray) await killPid(pid);
  removeClusterState(config.cluster_name);
  io.out(
    `Cluster ${config.cluster_name} is down: head ${head ? 'stopped' : 'was not running'}, ${nodes.length} worker node(s) terminated${stray.length ? `, ${stray.length} stray process(es) stopped` : ''}.\n`,
  );
  return 0;
}

/** The head record of a running cluster. @throws ClusterNotRunningError. */
function runningHead(config: ClusterConfig, configPath: string): HeadRecord {
  const h = readHeadRecord(config.cluster_name);
  if (!headRunning(h))
    throw new ClusterNotRunningError(
      `cluster ${config.cluster_name} is not running (start it with tsray up ${configPath}; state in ${clusterStateDir(config.cluster_name)})`,
    );
  return h!;
}

/** The environment of a command on the head: drivers attach to its node (`init()` reads TSRAY_ADDRESS). */
function headEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TSRAY_ADDRESS: 'auto' };
}

/** `tsray exec CLUSTER.yaml CMD…`: run a shell command on the head. */
export async function clusterExec(configPath: string, command: string, io: CommandIo): Promise<number> {
  const config = loadClusterConfig(configPath);
  if (config.provider.type === 'ssh') return sshExec(config, command, io);
  runningHead(config, configPath);
  const r = await bash(command, { env: headEnv(), inherit: true });
  if (r.code !== 0) io.err(`tsray exec: the command exited with code ${r.code}\n`);
  return r.code;
}

/** `tsray attach CLUSTER.yaml`: an interactive shell on the head. */
export async function clusterAttach(configPath: string): Promise<number> {
  const config = loadClusterConfig(configPath);
  runningHead(config, configPath);
  return (await bash(`exec ${sh(process.env['SHELL'] ?? 'bash')} -i`, { env: headEnv(), inherit: true })).code;
}

/** `tsray submit CLUSTER.yaml SCRIPT [ARGS…]`: run a driver script on the head (node for .js/.mjs/.ts via tsx, python for .py). */
export async function clusterSubmit(configPath: string, script: string, args: string[], io: CommandIo): Promise<number> {
  const runner = script.endsWith('.py') ? 'python3' : script.endsWith('.ts') ? 'npx tsx' : 'node';
  return clusterExec(configPath, [runner, sh(resolve(script)), ...args.map(sh)].join(' '), io);
}
