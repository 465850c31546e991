/**
 * Library logs go through pino to stderr. Level: `init({logLevel})`, else `TSRAY_LOG_LEVEL`, else `warn`.
 * @internal
 */
import { pino, type Logger } from 'pino';

let root: Logger | undefined;

/** The process-wide tsray logger. */
export function logger(): Logger {
  if (!root) {
    root = pino({ name: 'tsray', level: process.env['TSRAY_LOG_LEVEL'] ?? 'warn', base: { pid: process.pid } }, pino.destination(2));
  }
  return root;
}

/** Change the log level (from `init({logLevel})`). */
export function setLogLevel(level: string): void {
  logger().level = level;
}
