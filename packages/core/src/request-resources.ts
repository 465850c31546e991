/**
 * `requestResources({ bundles })` (Ray's `ray.autoscaler.sdk.request_resources`): ask the cluster's
 * autoscaler to scale to hold these bundles at once, whatever runs now; a later call replaces the
 * request, `requestResources({ bundles: [] })` withdraws it. The request is kept in the GCS's KV under
 * {@link REQUEST_RESOURCES_KEY}, where the head's autoscaler reads it every round. Without a cluster
 * (an embedded `init()`), there is no autoscaler: the call records nothing.
 * @module
 */
import { RuntimeStateError, ValidationError } from './errors.js';
import { state } from './state.js';

/** The GCS KV key of the latest request (JSON `{bundles}`). @internal */
export const REQUEST_RESOURCES_KEY = 'autoscaler:request_resources';
/** The state-call prefix the node turns into the KV write. @internal */
export const REQUEST_RESOURCES_CALL = 'request_resources:';
/** The request travels as one state-call name, bounded like every name (1024 characters). */
const MAX_CHARS = 1000;

/** Options of {@link requestResources}. */
export interface RequestResourcesOptions {
  /** Resource shapes that must fit at once, e.g. `[{ CPU: 1, GPU: 1 }, { CPU: 4 }]`. */
  bundles?: Record<string, number>[];
  /** Shorthand for `numCpus` bundles of `{ CPU: 1 }` (added to `bundles`). */
  numCpus?: number;
}

/**
 * Ask the autoscaler to scale the cluster to hold `bundles` (see the module comment).
 * @throws ValidationError naming the bad option; RuntimeStateError before `init()`.
 */
export async function requestResources(opts: RequestResourcesOptions): Promise<void> {
  const bundles = opts.bundles ?? [];
  if (!Array.isArray(bundles)) throw new ValidationError('bundles', 'requestResources: bundles must be an array of resource objects, e.g. [{ CPU: 1 }]');
  bundles.forEach((b, i) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b))
      throw new ValidationError('bundles', `requestResources: bundles[${i}] must be an object such as { CPU: 1 }`);
    for (const [k, v] of Object.entries(b)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
        throw new ValidationError('bundles', `requestResources: bundles[${i}].${k} must be a non-negative number; got ${JSON.stringify(v)}`);
    }
  });
  const n = opts.numCpus ?? 0;
  if (!Number.isInteger(n) || n < 0)
    throw new ValidationError('numCpus', `requestResources: numCpus must be a non-negative integer; got ${String(opts.numCpus)}`);
  const all = [...bundles, ...Array.from({ length: n }, () => ({ CPU: 1 }))];
  const call = REQUEST_RESOURCES_CALL + JSON.stringify({ bundles: all });
  if (call.length > MAX_CHARS)
    throw new ValidationError('bundles', `requestResources: the request is ${call.length} characters; at most ${MAX_CHARS} (merge equal bundles)`);
  const rt = state().runtime as unknown as { stateCall?: (m: string) => Promise<unknown> } | undefined;
  if (!rt?.stateCall) throw new RuntimeStateError('requestResources() needs a running tsray (call init() first)');
  await rt.stateCall(call);
}
