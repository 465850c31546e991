/**
 * Library logs of the autoscaler: a child of the core's one pino root (`component: "autoscaler"`).
 * @internal
 */
import { componentLogger } from '@tsray/core/internal';

/** The autoscaler's logger. */
export function logger(): ReturnType<typeof componentLogger> {
  return componentLogger('autoscaler');
}
