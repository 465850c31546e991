/**
 * `tsray up/down` for the `kubernetes` provider: up creates the token Secret (a new random token
 * unless it exists), the head's ServiceAccount/Role/RoleBinding, the ConfigMap with the cluster
 * config, the head Service and the head pod — the head's autoscaler then creates worker pods; down
 * deletes the cluster's pods (workers, then the head) and those objects. Every call is idempotent.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClusterConfig } from './config.js';
import { writeHeadRecord, removeClusterState } from './head-record.js';
import type { K8sApi } from './k8s-api.js';
import { clusterManifests, k8sNames, tokenSecret } from './k8s-manifests.js';
import { TAG_CLUSTER, TAG_KIND } from './node-provider.js';

/** Where command output goes. */
interface Io {
  out(s: string): void;
  err(s: string): void;
}

/** `tsray up` with the kubernetes provider. */
export async function k8sUp(config: ClusterConfig, configPath: string, api: K8sApi, io: Io): Promise<number> {
  if (config.provider.type !== 'kubernetes') throw new Error('not a kubernetes config');
  const p = config.provider;
  await api.create(tokenSecret(config, randomBytes(32).toString('hex')));
  for (const obj of clusterManifests(config, readFileSync(configPath, 'utf8'))) {
    await api.create(obj);
    io.out(`created ${obj.kind} ${p.namespace}/${obj.metadata.name}\n`);
  }
  const names = k8sNames(config);
  writeHeadRecord(config.cluster_name, {
    gcsAddress: `${names.service}.${p.namespace}.svc:${p.head_port}`,
    dashboardUrl: `http://${names.service}.${p.namespace}.svc:${p.dashboard_port}`,
    host: `pod ${p.namespace}/${names.head}`,
    startedAt: Date.now(),
  });
  io.out(
    `Cluster ${config.cluster_name} is starting in namespace ${p.namespace} (head pod ${names.head}; kubectl get pods -l ${TAG_CLUSTER}=${config.cluster_name})\n`,
  );
  return 0;
}

/** `tsray down` with the kubernetes provider. */
export async function k8sDown(config: ClusterConfig, api: K8sApi, io: Io): Promise<number> {
  if (config.provider.type !== 'kubernetes') throw new Error('not a kubernetes config');
  const ns = config.provider.namespace;
  const names = k8sNames(config);
  // The head first: its autoscaler stops creating pods.
  await api.delete('Pod', ns, names.head);
  const workers = await api.listPods(ns, `${TAG_CLUSTER}=${config.cluster_name},${TAG_KIND}=worker`);
  for (const w of workers) await api.delete('Pod', ns, w.name);
  for (const [kind, name] of [
    ['Service', names.service],
    ['ConfigMap', names.config],
    ['RoleBinding', names.account],
    ['Role', names.account],
    ['ServiceAccount', names.account],
    ['Secret', names.token],
  ] as const) {
    await api.delete(kind, ns, name);
  }
  removeClusterState(config.cluster_name);
  io.out(`Cluster ${config.cluster_name} is down: head pod and ${workers.length} worker pod(s) deleted from namespace ${ns}.\n`);
  return 0;
}
