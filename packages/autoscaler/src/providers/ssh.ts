/**
 * The `ssh` provider: worker nodes on a fixed list of hosts (`provider.worker_ips`), one node per
 * host, started over SSH with the config's user and key: the setup commands, then `tsray start
 * --address <head> --token-file …` (the token is written by the script, which travels on ssh's
 * stdin, never in a command line). The head's autoscaler keeps which host runs which node in its
 * state file; terminating stops the daemon by the pid the host recorded.
 * @module
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../config.js';
import { type JoinTarget, nodeTags, parseRemotePid, remoteStartScript, remoteStopScript, sh, startArgs } from '../launch-command.js';
import { logger } from '../logger.js';
import type { NodeProvider, ProviderNode } from '../node-provider.js';
import { type SshTarget, sshRun } from '../ssh-runner.js';

interface SshNode extends ProviderNode {
  host: string;
  pid?: number;
}

/** The SSH target of a config (the ssh provider validated auth). */
export function sshTarget(config: ClusterConfig): SshTarget {
  if (config.provider.type !== 'ssh') throw new Error('not an ssh config');
  return {
    user: config.auth.ssh_user ?? 'root',
    key: config.auth.ssh_private_key ?? '',
    port: config.provider.ssh_port,
    connectTimeoutS: config.provider.connect_timeout_s,
  };
}

/** Worker nodes on SSH hosts; see the module comment. */
export class SshProvider implements NodeProvider {
  private readonly file: string;
  private closed = false;

  constructor(
    private readonly config: ClusterConfig,
    private readonly opts: { stateDir: string; join?: JoinTarget },
  ) {
    mkdirSync(opts.stateDir, { recursive: true });
    this.file = join(opts.stateDir, 'nodes.json');
  }

  private read(): Record<string, SshNode> {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, SshNode>;
    } catch {
      return {};
    }
  }

  private update(fn: (s: Record<string, SshNode>) => void): void {
    const s = this.read();
    fn(s);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s, null, 2));
    renameSync(tmp, this.file);
  }

  async createNodes(nodeType: string, ids: string[]): Promise<void> {
    const join = this.opts.join;
    if (!join || this.config.provider.type !== 'ssh') throw new Error('this ssh provider cannot create nodes (it has no head to join)');
    const token = readFileSync(join.tokenFile, 'utf8').trim();
    for (const id of ids) {
      const nodes = this.read();
      if (nodes[id]) continue;
      const used = new Set(Object.values(nodes).map((n) => n.host));
      const host = this.config.provider.worker_ips.find((h) => !used.has(h));
      if (!host) {
        logger().warn({ id }, 'ssh provider: every host of provider.worker_ips runs a node');
        return;
      }
      const tags = nodeTags(this.config, nodeType, id, 'worker');
      this.update((s) => (s[id] = { id, tags, status: 'launching', where: host, host, createdAt: Date.now() }));
      const start = [
        'tsray',
        'start',
        '--address',
        join.headAddress,
        '--token-file',
        '"$d/token"',
        ...startArgs(this.config, nodeType, id, 'worker').map(sh),
      ].join(' ');
      const extra = [`(umask 077 && printf '%s' ${sh(token)} > "$d/token")`];
      const script = remoteStartScript(this.config, [...this.config.setup_commands, ...this.config.worker_setup_commands], extra, start, id);
      void sshRun(sshTarget(this.config), host, script).then((r) => {
        const pid = parseRemotePid(r.out);
        if (this.closed) return;
        this.update((s) => {
          const n = s[id];
          if (!n) return;
          if (r.code === 0 && pid !== undefined) Object.assign(n, { status: 'up', pid, where: `${host} pid ${pid}` });
          else
            Object.assign(n, {
              status: 'failed',
              error: `ssh ${host} exited with code ${r.code}: ${(r.err || r.out).trim().split('\n').slice(-5).join(' | ')}`,
            });
        });
        logger().info({ id, host, code: r.code, pid }, r.code === 0 ? 'ssh node started' : 'ssh node failed to start');
      });
    }
  }

  async terminateNode(id: string): Promise<void> {
    const n = this.read()[id];
    if (n) await sshRun(sshTarget(this.config), n.host, remoteStopScript(this.config, id));
    this.update((s) => {
      delete s[id];
    });
  }

  async nonTerminatedNodes(filter: Record<string, string> = {}): Promise<ProviderNode[]> {
    return Object.values(this.read()).filter((n) => Object.entries(filter).every(([k, v]) => n.tags[k] === v));
  }

  async nodeTags(id: string): Promise<Record<string, string>> {
    return this.read()[id]?.tags ?? {};
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
