// Loaded with `node --import` into TypeScript workers of an environment with npm packages: registers
// a resolve hook that finds bare imports in the environment's node_modules when the normal lookup
// (from the importing module's folder up) does not. The folders come from
// TSRAY_RUNTIME_ENV_NODE_MODULES (path-delimited).
import { register } from 'node:module';
import { delimiter } from 'node:path';

const dirs = (process.env.TSRAY_RUNTIME_ENV_NODE_MODULES ?? '').split(delimiter).filter(Boolean);
if (dirs.length > 0) register('./npm-resolve.mjs', import.meta.url, { data: { dirs } });
