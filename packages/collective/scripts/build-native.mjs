#!/usr/bin/env node
// Builds the N-API addon (build/Release/tsray_reduce.node) with node-gyp when it is missing or older than
// its sources. Used by `npm run build:native`, which `nx build collective` runs first.
// `--force` rebuilds unconditionally.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'tsray_reduce.node');
const sources = [join(root, 'native', 'reduce.c'), join(root, 'native', 'shm.c'), join(root, 'binding.gyp')];

function upToDate() {
  if (!existsSync(addon)) return false;
  const built = statSync(addon).mtimeMs;
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
  console.error(`@tsray/collective: could not run node-gyp: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
