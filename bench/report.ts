/**
 * Reads the JSON lines of a benchmark run (bench/results/*.jsonl: Ray's and tsray's lines together),
 * prints the comparison table and, with `--update-md`, writes it into a marked section of
 * BENCHMARKS.md together with the machine and the versions.
 *
 * Usage:
 *   npx tsx bench/report.ts <results.jsonl>... [--update-md [BENCHMARKS.md]] [--command "<cmd>"] [--section core]
 *
 * Several files are read in order and a later line for the same system and metric replaces an
 * earlier one, so a saved Ray run can be combined with a newer tsray-only run:
 *   npx tsx bench/report.ts bench/results/<ray run>.jsonl bench/results/<tsray run>.jsonl
 *
 * Goals (from the issue): every call rate >= 2x Ray (floor); aim >= 3x on sync rates and >= 5x on
 * async rates; large put/get >= 0.8x this machine's memcpy bandwidth (`memcpy_gigabytes`, measured by
 * the tsray script in the same run).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** How a metric is judged. */
type Goal =
  | { kind: 'rate'; floor: number; aim: number }
  /** A fraction of a reference bandwidth measured in the same run by the tsray script (default `memcpy_gigabytes`). */
  | { kind: 'bandwidth'; ofMemcpy: number; ref?: string }
  | { kind: 'reference' };

const SYNC: Goal = { kind: 'rate', floor: 2, aim: 3 };
const ASYNC: Goal = { kind: 'rate', floor: 2, aim: 5 };
const BANDWIDTH: Goal = { kind: 'bandwidth', ofMemcpy: 0.8 };

/** Goal per metric; metrics not listed fall back to {@link defaultGoal}. */
const GOALS: Record<string, Goal> = {
  single_client_get_calls: SYNC,
  single_client_put_calls: SYNC,
  single_client_put_gigabytes: BANDWIDTH,
  single_client_get_gigabytes: BANDWIDTH,
  single_client_tasks_and_get_batch: ASYNC,
  // 1000 tasks in flight, but the rate is bound by 1000 successive blocking wait() calls.
  single_client_wait_1k_refs: SYNC,
  single_client_tasks_sync: SYNC,
  single_client_tasks_async: ASYNC,
  // Actor metrics (ray_perf.py): only 1:1 sync has one call in flight; the others submit batches
  // (1000 calls, or 5000 per server/task) before one get.
  '1_1_actor_calls_sync': SYNC,
  '1_1_actor_calls_async': ASYNC,
  '1_1_actor_calls_concurrent': ASYNC,
  '1_n_actor_calls_async': ASYNC,
  n_n_actor_calls_async: ASYNC,
  '1_1_async_actor_calls_async': ASYNC,
  placement_group_create_removal: SYNC,
  memcpy_gigabytes: { kind: 'reference' },
  memcpy_zeros_gigabytes: { kind: 'reference' },
  zmq_ipc_round_trip: { kind: 'reference' },
  // Two-node suite (bench/run.sh --suite cluster).
  multi_client_tasks_async: ASYNC,
  object_transfer_gigabytes: { kind: 'bandwidth', ofMemcpy: 0.8, ref: 'zmq_push_pull_gigabytes' },
  zmq_push_pull_gigabytes: { kind: 'reference' },
  zmq_sealed_push_pull_gigabytes: { kind: 'reference' },
  zmq_curve_push_pull_gigabytes: { kind: 'reference' },
};

function defaultGoal(metric: string, unit: string): Goal {
  if (unit === 'GB/s') return BANDWIDTH;
  return /(^|_)async(_|$)|concurrent|batch/.test(metric) ? ASYNC : SYNC;
}

interface Line {
  system: string;
  kind?: string;
  metric?: string;
  value?: number;
  std?: number;
  unit?: string;
  error?: string;
  note?: string;
  [k: string]: unknown;
}

interface Row {
  metric: string;
  unit: string;
  ray?: Line;
  tsray?: Line;
}

function readLines(file: string): Line[] {
  const out: Line[] = [];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const s = raw.trim();
    if (!s.startsWith('{')) continue;
    try {
      out.push(JSON.parse(s) as Line);
    } catch {
      // a partial line from an interrupted run
    }
  }
  return out;
}

function fmt(v: number | undefined, unit: string): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  if (v < 100) return v.toFixed(2);
  return Math.round(v).toLocaleString('en-US');
}

