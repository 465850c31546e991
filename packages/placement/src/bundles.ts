import { ResourceRequest } from '@tsray/scheduler';
import { EmptyBundleListError, InvalidBundleError, UnknownPlacementStrategyError } from './errors.js';

/** Placement strategies, as Ray's. */
export type PlacementStrategy = 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';

/** The strategies, in Ray's order. */
export const PLACEMENT_STRATEGIES: readonly PlacementStrategy[] = Object.freeze(['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD']);

/** One bundle: float amounts (`{CPU: 1, GPU: 1}`) or a prebuilt request. */
export type BundleSpec = Readonly<Record<string, number>> | ResourceRequest;

/**
 * Validates bundles and converts them to requests.
 * @throws EmptyBundleListError (not a non-empty array), InvalidBundleError (a bundle asks for nothing),
 *   ResourceValidationError from `@tsray/scheduler` (option `bundles[i].<name>`: negative, NaN...).
 */
export function validateBundles(bundles: unknown): ResourceRequest[] {
  if (!Array.isArray(bundles) || bundles.length === 0) {
    throw new EmptyBundleListError(Array.isArray(bundles) ? 'an empty array' : typeof bundles);
  }
  return bundles.map((b: unknown, i) => {
    const req = b instanceof ResourceRequest ? b : ResourceRequest.of(b as Record<string, number>, `bundles[${i}]`);
    if (req.isEmpty()) {
      throw new InvalidBundleError(i, `bundles[${i}] asks for no resource (empty or only zeros); every bundle needs a positive amount`);
    }
    return req;
  });
}

/** Checks a strategy name. @throws UnknownPlacementStrategyError */
export function validateStrategy(strategy: unknown): PlacementStrategy {
  if (typeof strategy === 'string' && (PLACEMENT_STRATEGIES as readonly string[]).includes(strategy)) return strategy as PlacementStrategy;
  throw new UnknownPlacementStrategyError(strategy);
}
