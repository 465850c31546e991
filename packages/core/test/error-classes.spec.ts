/**
 * Task errors as a TypeScript user meets them (issue #22): a TaskError is also an instance of the
 * remote error's class (standard classes, registered user classes, Python built-ins with a JavaScript
 * counterpart), its `cause` is a real instance, and its printed form shows the remote stack once,
 * headed `(task pid=N)`, then the driver's `await get(...)` line.
 */
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, python, registerErrorClass, shutdown, TaskError, TsrayError, ValidationError } from '@tsray/core';
import { failChained, failQuota, failRange, failUnregistered, QuotaError } from './fixtures/error-classes.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

beforeAll(async () => {
  process.env['PYTHONPATH'] = `${fileURLToPath(new URL('./fixtures/py', import.meta.url))}:${repo}python`;
  await init({ numCpus: 2, objectStoreMemory: 64 * 1024 * 1024, python: `${repo}.venv/bin/python`, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

/** The rejection of a promise (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<TaskError> {
  const e = await p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(TaskError);
  return e as TaskError;
}

/** The printed form with what changes from run to run (pids, absolute paths, columns) made stable. */
function stable(text: string): string {
  return text
    .replaceAll(/pid=\d+/g, 'pid=N')
    .replaceAll(/(file:\/\/)?\/\S*\/(\S+?\.ts)/g, '$2')
    .replaceAll(/\.ts:\d+:\d+/g, '.ts:L:C')
    .replaceAll(' at Object.', ' at ');
}

describe('TaskError is also the remote error class', () => {
  it('a RangeError thrown in a task: instanceof RangeError, TaskError, TsrayError, Error; cause a RangeError', async () => {
    const e = await rejection(get(failRange.remote('boom')));
    expect(e).toBeInstanceOf(RangeError);
    expect(e).toBeInstanceOf(TsrayError);
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(TypeError);
    expect(TsrayError.isInstance(e)).toBe(true);
    expect([e.name, e.remoteName, e.remoteMessage, e.taskName]).toEqual(['TaskError', 'RangeError', 'boom', 'failRange']);
    expect(e.cause).toBeInstanceOf(RangeError);
    expect((e.cause as Error).message).toBe('boom');
    expect((e.cause as Error).stack).toContain('fixtures/error-classes.ts');
    // The message keeps class, message, task name and where it was raised.
    expect(e.message).toMatch(/^task failRange \(worker pid=\d+\) failed: RangeError: boom \(error-classes\.ts:\d+:\d+\)$/);
  });

  it('a registered user class: instanceof QuotaError, its fields kept; an unregistered one is a plain TaskError', async () => {
    const e = await rejection(get(failQuota.remote(3)));
    expect(e).toBeInstanceOf(QuotaError);
    expect(e.cause).toBeInstanceOf(QuotaError);
    expect((e.cause as QuotaError).limit).toBe(3);
    expect((e.cause as QuotaError).message).toBe('over quota 3');
    const plain = await rejection(get(failUnregistered.remote()));
    expect(Object.getPrototypeOf(plain)).toBe(TaskError.prototype);
    expect(plain.remoteName).toBe('UnregisteredError');
    expect((plain.cause as Error).name).toBe('UnregisteredError');
  });

  it('the cause chain is made of real instances', async () => {
    const e = await rejection(get(failChained.remote()));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.cause).toBeInstanceOf(TypeError);
    expect((e.cause as Error).cause).toBeInstanceOf(RangeError);
  });

  it('a Python ValueError from a Python task is a RangeError on this side (documented mapping)', async () => {
    const e = await rejection(get(python.remote<[string], never>('tsray_fixtures:fail').remote('bad value')));
    expect(e).toBeInstanceOf(RangeError);
    expect([e.remoteName, e.remoteMessage, e.info.language]).toEqual(['ValueError', 'bad value', 'python']);
    expect(e.message).toMatch(/failed: ValueError: bad value \(tsray_fixtures\.py:\d+\)$/);
    expect(inspect(e)).toMatch(/^\(fail pid=\d+\) Traceback/m);
  });

  it('registerErrorClass rejects what is not an Error class', () => {
    expect(() => registerErrorClass(class NotAnError {} as never)).toThrow(ValidationError);
    expect(() => registerErrorClass(QuotaError, '')).toThrow(ValidationError);
  });
});

describe('printed form', () => {
  it('shows the remote stack once, headed (task pid=N), then the driver line that awaited get()', async () => {
    const e = await rejection(get(failRange.remote('boom')));
    const printed = inspect(e);
    expect(String(e)).toBe(printed);
    expect(printed.split('RangeError: boom\n').length - 1).toBe(1);
    expect(printed.match(/at (Object\.)?failRange /g)).toHaveLength(1);
    expect(printed).not.toMatch(/packages\/core\/(dist|src)\//);
    // The driver part: this file's `await rejection(get(...))` line.
    const driver = printed.slice(printed.indexOf('(driver pid='));
    expect(driver).toContain(`error-classes.spec.ts:`);
    expect(stable(printed)).toMatchInlineSnapshot(`
      "TaskError(RangeError): task failRange (worker pid=N) failed: RangeError: boom (error-classes.ts:L:C)
      (failRange pid=N) RangeError: boom
          at failRange (error-classes.ts:L:C)
      (driver pid=N)
          at rejection (error-classes.spec.ts:L:C)
          at error-classes.spec.ts:L:C"
    `);
  });
});
