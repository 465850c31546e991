// Bundles TS entry points of one checkout into a folder the GPU machine (which has no node_modules) can
// run: single ESM files made with esbuild (installed at the root as tsx's dependency). The entries and
// what they import by relative path are bundled from their TS sources; `@tsray/*` packages resolve
// through their package.json exports, i.e. to their built dist/ (no package names the condition
// @tsray/source), so build the checkout first: a package's src/ newer than its dist/ is not in the bundle.
// Layout of the output folder:
//
//   package.json               {"type": "module"}
//   bin/<name>.mjs             one per entry `<name>=<path>` (path relative to the checkout)
//   worker/worker-main.js      @tsray/core's node worker entry: core finds it at
//                              new URL('../worker/worker-main.js', <bundle url>)
//   build/Release/tsray_shm.node   @tsray/object-store's addon: found at
//                              new URL('../build/Release/tsray_shm.node', <bundle url>)
//   build/Release/tsray_reduce.node   @tsray/collective's addon (optional there: JS loops without it), copied
//                              when it is built; found the same way
//   node_modules/zeromq, node_modules/cmake-ts   external native addon (linux x64 prebuilds only), copied
//                              from this checkout; with --shared-node-modules into <outDir>/../node_modules
//                              instead, so that several bundles side by side share one copy
//
// TS actors defined in a bundle are found by workers through the bundle's own URL (the call stack),
// so each entry keeps its main code under isMain(import.meta).
//
// Usage: node tools/gpu/bundle.mjs [--root DIR] [--shared-node-modules] <outDir> <name>=<path>...
//   tools/gpu/carry.sh:  node tools/gpu/bundle.mjs .carry/build/js smoke=tools/gpu/smoke.ts bridge-bench=bench/llm/bridge.bench.ts
//   core bench of another checkout (docs/gpu-runs.md):
//                        node tools/gpu/bundle.mjs --root /tmp/old --shared-node-modules .carry/cb/old core-bench=bench/tsray/core.bench.ts
// --root: the checkout whose sources are bundled (default: this one; it must be built: the object-store addon).
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const usage = 'usage: node tools/gpu/bundle.mjs [--root DIR] [--shared-node-modules] <outDir> <name>=<path>...';
const here = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values, positionals } = parseArgs({
  options: { root: { type: 'string' }, 'shared-node-modules': { type: 'boolean', default: false } },
  allowPositionals: true,
});
const [outArg, ...entryArgs] = positionals;
const entries = Object.fromEntries(
  entryArgs.map((e) => {
    const m = /^([\w.-]+)=(.+)$/.exec(e);
    if (!m) throw new Error(`entry "${e}" is not <name>=<path>\n${usage}`);
    return [`bin/${m[1]}`, m[2]];
  }),
);
if (outArg === undefined || entryArgs.length === 0) throw new Error(usage);
const root = resolve(values.root ?? here);
const out = resolve(outArg);

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ name: 'tsray-gpu-bundle', private: true, type: 'module' }, null, 2)}\n`);

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@tsray/source'],
  external: ['zeromq', 'zeromq/*', 'tsx', 'tsx/*'],
  // CJS dependencies bundled into ESM still call require() for node built-ins.
  banner: { js: "import { createRequire as __tsrayCreateRequire } from 'node:module'; const require = __tsrayCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  sourcemap: false,
  absWorkingDir: root,
};
await build({ ...common, entryPoints: entries, outdir: out, outExtension: { '.js': '.mjs' } });
await build({ ...common, entryPoints: { 'worker/worker-main': 'packages/core/src/worker/worker-main.ts' }, outdir: out });

const addon = join(root, 'packages/object-store/build/Release/tsray_shm.node');
if (!existsSync(addon)) throw new Error(`${addon} is missing: build @tsray/object-store of ${root} first (npx nx build object-store)`);
mkdirSync(join(out, 'build/Release'), { recursive: true });
cpSync(addon, join(out, 'build/Release/tsray_shm.node'));
const reduceAddon = join(root, 'packages/collective/build/Release/tsray_reduce.node');
if (existsSync(reduceAddon)) cpSync(reduceAddon, join(out, 'build/Release/tsray_reduce.node'));

const nm = join(here, 'node_modules');
const modulesOut = values['shared-node-modules'] ? join(out, '../node_modules') : join(out, 'node_modules');
for (const p of ['package.json', 'lib', 'LICENSE.txt', 'build/manifest.json', 'build/linux/x64'])
  cpSync(join(nm, 'zeromq', p), join(modulesOut, 'zeromq', p), { recursive: true });
for (const p of ['package.json', 'build']) cpSync(join(nm, 'cmake-ts', p), join(modulesOut, 'cmake-ts', p), { recursive: true });
console.log(`bundled into ${out}`);
