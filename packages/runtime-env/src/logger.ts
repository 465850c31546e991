/**
 * Library logs (pino, to stderr). Level: TSRAY_LOG_LEVEL, else 'warn'.
 * @internal
 */
import { pino, type Logger } from 'pino';

let root: Logger | undefined;

/** The runtime-env logger. */
export function logger(): Logger {
  root ??= pino({ name: 'tsray:runtime-env', level: process.env['TSRAY_LOG_LEVEL'] ?? 'warn', base: { pid: process.pid } }, pino.destination(2));
  return root;
}
