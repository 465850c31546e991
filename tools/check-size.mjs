#!/usr/bin/env node
// Size check of the project's sources (issue #15, acceptance 1): no file over 800 lines, no function over
// 120 lines. Prints the largest files and functions and exits 1, listing the offenders, when a limit is
// passed; CI runs it from tools/test.sh (step `check-size`).
//
// TypeScript (packages/*/src): parsed with the TypeScript compiler API; every function body counts —
// declarations, methods, constructors, accessors, function expressions and arrow functions — by the line
// span of the whole node (signature to closing brace). Nested functions count on their own and inside
// their parent, as a reader sees them. Python (python/tsray): tools/check_size.py walks the `ast` the
// same way. Generated code is left out: the protobuf static module (packages/protocol/src/generated)
// and *_pb2.py / *_pb2.pyi.
//
// Usage: node tools/check-size.mjs [--top N] [--max-file-lines 800] [--max-function-lines 120]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values: opts } = parseArgs({
  options: {
    top: { type: 'string', default: '10' },
    'max-file-lines': { type: 'string', default: '800' },
    'max-function-lines': { type: 'string', default: '120' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log('usage: node tools/check-size.mjs [--top N] [--max-file-lines 800] [--max-function-lines 120]');
  process.exit(0);
}
const top = positiveInt('--top', opts.top);
const maxFileLines = positiveInt('--max-file-lines', opts['max-file-lines']);
const maxFunctionLines = positiveInt('--max-function-lines', opts['max-function-lines']);

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`check-size: ${name} needs a non-negative integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

/** Paths (relative to the repo root) that hold generated code, not counted. */
const GENERATED_TS = [/^packages\/protocol\/src\/generated\//];

function walk(dir, accept, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === '__pycache__' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, accept, out);
    else if (accept(path)) out.push(path);
  }
  return out;
}

function countLines(text) {
  if (text.length === 0) return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function tsFunctionName(node, sf) {
  const named = node.name ? node.name.getText(sf) : undefined;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  if (ts.isGetAccessorDeclaration(node)) return `get ${named}`;
  if (ts.isSetAccessorDeclaration(node)) return `set ${named}`;
  if (named) return named;
  // Anonymous: name it after what it is assigned to or passed to.
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) {
    return parent.name.getText(sf);
  }
  if (parent && ts.isCallExpression(parent)) return `<callback of ${parent.expression.getText(sf).slice(0, 40)}>`;
  return ts.isArrowFunction(node) ? '<arrow>' : '<function>';
}

function enclosingClass(node) {
  for (let p = node.parent; p; p = p.parent) {
    if ((ts.isClassDeclaration(p) || ts.isClassExpression(p)) && p.name) return p.name.text;
  }
  return undefined;
}

function scanTs(file, files, functions) {
  const text = readFileSync(file, 'utf8');
  const rel = relative(ROOT, file);
  files.push({ path: rel, lines: countLines(text) });
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
      const cls = enclosingClass(node);
      const name = tsFunctionName(node, sf);
      functions.push({ path: rel, line: start, name: cls ? `${cls}.${name}` : name, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

function scanTypeScript() {
  const files = [];
  const functions = [];
  const packages = join(ROOT, 'packages');
  for (const pkg of readdirSync(packages)) {
    const src = join(packages, pkg, 'src');
    if (!existsSync(src)) continue;
    const sources = walk(src, (p) => /\.(m|c)?ts$/.test(p) && !p.endsWith('.d.ts'));
    for (const file of sources) {
      if (GENERATED_TS.some((re) => re.test(relative(ROOT, file)))) continue;
      scanTs(file, files, functions);
    }
  }
  return { files, functions };
}

function scanPython() {
  const python = ['.venv/bin/python', 'python3'].map((p) => (p.includes('/') ? join(ROOT, p) : p)).find((p) => !p.includes('/') || existsSync(p));
  const out = execFileSync(python, [join(ROOT, 'tools', 'check_size.py'), join(ROOT, 'python', 'tsray')], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const report = JSON.parse(out);
  for (const entry of [...report.files, ...report.functions]) entry.path = relative(ROOT, entry.path);
  return report;
}

const tsReport = scanTypeScript();
const pyReport = scanPython();
const files = [...tsReport.files, ...pyReport.files].sort((a, b) => b.lines - a.lines);
const functions = [...tsReport.functions, ...pyReport.functions].sort((a, b) => b.lines - a.lines);

console.log(`check-size: ${files.length} files, ${functions.length} functions (limits: file ${maxFileLines} lines, function ${maxFunctionLines} lines)`);
console.log(`\nlargest files (top ${top}):`);
for (const f of files.slice(0, top)) console.log(`  ${String(f.lines).padStart(6)}  ${f.path}`);
console.log(`\nlargest functions (top ${top}):`);
for (const f of functions.slice(0, top)) console.log(`  ${String(f.lines).padStart(6)}  ${f.path}:${f.line}  ${f.name}`);

const bigFiles = files.filter((f) => f.lines > maxFileLines);
const bigFunctions = functions.filter((f) => f.lines > maxFunctionLines);
if (bigFiles.length === 0 && bigFunctions.length === 0) {
  console.log('\ncheck-size: ok');
  process.exit(0);
}
console.error(
  `\ncheck-size: FAILED — ${bigFiles.length} file(s) over ${maxFileLines} lines, ${bigFunctions.length} function(s) over ${maxFunctionLines} lines`,
);
for (const f of bigFiles) console.error(`  file      ${String(f.lines).padStart(6)}  ${f.path}`);
for (const f of bigFunctions) console.error(`  function  ${String(f.lines).padStart(6)}  ${f.path}:${f.line}  ${f.name}`);
process.exit(1);
