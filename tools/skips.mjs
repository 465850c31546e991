#!/usr/bin/env node
// The skips of a test run (docs/testing.md: no silent skips), for tools/test.sh. Reads the JSON lines
// that tools/vitest-skips-reporter.mjs and tools/test.sh's pytest step wrote ({runner, where, reason}),
// prints one line per skip:
//   skipped: <where>: <reason>
// and exits 1 when a skip must not happen: one without a reason (anywhere), or, under CI=true, one that
// no pattern of the allow-list matches (CI is meant to run every suite: it has uv, root, PyPI and a
// large /dev/shm). An allow-list line is a regular expression matched against `<where>: <reason>`,
// followed by `  # why CI may skip it`; blank lines and lines starting with # are ignored.
//
// Usage: node tools/skips.mjs <skips.jsonl> [allow-list]
import { existsSync, readFileSync } from 'node:fs';

const [file, allowFile] = process.argv.slice(2);
if (!file) {
  console.error('usage: node tools/skips.mjs <skips.jsonl> [allow-list]');
  process.exit(2);
}
const skips = existsSync(file)
  ? readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l))
  : [];
const allowed = (allowFile && existsSync(allowFile) ? readFileSync(allowFile, 'utf8') : '')
  .split('\n')
  .map((l) => l.replace(/\s+#.*$/, '').trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => new RegExp(l));
const ci = process.env.CI === 'true' || process.env.CI === '1';

let bad = 0;
for (const s of skips) {
  const line = `${s.where}: ${s.reason || '(no reason given)'}`;
  let verdict = '';
  if (!s.reason) verdict = '  <- FAIL: a skip must say why (ctx.skip(reason) / pytest.skip(reason))';
  else if (ci && !allowed.some((re) => re.test(`${s.where}: ${s.reason}`))) verdict = '  <- FAIL: CI must run this test (see docs/testing.md)';
  if (verdict) bad++;
  console.log(`skipped: ${line}${verdict}`);
}
if (bad > 0) {
  console.log(`skips: ${bad} of ${skips.length} skip(s) must not happen${ci ? ' (CI=true)' : ''}`);
  process.exit(1);
}
