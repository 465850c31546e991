/**
 * `tsray up/down/exec` for the `ssh` provider: every host is checked over SSH before anything starts
 * (an unreachable one is named, nothing is left half-started); then on the head host the file mounts,
 * the setup commands, the bootstrap config and key (what the head's autoscaler reaches the workers
 * with, as Ray copies `~/ray_bootstrap_config.yaml`), and `tsray start --head --autoscaling-config`.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ClusterConfig } from './config.js';
import { ClusterConfigError, NodeLaunchError } from './errors.js';
import { readHeadRecord, removeClusterState, writeHeadRecord } from './head-record.js';
import { parseRemotePid, parseStartOutput, remoteStartScript, remoteStopScript, sh, startArgs } from './launch-command.js';
import { sshTarget } from './providers/ssh.js';
import { checkReachable, sshRun } from './ssh-runner.js';

/** Where command output goes. */
interface Io {
  out(s: string): void;
  err(s: string): void;
}

const KEY_PLACEHOLDER = '__TSRAY_BOOTSTRAP_KEY__';

function b64(s: string | Buffer): string {
  return Buffer.from(s).toString('base64');
}

/** Lines writing the file mounts (remote path ← local file). @throws ClusterConfigError for a missing local file. */
function fileMountLines(config: ClusterConfig, file: string): string[] {
  return Object.entries(config.file_mounts).map(([remote, local]) => {
    if (!existsSync(local))
      throw new ClusterConfigError(file, [{ field: `file_mounts.${remote}`, line: 0, message: `the local file ${local} does not exist` }]);
    return `mkdir -p "$(dirname ${sh(remote)})" && printf '%s' ${b64(readFileSync(local))} | base64 -d > ${sh(remote)}`;
  });
}

/** `tsray up` with the ssh provider (see the module comment). */
export async function sshUp(config: ClusterConfig, configPath: string, io: Io): Promise<number> {
  if (config.provider.type !== 'ssh') throw new Error('not an ssh config');
  const p = config.provider;
  const target = sshTarget(config);
  if (!existsSync(target.key)) {
    throw new ClusterConfigError(configPath, [{ field: 'auth.ssh_private_key', line: 0, message: `the key file ${target.key} does not exist` }]);
  }
  io.out(`Checking ${1 + p.worker_ips.length} host(s) over SSH\n`);
  await checkReachable(target, [p.head_ip, ...p.worker_ips]);
  const mounts = fileMountLines(config, configPath);
  const doc = parseDocument(readFileSync(configPath, 'utf8'));
  doc.setIn(['auth', 'ssh_private_key'], KEY_PLACEHOLDER);
  const bootstrap = [
    ...mounts,
    `printf '%s' ${b64(doc.toString())} | base64 -d | sed "s|${KEY_PLACEHOLDER}|$d/bootstrap.key|" > "$d/bootstrap.yaml"`,
    `(umask 077 && printf '%s' ${b64(readFileSync(target.key))} | base64 -d > "$d/bootstrap.key")`,
  ];
  const start = [
    'tsray start --head',
    // The jobs API / dashboard on the head's address too (https there, its certificate pinned through the GCS).
    ...['--host', p.head_ip, '--port', String(p.head_port), '--dashboard-host', p.head_ip, '--dashboard-port', String(p.dashboard_port)].map(sh),
    ...startArgs(config, config.head_node_type, `${config.cluster_name}-head`, 'head').map(sh),
    '--autoscaling-config "$d/bootstrap.yaml"',
  ].join(' ');
  io.out(`Starting the head of cluster ${config.cluster_name} on ${p.head_ip}\n`);
  const r = await sshRun(target, p.head_ip, remoteStartScript(config, [...config.setup_commands, ...config.head_setup_commands], bootstrap, start, 'head'));
  const started = parseStartOutput(r.out);
  if (r.code !== 0 || !started.gcsAddress) throw new NodeLaunchError(config.head_node_type, p.head_ip, `exit code ${r.code}: ${(r.err || r.out).trim()}`);
  const pid = parseRemotePid(r.out);
  writeHeadRecord(config.cluster_name, {
    gcsAddress: started.gcsAddress,
    dashboardUrl: started.dashboardUrl ?? '',
    host: p.head_ip,
    ...(started.sessionDir ? { sessionDir: started.sessionDir } : {}),
    ...(pid !== undefined ? { remotePid: pid } : {}),
    startedAt: Date.now(),
  });
  io.out(`Cluster ${config.cluster_name} is up. Head: ${started.gcsAddress}  Dashboard: ${started.dashboardUrl ?? '-'}\n`);
  io.out(`Workers on ${p.worker_ips.join(', ') || '(no hosts)'} follow the load (max_workers ${config.max_workers}).\n`);
  return 0;
}

/** `tsray down` with the ssh provider: the head host first (its autoscaler stops), then every worker host. */
export async function sshDown(config: ClusterConfig, io: Io): Promise<number> {
  if (config.provider.type !== 'ssh') throw new Error('not an ssh config');
  const target = sshTarget(config);
  let stopped = 0;
  let failed = 0;
  for (const host of [config.provider.head_ip, ...config.provider.worker_ips]) {
    const r = await sshRun(target, host, remoteStopScript(config));
    stopped += (r.out.match(/^stopped \d+$/gm) ?? []).length;
    if (r.code !== 0) {
      failed++;
      io.err(`tsray down: ${host}: ssh exited with code ${r.code}: ${r.err.trim()}\n`);
    }
  }
  removeClusterState(config.cluster_name);
  io.out(`Cluster ${config.cluster_name} is down: ${stopped} tsray process(es) stopped on ${1 + config.provider.worker_ips.length} host(s).\n`);
  return failed ? 1 : 0;
}

/** `tsray exec` with the ssh provider: the command on the head host, after the setup commands. */
export async function sshExec(config: ClusterConfig, command: string, io: Io): Promise<number> {
  if (config.provider.type !== 'ssh') throw new Error('not an ssh config');
  const head = readHeadRecord(config.cluster_name);
  const r = await sshRun(
    sshTarget(config),
    config.provider.head_ip,
    [...config.setup_commands, 'cd ~', `TSRAY_ADDRESS=${sh(head?.gcsAddress ?? 'auto')} ${command}`].join('\n'),
  );
  io.out(r.out);
  if (r.err) io.err(r.err);
  return r.code;
}
