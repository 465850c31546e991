/**
 * The shell commands that start tsray on a node, for every provider: the setup commands of the config
 * followed by `tsray start` with the node type's resources and the tags as node labels. Run by `bash`
 * locally, over SSH, or as a pod's command, so a provider adds only how to reach the machine.
 * @module
 */
import type { ClusterConfig } from './config.js';
import { TAG_CLUSTER, TAG_KIND, TAG_NODE_ID, TAG_NODE_TYPE } from './node-provider.js';

/** Quote for /bin/sh. */
export function sh(arg: string): string {
  return /^[A-Za-z0-9_/.,:=+@%-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** How a node reaches the head and proves the token. */
export interface JoinTarget {
  /** `host:port` of the head's GCS. */
  headAddress: string;
  /** Path of the token file on the node. */
  tokenFile: string;
}

/** The `tsray start` arguments of a node type (resources and labels; no address). */
export function startArgs(config: ClusterConfig, nodeType: string, id: string, kind: 'head' | 'worker'): string[] {
  const t = config.available_node_types[nodeType];
  if (!t) throw new Error(`unknown node type ${nodeType}`);
  const { CPU, GPU, ...custom } = t.resources;
  const labels = { ...t.labels, [TAG_CLUSTER]: config.cluster_name, [TAG_NODE_TYPE]: nodeType, [TAG_NODE_ID]: id, [TAG_KIND]: kind };
  return [
    ...(CPU !== undefined ? ['--num-cpus', String(CPU)] : []),
    ...(GPU !== undefined ? ['--num-gpus', String(GPU)] : []),
    ...(Object.keys(custom).length ? ['--resources', JSON.stringify(custom)] : []),
    '--labels',
    JSON.stringify(labels),
  ];
}

/** The tags of a node (what {@link startArgs} makes its labels). */
export function nodeTags(config: ClusterConfig, nodeType: string, id: string, kind: 'head' | 'worker'): Record<string, string> {
  return { [TAG_CLUSTER]: config.cluster_name, [TAG_NODE_TYPE]: nodeType, [TAG_NODE_ID]: id, [TAG_KIND]: kind };
}

/**
 * The bash script that sets up and starts a worker node: `setup_commands`, `worker_setup_commands`,
 * then `<tsray> start --address … --token-file … <resources and labels>`. `set -e`: a failing setup
 * command fails the launch (its output names it).
 */
export function workerScript(config: ClusterConfig, nodeType: string, id: string, join: JoinTarget, tsray: string): string {
  const start = ['start', '--address', join.headAddress, '--token-file', join.tokenFile, ...startArgs(config, nodeType, id, 'worker')];
  return ['set -e', ...config.setup_commands, ...config.worker_setup_commands, `${tsray} ${start.map(sh).join(' ')}`].join('\n');
}

/** What `tsray start` printed that the providers need: the node id, the session dir, the head's addresses. */
export interface StartOutput {
  nodeId?: string;
  sessionDir?: string;
  gcsAddress?: string;
  dashboardUrl?: string;
}

/** Read {@link StartOutput} from `tsray start`'s stdout. */
export function parseStartOutput(out: string): StartOutput {
  const r: StartOutput = {};
  const node = /Node ID: (\S+)/.exec(out);
  if (node) r.nodeId = node[1]!;
  const session = /^Session: (\S+)/m.exec(out);
  if (session) r.sessionDir = session[1]!;
  const head = /Address: (\S+)\s+Dashboard: (\S+)/.exec(out);
  if (head) {
    r.gcsAddress = head[1]!;
    r.dashboardUrl = head[2]!;
  }
  return r;
}

/** The cluster's directory on a remote host (after the setup commands, which may set TMPDIR): a bash expression. */
export function remoteDir(config: ClusterConfig): string {
  return `"\${TMPDIR:-/tmp}/tsray/clusters/${config.cluster_name}"`;
}

/**
 * The bash script that starts tsray on a remote host and records the daemon's pid in
 * `<remoteDir>/<pidName>.pid`: the setup commands, `extra` lines (bootstrap files, the token), then
 * `start` (a `tsray start …` line). Prints `tsray start`'s output and `tsray-pid=<pid>`.
 */
export function remoteStartScript(config: ClusterConfig, setup: string[], extra: string[], start: string, pidName: string): string {
  return [
    'set -e',
    ...setup,
    `d=${remoteDir(config)}`,
    'mkdir -p "$d" && chmod 700 "$d"',
    ...extra,
    'cd ~',
    `out=$(${start})`,
    'printf "%s\\n" "$out"',
    `id=$(printf "%s\\n" "$out" | sed -n 's/.*Node ID: \\([^ ]*\\).*/\\1/p')`,
    `addr=$(printf "%s\\n" "$out" | sed -n 's/.*Address: \\([^ ]*\\)  Dashboard.*/\\1/p')`,
    `sess=$(printf "%s\\n" "$out" | sed -n 's/^Session: \\([^ ]*\\).*/\\1/p')`,
    'pid=',
    'for f in "$sess"/*.ready.json; do',
    '  if { [ -n "$id" ] && grep -q "\\"nodeId\\":\\"$id\\"" "$f"; } || { [ -n "$addr" ] && grep -q "\\"gcsAddress\\":\\"$addr\\"" "$f" && grep -q "\\"role\\":\\"head\\"" "$f"; }; then',
    `    pid=$(grep -o '"pid":[0-9]*' "$f" | head -1 | cut -d: -f2)`,
    '  fi',
    'done',
    `echo "$pid" > "$d/${pidName}.pid"`,
    'echo "tsray-pid=$pid"',
  ].join('\n');
}

/** The bash script that stops the daemons whose pids a host recorded (`head.pid` first), SIGKILL after 15 s. */
export function remoteStopScript(config: ClusterConfig, only?: string): string {
  return [
    ...config.setup_commands.map((c) => `${c} || true`),
    `d=${remoteDir(config)}`,
    `for f in ${only ? `"$d/${only}.pid"` : '"$d/head.pid" "$d"/*.pid'}; do`,
    '  [ -f "$f" ] || continue',
    '  pid=$(cat "$f"); rm -f "$f"',
    '  [ -n "$pid" ] || continue',
    '  kill -TERM "$pid" 2>/dev/null || continue',
    '  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done',
    '  kill -KILL "$pid" 2>/dev/null || true',
    '  echo "stopped $pid"',
    'done',
  ].join('\n');
}

/** The pid `remoteStartScript` printed. */
export function parseRemotePid(out: string): number | undefined {
  const m = /^tsray-pid=(\d+)$/m.exec(out);
  return m ? Number(m[1]) : undefined;
}
