/// <reference lib="dom" />
// (The page callbacks below run in the browser, so this spec type-checks against the DOM too.)
/**
 * The web dashboard (issue #20 acceptance 1), in a real headless browser: Debian's chromium driven by
 * puppeteer-core. A 3-node cluster with running tasks, a failing actor, a placement group, a job and
 * 10,000 finished tasks; each page shows them (a screenshot per page is saved, its path printed), a
 * change reaches an open page through the event stream, the task list paginates, and no request
 * succeeds without the cluster token. The render time of the 10,000-task page is measured in
 * bench/tsray/dashboard-render.mjs, not here.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorHandle, get, init, placementGroup, shutdown, type ObjectRef } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { apiKeyFor } from '../src/http/api-key.js';
import { Counter, Doomed, heldTask, impossible, noop } from './fixtures/dashboard-fns.js';

/** The system browser (Debian's chromium; `.ci/run` installs it). TSRAY_CHROMIUM overrides. */
const CHROMIUM = process.env['TSRAY_CHROMIUM'] ?? '/usr/bin/chromium';
const FINISHED = 10_000;

describe('web dashboard in a headless browser', () => {
  const c = new TestCluster();
  // The screenshots are test artifacts: kept after the run (in TSRAY_TEST_ARTIFACTS if set), their paths printed.
  const shots = mkdtempSync(join(process.env['TSRAY_TEST_ARTIFACTS'] ?? tmpdir(), 'tsray-dashboard-shots-'));
  const release = join(c.tmp, 'release-held-tasks');
  let browser: Browser;
  let page: Page;
  let base: string;
  let held: ObjectRef<number>[] = [];
  const keep: ActorHandle<unknown>[] = [];
  let jobId: string;
  let jobGo: string;

  async function api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${apiKeyFor(c.token)}`, ...(init.headers ?? {}) } });
  }

  /** Open a page by its hash and wait until it rendered with `text` in it; save its screenshot. */
  async function show(name: string, text: string): Promise<string> {
    await page.goto(`${base}/dashboard/#${name}`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(
      // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
      (n: string, t: string) => document.getElementById('main')?.dataset['page'] === n.split('/')[0] && document.body.innerText.includes(t),
      { timeout: 30_000 },
      name,
      text,
    );
    const file = join(shots, `${name.replace('/', '-')}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`dashboard screenshot: ${file}`);
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    return page.evaluate(() => document.body.innerText);
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set TSRAY_CHROMIUM`);
    await c.startHead({ numCpus: 2 });
    await c.addNode({ numCpus: 2, numGpus: 1 });
    await c.addNode({ numCpus: 2 });
    base = c.head.ready.dashboardUrl!;
    c.attachHere();
    await init({ address: 'auto', namespace: 'dashboard' });
    for (let i = 0; i < FINISHED; i += 1000) await get(Array.from({ length: 1000 }, (_, j) => noop.remote(i + j)));
    held = [heldTask.remote(release), heldTask.remote(release)];
    keep.push(Doomed.remote());
    // Never runs (no node has dash_missing); shutdown() cancels it.
    void impossible.remote();
    const pg = placementGroup([{ CPU: 1 }, { GPU: 1 }], { name: 'dash-pg', strategy: 'SPREAD' });
    await get(pg.ready());
    jobGo = join(c.tmp, 'job-go');
    const submitted = await api('/api/jobs/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        entrypoint: `echo dashboard-job-first-line; while [ ! -e ${jobGo} ]; do sleep 0.05; done; echo dashboard-job-second-line`,
        submission_id: 'dash-job-1',
      }),
    });
    expect(submitted.status).toBe(200);
    jobId = ((await submitted.json()) as { submission_id: string }).submission_id;
    await until(
      async () => ((await (await api('/api/v0/tasks')).json()) as { result: { state: string }[] }).result.filter((t) => t.state === 'RUNNING').length === 2,
      30_000,
      'both held tasks to run',
    );
    await until(
      async () => ((await (await api('/api/cluster_status')).json()) as { pendingDemand: { infeasible: boolean }[] }).pendingDemand.some((d) => d.infeasible),
      30_000,
      'the infeasible task to show as demand',
    );
    await until(
      async () => ((await (await api('/api/v0/actors')).json()) as { result: { state: string }[] }).result.some((a) => a.state === 'DEAD'),
      30_000,
      'the doomed actor to die',
    );
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const entry = await page.goto(`${base}/dashboard?token=${encodeURIComponent(apiKeyFor(c.token))}`, { waitUntil: 'domcontentloaded' });
    expect(entry?.status()).toBe(200);
    expect(page.url()).toBe(`${base}/dashboard/`);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    writeFileSync(release, '');
    if (held.length) await get(held).catch(() => undefined);
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 120_000);

  it('overview shows the nodes, CPU/GPU/memory used of total, object store and the counts', async () => {
    const text = await show('overview', 'nodes alive');
    expect(text).toMatch(/nodes alive\s*3/);
    expect(text).toMatch(/CPU used \/ total\s*[\d.]+ \/ 6\b/);
    expect(text).toMatch(/GPU used \/ total\s*1 \/ 1\b/); // the placement group holds the GPU
    expect(text).toMatch(/object_store_memory used \/ total/);
    expect(text).toMatch(/memory used \/ total/);
    expect(text).toMatch(/RUNNING\s*2/);
    expect(text).toMatch(/DEAD\s*1/);
    expect(text).toMatch(/infeasible\s*1/);
    expect(text).toMatch(/task\s+impossible\s+1\s+yes\s+dash_missing/);
  });

  it('nodes page lists the 3 nodes with their resources', async () => {
    const text = await show('nodes', 'worker');
    const ids = ((await (await api('/api/v0/nodes')).json()) as { result: { nodeId: string }[] }).result.map((n) => n.nodeId.slice(0, 12));
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(text).toContain(id);
    expect(text).toContain('head');
    expect(await page.$$eval('main tbody tr', (r) => r.length)).toBe(3);
  });

  it('actors page shows the failed actor with its state and death cause', async () => {
    const text = await show('actors', 'Doomed');
    expect(text).toContain('DEAD');
    expect(text).toContain('dashboard-doomed-actor failed on purpose');
  });

  it('placement groups page maps each bundle to its node', async () => {
    const text = await show('placement_groups', 'dash-pg');
    expect(text).toContain('CREATED');
    expect(text).toContain('SPREAD');
    const pg = ((await (await api('/api/v0/placement_groups')).json()) as { result: { name: string; bundleNodes: string[] }[] }).result.find(
      (g) => g.name === 'dash-pg',
    )!;
    expect(text).toContain(`#0 CPU:1 → ${pg.bundleNodes[0]!.slice(0, 12)}`);
    expect(text).toContain(`#1 GPU:1 → ${pg.bundleNodes[1]!.slice(0, 12)}`);
  });

  it('tasks page shows counts by state and one page of the 10,000 finished tasks', async () => {
    const text = await show('tasks', 'FINISHED');
    const all = (await (await api('/dashboard/api/tasks?limit=1')).json()) as { total: number; counts: Record<string, number> };
    expect(all.counts['FINISHED']).toBeGreaterThanOrEqual(FINISHED);
    expect(all.counts['RUNNING']).toBe(2);
    expect(text).toMatch(/RUNNING\s*2/);
    expect(text).toContain(`1–50 of ${all.total}`);
    expect(await page.$$eval('main tbody tr', (r) => r.length)).toBe(50);
    await page.click('#next');
    await page.waitForFunction((t: number) => document.getElementById('pager-info')?.textContent === `51–100 of ${t}`, { timeout: 30_000 }, all.total);
    expect(await page.$$eval('main tbody tr', (r) => r.length)).toBe(50);
  });

  it('jobs page shows the job and its log, live', async () => {
    const text = await show(`jobs/${jobId}`, 'dashboard-job-first-line');
    expect(text).toContain('dash-job-1');
    expect(text).toContain('RUNNING');
    writeFileSync(jobGo, '');
    await page.waitForFunction(() => document.getElementById('job-logs')?.textContent?.includes('dashboard-job-second-line'), { timeout: 30_000 });
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    await page.waitForFunction(() => document.body.innerText.includes('SUCCEEDED'), { timeout: 30_000 });
    await page.screenshot({ path: join(shots, 'jobs-done.png'), fullPage: true });
  });

  it('an open page updates from the event stream when the cluster changes (no reload)', async () => {
    await show('actors', 'Doomed');
    await page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same-document';
    });
    const before = Number(await page.$eval('#main', (m) => (m as HTMLElement).dataset['updates']));
    keep.push(Counter.options({ name: 'dash-late-actor' }).remote());
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    await page.waitForFunction(() => document.body.innerText.includes('dash-late-actor'), { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same-document');
    expect(Number(await page.$eval('#main', (m) => (m as HTMLElement).dataset['updates']))).toBeGreaterThan(before);
    expect(await page.$eval('#live', (e) => e.textContent)).toBe('live');
  });

  it('no dashboard request succeeds without the token', async () => {
    const routes = [
      '/dashboard',
      '/dashboard/',
      '/dashboard/app.js',
      '/dashboard/style.css',
      '/dashboard/api/overview',
      '/dashboard/api/tasks',
      '/dashboard/api/events',
      `/dashboard/api/jobs/${jobId}/logs`,
      '/api/v0/nodes',
      '/api/jobs/',
    ];
    for (const r of routes) {
      expect((await fetch(`${base}${r}`)).status, r).toBe(401);
      expect((await fetch(`${base}${r}`, { headers: { cookie: 'tsray_dashboard=wrong-token' } })).status, r).toBe(401);
      expect((await fetch(`${base}${r}`, { headers: { authorization: 'Bearer wrong-token' } })).status, r).toBe(401);
    }
    expect((await fetch(`${base}/dashboard?token=wrong-token`, { redirect: 'manual' })).status).toBe(401);
    // The cluster token is not the dashboard's key (the key is derived from it, HKDF).
    expect((await fetch(`${base}/dashboard?token=${encodeURIComponent(c.token)}`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${base}/dashboard/api/overview`, { headers: { authorization: `Bearer ${c.token}` } })).status).toBe(401);
    // The dashboard's cookie is no key to the Jobs API (a cross-site form must not submit jobs).
    expect((await fetch(`${base}/api/jobs/`, { headers: { cookie: `tsray_dashboard=${apiKeyFor(c.token)}` } })).status).toBe(401);
    expect((await fetch(`${base}/dashboard/api/overview`, { headers: { cookie: `tsray_dashboard=${apiKeyFor(c.token)}` } })).status).toBe(200);
    // With the token the same routes answer (events is a stream: only its status is read).
    for (const r of routes.filter((x) => x !== '/dashboard/api/events')) expect((await api(r, { redirect: 'manual' })).status, r).toBeLessThan(400);
    // A fresh browser profile (no cookie) gets 401 for the page.
    const ctx = await browser.createBrowserContext();
    const p2 = await ctx.newPage();
    const res = await p2.goto(`${base}/dashboard/`);
    expect(res?.status()).toBe(401);
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    expect(await p2.evaluate(() => document.body.innerText)).toContain('needs the cluster API key');
    await ctx.close();
  });
});
