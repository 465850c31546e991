/**
 * Library logs of runtime-env. It has no pino root of its own: `@tsray/core` (which depends on this
 * package, so this package cannot import it) injects a child of tsray's one root with {@link setLogger}
 * when core loads. Until then, or when this package is used on its own, logs are dropped (a silent
 * pino) — never a second root with other settings.
 * @module
 */
import { pino, type Logger } from 'pino';

let source: Logger | (() => Logger) | undefined;
let silent: Logger | undefined;

/**
 * Route this package's logs to `next` (a logger, or a function returning the current one, so a
 * level or root changed later applies).
 */
export function setLogger(next: Logger | (() => Logger)): void {
  source = next;
}

/** The runtime-env logger: the injected one, else a silent one. */
export function logger(): Logger {
  if (typeof source === 'function') return source();
  if (source) return source;
  silent ??= pino({ level: 'silent' });
  return silent;
}
