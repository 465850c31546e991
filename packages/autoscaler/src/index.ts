/**
 * @tsray/autoscaler: clusters from a config file (`tsray up/down/attach/exec/submit`), the
 * autoscaler the head runs, and its node providers (local processes, SSH hosts, Kubernetes pods).
 * @module
 */
export { clusterConfigSchema, parseClusterConfig, loadClusterConfig, typeMax } from './config.js';
export type { ClusterConfig, NodeTypeConfig } from './config.js';
export { ClusterConfigError, HostUnreachableError, NodeLaunchError, ClusterNotRunningError } from './errors.js';
export { planScaleUp, planScaleDown, shapeText, nodesHoldingRequest } from './bin-pack.js';
export type { Shape, ShapeDemand, GroupDemand, CapacityNode, PlanInput, Plan, IdleCandidate } from './bin-pack.js';
export { Autoscaler } from './autoscaler.js';
export type { AutoscalerOptions, AutoscalerStatus, AutoscalerNodeStatus, ClusterStateSource } from './autoscaler.js';
export { startHeadAutoscaler } from './head-autoscaler.js';
export type { HeadAutoscalerOptions } from './head-autoscaler.js';
export { TAG_CLUSTER, TAG_KIND, TAG_NODE_ID, TAG_NODE_TYPE } from './node-provider.js';
export type { NodeProvider, ProviderNode, ProviderNodeStatus } from './node-provider.js';
export { LocalProvider } from './providers/local.js';
export type { LocalProviderOptions } from './providers/local.js';
export { makeProvider } from './providers/index.js';
export type { ProviderContext } from './providers/index.js';
export { clusterStateDir, readHeadRecord } from './head-record.js';
export type { HeadRecord } from './head-record.js';
export { clusterUp, clusterDown, clusterExec, clusterAttach, clusterSubmit } from './commands.js';
export type { CommandIo, CommandOptions } from './commands.js';
export { sh, startArgs, workerScript, parseStartOutput } from './launch-command.js';
export type { JoinTarget, StartOutput } from './launch-command.js';
export { headPod, workerPod, headService, configMap, tokenSecret, rbac, clusterManifests, k8sNames, podName } from './k8s-manifests.js';
export type { K8sObject } from './k8s-manifests.js';
export { clientNodeApi } from './k8s-api.js';
export type { K8sApi, PodView } from './k8s-api.js';
export { KubernetesProvider } from './providers/kubernetes.js';
export { SshProvider } from './providers/ssh.js';
export { k8sUp, k8sDown } from './k8s-cluster.js';
