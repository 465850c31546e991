#!/usr/bin/env node
// Builds a package's N-API addon with node-gyp when it is missing or older than its sources. Shared by every
// package with a binding.gyp (object-store, collective): their `npm run build:native`, which `nx build <pkg>`
// runs first, calls it in the package's folder. The addon's name and sources come from that binding.gyp, so
// the script has nothing package-specific to keep in step. `--force` rebuilds unconditionally.
// Installs from a tarball do not use it: the packed packages build with their own `"install": "node-gyp rebuild"`.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = process.cwd();
const gypFile = join(root, 'binding.gyp');
if (!existsSync(gypFile)) {
  console.error(`build-native: no binding.gyp in ${root} (run it from a package folder, as its build:native script does)`);
  process.exit(1);
}
const pkgName = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name;
// binding.gyp is JSON here (no comments, no trailing commas): every target's addon and sources.
const targets = JSON.parse(readFileSync(gypFile, 'utf8')).targets;
const addons = targets.map((t) => join(root, 'build', 'Release', `${t.target_name}.node`));
const sources = [gypFile, ...targets.flatMap((t) => t.sources.map((s) => join(root, s)))];

function upToDate() {
  if (!addons.every((a) => existsSync(a))) return false;
  const built = Math.min(...addons.map((a) => statSync(a).mtimeMs));
  return sources.every((s) => statSync(s).mtimeMs <= built);
}

if (!process.argv.includes('--force') && upToDate()) {
  process.exit(0);
}

// node-gyp: the one npm puts on PATH for scripts, else the copy bundled with npm.
const candidates = [];
if (process.env.npm_execpath) {
  candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
}
candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
const gypJs = candidates.find((c) => existsSync(c));

const args = ['rebuild'];
// Use the running node's headers when npm did not pass a nodedir (offline builds).
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

const r = gypJs ? spawnSync(process.execPath, [gypJs, ...args], { cwd: root, stdio: 'inherit' }) : spawnSync('node-gyp', args, { cwd: root, stdio: 'inherit' });
if (r.error) {
  console.error(`${pkgName}: could not run node-gyp: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
