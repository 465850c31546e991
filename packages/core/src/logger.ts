/**
 * The one root of tsray's library logs: pino, JSON to stderr. Level: `init({logLevel})`, else
 * `TSRAY_LOG_LEVEL`, else `warn`. Every package logs through it: cluster and the others take a child
 * with their `component` ({@link componentLogger}); `@tsray/runtime-env`, which cannot import core (core
 * depends on it), gets its child injected through its `setLogger()` when this module loads. An embedder
 * or a test replaces the root with {@link setLogger}.
 *
 * Secrets never reach the output: {@link REDACT_PATHS} censors tokens and auth headers wherever they
 * sit in a logged object, and user:pass@ is cut from every URL in strings (message, fields, errors).
 * @module
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { setLogger as setRuntimeEnvLogger } from '@tsray/runtime-env';
import { config } from './config.js';

/** Object paths pino censors (`[redacted]`) in every log line. */
export const REDACT_PATHS: readonly string[] = [
  'token',
  '*.token',
  'authProof',
  '*.authProof',
  'tokenProof',
  '*.tokenProof',
  'TSRAY_TOKEN',
  '*.TSRAY_TOKEN',
  'env.TSRAY_TOKEN',
  '*.env.TSRAY_TOKEN',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
];

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi;

/** `scheme://user:pass@host/…` → `scheme://host/…` in every URL of a string. */
export function stripUrlCredentials(s: string): string {
  return s.replace(URL_CREDENTIALS, '$1');
}

/** A copy of a logged value with URL credentials cut out of its strings (plain objects and arrays, a few levels deep). */
function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return stripUrlCredentials(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, depth + 1);
  return out;
}

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Default: `TSRAY_LOG_LEVEL`, else `warn`. */
  level?: string;
  /** Default: stderr. */
  destination?: DestinationStream;
}

/** A root logger with tsray's settings (name, pid, redaction); {@link logger} is the process's one. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  return pino(
    {
      name: 'tsray',
      level: options.level ?? config().logLevel,
      base: { pid: process.pid },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      // The standard serializer's object has its own prototype: spread it to a plain one to scrub it.
      serializers: { err: (e: Error) => scrub({ ...pino.stdSerializers.err(e) }) as ReturnType<typeof pino.stdSerializers.err> },
      formatters: { log: (obj) => scrub(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? stripUrlCredentials(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination(2),
  );
}

let root: Logger | undefined;
const children = new Map<string, Logger>();

/** The process-wide tsray logger (made on first use). */
export function logger(): Logger {
  root ??= createLogger();
  return root;
}

/** The root's child for one component (`{ component }` on every line), kept until the root or level changes. */
export function componentLogger(component: string): Logger {
  let child = children.get(component);
  if (!child) {
    child = logger().child({ component });
    children.set(component, child);
  }
  return child;
}

/**
 * A warning for the user of tsray (work that cannot be scheduled, ...): one readable line on stderr.
 * The library log gets it at `info` (with `fields`), so at the default level (`warn`) the user
 * reads the line once, not again as pino JSON; a log file at `info` or below keeps it.
 */
export function warnUser(line: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${line}\n`);
  logger().info({ ...fields, userWarning: true }, line);
}

/** Replace the root (an embedder's pino, or a test's in-memory one); children are made again from it. */
export function setLogger(next: Logger): void {
  root = next;
  children.clear();
}

/** Change the log level (from `init({logLevel})`). */
export function setLogLevel(level: string): void {
  logger().level = level;
  children.clear();
}

// runtime-env logs through a child of this root, made when it first logs (so setLogger/setLogLevel apply).
setRuntimeEnvLogger(() => componentLogger('runtime-env'));
