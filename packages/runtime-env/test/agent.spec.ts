/// <reference path="../src/tar-stream.d.ts" />
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findUv,
  packDirectory,
  RuntimeEnvAgent,
  RuntimeEnvSetupError,
  unpackArchive,
  validateRuntimeEnv,
  workerLaunchSettings,
  type RuntimeEnvProgress,
} from './exports.js';
import { buildNpmTarball, buildWheel, PYTHON, tempDir } from './helpers.js';

let base: string;
let wheels: string;
const agents: RuntimeEnvAgent[] = [];

function newAgent(root: string, extra: Partial<ConstructorParameters<typeof RuntimeEnvAgent>[0]> = {}): RuntimeEnvAgent {
  const a = new RuntimeEnvAgent({
    rootDir: root,
    python: PYTHON,
    installer: 'pip',
    pipArgs: ['--no-index', '--find-links', wheels],
    logDir: join(base, 'logs'),
    ...extra,
  });
  agents.push(a);
  return a;
}

function python(code: string, env: Record<string, string>, cwd?: string): string {
  return execFileSync(PYTHON, ['-c', code], { env: { ...process.env, ...env }, cwd, encoding: 'utf8' }).trim();
}

beforeAll(() => {
  base = tempDir('agent');
  wheels = join(base, 'wheels');
  buildWheel(wheels, 'tsray_tiny_a', '1.0', 'VALUE = "a-1.0"');
  buildWheel(wheels, 'tsray_tiny_b', '2.0', 'VALUE = "b-2.0"');
  buildWheel(wheels, 'tsray_needs_missing', '1.0', 'X = 1', ['tsray_not_there>=1']);
});
afterAll(async () => {
  for (const a of agents) await a.close();
  rmSync(base, { recursive: true, force: true });
});

