/**
 * Runtime environments on the submitting side: validating the `runtimeEnv` option and merging the
 * job's environment into each submission (the node builds it; see node/node-runtime.ts).
 * @internal
 */
import { canonicalJson, mergeRuntimeEnv, validateRuntimeEnv, type NormalizedRuntimeEnv, type RuntimeEnv } from '@tsray/runtime-env';
import { state } from './state.js';

/**
 * Validate a `runtimeEnv` option (throws RuntimeEnvValidationError naming the field). Paths are
 * checked (exist, under the cap) in the driver only: workers re-run `remote()` calls when they import
 * a module, from another cwd.
 */
export function resolveRuntimeEnvOption(env: RuntimeEnv | undefined): NormalizedRuntimeEnv | undefined {
  if (env === undefined) return undefined;
  const n = validateRuntimeEnv(env, { checkPaths: !state().isWorker });
  return Object.keys(n).length > 0 ? n : undefined;
}

const merged = new WeakMap<NormalizedRuntimeEnv, { job: NormalizedRuntimeEnv | undefined; json: string | undefined }>();
let jobOnly: { job: NormalizedRuntimeEnv | undefined; json: string | undefined } = { job: undefined, json: undefined };

/**
 * The environment a submission carries (canonical JSON): the job's (or, in a worker, the one it
 * runs in) merged with the task's or actor's, field by field (envVars key by key). Memoized.
 */
export function effectiveRuntimeEnv(task: NormalizedRuntimeEnv | undefined): string | undefined {
  const job = state().jobRuntimeEnv;
  if (!task) {
    if (!job) return undefined;
    if (jobOnly.job !== job) jobOnly = { job, json: canonicalJson(job) || undefined };
    return jobOnly.json;
  }
  const c = merged.get(task);
  if (c && c.job === job) return c.json;
  const json = canonicalJson(mergeRuntimeEnv(job, task)) || undefined;
  merged.set(task, { job, json });
  return json;
}
