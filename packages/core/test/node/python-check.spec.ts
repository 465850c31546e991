/**
 * PythonInterpreterCheck: one interpreter run for every task that asks while it runs, a pass kept, a
 * failure kept only for its re-check interval. The interpreter is a shell script standing in for
 * Python: it fails as a missing tsray package does until a marker file exists, and counts its runs.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PythonInterpreterCheck } from '../../src/node/python-check.js';

let dir: string;
let python: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsray-pycheck-'));
  python = join(dir, 'python3');
  writeFileSync(
    python,
    `#!/bin/sh\necho run >> "${dir}/runs"\nif [ -e "${dir}/installed" ]; then echo 3.11; exit 0; fi\necho "ModuleNotFoundError: No module named 'tsray'" >&2\nexit 1\n`,
  );
  chmodSync(python, 0o755);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const runs = (): number => readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean).length;

/** The check's result, waiting for it when it is running. */
function resultOf(check: PythonInterpreterCheck): Promise<{ problem: string | undefined }> {
  return new Promise((resolve) => {
    const now = check.result(resolve);
    if (now) resolve(now);
  });
}

describe('PythonInterpreterCheck', () => {
  it('runs the interpreter once for every task that asks while it runs, and keeps a pass', async () => {
    writeFileSync(join(dir, 'installed'), '');
    const check = new PythonInterpreterCheck(() => python, 0);
    const all = await Promise.all([resultOf(check), resultOf(check), resultOf(check)]);
    expect(all.map((r) => r.problem)).toEqual([undefined, undefined, undefined]);
    expect((await resultOf(check)).problem).toBeUndefined();
    expect(runs()).toBe(1);
  });

  it('checks again after a failure once the re-check interval passed: tsray installed later is found', async () => {
    const check = new PythonInterpreterCheck(() => python, 0);
    expect((await resultOf(check)).problem).toMatch(/cannot import the tsray package \(ModuleNotFoundError: No module named 'tsray'\)/);
    writeFileSync(join(dir, 'installed'), '');
    expect((await resultOf(check)).problem).toBeUndefined();
    expect(runs()).toBe(2);
  });

  it('keeps a failure for the re-check interval (tasks in a burst fail at once, no interpreter per task)', async () => {
    const check = new PythonInterpreterCheck(() => python, 3_600_000);
    expect((await resultOf(check)).problem).toBeDefined();
    writeFileSync(join(dir, 'installed'), '');
    expect((await resultOf(check)).problem).toBeDefined();
    expect(runs()).toBe(1);
  });
});
