/**
 * Internals for tsray's own packages (`@tsray/cluster` runs node runtimes in daemon processes).
 * Not a public API: it changes without notice.
 * @module
 */
export { NodeRuntime } from './node/node-runtime.js';
export { retireSession, pruneSessions, parseSessionName } from './node/session-logs.js';
export type { MetricSeries, NodeHardware } from './node/user-metrics.js';
export type { TaskEvent } from './node/task-timeline.js';
export type { TaskFailure } from './node/task-failures.js';
export type { EngineReport, EngineRow } from './node/engine-stats.js';
export { nodeStats, runtimeEnvStats, workerPids } from './local-node-stats.js';
export { GCS_AUDIENCE, TokenVerifier, makeTokenProof, type ProofBinding, type ProofKind } from './auth.js';
export { clusterCurveKeys, curveClientOptions, makeCurveServer, onCurveRefused, z85Encode, type ClusterCurveKeys } from './curve.js';
export { logger, componentLogger, setLogger, createLogger, stripUrlCredentials, REDACT_PATHS, type CreateLoggerOptions } from './logger.js';
export { ensureRuntimeDir, readPrivateFile, runtimeDir } from './runtime-dir.js';
export {
  config,
  configuredToken,
  overrideConfig,
  resetConfig,
  validateConfig,
  parseConfig,
  CONFIG_VARIABLES,
  type TsrayConfig,
  type ConfigVariable,
} from './config.js';
export { errorCodeOf } from './peer-memory.js';
export { Outbox } from './outbox.js';
export { sealingKey, sessionSealed, DATA_PLANE_NONCE_BYTES } from './node/data-plane-frames.js';
export { gcmOpenInto, gcmSealInto } from '@tsray/object-store';
export { LogLimiter } from './log-limiter.js';
export { UnregisteredPeers } from './unregistered-peers.js';
export { routerSocketOptions } from './router-options.js';
export { resolveNodeGpus, visibleGpuIds } from './gpus.js';
export { RouterServer, UNREGISTERED_MAX_MESSAGE_BYTES, type RouterServerOptions } from './router-server.js';
export { streamHello } from './stream-frames.js';
export { askHead, type HeadQuery } from './cluster/head-query.js';
export { ClusterLink, type LinkHandler, type LinkOptions } from './cluster/link.js';
export { GcsClient, parseStateRows, type GcsTransport, type StateRows } from './cluster/gcs-client.js';
export {
  GCS_REREGISTER,
  GcsCallError,
  actorEntryFromWire,
  actorEntryToWire,
  actorUpdateFromWire,
  amountsToRecord,
  answerGcsRequest,
  boundedName,
  callKindOf,
  gcsResponse,
  malformed,
  nodeStateFromWire,
  notServedHere,
  requiredName,
  type ActorDirectoryEntry,
  type ActorLifecycle,
  type ActorUpdateFields,
} from './cluster/control-plane.js';
export { REQUEST_RESOURCES_KEY } from './request-resources.js';
