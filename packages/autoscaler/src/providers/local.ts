/**
 * The `local` provider: worker nodes as tsray node daemons on this machine (`tsray start --address`
 * run by bash after the setup commands), for tests and single-box users. What it launched is kept in
 * a state file (`<stateDir>/nodes.json`) so `tsray down` — another process — finds the nodes the head's
 * autoscaler started, as Ray's local provider keeps its cluster state file.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../config.js';
import { nodeTags, parseStartOutput, workerScript, type JoinTarget } from '../launch-command.js';
import { logger } from '../logger.js';
import type { NodeProvider, ProviderNode } from '../node-provider.js';

/** One node in the state file. */
interface LocalNode extends ProviderNode {
  /** The node daemon's pid once it is up. */
  pid?: number;
  nodeId?: string;
}

interface StateFile {
  nodes: Record<string, LocalNode>;
}

/** Options of {@link LocalProvider}. */
export interface LocalProviderOptions {
  /** Directory of the state file (one per cluster). */
  stateDir: string;
  /** The head to join (absent for `tsray down`, which only terminates). */
  join?: JoinTarget;
  /** The command that runs the tsray CLI here (`node …/cli.js`, quoted for sh). */
  tsray: string;
}

/** True while `pid` is a live process. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the daemon of node `nodeId` from its session's ready files. */
export function daemonPid(sessionDir: string, nodeId: string): number | undefined {
  let names: string[] = [];
  try {
    names = readdirSync(sessionDir).filter((f) => f.endsWith('.ready.json'));
  } catch {
    return undefined;
  }
  for (const f of names) {
    try {
      const r = JSON.parse(readFileSync(join(sessionDir, f), 'utf8')) as { nodeId?: string; pid?: number };
      if (r.nodeId === nodeId && typeof r.pid === 'number') return r.pid;
    } catch {
      /* half-written */
    }
  }
  return undefined;
}

/** Node daemons on this machine, started through bash; see the module comment. */
export class LocalProvider implements NodeProvider {
  private readonly file: string;
  private readonly launches = new Map<string, ChildProcess>();

  constructor(
    private readonly config: ClusterConfig,
    private readonly opts: LocalProviderOptions,
  ) {
    mkdirSync(opts.stateDir, { recursive: true });
    this.file = join(opts.stateDir, 'nodes.json');
  }

  private read(): StateFile {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as StateFile;
    } catch {
      return { nodes: {} };
    }
  }

  private update(fn: (s: StateFile) => void): void {
    const s = this.read();
    fn(s);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s, null, 2));
    renameSync(tmp, this.file);
  }

  async createNodes(nodeType: string, ids: string[]): Promise<void> {
    const join = this.opts.join;
    if (!join) throw new Error('this local provider cannot create nodes (it has no head to join)');
    for (const id of ids) {
      if (this.read().nodes[id]) continue;
      const tags = nodeTags(this.config, nodeType, id, 'worker');
      this.update((s) => (s.nodes[id] = { id, tags, status: 'launching', where: 'localhost', createdAt: Date.now() }));
      const child = spawn('bash', ['-c', workerScript(this.config, nodeType, id, join, this.opts.tsray)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      this.launches.set(id, child);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', (e) => (err += e.message));
      child.on('close', (code) => {
        this.launches.delete(id);
        const started = parseStartOutput(out);
        const pid = started.nodeId && started.sessionDir ? daemonPid(started.sessionDir, started.nodeId) : undefined;
        this.update((s) => {
          const n = s.nodes[id];
          if (!n) return; // terminated meanwhile
          if (code === 0 && pid !== undefined) {
            Object.assign(n, { status: 'up', pid, nodeId: started.nodeId, where: `localhost pid ${pid}` });
          } else {
            Object.assign(n, { status: 'failed', error: `the launch exited with code ${code}: ${(err || out).trim().split('\n').slice(-5).join(' | ')}` });
          }
        });
        logger().info({ id, nodeType, code, pid }, code === 0 ? 'local node started' : 'local node failed to start');
      });
    }
  }

  async terminateNode(id: string): Promise<void> {
    const n = this.read().nodes[id];
    const child = this.launches.get(id);
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    if (n?.pid !== undefined && pidAlive(n.pid)) {
      process.kill(n.pid, 'SIGTERM');
      // The daemon stops its workers first; SIGKILL only a daemon that does not stop.
      for (let i = 0; i < 200 && pidAlive(n.pid); i++) await new Promise((r) => setTimeout(r, 50));
      if (pidAlive(n.pid)) process.kill(n.pid, 'SIGKILL');
    }
    this.update((s) => {
      delete s.nodes[id];
    });
  }

  async nonTerminatedNodes(filter: Record<string, string> = {}): Promise<ProviderNode[]> {
    const s = this.read();
    // A node whose daemon exited (stopped by hand, crashed) is terminated.
    const gone = Object.values(s.nodes).filter((n) => n.status === 'up' && n.pid !== undefined && !pidAlive(n.pid));
    if (gone.length) {
      this.update((st) => {
        for (const n of gone) delete st.nodes[n.id];
      });
    }
    return Object.values(s.nodes).filter((n) => !gone.includes(n) && Object.entries(filter).every(([k, v]) => n.tags[k] === v));
  }

  async nodeTags(id: string): Promise<Record<string, string>> {
    return this.read().nodes[id]?.tags ?? {};
  }

  async close(): Promise<void> {
    for (const [id, child] of this.launches) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      this.launches.delete(id);
    }
  }
}
