/**
 * Internals for tsray's own packages (`@tsray/cluster` runs node runtimes in daemon processes).
 * Not a public API: it changes without notice.
 * @module
 */
export { NodeRuntime, type NodeRuntimeOptions } from './node/node-runtime.js';
export { TokenVerifier, makeTokenProof, AUTH_WINDOW_MS, type TokenProof } from './auth.js';
export { logger, componentLogger, setLogger, createLogger, stripUrlCredentials, REDACT_PATHS, type CreateLoggerOptions } from './logger.js';
export { config, overrideConfig, resetConfig, validateConfig, parseConfig, CONFIG_VARIABLES, type TsrayConfig, type ConfigVariable } from './config.js';
export { PeerMemory, errorCodeOf, peerKey, peerLabel, MAX_REMEMBERED_PEERS } from './peer-memory.js';
export { Outbox } from './outbox.js';
export { LogLimiter, type LogLimiterOptions } from './log-limiter.js';
export { UnregisteredPeers } from './unregistered-peers.js';
export { routerSocketOptions, ROUTER_RECEIVE_HIGH_WATER_MARK } from './router-options.js';
