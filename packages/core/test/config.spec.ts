/**
 * The typed config module: defaults, parsing, a ConfigError naming a bad variable, overrides, the
 * runtime-env cap wired through it, and the table kept in step with the sources and the docs.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxPackageBytes } from '@tsray/runtime-env';
import { CONFIG_VARIABLES, config, overrideConfig, parseConfig, resetConfig, validateConfig } from '../src/config.js';
import { ConfigError, TsrayError } from '../src/errors.js';
import { arenaCopyThreads } from '../src/node/store.js';

const ROOT = join(import.meta.dirname, '../../..');

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('parseConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const c = parseConfig({});
    expect(c.connectTimeoutMs).toBe(10_000);
    expect(c.logLevel).toBe('warn');
    expect(c.headLostTimeoutS).toBe(60);
    expect(c.arenaFd).toBe(3);
    expect(c.transferChecksum).toBe('sampled');
    expect(c.trace).toBe(false);
    expect(c.address).toBeUndefined();
    expect(c.runtimeEnvMaxPackageBytes).toBe(100 * 1024 * 1024);
  });

  it('parses set values into their types, and treats an empty value as unset', () => {
    const c = parseConfig({
      TSRAY_CONNECT_TIMEOUT_MS: '2500',
      TSRAY_HEAD_LOST_TIMEOUT_S: '0.5',
      TSRAY_TRACE: '1',
      TSRAY_LOG_LEVEL: 'debug',
      TSRAY_RUNTIME_ENV_PIP_ARGS: '["--index-url","http://mirror/simple"]',
      TSRAY_ADDRESS: 'auto',
      TSRAY_TOKEN: '',
    });
    expect(c.connectTimeoutMs).toBe(2500);
    expect(c.headLostTimeoutS).toBe(0.5);
    expect(c.trace).toBe(true);
    expect(c.logLevel).toBe('debug');
    expect(c.runtimeEnvPipArgs).toEqual(['--index-url', 'http://mirror/simple']);
    expect(c.address).toBe('auto');
    expect(c.token).toBeUndefined();
  });

  it.each([
    ['TSRAY_CONNECT_TIMEOUT_MS', 'soon', 'connectTimeoutMs'],
    ['TSRAY_CONNECT_TIMEOUT_MS', '-5', 'connectTimeoutMs'],
    ['TSRAY_HEAD_LOST_TIMEOUT_S', '0', 'headLostTimeoutS'],
    ['TSRAY_LOG_LEVEL', 'loud', 'logLevel'],
    ['TSRAY_TRACE', 'yes', 'trace'],
    ['TSRAY_RUNTIME_ENV_INSTALLER', 'conda', 'runtimeEnvInstaller'],
    ['TSRAY_RUNTIME_ENV_NPM_ARGS', '--force', 'runtimeEnvNpmArgs'],
    ['TSRAY_RUNTIME_ENV_NPM_ARGS', '[1,2]', 'runtimeEnvNpmArgs'],
    ['TSRAY_OBJECT_COPY_THREADS', '17', 'objectCopyThreads'],
  ] as const)('%s=%s fails with a ConfigError naming the variable', (name, value, key) => {
    const c = parseConfig({ [name]: value });
    const err = caught(() => c[key]);
    expect(err).toBeInstanceOf(ConfigError);
    expect(TsrayError.isInstance(err)).toBe(true);
    expect((err as ConfigError).variable).toBe(name);
    expect((err as ConfigError).value).toBe(value);
    expect((err as Error).message).toContain(name);
  });

  it('gives arenas the set copy threads, or the cores up to 8 (arenaCopyThreads)', () => {
    const restore = overrideConfig({ objectCopyThreads: 3 });
    try {
      expect(arenaCopyThreads()).toBe(3);
    } finally {
      restore();
    }
    expect(arenaCopyThreads()).toBe(Math.min(8, availableParallelism()));
  });

  it('fails only the read of the bad variable; validateConfig reads them all', () => {
    const c = parseConfig({ TSRAY_TRANSFER_CHUNK_BYTES: 'big' });
    expect(c.connectTimeoutMs).toBe(10_000);
    expect(() => c.transferChunkBytes).toThrow(ConfigError);
  });
});

describe('config() and overrides', () => {
  const saved = process.env['TSRAY_JOIN_TIMEOUT_MS'];
  afterEach(() => {
    if (saved === undefined) delete process.env['TSRAY_JOIN_TIMEOUT_MS'];
    else process.env['TSRAY_JOIN_TIMEOUT_MS'] = saved;
    resetConfig();
  });

  it('reads process.env once; resetConfig reads it again', () => {
    process.env['TSRAY_JOIN_TIMEOUT_MS'] = '1234';
    resetConfig();
    expect(config().joinTimeoutMs).toBe(1234);
    process.env['TSRAY_JOIN_TIMEOUT_MS'] = '999';
    expect(config().joinTimeoutMs).toBe(1234);
    resetConfig();
    expect(config().joinTimeoutMs).toBe(999);
  });

  it('overrideConfig replaces values until restored, without touching process.env', () => {
    const restore = overrideConfig({ peerConnectTimeoutMs: 300, trace: true });
    expect(config().peerConnectTimeoutMs).toBe(300);
    expect(config().trace).toBe(true);
    expect(process.env['TSRAY_PEER_CONNECT_TIMEOUT_MS']).toBeUndefined();
    restore();
    expect(config().peerConnectTimeoutMs).toBe(10_000);
  });

  it('validateConfig throws the ConfigError of a bad variable in process.env', () => {
    process.env['TSRAY_JOIN_TIMEOUT_MS'] = 'later';
    resetConfig();
    expect(() => validateConfig()).toThrow(/TSRAY_JOIN_TIMEOUT_MS="later"/);
  });

  it("runtime-env's package cap comes from this config", () => {
    const restore = overrideConfig({ runtimeEnvMaxPackageBytes: 4096 });
    try {
      expect(maxPackageBytes()).toBe(4096);
    } finally {
      restore();
    }
    expect(maxPackageBytes()).toBe(100 * 1024 * 1024);
  });
});

describe('the table', () => {
  const names = new Set(Object.values(CONFIG_VARIABLES).map((v) => v.name));

  function filesUnder(dir: string, ext: RegExp): string[] {
    return readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) return f === 'generated' || f === '__pycache__' ? [] : filesUnder(p, ext);
      return ext.test(f) ? [p] : [];
    });
  }

  it('has every TSRAY_* variable the TypeScript and Python sources mention', () => {
    const dirs = readdirSync(join(ROOT, 'packages')).map((p) => join(ROOT, 'packages', p, 'src'));
    const files = [...dirs.flatMap((d) => filesUnder(d, /\.ts$/)), ...filesUnder(join(ROOT, 'python/tsray'), /\.py$/)];
    const mentioned = new Set(files.flatMap((f) => readFileSync(f, 'utf8').match(/(?<![A-Z0-9_])TSRAY_[A-Z0-9_]*[A-Z0-9]/g) ?? []));
    expect([...mentioned].filter((n) => !names.has(n)).sort()).toEqual([]);
  });

  it('is documented in docs/configuration.md with each default', () => {
    const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
    for (const v of Object.values(CONFIG_VARIABLES)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${v.name}\` |`));
      expect(row, v.name).toBeDefined();
      if (v.default !== undefined) expect(row, v.name).toContain(`\`${String(v.default)}\``);
    }
  });
});
