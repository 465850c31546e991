/**
 * Finds the function or class a task names: from the registry if its module was imported already,
 * else by importing the module once (registering tsx first for TypeScript sources).
 * @internal
 */
import type { tsray } from '@tsray/protocol';
import { importableModuleUrl } from '../code-root.js';
import { FunctionNotFoundError } from '../errors.js';
import { state, type RegisteredFunction } from '../state.js';

/** Imports user modules once each and looks up their registered functions. */
export class FunctionLoader {
  private readonly modules = new Map<string, Promise<void>>();
  private tsxRegistered: Promise<void> | undefined;

  /** The registered function `fn` names (FunctionNotFoundError when its module does not register it). */
  async load(fn: tsray.v1.IFunctionDescriptor): Promise<RegisteredFunction> {
    const url = fn.moduleUrl ?? '';
    const key = fn.key ?? '';
    const s = state();
    let f = s.registry.get(url)?.get(key);
    if (f) return f;
    let p = this.modules.get(url);
    if (!p) {
      p = this.importModule(url);
      this.modules.set(url, p);
    }
    await p;
    f = s.registry.get(url)?.get(key);
    if (!f) throw new FunctionNotFoundError(url, key);
    return f;
  }

  /** Import the module the driver named `url`: from this node's copy of the driver's project when the job's code was shipped here. */
  private async importModule(url: string): Promise<void> {
    const target = importableModuleUrl(url);
    if (/\.[cm]?tsx?$/.test(new URL(target).pathname)) {
      this.tsxRegistered ??= import('tsx/esm/api').then((m) => {
        m.register();
      });
      await this.tsxRegistered;
    }
    const s = state();
    s.importing = url;
    try {
      await import(target);
    } finally {
      s.importing = undefined;
    }
  }
}
