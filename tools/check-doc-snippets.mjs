#!/usr/bin/env node
// Type-checks the TypeScript snippets of the docs (issue #22): every ```ts block of README.md and
// docs/*.md becomes a module of its own in a temp dir, and `tsc --strict` checks them against the
// built @tsray/* packages (build first; tools/typecheck.sh runs this after the package checks).
//
// A snippet is a fragment, so each module gets:
//  - an import of every @tsray/core and @tsray/vllm-bridge export the snippet uses without
//    importing or declaring it (the docs show `get(...)` without repeating the import line);
//  - the code of an HTML comment right above the block, `<!-- typecheck-prelude: declare const fn: ...; -->`,
//    for names the snippet takes from the surrounding prose (not rendered on GitHub);
//  - `<!-- typecheck: skip -->` right above a block leaves it out (say why next to it).
//
// Usage: node tools/check-doc-snippets.mjs [files...]   (default: README.md docs/*.md)
// Exits 1 with tsc's errors, each mapped back to the markdown file and line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const files =
  process.argv.length > 2
    ? process.argv.slice(2).map((f) => resolve(f))
    : [
        join(root, 'README.md'),
        ...readdirSync(join(root, 'docs'))
          .filter((f) => f.endsWith('.md'))
          .map((f) => join(root, 'docs', f)),
      ];

/** The ```ts blocks of a markdown file, with the line the code starts on and the comment above. */
function snippets(file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const above = i > 0 ? lines[i - 1].trim() : '';
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${file}:${i + 1}: unterminated code block`);
    const prelude = /^<!-- typecheck-prelude: (.*) -->$/.exec(above)?.[1] ?? '';
    if (!/^<!-- typecheck: skip/.test(above)) out.push({ line: i + 2, code: lines.slice(i + 1, end).join('\n'), prelude });
    i = end;
  }
  return out;
}

/** Names exported by a package's entry point (values; the docs' types come with their imports). */
async function exportsOf(pkg) {
  return Object.keys(await import(pkg));
}

const work = mkdtempSync(join(tmpdir(), 'tsray-doc-snippets-'));
try {
  // The packages resolve from the repo's node_modules (workspace links to the built packages).
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
  writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  const provided = [
    ['@tsray/core', await exportsOf('@tsray/core')],
    ['@tsray/vllm-bridge', await exportsOf('@tsray/vllm-bridge')],
  ];
  const modules = [];
  for (const file of files) {
    for (const s of snippets(file)) {
      const name = `snippet-${modules.length}.ts`;
      const taken = new Set();
      for (const m of s.code.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}/g))
        for (const n of m[1].split(','))
          taken.add(
            n
              .trim()
              .split(/\s+as\s+/)
              .pop(),
          );
      for (const m of `${s.prelude}\n${s.code}`.matchAll(/\b(?:const|let|var|class|function|interface|type)\s+([A-Za-z_$][\w$]*)/g)) taken.add(m[1]);
      const used = (n) => new RegExp(`(?<![\\w$.])${n.replace('$', '\\$')}(?![\\w$])`).test(s.code);
      const imports = provided
        .map(([pkg, names]) => [pkg, names.filter((n) => !taken.has(n) && used(n))])
        .filter(([, names]) => names.length > 0)
        .map(([pkg, names]) => `import { ${names.join(', ')} } from '${pkg}';`);
      // Header lines are one line each, so tsc's line numbers map back by a fixed offset.
      const header = [...imports, s.prelude, 'export {};'];
      writeFileSync(join(work, name), `${header.join('\n')}\n${s.code}\n`);
      modules.push({ name, file, line: s.line, offset: header.length });
    }
  }
  writeFileSync(
    join(work, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2023', 'esnext.disposable'],
        types: ['node'],
        skipLibCheck: true,
      },
      include: modules.map((m) => m.name),
    }),
  );
  const tsc = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', work, '--pretty', 'false'], { encoding: 'utf8' });
  const report = `${tsc.stdout}${tsc.stderr}`.replace(/^\S*?(snippet-\d+\.ts)\((\d+),(\d+)\)/gm, (_, name, line, col) => {
    const m = modules.find((x) => x.name === name);
    return `${relative(root, m.file)}:${m.line + Number(line) - 1 - m.offset}:${col}`;
  });
  if (tsc.status !== 0) {
    process.stderr.write(report);
    console.error(`doc snippets: type errors in ${modules.length} snippet(s) checked (files: ${files.map((f) => relative(root, f)).join(', ')})`);
    process.exit(1);
  }
  console.log(`doc snippets: ${modules.length} TypeScript snippet(s) type-check (tsc --strict)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