describe('RuntimeEnvAgent: pip', () => {
  it('installs from local wheels into a site dir visible only through the env', async () => {
    const agent = newAgent(join(base, 'root-pip'));
    const events: RuntimeEnvProgress[] = [];
    const env = await agent.acquire({ pip: { packages: ['tsray_tiny_a==1.0'], pipCheck: true } }, { onProgress: (p) => events.push(p) });
    expect(env.pythonPath).toHaveLength(1);
    const launch = workerLaunchSettings(env, 'python', {});
    expect(python('import tsray_tiny_a; print(tsray_tiny_a.VALUE)', launch.env)).toBe('a-1.0');
    // Not visible without it.
    expect(spawnSync(PYTHON, ['-c', 'import tsray_tiny_a'], { env: { ...process.env, PYTHONPATH: '' } }).status).not.toBe(0);
    // Progress: the package names, then done; the log is in the log dir.
    expect(events[0]).toMatchObject({ phase: 'start', kind: 'pip', packages: ['tsray_tiny_a==1.0'] });
    expect(events.at(-1)!.phase).toBe('done');
    expect(readFileSync(events[0]!.logFile!, 'utf8')).toMatch(/Successfully installed tsray_tiny_a-1.0/);
    // Second use: no install (the install count stays 1; how fast is bench/'s to measure).
    const again = await agent.acquire({ pip: { packages: ['tsray_tiny_a==1.0'], pipCheck: true } });
    expect(again.hash).toBe(env.hash);
    expect(agent.stats().installs.pip).toBe(1);
    env.release();
    again.release();
  });

  it('10 concurrent requests for one env install once, also across agents (file lock)', async () => {
    const root = join(base, 'root-conc');
    const a1 = newAgent(root);
    const a2 = newAgent(root);
    const spec = { pip: { packages: ['tsray_tiny_b'], pipCheck: false } };
    const envs = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a2 : a1).acquire(spec)));
    expect(new Set(envs.map((e) => e.pythonPath[0])).size).toBe(1);
    expect(a1.stats().installs.pip + a2.stats().installs.pip).toBe(1);
    expect(readdirSync(join(root, 'pip')).filter((n) => !n.startsWith('.'))).toHaveLength(1);
    for (const e of envs) e.release();
  });

  it("a failed install keeps nothing and reports pip's output; the next try after a fix works", async () => {
    const root = join(base, 'root-fail');
    const agent = newAgent(root);
    const spec = { pip: { packages: ['tsray_later'], pipCheck: false } };
    const err = await agent.acquire(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeEnvSetupError);
    const e = err as RuntimeEnvSetupError;
    expect(e.field).toBe('pip');
    expect(e.output).toMatch(/No matching distribution found for tsray_later/);
    expect(e.message).toMatch(/No matching distribution found/);
    expect(readdirSync(join(root, 'pip'))).toEqual([]);
    expect(agent.stats().held).toEqual([]);
    // A dependency that cannot be found fails the same way.
    const dep = (await agent.acquire({ pip: { packages: ['tsray_needs_missing'], pipCheck: false } }).catch((x: unknown) => x)) as RuntimeEnvSetupError;
    expect(dep.output).toMatch(/tsray_not_there/);
    // Fix: the package appears in the index.
    buildWheel(wheels, 'tsray_later', '1.0', 'VALUE = "later"');
    const env = await agent.acquire(spec);
    expect(python('import tsray_later; print(tsray_later.VALUE)', workerLaunchSettings(env, 'python', {}).env)).toBe('later');
    env.release();
  });

  it('installs with uv when uv is next to the interpreter or on PATH', async (ctx) => {
    // uv comes with python/requirements-tools.txt (tools/setup-python.sh installs it); CI fails on this skip.
    if (!findUv(PYTHON)) ctx.skip(`uv not found next to ${PYTHON} or on PATH: run bash tools/setup-python.sh`);
    const agent = newAgent(join(base, 'root-uv'), { installer: 'auto' });
    expect(agent.installer).toBe('uv');
    const env = await agent.acquire({ pip: { packages: ['tsray_tiny_a'], pipCheck: false } });
    expect(python('import tsray_tiny_a; print(tsray_tiny_a.VALUE)', workerLaunchSettings(env, 'python', {}).env)).toBe('a-1.0');
    const err = (await agent.acquire({ pip: { packages: ['tsray_not_anywhere'], pipCheck: false } }).catch((e: unknown) => e)) as RuntimeEnvSetupError;
    expect(err.output).toMatch(/tsray-not-anywhere|tsray_not_anywhere/);
    env.release();
  });

  it('times out a setup that takes too long (config.setupTimeoutSeconds)', async () => {
    const agent = newAgent(join(base, 'root-timeout'));
    const err = (await agent
      .acquire({ pip: { packages: ['tsray_tiny_a'], pipCheck: false }, config: { setupTimeoutSeconds: 0.05 } })
      .catch((e: unknown) => e)) as RuntimeEnvSetupError;
    expect(err).toBeInstanceOf(RuntimeEnvSetupError);
    expect(err.message).toMatch(/timed out/);
    expect(readdirSync(join(base, 'root-timeout', 'pip'))).toEqual([]);
  });

  it('deletes unused environments past the cache cap, never held ones', async () => {
    const root = join(base, 'root-gc');
    const agent = newAgent(root, { maxCacheBytes: 1 });
    const a = await agent.acquire({ pip: { packages: ['tsray_tiny_a'], pipCheck: false } });
    const dirA = a.pythonPath[0]!;
    await agent.idle();
    expect(existsSync(dirA)).toBe(true); // held: kept although over the cap
    a.release();
    const b = await agent.acquire({ pip: { packages: ['tsray_tiny_b'], pipCheck: false } });
    await agent.idle();
    expect(existsSync(dirA)).toBe(false);
    expect(existsSync(b.pythonPath[0]!)).toBe(true);
    expect(agent.stats().collected).toBeGreaterThanOrEqual(1);
    b.release();
    await agent.idle();
    expect(existsSync(b.pythonPath[0]!)).toBe(false);
  });
});

