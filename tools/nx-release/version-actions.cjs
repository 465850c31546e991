/**
 * nx release version actions of the npm packages (@nx/js's, unchanged) plus one step after all
 * packages are versioned: the Python package (python/pyproject.toml, tsray.__version__) takes the
 * same version (tools/sync-python-version.mjs), and its files join the release's changed files.
 * nx.json names this module in release.version.versionActions.
 */
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');
const js = require('@nx/js/src/release/version-actions');

/** @type {import('nx/release').AfterAllProjectsVersioned} */
async function afterAllProjectsVersioned(cwd, opts) {
  const result = await js.afterAllProjectsVersioned(cwd, opts);
  if (opts.dryRun) {
    // Nothing is written in a dry run: the npm version the Python package would take is not on disk.
    console.log('python/: would take the new version (tools/sync-python-version.mjs)');
    return result;
  }
  execFileSync(process.execPath, [join(cwd, 'tools', 'sync-python-version.mjs')], { cwd, stdio: 'inherit' });
  return {
    changedFiles: [...result.changedFiles, 'python/pyproject.toml', 'python/tsray/__init__.py'],
    deletedFiles: result.deletedFiles,
  };
}

module.exports = { default: js.default, afterAllProjectsVersioned };
