/**
 * The cluster config (`cluster.yaml`), in Ray's file shape where it makes sense: `cluster_name`,
 * `max_workers`, `upscaling_speed`, `idle_timeout_minutes`, `provider`, `auth`,
 * `available_node_types` (each with `resources`, `min_workers`, `max_workers`), `head_node_type`,
 * `file_mounts`, `setup_commands` (+ `head_setup_commands` / `worker_setup_commands`). One zod schema
 * validates it; every problem is reported with its field path and its line in the file (the `yaml`
 * package's document API keeps each node's source range).
 * @module
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ClusterConfigError } from './errors.js';

const NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
const count = z.number().int().min(0);
const resources = z.record(z.string().min(1), z.number().min(0));

const nodeType = z.strictObject({
  /** What one node of this type offers (`CPU`, `GPU`, custom resources). */
  resources,
  min_workers: count.default(0),
  max_workers: count.optional(),
  /** Node labels (`tsray start --labels`). */
  labels: z.record(z.string().min(1), z.string()).default({}),
});

const port = z.number().int().min(0).max(65535);

const localProvider = z.strictObject({
  type: z.literal('local'),
  /** The head's GCS port (0: a free one). */
  head_port: port.default(6380),
  dashboard_port: port.default(8265),
});

const sshProvider = z.strictObject({
  type: z.literal('ssh'),
  /** The head's address: SSH goes there, and nodes join `head_ip:head_port`. */
  head_ip: z.string().min(1),
  /** The hosts worker nodes are started on, one node per host. */
  worker_ips: z.array(z.string().min(1)).default([]),
  head_port: port.default(6380),
  dashboard_port: port.default(8265),
  /** SSH port of every host. */
  ssh_port: port.default(22),
  /** Seconds an SSH connection may take before the host counts as unreachable. */
  connect_timeout_s: z.number().int().min(1).default(10),
});

const kubernetesProvider = z.strictObject({
  type: z.literal('kubernetes'),
  namespace: z.string().regex(NAME, 'a Kubernetes name: lowercase letters, digits and -').default('default'),
  /** The container image of head and workers (tsray installed, `tsray` on PATH). */
  image: z.string().min(1),
  head_port: port.default(6380),
  dashboard_port: port.default(8265),
  /** The secret holding the cluster token (key `token`). */
  token_secret: z.string().regex(NAME).optional(),
  service_account: z.string().regex(NAME).optional(),
});

/** The schema of a cluster config, as parsed (defaults filled in). */
export const clusterConfigSchema = z
  .strictObject({
    cluster_name: z.string().regex(NAME, 'lowercase letters, digits and - (at most 40), as Kubernetes names'),
    /** Worker nodes at most, all types together (the head not counted). */
    max_workers: count.default(2),
    /** How fast to scale up: at most max(5, upscaling_speed × nodes) nodes launching at once (as Ray). */
    upscaling_speed: z.number().positive().default(1),
    /** A worker idle this long is removed (fractions allowed: 0.1 = 6 s). */
    idle_timeout_minutes: z.number().min(0).default(5),
    provider: z.discriminatedUnion('type', [localProvider, sshProvider, kubernetesProvider]),
    auth: z
      .strictObject({
        ssh_user: z.string().min(1).optional(),
        ssh_private_key: z.string().min(1).optional(),
      })
      .default({}),
    available_node_types: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'), nodeType).refine((t) => Object.keys(t).length > 0, {
      message: 'needs at least one node type',
    }),
    head_node_type: z.string().min(1),
    /** Remote path → local path, copied to every node before its setup commands. */
    file_mounts: z.record(z.string().min(1), z.string().min(1)).default({}),
    setup_commands: z.array(z.string()).default([]),
    head_setup_commands: z.array(z.string()).default([]),
    worker_setup_commands: z.array(z.string()).default([]),
  })
  .superRefine((c, ctx) => {
    if (!(c.head_node_type in c.available_node_types)) {
      ctx.addIssue({
        code: 'custom',
        path: ['head_node_type'],
        message: `unknown node type "${c.head_node_type}"; available_node_types has: ${Object.keys(c.available_node_types).join(', ')}`,
      });
    }
    let minSum = 0;
    for (const [name, t] of Object.entries(c.available_node_types)) {
      if (t.max_workers !== undefined && t.min_workers > t.max_workers) {
        ctx.addIssue({
          code: 'custom',
          path: ['available_node_types', name, 'min_workers'],
          message: `min_workers (${t.min_workers}) is greater than max_workers (${t.max_workers})`,
        });
      }
      if (name !== c.head_node_type) minSum += t.min_workers;
    }
    if (minSum > c.max_workers) {
      ctx.addIssue({
        code: 'custom',
        path: ['max_workers'],
        message: `max_workers (${c.max_workers}) is less than the node types' min_workers together (${minSum})`,
      });
    }
    if (c.provider.type === 'ssh') {
      for (const f of ['ssh_user', 'ssh_private_key'] as const) {
        if (!c.auth[f]) ctx.addIssue({ code: 'custom', path: ['auth', f], message: `the ssh provider needs auth.${f}` });
      }
      if (minSum > c.provider.worker_ips.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['provider', 'worker_ips'],
          message: `lists ${c.provider.worker_ips.length} host(s), fewer than the node types' min_workers together (${minSum})`,
        });
      }
    }
  });

