#!/usr/bin/env node
/**
 * Keep the Python package's version in step with the npm packages (`nx release` versions them together,
 * "fixed"): writes packages/core/package.json's version into python/pyproject.toml and
 * python/tsray/__init__.py (`__version__`). `nx release version` runs it (tools/nx-release/version-actions.cjs).
 *
 * Usage: node tools/sync-python-version.mjs [--check]   (--check: exit 1 when they differ, write nothing)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npmVersion = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8')).version;
// PEP 440 spelling of a semver prerelease: 1.2.0-rc.1 -> 1.2.0rc1, 1.2.0-beta.2 -> 1.2.0b2, 1.2.0-alpha.3 -> 1.2.0a3.
const pep440 = npmVersion.replace(/-(alpha|beta|rc)\.?(\d+)$/, (_m, tag, n) => ({ alpha: 'a', beta: 'b', rc: 'rc' })[tag] + n);
if (!/^\d+\.\d+\.\d+((a|b|rc)\d+)?$/.test(pep440)) {
  console.error(`sync-python-version: npm version ${npmVersion} has no PEP 440 spelling this script knows`);
  process.exit(1);
}
const files = [
  { path: 'python/pyproject.toml', re: /^version = "([^"]*)"$/m, line: `version = "${pep440}"` },
  { path: 'python/tsray/__init__.py', re: /^__version__ = "([^"]*)"$/m, line: `__version__ = "${pep440}"` },
];
let stale = 0;
for (const f of files) {
  const file = join(root, f.path);
  const text = readFileSync(file, 'utf8');
  const m = f.re.exec(text);
  if (!m) {
    console.error(`sync-python-version: no version line in ${f.path}`);
    process.exit(1);
  }
  if (m[1] === pep440) continue;
  stale++;
  if (process.argv.includes('--check')) console.error(`sync-python-version: ${f.path} has ${m[1]}, the npm packages ${npmVersion}`);
  else writeFileSync(file, text.replace(f.re, f.line));
}
if (process.argv.includes('--check')) process.exit(stale ? 1 : 0);
console.log(`sync-python-version: python/ is at ${pep440} (${stale} file(s) updated)`);
