// Acceptance 5 of issue #19 (no API server can run here): every object `tsray up` creates, every
// worker pod the head's autoscaler creates and the shipped manifests (deploy/kubernetes/) validate
// against the Kubernetes OpenAPI schema (kubernetes-models' validators, generated from it); the
// provider's calls go through a recording API: scale-up creates pods, scale-down deletes the pod of
// the idle node it chose, tsray down deletes everything.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { NodeState } from '@tsray/core';
import {
  Autoscaler,
  type ClusterStateSource,
  clusterManifests,
  type K8sApi,
  type K8sObject,
  k8sDown,
  k8sUp,
  KubernetesProvider,
  parseClusterConfig,
  type PodView,
  tokenSecret,
  workerPod,
} from '../src/index.js';
// @ts-expect-error: a plain .mjs helper without types
import { render } from './fixtures/render-k8s.mjs';
import { ROOT } from './fixtures/harness.js';

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/ServiceAccount': ServiceAccount,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

/** Validate one object against the OpenAPI schema of its kind (throws naming the bad field). */
function validate(obj: { apiVersion?: string; kind?: string }): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion}/${obj.kind}`);
  new Model(obj as never).validate();
}

const CONFIG_TEXT = readFileSync(join(ROOT, 'deploy/kubernetes/cluster.yaml'), 'utf8');
const config = parseClusterConfig(CONFIG_TEXT);

/** A recording Kubernetes API: every create body is validated first; pods kept by name. */
class FakeApi implements K8sApi {
  readonly calls: string[] = [];
  readonly pods = new Map<string, PodView>();
  async create(obj: K8sObject): Promise<void> {
    validate(obj);
    this.calls.push(`create ${obj.kind} ${obj.metadata.name}`);
    if (obj.kind === 'Pod') this.pods.set(obj.metadata.name, { name: obj.metadata.name, labels: obj.metadata.labels ?? {}, phase: 'Pending' });
  }
  async delete(kind: string, _ns: string, name: string): Promise<void> {
    this.calls.push(`delete ${kind} ${name}`);
    if (kind === 'Pod') this.pods.delete(name);
  }
  async listPods(_ns: string, selector: string): Promise<PodView[]> {
    const want = selector.split(',').map((kv) => kv.split('=') as [string, string]);
    return [...this.pods.values()].filter((p) => want.every(([k, v]) => p.labels[k] === v));
  }
}

describe('kubernetes: objects validate against the OpenAPI schema', () => {
  it('validation is real: a bad pod is refused, naming the field', () => {
    const pod = workerPod(config, 'cpu-worker', 'tsray-cpu-worker-1') as unknown as { spec: { containers: { image: unknown }[] } };
    pod.spec.containers[0]!.image = 5;
    expect(() => validate(pod as never)).toThrow(/containers\/0\/image must be string/);
    expect(() => validate({ ...tokenSecret(config, 't'), type: 7 } as never)).toThrow(/type must be string/);
  });

  it("every object of tsray up and every node type's worker pod validates", () => {
    for (const obj of [tokenSecret(config, 'x'.repeat(64)), ...clusterManifests(config, CONFIG_TEXT)]) validate(obj);
    for (const type of ['cpu-worker', 'gpu-worker']) validate(workerPod(config, type, `tsray-${type}-0a1b2c3d`));
    const gpu = workerPod(config, 'gpu-worker', 'tsray-gpu-worker-1') as unknown as { spec: { containers: { resources: unknown; command: string[] }[] } };
    expect(gpu.spec.containers[0]!.resources).toEqual({ requests: { cpu: '8', 'nvidia.com/gpu': '1' }, limits: { cpu: '8', 'nvidia.com/gpu': '1' } });
    expect(gpu.spec.containers[0]!.command[2]).toContain(
      'tsray start --address tsray-head.default.svc:6380 --token-file /etc/tsray/token/token --num-cpus 8 --num-gpus 1',
    );
  });

  it('deploy/kubernetes/tsray-cluster.yaml is current and every document validates', () => {
    const text = readFileSync(join(ROOT, 'deploy/kubernetes/tsray-cluster.yaml'), 'utf8');
    expect(text, 'regenerate: node packages/autoscaler/test/fixtures/render-k8s.mjs').toBe(render());
    const docs = parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
    expect(docs.map((d) => d.kind)).toEqual(['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Service', 'Pod']);
    for (const d of docs) validate(d);
  });
});

describe('kubernetes provider calls (recorded)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsray-k8s-test-'));
  const oldTmp = process.env['TMPDIR'];
  process.env['TMPDIR'] = dir;
  afterAll(() => {
    if (oldTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = oldTmp;
    rmSync(dir, { recursive: true, force: true });
  });

  it('tsray up creates the validated objects in order; tsray down deletes them, workers included', async () => {
    const api = new FakeApi();
    const file = join(dir, 'cluster.yaml');
    writeFileSync(file, CONFIG_TEXT);
    const io = { out: () => undefined, err: () => undefined };
    expect(await k8sUp(config, file, api, io)).toBe(0);
    expect(api.calls).toEqual([
      'create Secret tsray-token',
      'create ServiceAccount tsray-autoscaler',
      'create Role tsray-autoscaler',
      'create RoleBinding tsray-autoscaler',
      'create ConfigMap tsray-config',
      'create Service tsray-head',
      'create Pod tsray-head',
    ]);
    await api.create(workerPod(config, 'cpu-worker', 'tsray-cpu-worker-aa'));
    api.calls.length = 0;
    expect(await k8sDown(config, api, io)).toBe(0);
    expect(api.calls).toEqual([
      'delete Pod tsray-head',
      'delete Pod tsray-cpu-worker-aa',
      'delete Service tsray-head',
      'delete ConfigMap tsray-config',
      'delete RoleBinding tsray-autoscaler',
      'delete Role tsray-autoscaler',
      'delete ServiceAccount tsray-autoscaler',
      'delete Secret tsray-token',
    ]);
    expect(api.pods.size).toBe(0);
  });

  it("the head's autoscaler creates worker pods for the demand and deletes the idle one it chose", async () => {
    const api = new FakeApi();
    const c = parseClusterConfig(CONFIG_TEXT.replace('idle_timeout_minutes: 5', 'idle_timeout_minutes: 0'));
    let clock = 1_000_000;
    const head: NodeState = {
      nodeId: 'h',
      alive: true,
      isHead: true,
      address: 'x',
      hostname: 'h',
      pid: 1,
      resourcesTotal: { CPU: 2 },
      resourcesAvailable: { CPU: 2 },
      labels: {},
      startTime: 0,
    };
    let nodes: NodeState[] = [head];
    let demand = [{ kind: 'task' as const, name: 'f', resources: { CPU: 4 }, count: 2, infeasible: true, missing: [] }];
    const source: ClusterStateSource = {
      nodes: async () => nodes,
      pendingDemand: async () => demand,
      placementGroups: async () => [],
      tasks: async () => [],
      actors: async () => [],
      objects: async () => [],
      requestedResources: async () => [],
    };
    const a = new Autoscaler(c, new KubernetesProvider(c, async () => api), source, { now: () => clock });
    await a.step();
    const pods = [...api.pods.values()];
    expect(pods).toHaveLength(2);
    expect(pods.every((p) => p.labels['tsray-node-type'] === 'cpu-worker' && p.name.startsWith('tsray-cpu-worker-'))).toBe(true);
    await a.step(); // the launching pods count: no more are created
    expect(api.pods.size).toBe(2);
    expect(a.status().nodes.map((n) => n.phase)).toEqual(['launching', 'launching']);
    // The pods run and their nodes join: one busy, one idle.
    for (const p of pods) p.phase = 'Running';
    nodes = [
      head,
      ...pods.map((p, i) => ({
        ...head,
        nodeId: `n${i}`,
        isHead: false,
        labels: p.labels,
        resourcesTotal: { CPU: 4 },
        resourcesAvailable: { CPU: i === 0 ? 0 : 4 },
      })),
    ];
    demand = [];
    await a.step();
    clock += 1000;
    await a.step();
    expect(api.calls.filter((x) => x.startsWith('delete'))).toEqual([`delete Pod ${pods[1]!.name}`]);
    expect(api.pods.has(pods[0]!.name)).toBe(true);
    // A pod that failed is a launch failure, recorded and removed.
    api.pods.get(pods[0]!.name)!.phase = 'Failed';
    api.pods.get(pods[0]!.name)!.message = 'ImagePullBackOff: no such image';
    await a.step();
    expect(a.status().failures.map((f) => f.message)).toEqual([`pod ${pods[0]!.name} Failed: ImagePullBackOff: no such image`]);
    expect(api.pods.size).toBe(0);
  });
});
