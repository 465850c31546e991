/**
 * Library logs of the cluster package: the core's pino logger (stderr; level from TSRAY_LOG_LEVEL).
 * @internal
 */
export { logger } from '@tsray/core/internal';