describe('RuntimeEnvAgent: packages, env vars, npm', () => {
  it('packs a directory by content hash with excludes and unpacks it as cwd and import root', async () => {
    const src = join(base, 'wd');
    mkdirSync(join(src, 'sub'), { recursive: true });
    mkdirSync(join(src, '__pycache__'), { recursive: true });
    writeFileSync(join(src, 'helper_mod.py'), 'WHERE = "working dir"\n');
    writeFileSync(join(src, 'sub', 'data.txt'), 'hello');
    writeFileSync(join(src, 'skip.log'), 'no');
    writeFileSync(join(src, '__pycache__', 'x.pyc'), 'no');
    const p1 = await packDirectory(src, join(base, 'out1'), { excludes: ['*.log'] });
    const p2 = await packDirectory(src, join(base, 'out2'), { excludes: ['*.log'] });
    expect(p1.hash).toBe(p2.hash);
    expect(readFileSync(p1.archivePath).equals(readFileSync(p2.archivePath))).toBe(true);
    writeFileSync(join(src, 'sub', 'data.txt'), 'changed');
    expect((await packDirectory(src, join(base, 'out2'), { excludes: ['*.log'] })).hash).not.toBe(p1.hash);
    writeFileSync(join(src, 'sub', 'data.txt'), 'hello');

    const agent = newAgent(join(base, 'root-wd'));
    const resolved = await agent.resolve(validateRuntimeEnv({ workingDir: src, excludes: ['*.log'], envVars: { GREETING: 'hi ${TSRAY_TEST_HOME}' } }));
    expect(resolved.workingDirPackage).toBe(p1.hash);
    process.env['TSRAY_TEST_HOME'] = 'home';
    const env = await agent.acquire(resolved);
    delete process.env['TSRAY_TEST_HOME'];
    expect(env.cwd).toBeDefined();
    expect(readFileSync(join(env.cwd!, 'sub', 'data.txt'), 'utf8')).toBe('hello');
    expect(existsSync(join(env.cwd!, 'skip.log'))).toBe(false);
    expect(existsSync(join(env.cwd!, '__pycache__'))).toBe(false);
    expect(env.envVars).toEqual({ GREETING: 'hi home' });
    const launch = workerLaunchSettings(env, 'python', {});
    expect(launch.cwd).toBe(env.cwd);
    expect(python('import helper_mod, os; print(helper_mod.WHERE, os.environ["GREETING"])', launch.env, launch.cwd)).toBe('working dir hi home');
    expect(agent.stats().installs.pkg).toBe(1);
    env.release();
  });

  it('refuses archive entries that point outside the destination', async () => {
    const tar = await import('tar-stream');
    const { createGzip } = await import('node:zlib');
    const { createWriteStream } = await import('node:fs');
    const { pipeline } = await import('node:stream/promises');
    const pack = tar.pack();
    pack.entry({ name: '../evil.txt', size: 1 }, 'x');
    pack.finalize();
    const bad = join(base, 'bad.tar.gz');
    await pipeline(pack, createGzip(), createWriteStream(bad));
    await expect(unpackArchive(bad, join(base, 'bad-out'))).rejects.toThrow(/outside the destination/);
    expect(existsSync(join(base, 'evil.txt'))).toBe(false);
  });

  it('makes pyModules importable by their name', async () => {
    const mod = join(base, 'mods', 'tsray_pymod');
    mkdirSync(mod, { recursive: true });
    writeFileSync(join(mod, '__init__.py'), 'NAME = "pymod"\n');
    const agent = newAgent(join(base, 'root-pymod'));
    const env = await agent.acquire(await agent.resolve(validateRuntimeEnv({ pyModules: [mod] })));
    expect(python('import tsray_pymod; print(tsray_pymod.NAME)', workerLaunchSettings(env, 'python', {}).env)).toBe('pymod');
    env.release();
  });

  it("installs npm packages that a worker's ESM imports find through the resolve hook", async () => {
    const tgz = buildNpmTarball(join(base, 'npm'), 'tsray-tiny-npm', '1.0.0', 'export const shout = (s) => s.toUpperCase() + "!";\n');
    const agent = newAgent(join(base, 'root-npm'));
    const env = await agent.acquire({ npm: [tgz] });
    expect(env.nodeModules).toBeDefined();
    expect(existsSync(join(env.nodeModules!, 'tsray-tiny-npm', 'package.json'))).toBe(true);
    const launch = workerLaunchSettings(env, 'node', {});
    // A module outside the env folder imports the package by name (dynamic import, as a task does).
    const script = join(base, 'npm-user.mjs');
    writeFileSync(script, "const m = await import('tsray-tiny-npm'); process.stdout.write(m.shout('hi'));\n");
    const out = execFileSync(process.execPath, [...launch.nodeArgs, script], { env: { ...process.env, ...launch.env }, encoding: 'utf8' });
    expect(out).toBe('HI!');
    // Without the hook it is not found.
    expect(spawnSync(process.execPath, [script]).status).not.toBe(0);
    // An npm failure is a setup error with npm's output.
    const err = (await agent.acquire({ npm: [join(base, 'npm', 'missing-1.0.0.tgz')] }).catch((e: unknown) => e)) as RuntimeEnvSetupError;
    expect(err).toBeInstanceOf(RuntimeEnvSetupError);
    expect(err.field).toBe('npm');
    expect(err.output).toMatch(/ENOENT|no such file|missing-1\.0\.0/i);
    env.release();
  });
});
