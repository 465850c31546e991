/// <reference lib="dom" />
/**
 * Dashboard render time (issue #20 acceptance 1: "10,000 finished tasks paginate without the page
 * slowing, time to render < 1 s"). Kept out of the tests (no wall-clock thresholds there).
 *
 * Serves the head's HTTP API with a state provider holding `--tasks` finished tasks (default 10,000;
 * no cluster is started, so only the dashboard's own cost is measured), opens the tasks page in
 * Debian's chromium (puppeteer-core; TSRAY_CHROMIUM overrides the path) and times, per sample, a cold
 * load of `#tasks` until its first page is in the DOM, and a Next click until the second page is.
 * Prints one JSON line per metric (`{"system","metric","value","std","unit","budget","ok"}`).
 *
 * Usage: npx tsx bench/dashboard/render.bench.ts [--tasks N] [--samples N]
 */
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';
import { startHttpApi } from '../../packages/cluster/src/http/server.js';
import type { JobManager } from '../../packages/cluster/src/jobs/job-manager.js';
import type { StateProvider, TaskEvent } from '../../packages/cluster/src/contracts.js';

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '10000' }, samples: { type: 'string', default: '10' } } });
const TASKS = Number(values.tasks);
const SAMPLES = Number(values.samples);
const BUDGET_MS = 1000;

const now = Date.now() * 1000;
const finished: TaskEvent[] = Array.from({ length: TASKS }, (_, i) => ({
  taskId: `task${String(i).padStart(12, '0')}`,
  name: `work_${i % 7}`,
  nodeId: `node${i % 3}`.padEnd(28, 'x'),
  workerId: `w${i % 16}`,
  pid: 1000 + (i % 16),
  jobId: '01000000',
  attempt: 0,
  startUs: now - i * 1000,
  durUs: 500,
}));
const state: StateProvider = {
  status: async () => ({ nodes: [], pendingDemand: [], placementGroups: [] }),
  nodes: async () => [],
  actors: async () => [],
  tasks: async () => [],
  objects: async () => [],
  placementGroups: async () => [],
  timeline: async () => finished,
};
const jobs = { list: () => [], logs: async () => '' } as unknown as JobManager;
const token = 'bench-token';
const api = await startHttpApi({ host: '127.0.0.1', port: 0, token, jobs, state });
const browser = await puppeteer.launch({
  executablePath: process.env['TSRAY_CHROMIUM'] ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});

function stats(xs: number[]): { value: number; std: number } {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { value: m, std: Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length) };
}

try {
  const page = await browser.newPage();
  await page.goto(`${api.url}/dashboard?token=${token}`);
  const load: number[] = [];
  const next: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await page.goto('about:blank');
    let t = performance.now();
    await page.goto(`${api.url}/dashboard/#tasks`);
    await page.waitForFunction((n: number) => document.getElementById('pager-info')?.textContent === `1–50 of ${n}`, { timeout: 30_000 }, TASKS);
    load.push(performance.now() - t);
    t = performance.now();
    await page.click('#next');
    await page.waitForFunction((n: number) => document.getElementById('pager-info')?.textContent === `51–100 of ${n}`, { timeout: 30_000 }, TASKS);
    next.push(performance.now() - t);
  }
  for (const [metric, xs] of [
    [`dashboard_tasks_page_load_${TASKS}`, load],
    [`dashboard_tasks_next_page_${TASKS}`, next],
  ] as const) {
    const s = stats(xs);
    console.log(JSON.stringify({ system: 'tsray', metric, ...s, unit: 'ms', budget: BUDGET_MS, ok: s.value < BUDGET_MS }));
  }
} finally {
  await browser.close();
  await api.close();
}
