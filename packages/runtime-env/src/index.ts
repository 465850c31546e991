/**
 * @module @tsray/runtime-env
 * Runtime environments (Ray's `runtime_env`): what a job, task or actor needs installed or shipped
 * (pip and npm packages, env vars, a working directory, Python modules), validated with typed errors,
 * merged job → task, and built once per content hash on each node by the RuntimeEnvAgent.
 */
export { RuntimeEnvError, RuntimeEnvValidationError, RuntimeEnvSetupError, UnsafeArchiveError } from './errors.js';
export type { RuntimeEnvSetupErrorInfo, UnsafeArchiveKind } from './errors.js';
export {
  validateRuntimeEnv,
  mergeRuntimeEnv,
  isEmptyRuntimeEnv,
  canonicalJson,
  hashText,
  parseRuntimeEnvJson,
  isValidPipSpec,
  isValidNpmSpec,
  RUNTIME_ENV_FIELDS,
  PACKAGE_URI,
} from './spec.js';
export type { RuntimeEnv, PipSpec, RuntimeEnvConfig, NormalizedRuntimeEnv, ValidateOptions } from './spec.js';
export { packDirectory, listPackage, maxPackageBytes, setMaxPackageBytesSource, DEFAULT_MAX_PACKAGE_BYTES } from './pack.js';
export type { PackOptions, PackedPackage, PackEntry } from './pack.js';
export { unpackArchive, DEFAULT_UNPACK_LIMITS } from './unpack.js';
export type { UnpackOptions, UnpackLimits } from './unpack.js';
export { DEFAULT_EXCLUDES, ExcludeMatcher } from './excludes.js';
export { packJobCode, codeFingerprint, codeMatcher, hasJobCodeInPlace, validateJobCode, sha256File } from './code-package.js';
export type { JobCode } from './code-package.js';
export { RuntimeEnvAgent } from './agent.js';
export type { RuntimeEnvAgentOptions, ResolvedRuntimeEnv, PreparedRuntimeEnv, RuntimeEnvProgress, RuntimeEnvAgentStats, ResourceKind } from './agent.js';
export { findUv, redactCredentials, runCommand, withoutSecrets, type PipInstaller } from './installers.js';
export { workerLaunchSettings, NPM_HOOK_REGISTER_PATH } from './worker.js';
export type { WorkerLaunchSettings } from './worker.js';
export { progressPrinter } from './progress.js';
export { setLogger } from './logger.js';
