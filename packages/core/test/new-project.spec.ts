/**
 * The README's "Use tsray in your project" section, followed as written by a new user (issue #22): a
 * brand-new npm project outside the repo, its commands run one by one, its files written as shown,
 * and `npx tsx main.ts` must print what the README says it prints (a TypeScript task and a Python
 * task). Registries are replaced by what they would serve: the @tsray/* packages as `npm pack`
 * tarballs of this checkout (as pack.spec.ts), the Python package as a wheel built from python/.
 * The environment is a new user's: no PYTHONPATH or TSRAY_* from this repo.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tsray-new-project-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Section {
  /** Shell commands, in order, each with the comment that followed it. */
  commands: { command: string; comment: string }[];
  /** Files shown with their name on the first line (`# ops.py`, `// main.ts`). */
  files: Map<string, string>;
}

/** The README section's code blocks: bash commands, and files named by their first line. */
function readmeSection(title: string): Section {
  const text = readFileSync(join(repo, 'README.md'), 'utf8');
  const start = text.indexOf(`\n## ${title}\n`);
  expect(start, `README.md has a "## ${title}" section`).toBeGreaterThan(0);
  const end = text.indexOf('\n## ', start + 1);
  const body = text.slice(start, end < 0 ? undefined : end);
  const out: Section = { commands: [], files: new Map() };
  for (const m of body.matchAll(/```(\w+)\n([\s\S]*?)```/g)) {
    const [, lang, code] = m as unknown as [string, string, string];
    if (lang === 'bash') {
      for (const line of code.split('\n')) {
        const cm = /^([^#]*?)\s*(?:#\s*(.*))?$/.exec(line)!;
        if (cm[1]!.trim()) out.commands.push({ command: cm[1]!.trim(), comment: cm[2] ?? '' });
      }
    } else {
      const name = /^(?:#|\/\/)\s*(\S+\.\w+)\s*\n/.exec(code)?.[1];
      if (name) out.files.set(name, code);
    }
  }
  return out;
}

describe('a new project, from the README alone', () => {
  it('runs a TypeScript task and a Python task', async () => {
    const section = readmeSection('Use tsray in your project');
    expect([...section.files.keys()].sort()).toEqual(['main.ts', 'ops.py']);
    // What the registries would serve.
    const tarballs: string[] = [];
    for (const name of ['protocol', 'object-store', 'scheduler', 'placement', 'runtime-env', 'core']) {
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: join(repo, 'packages', name) });
      tarballs.push(join(dir, (JSON.parse(stdout) as [{ filename: string }])[0].filename));
    }
    const wheels = join(dir, 'wheels');
    await run(
      join(repo, '.venv/bin/python'),
      ['-m', 'pip', 'wheel', '-q', '--disable-pip-version-check', '--no-deps', '--no-build-isolation', '-w', wheels, join(repo, 'python')],
      {
        timeout: 120_000,
      },
    );
    const wheel = join(wheels, readdirSync(wheels).find((f) => f.startsWith('tsray-') && f.endsWith('.whl'))!);

    const app = join(dir, 'my-app');
    await run('mkdir', ['-p', app]);
    for (const [name, content] of section.files) writeFileSync(join(app, name), content);
    const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? dir, TMPDIR: tmpdir(), LANG: 'C.UTF-8' };
    let printed = '';
    for (const { command, comment } of section.commands) {
      const substituted = command
        .replace(/^npm install @tsray\/core\b/, `npm install --no-audit --no-fund --prefer-offline ${tarballs.join(' ')}`)
        .replace('./tsray/python', wheel);
      const { stdout } = await run('bash', ['-c', substituted], { cwd: app, env, timeout: 240_000 });
      if (command.startsWith('npx tsx ')) {
        printed = stdout;
        // The README says what the script prints: the comment after the command.
        expect(stdout.trim()).toBe(comment);
      }
    }
    expect(printed).toContain('square 49 add 42');
    // Installed from the artefacts, nothing linked to the monorepo.
    expect(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).type).toBe('module');
    expect(readdirSync(join(app, 'node_modules', '@tsray')).sort()).toEqual(['core', 'object-store', 'placement', 'protocol', 'runtime-env', 'scheduler']);
  }, 600_000);
});
