// Hostile package archives (issue #17, acceptance 5): each is refused with UnsafeArchiveError naming
// why, and nothing is written outside the destination.
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gzipSync, createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  packDirectory,
  RuntimeEnvAgent,
  RuntimeEnvSetupError,
  unpackArchive,
  UnsafeArchiveError,
  validateRuntimeEnv,
  type UnsafeArchiveKind,
} from '../src/index.js';
import { PYTHON, tempDir } from './helpers.js';

let base: string;
/** A folder beside every destination: an escaping entry would land here (or in /etc). */
let outside: string;

beforeAll(() => {
  base = tempDir('unsafe');
  outside = join(base, 'outside');
  mkdirSync(outside);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

type Entry = { header: tar.Headers; data?: string };

async function archive(name: string, entries: Entry[]): Promise<string> {
  const pack = tar.pack();
  const file = join(base, `${name}.tar.gz`);
  const done = pipeline(pack, createGzip(), createWriteStream(file));
  for (const e of entries) await new Promise<void>((res, rej) => pack.entry(e.header, e.data ?? '', (err) => (err ? rej(err) : res())));
  pack.finalize();
  await done;
  return file;
}

/** Unpack into a fresh `<base>/out-<name>` and return the error it is refused with. */
async function refused(file: string, name: string, expectedHash?: string): Promise<UnsafeArchiveError> {
  const dest = join(base, 'dest', name, 'out');
  const err = await unpackArchive(file, dest, 'workingDir', expectedHash ? { expectedHash } : {}).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UnsafeArchiveError);
  expect(err).toBeInstanceOf(RuntimeEnvSetupError);
  expect(existsSync(dest)).toBe(false); // the half-unpacked folder is removed
  expect(readdirSync(outside)).toEqual([]);
  expect(existsSync('/etc/tsray-archive-test')).toBe(false);
  return err as UnsafeArchiveError;
}

function expectKind(err: UnsafeArchiveError, kind: UnsafeArchiveKind, entry?: string): void {
  expect(err.kind).toBe(kind);
  if (entry !== undefined) expect(err.entry).toBe(entry);
  expect(err.field).toBe('workingDir');
}

/** A ustar header of a regular file that claims `size` bytes (base-256 size field, as GNU tar writes big sizes). */
function bigFileHeader(name: string, size: bigint): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h[124] = 0x80;
  for (let i = 135, v = size; i > 124; i--, v >>= 8n) h[i] = Number(v & 0xffn);
  h.write('00000000000\0', 136);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

describe('unpacking refuses hostile archives', () => {
  it('an entry with ../', async () => {
    const f = await archive('dotdot', [
      { header: { name: 'ok.txt' }, data: 'ok' },
      { header: { name: 'sub/../../outside/evil.txt' }, data: 'x' },
    ]);
    expectKind(await refused(f, 'dotdot'), 'outside', 'sub/../../outside/evil.txt');
  });

  it('an absolute path', async () => {
    const f = await archive('absolute', [{ header: { name: join(outside, 'abs.txt') }, data: 'x' }]);
    expectKind(await refused(f, 'absolute'), 'outside');
  });

  it('a symlink to /etc followed by a write through it', async () => {
    const f = await archive('etc-link', [
      { header: { name: 'etc', type: 'symlink', linkname: '/etc' } },
      { header: { name: 'etc/tsray-archive-test' }, data: 'owned' },
    ]);
    expectKind(await refused(f, 'etc-link'), 'symlink-escape', 'etc');
    const rel = await archive('up-link', [
      { header: { name: 'up', type: 'symlink', linkname: '../../../outside' } },
      { header: { name: 'up/evil.txt' }, data: 'owned' },
    ]);
    expectKind(await refused(rel, 'up-link'), 'symlink-escape', 'up');
  });

  it('a write through a link that points inside, and an entry replacing a link', async () => {
    const through = await archive('through', [
      { header: { name: 'real', type: 'directory' } },
      { header: { name: 'alias', type: 'symlink', linkname: 'real' } },
      { header: { name: 'alias/f.txt' }, data: 'x' },
    ]);
    expectKind(await refused(through, 'through'), 'through-symlink', 'alias/f.txt');
    const replace = await archive('replace', [
      { header: { name: 'a.txt' }, data: 'x' },
      { header: { name: 'link', type: 'symlink', linkname: 'a.txt' } },
      { header: { name: 'link' }, data: 'through the link' },
    ]);
    expectKind(await refused(replace, 'replace'), 'duplicate', 'link');
  });

  it('hard links and devices', async () => {
    const f = await archive('hardlink', [{ header: { name: 'h', type: 'link', linkname: '/etc/passwd' } }]);
    expectKind(await refused(f, 'hardlink'), 'unsupported-entry', 'h');
  });

  it('a 10 GB sparse file (GNU and pax sparse formats), and a header claiming 10 GB', async () => {
    const src = join(base, 'sparse-src');
    mkdirSync(src);
    execFileSync('truncate', ['-s', '10G', join(src, 'big.bin')]);
    const gnu = join(base, 'sparse-gnu.tar.gz');
    execFileSync('tar', ['-czSf', gnu, '-C', src, 'big.bin']);
    expectKind(await refused(gnu, 'sparse-gnu'), 'unsupported-entry');
    const pax = join(base, 'sparse-pax.tar.gz');
    execFileSync('tar', ['--format=pax', '--sparse-version=1.0', '-czSf', pax, '-C', src, 'big.bin']);
    expectKind(await refused(pax, 'sparse-pax'), 'unsupported-entry');
    rmSync(src, { recursive: true });
    // Refused on the header: the 10 GB are never inflated (the archive holds 64 KiB of them).
    const big = join(base, 'big.tar.gz');
    writeFileSync(big, gzipSync(Buffer.concat([bigFileHeader('big.bin', 10n * 1024n ** 3n), Buffer.alloc(64 * 1024)])));
    const err = await refused(big, 'big');
    expectKind(err, 'too-large', 'big.bin');
    expect(err.message).toMatch(/10737418240 bytes, over the cap/);
  });

  it('more entries than the cap', async () => {
    const f = await archive(
      'many',
      [1, 2, 3, 4].map((i) => ({ header: { name: `f${i}.txt` }, data: 'x' })),
    );
    const dest = join(base, 'dest', 'many');
    const err = await unpackArchive(f, dest, 'workingDir', { limits: { maxEntries: 3 } }).catch((e: unknown) => e);
    expectKind(err as UnsafeArchiveError, 'too-many-entries', 'f4.txt');
    await unpackArchive(f, dest, 'workingDir', { limits: { maxEntries: 4 } });
    expect(readdirSync(dest).sort()).toEqual(['f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
  });

  it('content that is not the package its name says', async () => {
    const a = join(base, 'pkg-a');
    mkdirSync(a);
    writeFileSync(join(a, 'm.py'), 'X = 1\n');
    const packed = await packDirectory(a, join(base, 'archives'));
    await unpackArchive(packed.archivePath, join(base, 'dest', 'good'), 'workingDir', { expectedHash: packed.hash });
    writeFileSync(join(a, 'm.py'), 'X = 2  # changed\n');
    const other = await packDirectory(a, join(base, 'archives'));
    expectKind(await refused(other.archivePath, 'mismatch', packed.hash), 'hash-mismatch');
  });
});

describe('the agent', () => {
  it('refuses a fetched package whose content is not its hash, and drops it from the cache', async () => {
    const src = join(base, 'wd');
    mkdirSync(src);
    writeFileSync(join(src, 'data.txt'), 'the real one');
    const packer = new RuntimeEnvAgent({ rootDir: join(base, 'packer'), python: PYTHON, installer: 'pip', logDir: join(base, 'logs') });
    const resolved = await packer.resolve(validateRuntimeEnv({ workingDir: src }));
    const hash = resolved.workingDirPackage!;
    // A peer (or whoever answers the fetch) sends other content under the package's name.
    writeFileSync(join(src, 'data.txt'), 'a planted one');
    const forged = await packDirectory(src, join(base, 'forged'));
    const node = new RuntimeEnvAgent({
      rootDir: join(base, 'node'),
      python: PYTHON,
      installer: 'pip',
      logDir: join(base, 'logs'),
      fetchPackage: async (_h, dest) => execFileSync('cp', [forged.archivePath, dest]) && undefined,
    });
    const err = await node.acquire(resolved).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeArchiveError);
    expect((err as UnsafeArchiveError).kind).toBe('hash-mismatch');
    expect(existsSync(node.packagePath(hash))).toBe(false);
    await packer.close();
    await node.close();
  });
});
