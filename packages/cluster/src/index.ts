/**
 * @tsray/cluster: the multi-node cluster — head (GCS) and node daemons, the `tsray` CLI, jobs and the
 * head's HTTP API.
 * @module
 */
export type * from './contracts.js';
export { JobManager, isTerminalStatus, newSubmissionId } from './jobs/job-manager.js';
export type { JobManagerOptions, SubmitJobRequest, FollowOptions } from './jobs/job-manager.js';
export { JobNotFoundError, JobExistsError, JobNotTerminalError, JobRequestError } from './jobs/errors.js';
export { startHttpApi, RAY_API_VERSION } from './http/server.js';
export type { HttpApiOptions, HttpApi } from './http/server.js';
export { HttpApiClient } from './http/client.js';
export type { HttpApiClientOptions, StateLists, VersionInfo } from './http/client.js';
export { toJobDetails, fromJobDetails } from './http/wire.js';
export type { JobSubmitRequestBody, JobSubmitResponseBody, JobDetailsBody } from './http/wire.js';
export { HttpApiError, ApiUnreachableError, TlsFingerprintError, TlsVerificationError } from './http/errors.js';
export { apiKeyFor } from './http/api-key.js';
export { certFingerprint, normalizeFingerprint, selfSignedTls, type ApiTls } from './http/tls.js';
export { runCli, USAGE } from './cli/main.js';
export { formatStatus, formatList, formatTable, formatUsage, formatShape, formatBytes } from './cli/format.js';
export type { ListKind } from './cli/format.js';
export { CliUsageError, DaemonStartError, NoClusterError, TokenMissingError } from './cli/errors.js';
export { stopAll } from './cli/stop.js';
export type { StopOptions, StopResult } from './cli/stop.js';
export { tsrayRoot, findLocalHead, liveDaemons, sessionDaemons } from './cli/session.js';
export type { DaemonEntry } from './cli/session.js';
export { DEFAULT_GCS_PORT, DEFAULT_DASHBOARD_PORT } from './cli/start.js';
export { GcsServer } from './gcs.js';
export type { GcsOptions, ActorEntry, GcsStats } from './gcs.js';
export { startDaemon, daemonMain } from './daemon.js';
export type { Daemon } from './daemon.js';
export { ClusterError, PortInUseError, HeadUnreachableError, ConnectionRefusedError } from './errors.js';
export { ClusterMetrics, CLUSTER_METRIC_NAMES } from './metrics/cluster-metrics.js';
export type { MetricsSource } from './metrics/cluster-metrics.js';
