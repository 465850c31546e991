// Bundles bench/tsray/core.bench.ts of one checkout (e.g. an old commit's worktree) into a folder the
// GPU machine can run without node_modules, so two builds can be compared on that quiet 16-core machine
// (the 2-core dev machine is too loaded for 5 % differences). Same layout as tools/gpu/bundle.mjs:
// bin/core-bench.mjs, worker/worker-main.js, build/Release/tsray_shm.node; zeromq goes to
// <outDir>/../node_modules so that several bundles side by side share one copy.
//
// Usage: node tools/gpu/core-bench-bundle.mjs <repoRoot> <outDir>   (repoRoot built: object-store addon)
// Then tools/gpu/core-bench-remote.sh on the device (docs/gpu-runs.md, "Core bench on the GPU machine").
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
const root = resolve(process.argv[2]);
const out = resolve(process.argv[3]);
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'b', private: true, type: 'module' }));
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@tsray/source'],
  external: ['zeromq', 'zeromq/*', 'tsx', 'tsx/*'],
  banner: { js: "import { createRequire as __tsrayCreateRequire } from 'node:module'; const require = __tsrayCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  absWorkingDir: root,
};
await build({ ...common, entryPoints: { 'bin/core-bench': 'bench/tsray/core.bench.ts' }, outdir: out, outExtension: { '.js': '.mjs' } });
await build({ ...common, entryPoints: { 'worker/worker-main': 'packages/core/src/worker/worker-main.ts' }, outdir: out });
mkdirSync(join(out, 'build/Release'), { recursive: true });
cpSync(join(root, 'packages/object-store/build/Release/tsray_shm.node'), join(out, 'build/Release/tsray_shm.node'));
const nm = join(resolve(import.meta.dirname, '../..'), 'node_modules');
for (const p of ['package.json', 'lib', 'LICENSE.txt', 'build/manifest.json', 'build/linux/x64'])
  cpSync(join(nm, 'zeromq', p), join(out, '../node_modules/zeromq', p), { recursive: true });
for (const p of ['package.json', 'build']) cpSync(join(nm, 'cmake-ts', p), join(out, '../node_modules/cmake-ts', p), { recursive: true });
console.log('bundled', out);
