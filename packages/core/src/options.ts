/**
 * Task options and their validation.
 * @module
 */
import { resourceRequestFromOptions, type ResourceRequest } from '@tsray/scheduler';
import type { NormalizedRuntimeEnv, RuntimeEnv } from '@tsray/runtime-env';
import { ValidationError } from './errors.js';
import { type ResolvedScheduling, resolveScheduling, type SchedulingStrategy } from './scheduling-strategy.js';
import { resolveRuntimeEnvOption } from './runtime-env.js';

/** Options of a remote function (`remote(fn, options)`, `fn.options(options)`), as Ray's. */
export interface TaskOptions {
  /** Logical CPUs held while the task runs. Default 1. */
  numCpus?: number;
  /** Logical GPUs; fractions below 1 share a device; above 1 must be whole. Default 0. */
  numGpus?: number;
  /** Logical memory in bytes (scheduling only). */
  memory?: number;
  /** Custom resources, e.g. `{ special_hardware: 1 }`. */
  resources?: Record<string, number>;
  /** Require a node with this accelerator type (resource `accelerator_type:<T>`, as Ray). */
  acceleratorType?: string;
  /** Retries after system failures (worker died); -1 = forever. Default 3. */
  maxRetries?: number;
  /** Also retry when the task throws: `true`, or a list of error class names. Default false. */
  retryExceptions?: boolean | string[];
  /** Number of return objects (the function returns an array of that length), or 'streaming'. Default 1. */
  numReturns?: number | 'streaming';
  /** Task name for logs, errors and the state API. Default: the function's name. */
  name?: string;
  /** URL of the module that defines the function, when it cannot be found from the call stack. */
  module?: string;
  /** Where the task may run: 'DEFAULT', 'SPREAD', a placement group bundle, or a node. */
  schedulingStrategy?: SchedulingStrategy;
  /**
   * Runtime environment of the task (pip/npm packages, env vars, working dir, Python modules),
   * merged with the job's (`init({ runtimeEnv })`) field by field, envVars key by key.
   */
  runtimeEnv?: RuntimeEnv;
}

const KNOWN = new Set([
  'numCpus',
  'numGpus',
  'memory',
  'resources',
  'acceleratorType',
  'maxRetries',
  'retryExceptions',
  'numReturns',
  'name',
  'module',
  'schedulingStrategy',
  'runtimeEnv',
]);

/** Validated options in the runtime's terms. @internal */
export interface ResolvedTaskOptions {
  resources: Map<string, number>;
  request: ResourceRequest;
  maxRetries: number;
  retryExceptions: boolean | string[];
  numReturns: number | 'streaming';
  name: string | undefined;
  scheduling: ResolvedScheduling | undefined;
  /** The task's own runtime environment (validated; merged with the job's at submit). */
  runtimeEnv: NormalizedRuntimeEnv | undefined;
}

/** Validate options; throws ValidationError naming the bad option. @internal */
export function resolveTaskOptions(opts: TaskOptions, where: string): ResolvedTaskOptions {
  if (typeof opts !== 'object' || opts === null) throw new ValidationError('options', `${where}: options must be an object`);
  for (const k of Object.keys(opts)) {
    if (!KNOWN.has(k)) throw new ValidationError(k, `${where}: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  let request: ResourceRequest;
  try {
    request = resourceRequestFromOptions(
      { numCpus: opts.numCpus, numGpus: opts.numGpus, memory: opts.memory, resources: opts.resources, acceleratorType: opts.acceleratorType },
      { numCpus: 1 },
    );
  } catch (e) {
    const option = (e as { option?: string }).option ?? 'resources';
    throw new ValidationError(option, `${where}: ${(e as Error).message}`);
  }
  const maxRetries = opts.maxRetries ?? 3;
  if (!Number.isInteger(maxRetries) || maxRetries < -1) {
    throw new ValidationError('maxRetries', `${where}: maxRetries must be an integer >= -1 (-1 = retry forever), got ${String(opts.maxRetries)}`);
  }
  const re = opts.retryExceptions ?? false;
  if (!(typeof re === 'boolean' || (Array.isArray(re) && re.every((x) => typeof x === 'string')))) {
    throw new ValidationError('retryExceptions', `${where}: retryExceptions must be a boolean or an array of error class names`);
  }
  const nr = opts.numReturns ?? 1;
  if (!(nr === 'streaming' || (Number.isInteger(nr) && (nr as number) >= 0))) {
    throw new ValidationError('numReturns', `${where}: numReturns must be an integer >= 0 or 'streaming', got ${String(opts.numReturns)}`);
  }
  if (opts.name !== undefined && (typeof opts.name !== 'string' || opts.name === '')) {
    throw new ValidationError('name', `${where}: name must be a non-empty string`);
  }
  const scheduling = resolveScheduling(opts.schedulingStrategy, where);
  const runtimeEnv = resolveRuntimeEnvOption(opts.runtimeEnv);
  return { resources: new Map(request.amounts), request, maxRetries, retryExceptions: re, numReturns: nr, name: opts.name, scheduling, runtimeEnv };
}
