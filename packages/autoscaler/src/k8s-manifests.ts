/**
 * The Kubernetes objects of a cluster (`provider.type: kubernetes`), as plain request bodies (pure
 * functions; tests validate each against the Kubernetes OpenAPI schema): the head pod and its
 * Service (nodes join `<cluster>-head.<namespace>.svc:<head_port>`), worker pods (one per node, named
 * by the autoscaler so scale-down deletes the idle one it chose, as KubeRay manages pods directly),
 * the ConfigMap with the cluster config the head's autoscaler reads, and the ServiceAccount, Role and
 * RoleBinding that let the head create and delete pods. The cluster token is a Secret (key `token`)
 * mounted into every pod; `tsray up` creates it, with kubectl `kubectl create secret generic`.
 * @module
 */
import type { ClusterConfig } from './config.js';
import { nodeTags, remoteStartScript, sh, startArgs } from './launch-command.js';
import { TAG_CLUSTER, TAG_KIND } from './node-provider.js';

/** A Kubernetes object body (what the API server receives). */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<
  string,
  unknown
>;

const TOKEN_DIR = '/etc/tsray/token';
const CONFIG_DIR = '/etc/tsray/config';

function k8s(config: ClusterConfig): Extract<ClusterConfig['provider'], { type: 'kubernetes' }> {
  if (config.provider.type !== 'kubernetes') throw new Error('not a kubernetes config');
  return config.provider;
}

/** Object names of a cluster. */
export function k8sNames(config: ClusterConfig): { head: string; service: string; token: string; config: string; account: string } {
  const p = k8s(config);
  const n = config.cluster_name;
  return {
    head: `${n}-head`,
    service: `${n}-head`,
    token: p.token_secret ?? `${n}-token`,
    config: `${n}-config`,
    account: p.service_account ?? `${n}-autoscaler`,
  };
}

/** A pod name for a provider node id (lowercase, digits and -; at most 63). */
export function podName(id: string): string {
  return id
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63)
    .replace(/-+$/, '');
}

/** The container resources of a node type: cpu and nvidia.com/gpu as requests = limits. */
function containerResources(config: ClusterConfig, type: string): Record<string, Record<string, string>> {
  const r = config.available_node_types[type]?.resources ?? {};
  const q: Record<string, string> = {};
  if (r['CPU'] !== undefined) q['cpu'] = String(r['CPU']);
  if (r['GPU'] !== undefined) q['nvidia.com/gpu'] = String(r['GPU']);
  return Object.keys(q).length ? { requests: q, limits: q } : {};
}

/** A tsray pod: bash runs the setup commands and `tsray start`, then lives as long as the daemon. */
function pod(config: ClusterConfig, name: string, labels: Record<string, string>, type: string, start: string, setup: string[], head: boolean): K8sObject {
  const p = k8s(config);
  const names = k8sNames(config);
  const script = `${remoteStartScript(config, setup, [], start, head ? 'head' : 'worker')}\nwhile kill -0 "$pid" 2>/dev/null; do sleep 5; done`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: p.namespace, labels },
    spec: {
      restartPolicy: 'Never',
      ...(head ? { serviceAccountName: names.account } : {}),
      containers: [
        {
          name: 'tsray',
          image: p.image,
          command: ['bash', '-c', script],
          ...(head
            ? {
                ports: [
                  { name: 'gcs', containerPort: p.head_port },
                  { name: 'dashboard', containerPort: p.dashboard_port },
                ],
              }
            : {}),
          resources: containerResources(config, type),
          volumeMounts: [{ name: 'token', mountPath: TOKEN_DIR, readOnly: true }, ...(head ? [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }] : [])],
        },
      ],
      volumes: [
        { name: 'token', secret: { secretName: names.token, defaultMode: 0o400 } },
        ...(head ? [{ name: 'config', configMap: { name: names.config } }] : []),
      ],
    },
  };
}

/** The head pod (runs the GCS, the dashboard and the autoscaler). */
export function headPod(config: ClusterConfig): K8sObject {
  const p = k8s(config);
  const type = config.head_node_type;
  const start = [
    'tsray start --head --host 0.0.0.0',
    ...['--port', String(p.head_port), '--dashboard-port', String(p.dashboard_port), '--token-file', `${TOKEN_DIR}/token`].map(sh),
    ...startArgs(config, type, k8sNames(config).head, 'head').map(sh),
    '--autoscaling-config',
    `${CONFIG_DIR}/cluster.yaml`,
  ].join(' ');
  return pod(
    config,
    k8sNames(config).head,
    nodeTags(config, type, k8sNames(config).head, 'head'),
    type,
    start,
    [...config.setup_commands, ...config.head_setup_commands],
    true,
  );
}

/** A worker pod of `type` for provider node `id`. */
export function workerPod(config: ClusterConfig, type: string, id: string): K8sObject {
  const p = k8s(config);
  const address = `${k8sNames(config).service}.${p.namespace}.svc:${p.head_port}`;
  const start = ['tsray start', ...['--address', address, '--token-file', `${TOKEN_DIR}/token`].map(sh), ...startArgs(config, type, id, 'worker').map(sh)].join(
    ' ',
  );
  return pod(config, podName(id), nodeTags(config, type, id, 'worker'), type, start, [...config.setup_commands, ...config.worker_setup_commands], false);
}

/** The head's Service: the GCS and dashboard ports. */
export function headService(config: ClusterConfig): K8sObject {
  const p = k8s(config);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: k8sNames(config).service, namespace: p.namespace, labels: { [TAG_CLUSTER]: config.cluster_name } },
    spec: {
      selector: { [TAG_CLUSTER]: config.cluster_name, [TAG_KIND]: 'head' },
      ports: [
        { name: 'gcs', port: p.head_port, targetPort: p.head_port },
        { name: 'dashboard', port: p.dashboard_port, targetPort: p.dashboard_port },
      ],
    },
  };
}

/** The ConfigMap holding the cluster config (`cluster.yaml`) for the head's autoscaler. */
export function configMap(config: ClusterConfig, yamlText: string): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: k8sNames(config).config, namespace: k8s(config).namespace, labels: { [TAG_CLUSTER]: config.cluster_name } },
    data: { 'cluster.yaml': yamlText },
  };
}

/** The Secret with the cluster token. */
export function tokenSecret(config: ClusterConfig, token: string): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: k8sNames(config).token, namespace: k8s(config).namespace, labels: { [TAG_CLUSTER]: config.cluster_name } },
    type: 'Opaque',
    stringData: { token },
  };
}

/** The head's ServiceAccount, and a Role + RoleBinding to create, list and delete pods in its namespace. */
export function rbac(config: ClusterConfig): K8sObject[] {
  const ns = k8s(config).namespace;
  const names = k8sNames(config);
  const labels = { [TAG_CLUSTER]: config.cluster_name };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: names.account, namespace: ns, labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: names.account, namespace: ns, labels },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: names.account, namespace: ns, labels },
      subjects: [{ kind: 'ServiceAccount', name: names.account, namespace: ns }],
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.account },
    },
  ];
}

/** Everything `tsray up` creates, in order, but the token Secret (deploy/kubernetes/ ships these). */
export function clusterManifests(config: ClusterConfig, yamlText: string): K8sObject[] {
  return [...rbac(config), configMap(config, yamlText), headService(config), headPod(config)];
}
