#!/usr/bin/env node
// Static check of the test suite's rules (docs/testing.md; issue #25, acceptance 3). CI runs it from
// tools/test.sh (step `check-tests`). It reads every vitest spec (`*.spec.ts` under packages/ and
// examples/) and every pytest file (python/tests/**/test_*.py) and reports, with file:line:
//
//   duration-threshold  `toBeLessThan(` / `toBeGreaterThan(` (and `OrEqual`) on a duration: the compared
//                       value reads a clock (Date.now, performance.now, hrtime) or is a difference of
//                       time-like names, or a time-like name against a number. Python: an `assert` that
//                       compares a clock reading. Thresholds on a busy machine fail for the wrong reason;
//                       they belong in bench/. Ordering two timestamps (a task's start before another's
//                       end) is allowed: it is not a duration.
//   sleep-as-wait       a timer used to wait in a spec: `setTimeout(resolve, N)` / `new Promise(...
//                       setTimeout` / `await sleep(` / `await delay(`, and `time.sleep(` / a non-zero
//                       `asyncio.sleep(` in a pytest file. Wait on an observable condition with `until()`
//                       (its polling lives in the test helpers, which this check does not read). Work that
//                       a task does (a sleep inside a remote function) goes in the fixtures.
//   skip-without-reason a skip that cannot say why: `it.skip(` / `describe.skip(` / `.skipIf(` / `.runIf(` /
//                       `.todo(` / `ctx.skip()` with no reason; Python: `pytest.skip()` or `mark.skip`
//                       without a reason. Skip at run time with `ctx.skip('why')` (tools/test.sh lists
//                       every skip with its reason, and CI fails on skips it must not make).
//
// A line that must break a rule on purpose carries `tests-check: allow <rule> <reason>` on itself or on
// the line above; the reason is required. Exit 1 with the list when anything is found.
//
// Usage: node tools/check-tests.mjs [--list-allowed]
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const listAllowed = process.argv.includes('--list-allowed');

/** Files under `dir` (recursively, no node_modules/dist/.venv) whose name passes `keep`. */
function walk(dir, keep, out = []) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (['node_modules', 'dist', '.venv', '__pycache__', '.nx'].includes(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, out);
    else if (keep(e.name)) out.push(p);
  }
  return out;
}

const CLOCK = /Date\.now\(|performance\.now\(|process\.hrtime|\bhrtime\b|time\.monotonic\(|time\.time\(|perf_counter\(/;
// Names that hold a time or a duration: t0, startMs, endTime, napDone, deadAfter, started_at, elapsed, x.at ...
const TIMEISH =
  /\bt\d\b|\b\w*(?:Ms|Time|At|Elapsed|Duration|Done|After|Latency|Secs?)\b|\b(?:ms|elapsed|duration|took|latency|\w+_at|\w+_ms|\w+_s)\b|\.at\b(?!\()/;
const NUMERIC = /^\s*[-+*/()\d_\s.]+\s*$/;
const COMPARE = /expect\((.*)\)\s*\.(?:not\.)?toBe(?:Less|Greater)Than(?:OrEqual)?\((.*)\)/;

const RULES = {
  'duration-threshold': (line, py) => {
    if (py) return /^\s*assert\b/.test(line) && /[<>]/.test(line) && CLOCK.test(line);
    const m = COMPARE.exec(line);
    if (!m) return false;
    const [, actual, bound] = m;
    if (CLOCK.test(actual) || CLOCK.test(bound)) return true;
    return TIMEISH.test(actual) && (/\s-\s/.test(actual) || NUMERIC.test(bound));
  },
  'sleep-as-wait': (line, py) => {
    if (py) return /\btime\.sleep\(/.test(line) || /\basyncio\.sleep\(\s*(?!0\s*\))[^)]/.test(line);
    return (
      /setTimeout\(\s*(?:r|res|resolve|done|ok)\s*,/.test(line) ||
      /new Promise\S*\(\(?\s*(\w+)\s*\)?\s*=>\s*\{?\s*setTimeout\(\s*\1\b/.test(line) ||
      /\bawait\s+(?:sleep|delay)\(/.test(line) ||
      /import\s*\{[^}]*setTimeout[^}]*\}\s*from\s*'node:timers\/promises'/.test(line)
    );
  },
  'skip-without-reason': (line, py) => {
    if (py) return /\bpytest\.skip\(\s*\)/.test(line) || /@pytest\.mark\.skip(?:if)?\s*(?:\(\s*\))?\s*$/.test(line);
    return /\b(?:it|test|describe|suite)\.(?:skip|skipIf|runIf|todo)\b/.test(line) || /\b\w+\.skip\(\s*\)/.test(line);
  },
};

const ALLOW = /tests-check: allow ([\w-]+)\s+(\S.*)/;

const files = [
  ...walk(join(ROOT, 'packages'), (n) => n.endsWith('.spec.ts')),
  ...walk(join(ROOT, 'examples'), (n) => n.endsWith('.spec.ts')),
  ...walk(join(ROOT, 'python', 'tests'), (n) => /^test_.*\.py$/.test(n)),
];
const found = [];
const allowed = [];
for (const file of files) {
  const py = file.endsWith('.py');
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    for (const [rule, broken] of Object.entries(RULES)) {
      if (!broken(line, py)) continue;
      const where = `${relative(ROOT, file)}:${i + 1}`;
      const allow = [line, lines[i - 1] ?? ''].map((l) => ALLOW.exec(l)).find((m) => m && m[1] === rule);
      if (allow) allowed.push(`${where}: ${rule} allowed: ${allow[2]}`);
      else found.push(`${where}: ${rule}: ${line.trim()}`);
    }
  });
}

console.log(`check-tests: ${files.length} test files read, ${found.length} problem(s), ${allowed.length} allowed exception(s)`);
if (listAllowed) for (const a of allowed) console.log(`  ${a}`);
if (found.length > 0) {
  for (const f of found) console.log(`  ${f}`);
  console.log('check-tests: see docs/testing.md (wait with until(), assert order from timestamps; thresholds go to bench/)');
  process.exit(1);
}
