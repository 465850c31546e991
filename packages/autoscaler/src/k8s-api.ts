/**
 * The few Kubernetes API calls the provider and `tsray up/down` make, behind an interface (tests
 * record and validate the bodies); {@link clientNodeApi} makes them with the official
 * `@kubernetes/client-node` (kubeconfig from `KUBECONFIG`/`~/.kube/config`, or the pod's service
 * account inside the cluster). Creating what exists and deleting what is gone are no-ops
 * (409 / 404), so every call is idempotent.
 * @module
 */
import type { K8sObject } from './k8s-manifests.js';

/** A pod as the provider reads it. */
export interface PodView {
  name: string;
  labels: Record<string, string>;
  /** Pending, Running, Succeeded, Failed, Unknown. */
  phase: string;
  /** Why it is not running (reason and message), if the API says. */
  message?: string;
}

/** The Kubernetes calls of the provider. */
export interface K8sApi {
  /** Create the object (Pod, Service, ConfigMap, Secret, ServiceAccount, Role, RoleBinding); an existing one is kept. */
  create(obj: K8sObject): Promise<void>;
  /** Delete an object of `kind` by name; a missing one is fine. */
  delete(kind: string, namespace: string, name: string): Promise<void>;
  /** Pods matching a label selector (`k=v,k2=v2`). */
  listPods(namespace: string, labelSelector: string): Promise<PodView[]>;
}

function status(e: unknown): number | undefined {
  const x = e as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return x.code ?? x.statusCode ?? x.response?.statusCode;
}

/** The {@link K8sApi} of `@kubernetes/client-node` with the default kubeconfig (loaded on first use). */
export async function clientNodeApi(): Promise<K8sApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const ignore = (code: number) => (e: unknown) => {
    if (status(e) !== code) throw e;
  };
  return {
    async create(obj) {
      const namespace = obj.metadata.namespace ?? 'default';
      // biome-ignore lint/suspicious/noExplicitAny: the generated client types each body by kind; ours were built for that kind.
      const body = obj as any;
      const calls: Record<string, () => Promise<unknown>> = {
        Pod: () => core.createNamespacedPod({ namespace, body }),
        Service: () => core.createNamespacedService({ namespace, body }),
        ConfigMap: () => core.createNamespacedConfigMap({ namespace, body }),
        Secret: () => core.createNamespacedSecret({ namespace, body }),
        ServiceAccount: () => core.createNamespacedServiceAccount({ namespace, body }),
        Role: () => rbac.createNamespacedRole({ namespace, body }),
        RoleBinding: () => rbac.createNamespacedRoleBinding({ namespace, body }),
      };
      const call = calls[obj.kind];
      if (!call) throw new Error(`cannot create a ${obj.kind}`);
      await call().catch(ignore(409));
    },
    async delete(kind, namespace, name) {
      const calls: Record<string, () => Promise<unknown>> = {
        Pod: () => core.deleteNamespacedPod({ namespace, name }),
        Service: () => core.deleteNamespacedService({ namespace, name }),
        ConfigMap: () => core.deleteNamespacedConfigMap({ namespace, name }),
        Secret: () => core.deleteNamespacedSecret({ namespace, name }),
        ServiceAccount: () => core.deleteNamespacedServiceAccount({ namespace, name }),
        Role: () => rbac.deleteNamespacedRole({ namespace, name }),
        RoleBinding: () => rbac.deleteNamespacedRoleBinding({ namespace, name }),
      };
      const call = calls[kind];
      if (!call) throw new Error(`cannot delete a ${kind}`);
      await call().catch(ignore(404));
    },
    async listPods(namespace, labelSelector) {
      const list = await core.listNamespacedPod({ namespace, labelSelector });
      return list.items.map((p) => {
        const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
        const why = [p.status?.reason ?? waiting?.reason, p.status?.message ?? waiting?.message].filter(Boolean).join(': ');
        return { name: p.metadata?.name ?? '', labels: p.metadata?.labels ?? {}, phase: p.status?.phase ?? 'Pending', ...(why ? { message: why } : {}) };
      });
    },
  };
}
