/**
 * Which module called `remote()` / `actor()`: read from the call stack.
 * @internal
 */
import { pathToFileURL } from 'node:url';
import { ValidationError } from './errors.js';

/** file:// URL of the module that called `fn`. */
export function callerModuleUrl(fn: (...args: never[]) => unknown): string {
  const holder: { stack?: NodeJS.CallSite[] } = {};
  const prev = Error.prepareStackTrace;
  Error.prepareStackTrace = (_e, sites) => sites;
  try {
    Error.captureStackTrace(holder, fn);
    const sites = holder.stack ?? [];
    for (const site of sites) {
      const file = site.getFileName() ?? site.getScriptNameOrSourceURL?.();
      if (!file || file.startsWith('node:') || file.startsWith('internal/')) continue;
      return file.startsWith('file://') ? file.replace(/\?.*$/, '') : pathToFileURL(file).href;
    }
  } finally {
    Error.prepareStackTrace = prev;
  }
  throw new ValidationError('module', `${fn.name}(): cannot tell which module defines this from the call stack; pass { module: import.meta.url }`);
}
