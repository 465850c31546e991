/**
 * Which local class a remote error's class name stands for, so that a `TaskError` can also be an
 * instance of it (`e instanceof RangeError`, as Ray's `RayTaskError(ValueError)` is a `ValueError`):
 * JavaScript's standard Error classes by name, Python's built-in exceptions by their nearest
 * JavaScript class, and user classes registered with `registerErrorClass`.
 * @module
 */
import { fileURLToPath } from 'node:url';

/** A class of errors (its instances are Errors). */
export type ErrorClass = abstract new (...args: never[]) => Error;

const STANDARD: Record<string, ErrorClass> = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError };

/**
 * Python built-in exceptions → the JavaScript class a TypeScript caller catches them as. The reverse
 * (python/tsray/errors.py) maps RangeError → ValueError, TypeError → TypeError, ReferenceError →
 * NameError, SyntaxError → SyntaxError; docs/api.md ("Failures and errors") has the table.
 */
const FROM_PYTHON: Record<string, ErrorClass> = {
  ValueError: RangeError,
  IndexError: RangeError,
  TypeError,
  NameError: ReferenceError,
  SyntaxError,
};

const registered = new Map<string, ErrorClass>();

/** Register `cls` as the class of remote errors named `name` (either language). @internal */
export function setErrorClass(name: string, cls: ErrorClass): void {
  registered.set(name, cls);
}

/** The local class of a remote error, or undefined when it has none (the TaskError is then a plain one). @internal */
export function localErrorClass(name: string, language: string | undefined): ErrorClass | undefined {
  const own = registered.get(name);
  if (own) return own;
  if (language === 'python') return Object.hasOwn(FROM_PYTHON, name) ? FROM_PYTHON[name] : undefined;
  return Object.hasOwn(STANDARD, name) ? STANDARD[name] : undefined;
}

/**
 * An instance of `cls` carrying a remote error's name, message and stack, made without running the
 * class's constructor (a user class may need arguments tsray does not have). @internal
 */
export function errorInstanceOf(cls: ErrorClass, name: string, message: string, stack: string): Error {
  const e =
    cls === AggregateError
      ? new AggregateError([], message)
      : Object.hasOwn(STANDARD, cls.name) && STANDARD[cls.name] === cls
        ? new (cls as ErrorConstructor)(message)
        : (Object.create(cls.prototype) as Error);
  for (const [key, value] of [
    ['message', message],
    ['stack', stack],
  ] as const)
    Object.defineProperty(e, key, { value, writable: true, configurable: true, enumerable: false });
  if (e.name !== name) Object.defineProperty(e, 'name', { value: name, writable: true, configurable: true, enumerable: false });
  return e;
}

/** This package's own code (`dist/`, or `src/` when run from source), as paths and as file URLs. */
const OWN_CODE = ['dist', 'src'].flatMap((d) => {
  const url = new URL(`../${d}/`, import.meta.url);
  return [fileURLToPath(url), url.href];
});

/** Frames of tsray's own code, of Node's internals and of loaders/test runners: left out of the stacks shown to users. @internal */
export function isInternalFrame(line: string): boolean {
  return OWN_CODE.some((prefix) => line.includes(prefix)) || /\bnode:internal\/|[/\\]node_modules[/\\](tsx|vitest|@vitest)[/\\]/.test(line);
}

/** Where a remote error was raised, `file:line:col` (TS) or `file:line` (Python), from its stack. @internal */
export function raisedAt(stack: string, language: string | undefined): string | undefined {
  if (language === 'python') {
    const files = [...stack.matchAll(/File "([^"]+)", line (\d+)/g)];
    const last = files[files.length - 1];
    return last ? `${basename(last[1]!)}:${last[2]}` : undefined;
  }
  for (const line of stack.split('\n')) {
    if (!/^\s+at /.test(line) || isInternalFrame(line)) continue;
    const m = /\(?((?:file:\/\/)?[^\s()]+):(\d+):(\d+)\)?\s*$/.exec(line);
    if (m) return `${basename(m[1]!)}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

function basename(path: string): string {
  return path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
}