function cell(l: Line | undefined, unit: string): string {
  if (!l) return '—';
  if (l.error !== undefined) return `error: ${l.error.slice(0, 60)}`;
  const std = l.std !== undefined && l.value ? ` ± ${((100 * l.std) / l.value).toFixed(0)}%` : '';
  return `${fmt(l.value, unit)}${std}`;
}

function judge(row: Row, refs: Map<string, number>): { ratio: string; verdict: string } {
  const goal = GOALS[row.metric] ?? defaultGoal(row.metric, row.unit);
  const r = row.ray?.value;
  const t = row.tsray?.value;
  const ratio = r !== undefined && t !== undefined && r > 0 ? `${(t / r).toFixed(2)}×` : '—';
  if (goal.kind === 'reference') return { ratio, verdict: 'reference' };
  if (t === undefined) return { ratio, verdict: '—' };
  if (goal.kind === 'bandwidth') {
    const refName = goal.ref ?? 'memcpy_gigabytes';
    const label = refName === 'memcpy_gigabytes' ? 'memcpy' : refName;
    const ref = refs.get(refName);
    if (ref === undefined) return { ratio, verdict: `${label} not measured` };
    const f = t / ref;
    const ok = f >= goal.ofMemcpy;
    return { ratio, verdict: `${ok ? '✅' : '❌'} ${f.toFixed(2)}× ${label} (goal ≥ ${goal.ofMemcpy}×)` };
  }
  if (r === undefined || r <= 0) return { ratio, verdict: '—' };
  const x = t / r;
  if (x >= goal.aim) return { ratio, verdict: `✅ aim (≥ ${goal.aim}×)` };
  if (x >= goal.floor) return { ratio, verdict: `✅ floor (≥ ${goal.floor}×), aim ${goal.aim}× not met` };
  return { ratio, verdict: `❌ below floor ${goal.floor}× (aim ${goal.aim}×)` };
}

/** Builds the markdown table of one run. */
export function table(lines: Line[]): string {
  const rows = new Map<string, Row>();
  for (const l of lines) {
    if (l.metric === undefined) continue;
    const row = rows.get(l.metric) ?? { metric: l.metric, unit: l.unit ?? 'ops/s' };
    if (l.system === 'ray') row.ray = l;
    else if (l.system === 'tsray') row.tsray = l;
    rows.set(l.metric, row);
  }
  // Reference bandwidths (tsray script, same run): memcpy, and the raw ZeroMQ baseline of the cluster suite.
  const refs = new Map<string, number>();
  for (const name of ['memcpy_gigabytes', 'zmq_push_pull_gigabytes']) {
    const l = rows.get(name)?.tsray;
    if (l !== undefined && l.error === undefined && l.value !== undefined) refs.set(name, l.value);
  }
  const out = ['| metric | unit | Ray 2.58 | tsray | ratio (tsray/Ray) | floor / aim |', '|---|---|---:|---:|---:|---|'];
  for (const row of rows.values()) {
    const { ratio, verdict } = judge(row, refs);
    const note = row.tsray?.note ?? row.ray?.note;
    const name = note !== undefined ? `${row.metric} ¹` : row.metric;
    out.push(`| ${name} | ${row.unit} | ${cell(row.ray, row.unit)} | ${cell(row.tsray, row.unit)} | ${ratio} | ${verdict} |`);
  }
  out.push(...latencyLines(rows));
  const notes = [...rows.values()]
    .map((r) => [r.metric, r.tsray?.note ?? r.ray?.note] as const)
    .filter((x): x is readonly [string, string] => x[1] !== undefined);
  if (notes.length > 0) {
    out.push('');
    for (const [m, n] of notes) out.push(`¹ ${m}: ${n}`);
  }
  return out.join('\n');
}

/** Sync metrics whose latency (1 / rate) is judged against one raw ZeroMQ ipc round trip (issue #16). */
const LATENCY_VS_ROUND_TRIP = ['single_client_tasks_sync', '1_1_actor_calls_sync', 'python_actor_calls_sync'];

