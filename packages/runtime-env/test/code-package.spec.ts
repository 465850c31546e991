/**
 * A job's shipped code (code-package.ts) and safe unpacking: what is packed (git's ignore rules of
 * the folder, its subfolders and the repository above it), the fingerprint that lets a node with the
 * same folder skip the fetch, the sha256 check of a fetched archive, and archives that try to write
 * outside the destination.
 */
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  codeFingerprint,
  codeMatcher,
  listPackage,
  packJobCode,
  RuntimeEnvAgent,
  RuntimeEnvSetupError,
  RuntimeEnvValidationError,
  sha256File,
  unpackArchive,
  validateRuntimeEnv,
} from './exports.js';
import { tempDir } from './helpers.js';

const dirs: string[] = [];
const tmp = (p: string) => {
  const d = tempDir(p);
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function write(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

/** A repository with a project folder `app/` inside it. */
function repoWithProject(): { repo: string; app: string } {
  const repo = tmp('code-repo');
  mkdirSync(join(repo, '.git'));
  write(join(repo, '.gitignore'), 'dist/\n*.log\n');
  const app = join(repo, 'app');
  write(join(app, 'package.json'), '{"name":"app","type":"module"}');
  write(join(app, '.gitignore'), 'secret.txt\n');
  write(join(app, 'src', 'main.ts'), 'export const x = 1;\n');
  write(join(app, 'src', '.gitignore'), 'gen/\n');
  write(join(app, 'src', 'gen', 'out.ts'), 'generated');
  write(join(app, 'secret.txt'), 'no');
  write(join(app, 'debug.log'), 'no');
  write(join(app, 'dist', 'main.js'), 'no');
  write(join(app, 'node_modules', 'dep', 'index.js'), 'no');
  write(join(app, 'notes.md'), 'yes');
  return { repo, app };
}

async function archive(entries: { name: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string; body?: string }[]): Promise<string> {
  const path = join(tmp('code-evil'), 'evil.tar.gz');
  const pack = tar.pack();
  const out = pipeline(pack, createGzip(), createWriteStream(path));
  for (const e of entries) {
    await new Promise<void>((res, rej) =>
      pack.entry({ name: e.name, type: e.type ?? 'file', ...(e.linkname ? { linkname: e.linkname } : {}), mode: 0o644 }, Buffer.from(e.body ?? ''), (err) =>
        err ? rej(err) : res(),
      ),
    );
  }
  pack.finalize();
  await out;
  return path;
}

describe('what a job code package holds', () => {
  it('follows the .gitignore files of the folder, its subfolders and the repository above it; node_modules never', () => {
    const { app } = repoWithProject();
    const rels = listPackage(app, { matcher: codeMatcher(app) }).entries.map((e) => e.rel);
    expect(rels).toEqual(['.gitignore', 'notes.md', 'package.json', 'src', 'src/.gitignore', 'src/main.ts']);
  });

  it('the fingerprint is stable for the same files and changes with an edit, a new file or a removal', async () => {
    const { app } = repoWithProject();
    const fp = await codeFingerprint(app);
    expect(await codeFingerprint(app)).toBe(fp);
    writeFileSync(join(app, 'secret.txt'), 'ignored files do not count');
    expect(await codeFingerprint(app)).toBe(fp);
    writeFileSync(join(app, 'src', 'main.ts'), 'export const x = 22;\n');
    const edited = await codeFingerprint(app);
    expect(edited).not.toBe(fp);
    write(join(app, 'src', 'more.ts'), '');
    expect(await codeFingerprint(app)).not.toBe(edited);
    rmSync(join(app, 'src', 'more.ts'));
    expect(await codeFingerprint(app)).toBe(edited);
  });

  it('packs by content: the same files give the same package and archive sha256, a change a new package', async () => {
    const { app } = repoWithProject();
    const out = tmp('code-archives');
    const a = await packJobCode(app, out);
    const b = await packJobCode(app, out);
    expect(b.package).toBe(a.package);
    expect(a.package).toMatch(/^pkg:\/\/pkg_[0-9a-f]{32}$/);
    expect(await sha256File(a.archivePath)).toBe(a.sha256);
    writeFileSync(join(app, 'notes.md'), 'changed');
    expect((await packJobCode(app, out)).package).not.toBe(a.package);
  });
});

describe('jobCode in a runtime env', () => {
  const good = { root: '/home/me/app', package: `pkg://pkg_${'a'.repeat(32)}`, sha256: 'b'.repeat(64), fingerprint: 'c'.repeat(32) };

  it('is validated field by field', () => {
    expect(validateRuntimeEnv({ jobCode: good }).jobCode).toEqual(good);
    const bad: [Record<string, unknown>, string][] = [
      [{ ...good, root: 'relative/app' }, 'jobCode.root'],
      [{ ...good, root: '/home/me/../etc' }, 'jobCode.root'],
      [{ ...good, package: '/tmp/x.tar.gz' }, 'jobCode.package'],
      [{ ...good, sha256: 'xyz' }, 'jobCode.sha256'],
      [{ ...good, extra: 1 }, 'jobCode.extra'],
    ];
    for (const [jobCode, field] of bad) {
      let err: unknown;
      try {
        validateRuntimeEnv({ jobCode });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RuntimeEnvValidationError);
      expect((err as RuntimeEnvValidationError).field).toBe(field);
    }
  });

  it('a node with the same folder runs it in place; one without fetches, checks the sha256 and unpacks it', async () => {
    const { app } = repoWithProject();
    const packed = await packJobCode(app, tmp('code-driver-archives'));
    const jobCode = { root: app, package: packed.package, sha256: packed.sha256, fingerprint: packed.fingerprint };
    let fetches = 0;
    const agent = new RuntimeEnvAgent({
      rootDir: tmp('code-node'),
      fetchPackage: async (_hash, dest) => {
        fetches++;
        copyFileSync(packed.archivePath, dest);
      },
    });
    const inPlace = await agent.acquire(await agent.resolve({ jobCode }));
    expect([inPlace.codeDir, inPlace.codeRoot, inPlace.pythonPath, fetches]).toEqual([app, undefined, [app], 0]);
    inPlace.release();
    // Another machine: the folder is not there.
    const elsewhere = { ...jobCode, root: join(app, 'not-here') };
    const copy = await agent.acquire(await agent.resolve({ jobCode: elsewhere }));
    expect(fetches).toBe(1);
    expect(copy.codeRoot).toBe(elsewhere.root);
    expect(copy.codeDir).toBe(join(agent.rootDir, 'pkg', packed.package.slice('pkg://'.length)));
    expect(readFileSync(join(copy.codeDir!, 'src', 'main.ts'), 'utf8')).toBe('export const x = 1;\n');
    expect(existsSync(join(copy.codeDir!, 'secret.txt'))).toBe(false);
    copy.release();
    await agent.close();
  });

  it('a fetched archive whose sha256 is not the published one is refused and dropped', async () => {
    const { app } = repoWithProject();
    const packed = await packJobCode(app, tmp('code-driver-archives'));
    const other = await archive([{ name: 'package.json', body: '{}' }]);
    const agent = new RuntimeEnvAgent({ rootDir: tmp('code-node'), fetchPackage: async (_h, dest) => copyFileSync(other, dest) });
    const env = await agent.resolve({ jobCode: { root: '/nowhere/app', package: packed.package, sha256: packed.sha256, fingerprint: packed.fingerprint } });
    const err = await agent.acquire(env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeEnvSetupError);
    expect((err as Error).message).toMatch(/has sha256 [0-9a-f]{64}, not the published [0-9a-f]{64}/);
    expect(existsSync(agent.packagePath(packed.package.slice('pkg://'.length)))).toBe(false);
    expect(existsSync(join(agent.rootDir, 'pkg', packed.package.slice('pkg://'.length)))).toBe(false);
    await agent.close();
  });
});

describe('unpacking refuses entries that would land outside the destination', () => {
  const cases: [string, Parameters<typeof archive>[0], RegExp][] = [
    ['a .. path', [{ name: '../escaped.txt', body: 'x' }], /points outside the destination/],
    ['an absolute path', [{ name: '/tmp/escaped.txt', body: 'x' }], /points outside the destination/],
    ['a link leaving the folder', [{ name: 'up', type: 'symlink', linkname: '../../..' }], /is a link to "..\/..\/..", outside the destination/],
    ['an absolute link', [{ name: 'etc', type: 'symlink', linkname: '/etc' }], /outside the destination/],
    [
      'a file written through a link inside',
      [
        { name: 'real', type: 'directory' },
        { name: 'alias', type: 'symlink', linkname: 'real' },
        { name: 'alias/f.txt', body: 'x' },
      ],
      /would be written through a symbolic link/,
    ],
  ];
  for (const [what, entries, message] of cases) {
    it(what, async () => {
      const a = await archive(entries);
      const dest = join(tmp('code-unpack'), 'out');
      const err = await unpackArchive(a, dest, 'jobCode').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeEnvSetupError);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('a link inside the folder is kept', async () => {
    const a = await archive([
      { name: 'real/f.txt', body: 'x' },
      { name: 'alias', type: 'symlink', linkname: 'real' },
    ]);
    const dest = join(tmp('code-unpack'), 'out');
    await unpackArchive(a, dest, 'jobCode');
    expect(readFileSync(join(dest, 'alias', 'f.txt'), 'utf8')).toBe('x');
  });
});
