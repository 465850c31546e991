// ESM resolve hook (module.register) of tsray runtime environments: a bare specifier that the chain
// cannot resolve is resolved again as if imported from the environment's folder, so packages
// installed in <env>/node_modules are found by any module of the worker (see npm-register.mjs).
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

let parents = [];

export async function initialize(data) {
  parents = (data?.dirs ?? []).map((d) => pathToFileURL(join(dirname(d), 'package.json')).href);
}

const NOT_BARE = /^(?:\.{0,2}\/|[a-zA-Z][a-zA-Z0-9+.-]*:|#)/;

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (NOT_BARE.test(specifier) || err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    for (const parentURL of parents) {
      try {
        return await next(specifier, { ...context, parentURL });
      } catch {
        /* try the next folder */
      }
    }
    throw err;
  }
}
