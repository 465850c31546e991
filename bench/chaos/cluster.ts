/**
 * The chaos harness's cluster: a head and node daemons as real processes on this machine (the same
 * `dist/daemon-main.js` that `tsray start` spawns), in a private TMPDIR, that can be killed with SIGKILL
 * and replaced; every process it started is reaped by {@link ChaosCluster.stop}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { terminate } from '../../test-utils/processes.js';
import { until } from '../../test-utils/until.js';

export { until };

const DAEMON_MAIN = fileURLToPath(new URL('../../packages/cluster/dist/daemon-main.js', import.meta.url));

/** What a daemon writes to its ready file (the fields the harness reads). */
interface ReadyInfo {
  nodeId: string;
  pid: number;
  gcsAddress: string;
  error?: string;
}

/** One daemon process the harness started. */
export interface ChaosDaemon {
  readonly role: 'head' | 'node';
  readonly proc: ChildProcess;
  /** Its node id (empty until it is ready). */
  nodeId: string;
  readonly exited: Promise<void>;
  /** When it was killed by the harness (ms since the epoch), if it was. */
  killedAt?: number;
}

/** Options of the cluster. */
export interface ChaosClusterOptions {
  /** CPUs per node (head included). */
  numCpus: number;
  /** The GCS declares a node dead after this many seconds without heartbeats. */
  nodeDeathTimeoutS: number;
}

/** A head and node daemons of one cluster, started, killed and replaced by the harness. */
export class ChaosCluster {
  readonly tmp = mkdtempSync(join(tmpdir(), 'tsray-chaos-'));
  private readonly sessionDir = join(this.tmp, 'tsray', 'session-chaos');
  private readonly token = `chaos-${process.pid}-${Date.now()}`;
  private readonly all: ChaosDaemon[] = [];
  private seq = 0;
  head!: ChaosDaemon;

  constructor(private readonly opts: ChaosClusterOptions) {}

  /** Live non-head daemons (ready, not killed, not exited). */
  liveNodes(): ChaosDaemon[] {
    return this.all.filter((d) => d.role === 'node' && d.nodeId !== '' && d.proc.exitCode === null && d.proc.signalCode === null);
  }

  async startHead(): Promise<ChaosDaemon> {
    this.head = await this.spawn('head', { port: 0, dashboardPort: 0, nodeDeathTimeoutS: this.opts.nodeDeathTimeoutS });
    return this.head;
  }

  async addNode(): Promise<ChaosDaemon> {
    // `chaos_node` marks the nodes that may be killed: work that must face faults asks for a sliver of it.
    return this.spawn('node', { headAddress: this.gcsAddress, resources: { chaos_node: 1000 } });
  }

  private gcsAddress = '';

  /** Node daemons that exited without being killed by the harness (each returned once). */
  exitedByThemselves(): ChaosDaemon[] {
    const out = this.all.filter(
      (d) => d.role === 'node' && d.nodeId !== '' && d.killedAt === undefined && (d.proc.exitCode !== null || d.proc.signalCode !== null),
    );
    for (const d of out) d.killedAt = Date.now();
    return out;
  }

  /** SIGKILL a daemon (its workers exit when their stdin pipe closes). */
  kill(d: ChaosDaemon): void {
    d.killedAt = Date.now();
    d.proc.kill('SIGKILL');
  }

  /** Worker processes of a daemon (its direct children). */
  workerPids(d: ChaosDaemon): number[] {
    const pid = d.proc.pid;
    if (pid === undefined) return [];
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  private async spawn(role: 'head' | 'node', extra: Record<string, unknown>): Promise<ChaosDaemon> {
    const n = this.seq++;
    mkdirSync(join(this.sessionDir, 'logs'), { recursive: true });
    const readyFile = join(this.sessionDir, `${role}-${n}.ready.json`);
    const config = {
      role,
      sessionDir: this.sessionDir,
      token: this.token,
      host: '127.0.0.1',
      numCpus: this.opts.numCpus,
      resources: {},
      labels: {},
      objectStoreMemory: 128 * 1024 * 1024,
      readyFile,
      ...extra,
    };
    const errLog = join(this.sessionDir, 'logs', `${role}-${n}.err`);
    const out = openSync(join(this.sessionDir, 'logs', `${role}-${n}.out`), 'a');
    const err = openSync(errLog, 'a');
    const proc = spawn(process.execPath, [DAEMON_MAIN, JSON.stringify(config)], {
      stdio: ['ignore', out, err],
      env: { ...process.env, TMPDIR: this.tmp, TSRAY_LOG_LEVEL: process.env['TSRAY_LOG_LEVEL'] ?? 'info' },
    });
    closeSync(out);
    closeSync(err);
    let done = false;
    const exited = new Promise<void>((r) => proc.once('exit', () => ((done = true), r())));
    // Known to stop() from now on (a harness interrupted while a replacement starts reaps it too).
    const d: ChaosDaemon = { role, proc, nodeId: '', exited };
    this.all.push(d);
    const ready = await until(
      () => {
        if (existsSync(readyFile)) return JSON.parse(readFileSync(readyFile, 'utf8')) as ReadyInfo;
        if (done) return { error: `${role} daemon exited: ${readFileSync(errLog, 'utf8').slice(-2000)}` } as ReadyInfo;
        return undefined;
      },
      60_000,
      `${role} ${n} to start`,
    );
    if (ready.error) throw new Error(ready.error);
    if (role === 'head') this.gcsAddress = ready.gcsAddress;
    d.nodeId = ready.nodeId;
    return d;
  }

  /** Point this process's TMPDIR at the cluster's, so `init({ address: 'auto' })` attaches to the head. */
  attachHere(): void {
    process.env['TMPDIR'] = this.tmp;
  }

  /** SIGTERM every daemon still running (SIGKILL after 10 s), then remove the temp dir. */
  async stop(keep = false): Promise<void> {
    await Promise.all(this.all.map((d) => terminate(d.proc, d.exited)));
    if (!keep) rmSync(this.tmp, { recursive: true, force: true });
  }
}
