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
