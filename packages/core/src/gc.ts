/**
 * A `gc()` function for the driver without `--expose-gc` on the command line: JavaScript has no
 * reference counting, so when the object store fills up the driver collects garbage to run the
 * finalizers of dropped ObjectRefs (which free their objects).
 * @internal
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let fn: (() => void) | undefined | null;

/** The V8 gc function, or undefined if it cannot be had. */
export function gcFunction(): (() => void) | undefined {
  if (fn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') fn = g;
    else {
      try {
        setFlagsFromString('--expose-gc');
        fn = runInNewContext('gc') as () => void;
      } catch {
        fn = null;
      }
    }
  }
  return fn ?? undefined;
}
