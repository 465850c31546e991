/**
 * Which project a module belongs to and where a worker with a shipped copy imports it from
 * (code-root.ts), and the sending side (JobCodePublisher): packed and published once per change of
 * the folder, a folder that cannot be shipped warned about and left out.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalModuleUrl, codeRootOf, importableModuleUrl } from '../src/code-root.js';
import { overrideConfig } from '../src/config.js';
import { JobCodePublisher } from '../src/node/job-code-publisher.js';

const base = mkdtempSync(join(tmpdir(), 'tsray-code-root-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function project(name: string): string {
  const root = join(base, name);
  mkdirSync(join(root, 'src', 'deep'), { recursive: true });
  mkdirSync(join(root, 'node_modules', 'lib'), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{"name":"p"}');
  writeFileSync(join(root, 'src', 'deep', 'tasks.ts'), 'export const v = 1;\n');
  writeFileSync(join(root, 'node_modules', 'lib', 'package.json'), '{"name":"lib"}');
  return root;
}

describe('a module’s project folder', () => {
  it('is the nearest folder with a package.json; none for a library in node_modules or a non-file URL', () => {
    const root = project('app');
    expect(codeRootOf(pathToFileURL(join(root, 'src', 'deep', 'tasks.ts')).href)).toBe(root);
    expect(codeRootOf(pathToFileURL(join(root, 'node_modules', 'lib', 'index.js')).href)).toBeUndefined();
    expect(codeRootOf('py:mymod')).toBeUndefined();
  });

  it('in a worker running a shipped copy: modules of the copy are named by the driver’s URL, and imported from the copy', () => {
    const copy = project('copy');
    const driverRoot = '/home/someone/app';
    const restore = overrideConfig({ codeDir: copy, codeRoot: driverRoot });
    try {
      const inCopy = pathToFileURL(join(copy, 'src', 'deep', 'tasks.ts')).href;
      const asDriver = pathToFileURL(join(driverRoot, 'src', 'deep', 'tasks.ts')).href;
      expect(canonicalModuleUrl(inCopy)).toBe(asDriver);
      expect(importableModuleUrl(asDriver)).toBe(inCopy);
      expect(codeRootOf(asDriver)).toBe(driverRoot);
      // Not under the copy / the driver's folder: unchanged (e.g. tsray's own modules, another project).
      const other = pathToFileURL('/opt/lib/x.js').href;
      expect([canonicalModuleUrl(other), importableModuleUrl(other)]).toEqual([other, other]);
      // A sibling folder whose name starts like the root is not under it.
      const sibling = pathToFileURL(`${driverRoot}-old/src/t.ts`).href;
      expect(importableModuleUrl(sibling)).toBe(sibling);
    } finally {
      restore();
    }
  });

  it('without a shipped copy, URLs are used as they are', () => {
    const url = pathToFileURL(join(project('plain'), 'src', 'deep', 'tasks.ts')).href;
    expect([canonicalModuleUrl(url), importableModuleUrl(url)]).toEqual([url, url]);
  });
});

describe('JobCodePublisher', () => {
  it('packs and publishes a folder once per change of its files', async () => {
    const root = project('published');
    const published: string[] = [];
    const pub = new JobCodePublisher({ archivesDir: () => join(base, 'archives'), publish: async (hash) => void published.push(hash) });
    const a = await pub.codeFor(root);
    const again = await pub.codeFor(root);
    expect(again).toEqual(a);
    expect(published).toHaveLength(1);
    expect(a?.package).toBe(`pkg://${published[0]}`);
    writeFileSync(join(root, 'src', 'deep', 'tasks.ts'), 'export const v = 2;\n');
    const b = await pub.codeFor(root);
    expect(b?.package).not.toBe(a?.package);
    expect(published).toHaveLength(2);
  });

  it('a folder that cannot be shipped gives undefined (the task goes without it), and a later call tries again', async () => {
    const root = project('unpublished');
    let fail = true;
    const pub = new JobCodePublisher({
      archivesDir: () => join(base, 'archives'),
      publish: async () => {
        if (fail) throw new Error('GCS unreachable');
      },
    });
    expect(await pub.codeFor(root)).toBeUndefined();
    expect(await pub.codeFor(join(base, 'missing'))).toBeUndefined();
    fail = false;
    expect((await pub.codeFor(root))?.package).toMatch(/^pkg:\/\/pkg_/);
  });
});