/** Rows of sync latency ÷ the raw ipc round trip of the same run (goal ≤ 1.5×, aim ≤ 1.2×); none without the baseline. */
function latencyLines(rows: Map<string, Row>): string[] {
  const rt = rows.get('zmq_ipc_round_trip')?.tsray;
  if (rt?.value === undefined || rt.error !== undefined) return [];
  const out = ['', `Sync latency against one raw ZeroMQ ipc round trip (${(1e6 / rt.value).toFixed(0)} µs, zmq_ipc_round_trip):`, ''];
  out.push('| metric | tsray latency | ÷ round trip | goal ≤ 1.5× (aim ≤ 1.2×) |', '|---|---:|---:|---|');
  for (const m of LATENCY_VS_ROUND_TRIP) {
    const v = rows.get(m)?.tsray?.value;
    if (v === undefined || v <= 0) continue;
    const x = rt.value / v;
    const verdict = x <= 1.2 ? '✅ aim' : x <= 1.5 ? '✅ goal, aim not met' : '❌ above 1.5×';
    out.push(`| ${m} | ${(1e6 / v).toFixed(0)} µs | ${x.toFixed(2)}× | ${verdict} |`);
  }
  return out;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

/** The machine/version block of a run. */
export function environment(lines: Line[], files: string[], command: string | undefined): string {
  const rayMeta = lines.findLast((l) => l.system === 'ray' && l.kind === 'meta');
  const tsMeta = lines.findLast((l) => l.system === 'tsray' && l.kind === 'meta');
  const quick = rayMeta?.quick === true || tsMeta?.quick === true;
  const items = [
    `- date: ${String(tsMeta?.time ?? rayMeta?.time ?? new Date().toISOString())
      .slice(0, 16)
      .replace('T', ' ')} UTC (results: ${files.map((f) => `\`${path.relative(process.cwd(), f)}\``).join(', ')})`,
    `- machine: ${sh('nproc', [])} CPUs (\`nproc\`), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${cpuModel()}, ${os.type()} ${os.release()}`,
    `- versions: Ray ${String(rayMeta?.version ?? '—')} (Python ${String(rayMeta?.python ?? '—')}), tsray ${String(tsMeta?.version ?? '—')} (Node ${String(tsMeta?.node ?? process.version)})`,
    `- timing: ${quick ? '**--quick** phases (not comparable with published Ray numbers)' : "Ray's timeit (10 s sleep, 1 s warm-up, 4 × 2 s trials, mean ± population std)"}`,
  ];
  const load = (m: Line | undefined): string => (Array.isArray(m?.loadavg) ? (m.loadavg as number[]).join(' / ') : '—');
  items.push(`- load average (1/5/15 min) when each side started: Ray ${load(rayMeta)}, tsray ${load(tsMeta)}`);
  if (command !== undefined) items.push(`- command: \`${command}\``);
  return items.join('\n');
}

const BEGIN = (s: string): string => `<!-- bench:${s}:begin -->`;
const END = (s: string): string => `<!-- bench:${s}:end -->`;

/** Replaces (or appends) the marked section `section` of the markdown file `md`. */
export function updateMarkdown(md: string, section: string, body: string): void {
  const block = `${BEGIN(section)}\n${body}\n${END(section)}`;
  const text = existsSync(md) ? readFileSync(md, 'utf8') : '# Benchmarks\n';
  const b = text.indexOf(BEGIN(section));
  const e = text.indexOf(END(section));
  const next = b >= 0 && e > b ? text.slice(0, b) + block + text.slice(e + END(section).length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(md, next);
}

function main(argv: string[]): number {
  const files: string[] = [];
  let md: string | undefined;
  let command: string | undefined;
  let section = 'core';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--update-md') {
      const n = argv[i + 1];
      md = n !== undefined && !n.startsWith('--') && n.endsWith('.md') ? (i++, n) : 'BENCHMARKS.md';
    } else if (a === '--command') command = argv[++i];
    else if (a === '--section') section = argv[++i] ?? section;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: npx tsx bench/report.ts <results.jsonl>... [--update-md [BENCHMARKS.md]] [--command CMD] [--section core]\n');
      return 0;
    } else if (a.startsWith('--')) {
      process.stderr.write(`unexpected argument ${a}\n`);
      return 2;
    } else files.push(a);
  }
  if (files.length === 0) {
    process.stderr.write('report.ts: give the results .jsonl file(s)\n');
    return 2;
  }
  const lines = files.flatMap(readLines);
  const env = environment(lines, files, command);
  const tbl = table(lines);
  process.stdout.write(`${env}\n\n${tbl}\n`);
  if (md !== undefined) {
    updateMarkdown(md, section, `${env}\n\n${tbl}`);
    process.stdout.write(`\nupdated section "${section}" of ${md}\n`);
  }
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = main(process.argv.slice(2));
}
