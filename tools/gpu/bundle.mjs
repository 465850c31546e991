// Bundles the TS drivers that run on the GPU machine (which has no node_modules) into single ESM
// files with esbuild (installed at the root as tsx's dependency), from the packages' sources
// (condition @tsray/source). Output folder (default .carry/js):
//
//   package.json               {"type": "module"}
//   bin/smoke.mjs              tools/gpu/smoke.ts
//   bin/bridge-bench.mjs       bench/llm/bridge.bench.ts
//   worker/worker-main.js      @tsray/core's node worker entry: core finds it at
//                              new URL('../worker/worker-main.js', <bundle url>)
//   build/Release/tsray_shm.node   @tsray/object-store's addon: found at
//                              new URL('../build/Release/tsray_shm.node', <bundle url>)
//   node_modules/zeromq, node_modules/cmake-ts   external native addon (linux x64 prebuilds only)
//
// TS actors defined in a bundle are found by workers through the bundle's own URL (the call stack),
// so each entry keeps its main code under isMain(import.meta).
//
// Usage: node tools/gpu/bundle.mjs [outDir]
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(root, process.argv[2] ?? '.carry/js');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'tsray-gpu-bundle', private: true, type: 'module' }, null, 2) + '\n');

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
await build({
  ...common,
  entryPoints: { 'bin/smoke': 'tools/gpu/smoke.ts', 'bin/bridge-bench': 'bench/llm/bridge.bench.ts' },
  outdir: out,
  outExtension: { '.js': '.mjs' },
});
await build({ ...common, entryPoints: { 'worker/worker-main': 'packages/core/src/worker/worker-main.ts' }, outdir: out });

const addon = join(root, 'packages/object-store/build/Release/tsray_shm.node');
if (!existsSync(addon)) throw new Error(`${addon} is missing: build @tsray/object-store first (npx nx build object-store)`);
mkdirSync(join(out, 'build/Release'), { recursive: true });
cpSync(addon, join(out, 'build/Release/tsray_shm.node'));

const nm = join(root, 'node_modules');
const zmqOut = join(out, 'node_modules/zeromq');
for (const p of ['package.json', 'lib', 'LICENSE.txt', 'build/manifest.json', 'build/linux/x64'])
  cpSync(join(nm, 'zeromq', p), join(zmqOut, p), { recursive: true });
for (const p of ['package.json', 'build']) cpSync(join(nm, 'cmake-ts', p), join(out, 'node_modules/cmake-ts', p), { recursive: true });
console.log(`bundled into ${out}`);
