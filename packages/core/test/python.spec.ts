import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorDiedError, get, init, kill, NDArray, ObjectRef, put, python, SerializationError, shutdown, TaskError } from '@tsray/core';
import { tempDir } from './helpers/processes.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const venvPython = `${repo}.venv/bin/python`;

beforeAll(async () => {
  // The fixtures, then this checkout's tsray package (not whatever copy the venv has installed).
  process.env['PYTHONPATH'] = `${fileURLToPath(new URL('./fixtures/py', import.meta.url))}:${repo}python`;
  await init({ numCpus: 4, numGpus: 2, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

const echo = python.remote<[unknown], unknown>('tsray_fixtures:echo');

describe('Python tasks', () => {
  it('run in workers given the node’s unix stream socket (the worker channel)', async () => {
    expect(await get(python.remote<[], string>('tsray_fixtures:node_stream').remote())).toMatch(/\.wsock$/);
  });

  it('calls a Python function with typed results', async () => {
    const add = python.remote<[number, number], number>('tsray_fixtures:add');
    const v: number = await get(add.remote(2, 40));
    expect(v).toBe(42);
  });

  it('round-trips every value type', async () => {
    const value = { s: 'ü✓', n: 1.5, i: -7, t: true, f: false, nil: null, list: [1, 'a', [2]], nested: { k: { deep: 'x' } } };
    expect(await get(echo.remote(value))).toEqual(value);
    const b = (await get(echo.remote(Buffer.from('bytes!')))) as Buffer;
    expect(Buffer.isBuffer(b)).toBe(true);
    expect(b.toString()).toBe('bytes!');
    expect(await get(echo.remote(2n ** 60n))).toBe(2n ** 60n);
    expect(await get(echo.remote(2n ** 70n))).toBe(2n ** 70n);
    expect(await get(echo.remote(2 ** 40))).toBe(2 ** 40);
    const f = (await get(echo.remote(new Float64Array([1.5, -2])))) as Float64Array;
    expect(f).toBeInstanceOf(Float64Array);
    expect([...f]).toEqual([1.5, -2]);
    const describeFn = python.remote<[unknown], string>('tsray_fixtures:describe');
    expect(await get(describeFn.remote(new Int32Array([1, 2])))).toBe('ndarray');
    expect(await get(describeFn.remote(Buffer.from('x')))).toBe('bytes');
    const m = (await get(python.remote('tsray_fixtures:make_matrix').remote())) as NDArray;
    expect(m).toBeInstanceOf(NDArray);
    expect(m.dtype).toBe('float32');
    expect(m.shape).toEqual([2, 3]);
    expect([...(m.data as Float32Array)]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await get(python.remote<[unknown], number>('tsray_fixtures:total').remote(m))).toBe(15);
    // Refs cross both ways and stay refs.
    const inner = put('from TS');
    const back = (await get(echo.remote([inner]))) as ObjectRef<string>[];
    expect(back[0]).toBeInstanceOf(ObjectRef);
    expect(await get(back[0]!)).toBe('from TS');
    // A top-level ref argument is resolved to its value first.
    expect(await get(describeFn.remote(put(5)))).toBe('int');
  });

  it('streams a Python generator', async () => {
    const items: number[] = [];
    for await (const r of python.remote<[number], AsyncGenerator<number>>('tsray_fixtures:count_to', { numReturns: 'streaming' }).remote(4))
      items.push((await get(r)) as number);
    expect(items).toEqual([0, 10, 20, 30]);
  });

  it('maps Python exceptions to TaskError with the traceback', async () => {
    const err = (await get(python.remote('tsray_fixtures:fail').remote('boom')).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect(err.remoteName).toBe('ValueError');
    expect(err.remoteMessage).toBe('boom');
    expect(err.remoteStack).toContain('Traceback');
    expect(err.remoteStack).toContain('tsray_fixtures.py');
  });

  it('rejects values that cannot cross, naming the type', async () => {
    expect(() => echo.remote(new Map([[1, 2]]))).toThrow(SerializationError);
    expect(() => echo.remote({ when: new Date() })).toThrow(/argument 0\.when.*Date/);
    const err = (await get(python.remote('tsray_fixtures:not_serializable').remote()).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect(err.remoteName).toBe('SerializationError');
    expect(err.remoteMessage).toContain('set');
  });

  it('names a module or attribute that does not exist', async () => {
    const e1 = (await get(python.remote('no_such_module_xyz:f').remote()).catch((e: unknown) => e)) as TaskError;
    expect(e1.remoteName).toMatch(/ModuleNotFoundError|ImportError/);
    expect(e1.message).toContain('no_such_module_xyz');
    const e2 = (await get(python.remote('tsray_fixtures:nope').remote()).catch((e: unknown) => e)) as TaskError;
    expect(e2.message).toContain('nope');
    expect(() => python.remote('not a target')).toThrow(/package.module:name/);
  });
});

describe('Python actors', () => {
  it('keeps state, typed by a declared interface', async () => {
    const Counter = python.actor<{ incr(by?: number): number }>('tsray_fixtures:Counter');
    const c = Counter.remote(10);
    expect(await get(c.incr.remote(5))).toBe(15);
    expect(await get(c.incr.remote())).toBe(16);
    kill(c);
  });

  it('runs 4 Python actors in parallel, and the async methods of one actor concurrently', async () => {
    const Sleeper = python.actor<{ meet(n: number, dir: string): [number, number] }>('tsray_fixtures:Sleeper');
    const actors = Array.from({ length: 4 }, () => Sleeper.remote());
    const dir = tempDir();
    // Each call waits until 4 calls have arrived: only calls running at the same time all see 4.
    mkdirSync(join(dir.path, 'actors'));
    const across = await get(actors.map((a) => a.meet.remote(4, join(dir.path, 'actors'))));
    expect(across.map(([, seen]) => seen)).toEqual([4, 4, 4, 4]);
    expect(new Set(across.map(([pid]) => pid)).size).toBe(4);
    // async def methods of one actor also overlap.
    mkdirSync(join(dir.path, 'one'));
    const within = await get([0, 1, 2].map(() => actors[0]!.meet.remote(3, join(dir.path, 'one'))));
    expect(within.map(([, seen]) => seen)).toEqual([3, 3, 3]);
    for (const a of actors) kill(a);
    dir.cleanup();
  });

  it('sees its CUDA_VISIBLE_DEVICES on a fake-GPU node', async () => {
    const Sleeper = python.actor<{ cuda(): string | null }>('tsray_fixtures:Sleeper', { numGpus: 1 });
    const a = Sleeper.remote();
    const b = Sleeper.remote();
    const [ca, cb] = await get([a.cuda.remote(), b.cuda.remote()]);
    expect([ca, cb].sort()).toEqual(['0', '1']);
    expect(await get(python.remote<[], string>('tsray_fixtures:cuda', { numGpus: 0 }).remote())).toBe('');
    kill(a);
    kill(b);
  });

  it('a constructor that raises kills the actor with the Python error as cause', async () => {
    const b = python.actor<{ anything(): void }>('tsray_fixtures:Broken').remote();
    const err = (await get(b.anything.remote()).catch((e: unknown) => e)) as ActorDiedError;
    expect(err).toBeInstanceOf(ActorDiedError);
    expect(err.message).toContain('RuntimeError: bad init');
  });
});

describe('errors across languages (tsray.v1.ErrorInfo; Python has no V8 reader)', () => {
  it('TypeScript reads a Python ValueError with its traceback and its `raise ... from` cause', async () => {
    const err = (await get(python.remote('tsray_fixtures:fail_chained').remote('outer')).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect([err.remoteName, err.remoteMessage, err.info.language]).toEqual(['ValueError', 'outer', 'python']);
    expect(err.remoteStack).toContain('Traceback');
    expect(err.remoteStack).toContain('in fail_chained');
    const cause = err.cause as Error;
    expect([cause.name, cause.message]).toEqual(['ValueError', 'outer']);
    const inner = cause.cause as Error;
    expect([inner.name, inner.message]).toEqual(['KeyError', "'missing'"]);
    expect(inner.stack).toContain("KeyError: 'missing'");
    expect(String(err)).toContain('--- caused by ---\nTraceback');
  });

  it('a Python client reads a TypeScript task error: class, message, TS stack and cause chain', async () => {
    const url = pathToFileURL(fileURLToPath(new URL('./fixtures/xlang-errors.ts', import.meta.url))).href;
    const code = 'import sys, tsray_fixtures; tsray_fixtures.read_ts_error(sys.argv[1])';
    const { stdout } = await promisify(execFile)(venvPython, ['-c', code, url], { env: process.env, timeout: 60_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    // A TypeScript RangeError is a ValueError on the Python side (python/tsray/errors.py _FROM_TYPESCRIPT).
    expect([r.cls, r.name, r.message, r.language]).toEqual(['TaskError(ValueError)', 'RangeError', 'outer failure', 'typescript']);
    expect(r.stack).toMatch(/^RangeError: outer failure\n\s+at (Object\.)?failChained \(.*xlang-errors\.ts:\d+/);
    expect(r.cause.cls).toBe('RemoteError');
    expect(r.cause.name).toBe('SyntaxError');
    expect(r.cause.message).toMatch(/JSON/);
    expect(r.cause.stack).toMatch(/^SyntaxError: .*JSON/);
    expect(r.chained).toBe(true);
    expect(r.text).toContain('--- caused by ---\nSyntaxError');
    expect(r.v8_reader_loaded).toBe(false);
    expect(existsSync(`${repo}python/tsray/_v8.py`)).toBe(false);
  });

  it('a TypeScript value that cannot cross reaches a Python task as UnreadableValueError', async () => {
    const describeFn = python.remote<[unknown], string>('tsray_fixtures:describe');
    // put() stores V8 bytes; the node converts them for Python (msgpack) or says why it cannot.
    expect(await get(describeFn.remote(put({ a: [1, 'x'], big: 2n ** 70n, buf: Buffer.from('b') })))).toBe('dict');
    const err = (await get(describeFn.remote(put(new Map([[1, 2]])))).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect(err.remoteName).toBe('UnreadableValueError');
    expect(err.remoteMessage).toMatch(/outside the cross-language value model \(Map at value\)/);
  });
});

describe('the interpreter', () => {
  it('a missing interpreter is a typed error saying what to fix', () => {
    expect(existsSync(venvPython)).toBe(true);
    const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/driver-nopython.ts', import.meta.url))], {
      encoding: 'utf8',
    });
    expect(out).toContain('PythonEnvironmentError');
    expect(out).toContain('no Python interpreter at "/nonexistent/bin/python3"');
    expect(out).toContain('init({ python');
  });

  it("the node's interpreter check does not hold other work: a TS task runs while it is slow", async () => {
    const dir = tempDir('tsray-slow-python-check-');
    const fake = join(dir.path, 'python3');
    const go = join(dir.path, 'go');
    // Stands for an interpreter whose first import is slow: it answers once the driver has its TS result.
    writeFileSync(
      fake,
      `#!/bin/sh\nwhile [ ! -e "${go}" ]; do sleep 0.02; done\necho "ModuleNotFoundError: no module named tsray (fake interpreter)" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./fixtures/driver-slow-python-check.ts', import.meta.url))],
      {
        encoding: 'utf8',
        env: { ...process.env, FAKE_PYTHON: fake, CHECK_GO: go },
      },
    );
    expect(stdout).toContain('ts task: 42\npython task: PythonEnvironmentError: task getpid: the Python interpreter');
    expect(stdout).toContain('cannot import the tsray package (ModuleNotFoundError: no module named tsray (fake interpreter))');
    dir.cleanup();
  });
});