/** A validated cluster config. */
export type ClusterConfig = z.output<typeof clusterConfigSchema>;
/** One node type of a config. */
export type NodeTypeConfig = ClusterConfig['available_node_types'][string];

/** The most workers of one type: its max_workers, else the cluster's (an ssh cluster has one per host of worker_ips at most). */
export function typeMax(config: ClusterConfig, type: string): number {
  const hosts = config.provider.type === 'ssh' ? config.provider.worker_ips.length : Number.POSITIVE_INFINITY;
  return Math.min(config.available_node_types[type]?.max_workers ?? config.max_workers, config.max_workers, hosts);
}

/** The 1-based line of `path` in the document (the nearest existing parent's when it is missing), 0 if none. */
function lineOf(doc: Document, lines: LineCounter, path: PropertyKey[], unknownKey?: string): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (!node || typeof node !== 'object') continue;
    let range = (node as { range?: [number, number, number] }).range;
    if (unknownKey !== undefined && n === path.length && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === unknownKey);
      const keyRange = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (keyRange) range = keyRange;
    }
    if (range) return lines.linePos(range[0]).line;
  }
  return 0;
}

/**
 * Parse and validate a cluster config's text.
 * @param file the name errors give (the file path).
 * @throws ClusterConfigError naming every bad field with its line.
 */
export function parseClusterConfig(text: string, file = '<string>'): ClusterConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ClusterConfigError(
      file,
      doc.errors.map((e) => ({ field: '', line: lines.linePos(e.pos[0]).line, message: `not valid YAML: ${e.message.split('\n')[0]}` })),
    );
  }
  const r = clusterConfigSchema.safeParse(doc.toJS());
  if (r.success) return r.data;
  const problems: { field: string; line: number; message: string }[] = [];
  for (const issue of r.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        problems.push({
          field: [...issue.path, k].map(String).join('.'),
          line: lineOf(doc, lines, issue.path, k),
          message: `unknown field "${k}"`,
        });
      }
      continue;
    }
    problems.push({ field: issue.path.map(String).join('.'), line: lineOf(doc, lines, issue.path), message: issue.message });
  }
  throw new ClusterConfigError(file, problems);
}

/** Read, parse and validate a cluster config file. @throws ClusterConfigError (also when it cannot be read). */
export function loadClusterConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ClusterConfigError(path, [
      { field: '', line: 0, message: `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` },
    ]);
  }
  return parseClusterConfig(text, resolve(path));
}
