import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson, mergeRuntimeEnv, RuntimeEnvValidationError, TsrayErrorMarker, validateRuntimeEnv } from './exports.js';
import { tempDir } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeEnvValidationError);
    return (e as RuntimeEnvValidationError).field;
  }
  throw new Error('expected a RuntimeEnvValidationError');
}

describe('validateRuntimeEnv', () => {
  it('normalizes pip to { packages, pipCheck } and drops empty fields', () => {
    expect(validateRuntimeEnv({ pip: ['emoji', 'numpy>=1.2,<3', 'requests[socks]==2.31.0'] })).toEqual({
      pip: { packages: ['emoji', 'numpy>=1.2,<3', 'requests[socks]==2.31.0'], pipCheck: false },
    });
    expect(validateRuntimeEnv({ pip: { packages: ['a'], pipCheck: true } })).toEqual({ pip: { packages: ['a'], pipCheck: true } });
    expect(validateRuntimeEnv({ pip: [], envVars: {} })).toEqual({});
  });

  it('rejects package specs that are not plain requirements, before any installer runs', () => {
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['emoji; rm -rf /'] }))).toBe('pip[0]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['ok', '--index-url=http://evil'] }))).toBe('pip[1]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['emoji && echo'] }))).toBe('pip[0]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['pkg ; python_version<"3.8"'] }))).toBe('pip[0]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['$(whoami)'] }))).toBe('pip[0]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: { packages: ['x', 'y|z'] } }))).toBe('pip.packages[1]');
    expect(fieldOf(() => validateRuntimeEnv({ npm: ['left-pad; rm -rf /'] }))).toBe('npm[0]');
    expect(fieldOf(() => validateRuntimeEnv({ npm: ['--registry=http://evil'] }))).toBe('npm[0]');
    expect(validateRuntimeEnv({ npm: ['left-pad', '@scope/pkg@^1.2.0', 'x@latest', '/tmp/a/pkg-1.0.0.tgz'] }).npm).toHaveLength(4);
  });

  it('names the field of non-string entries, unknown fields and bad values', () => {
    expect(fieldOf(() => validateRuntimeEnv({ pip: ['ok', 3] }))).toBe('pip[1]');
    expect(fieldOf(() => validateRuntimeEnv({ pip: 'emoji' }))).toBe('pip');
    expect(fieldOf(() => validateRuntimeEnv({ pip: { packages: ['a'], upgrade: true } }))).toBe('pip.upgrade');
    expect(fieldOf(() => validateRuntimeEnv({ conda: ['x'] }))).toBe('conda');
    expect(fieldOf(() => validateRuntimeEnv({ envVars: { A: 1 } }))).toBe('envVars.A');
    expect(fieldOf(() => validateRuntimeEnv({ envVars: { 'BAD-NAME': 'x' } }))).toBe('envVars.BAD-NAME');
    expect(fieldOf(() => validateRuntimeEnv({ envVars: { TSRAY_WORKER_ID: 'x' } }))).toBe('envVars.TSRAY_WORKER_ID');
    expect(fieldOf(() => validateRuntimeEnv({ config: { setupTimeoutSeconds: -1 } }))).toBe('config.setupTimeoutSeconds');
    expect(fieldOf(() => validateRuntimeEnv([]))).toBe('(root)');
    const e = (() => {
      try {
        validateRuntimeEnv({ pip: ['emoji; rm -rf /'] });
      } catch (err) {
        return err as Error;
      }
    })()!;
    expect(e.message).toMatch(/runtimeEnv\.pip\[0\]: "emoji; rm -rf \/" is not a pip requirement/);
    expect(TsrayErrorMarker(e)).toBe(true);
  });

  it('checks workingDir and pyModules: missing, a file, over the cap', () => {
    const d = tempDir('spec');
    dirs.push(d);
    expect(fieldOf(() => validateRuntimeEnv({ workingDir: join(d, 'nope') }))).toBe('workingDir');
    writeFileSync(join(d, 'f.txt'), 'x');
    expect(fieldOf(() => validateRuntimeEnv({ workingDir: join(d, 'f.txt') }))).toBe('workingDir');
    mkdirSync(join(d, 'big'));
    writeFileSync(join(d, 'big', 'a.bin'), Buffer.alloc(2000));
    expect(fieldOf(() => validateRuntimeEnv({ workingDir: join(d, 'big') }, { maxPackageBytes: 1000 }))).toBe('workingDir');
    // Excluded files do not count.
    expect(validateRuntimeEnv({ workingDir: join(d, 'big'), excludes: ['*.bin'] }, { maxPackageBytes: 1000 }).workingDir).toBe(join(d, 'big'));
    expect(validateRuntimeEnv({ workingDir: 'big' }, { cwd: d }).workingDir).toBe(join(d, 'big'));
    expect(fieldOf(() => validateRuntimeEnv({ pyModules: [join(d, 'big'), join(d, 'missing')] }))).toBe('pyModules[1]');
    expect(fieldOf(() => validateRuntimeEnv({ workingDir: 's3://bucket/x.zip' }))).toBe('workingDir');
  });
});

describe('mergeRuntimeEnv', () => {
  it('task fields replace job fields; envVars merge key by key (task wins)', () => {
    const job = validateRuntimeEnv({ pip: ['a'], envVars: { A: 'job', B: 'job' }, npm: ['x'] });
    const task = validateRuntimeEnv({ pip: ['b'], envVars: { B: 'task', C: 'task' } });
    expect(mergeRuntimeEnv(job, task)).toEqual({ pip: { packages: ['b'], pipCheck: false }, npm: ['x'], envVars: { A: 'job', B: 'task', C: 'task' } });
    expect(mergeRuntimeEnv(job, undefined)).toBe(job);
    expect(mergeRuntimeEnv(undefined, task)).toBe(task);
    expect(mergeRuntimeEnv({}, {})).toBeUndefined();
  });

  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ envVars: { B: '1', A: '2' }, pip: { pipCheck: false, packages: ['x'] } })).toBe(
      canonicalJson({ pip: { packages: ['x'], pipCheck: false }, envVars: { A: '2', B: '1' } }),
    );
    expect(canonicalJson({})).toBe('');
  });
});
